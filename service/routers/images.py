"""GET /v1/images/{id}/file: the stored photo, so a person can check a candidate by eye.

Callers whose role may not see locations get it without GPS EXIF, XMP and IPTC
(reid.privacy); the stored original is never changed.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse, Response

from reid.errors import NotFoundError
from reid.privacy import without_location
from service.deps import AuthDep, PipelineDep, Role, RowId, SettingsDep, may_see_locations, require_role
from service.schemas import ErrorOut

router = APIRouter(prefix="/v1/images", tags=["images"], dependencies=[Depends(require_role(Role.viewer))])

_MEDIA_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".tif": "image/tiff",
                ".tiff": "image/tiff", ".webp": "image/webp"}
# content-addressed (images/ab/<sha256>): the bytes behind this id never change; "private":
# no shared cache may keep a photo that needed a key
_HEADERS = {"Cache-Control": "private, max-age=86400", "X-Content-Type-Options": "nosniff"}


@router.get("/{image_id}/file", summary="The stored image file (GPS metadata removed unless the caller may "
                                        "see locations)",
            responses={200: {"content": {"image/jpeg": {}, "image/png": {}}},
                       404: {"model": ErrorOut, "description": "no such image"}})
def image_file(image_id: RowId, pipeline: PipelineDep, actor: AuthDep, settings: SettingsDep) -> Response:
    record = pipeline.catalog.get_image(image_id)  # NotFoundError -> 404
    root = pipeline.catalog.data_dir.resolve()
    path = (root / record.stored_path).resolve()
    # The path comes from our own database, but never serve anything outside the data directory.
    if not path.is_relative_to(root) or not path.is_file():
        raise NotFoundError(f"the file of image {image_id} is missing from the data directory")
    if may_see_locations(actor, settings):
        return FileResponse(path, media_type=_MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream"),
                            headers=_HEADERS)
    data, media_type = without_location(path.read_bytes())
    return Response(data, media_type=media_type, headers={**_HEADERS, "Vary": "Authorization, Cookie"})
