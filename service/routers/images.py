"""GET /v1/images/{id}/file: the stored photo, so a person can check a candidate by eye."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from reid.errors import NotFoundError
from service.deps import PipelineDep, RowId
from service.schemas import ErrorOut

router = APIRouter(prefix="/v1/images", tags=["images"])

_MEDIA_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".tif": "image/tiff",
                ".tiff": "image/tiff", ".webp": "image/webp"}


@router.get("/{image_id}/file", response_class=FileResponse, summary="The stored image file",
            responses={200: {"content": {"image/jpeg": {}, "image/png": {}}},
                       404: {"model": ErrorOut, "description": "no such image"}})
def image_file(image_id: RowId, pipeline: PipelineDep) -> FileResponse:
    record = pipeline.catalog.get_image(image_id)  # NotFoundError -> 404
    root = pipeline.catalog.data_dir.resolve()
    path = (root / record.stored_path).resolve()
    # The path comes from our own database, but never serve anything outside the data directory.
    if not path.is_relative_to(root) or not path.is_file():
        raise NotFoundError(f"the file of image {image_id} is missing from the data directory")
    return FileResponse(
        path,
        media_type=_MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream"),
        # content-addressed (images/ab/<sha256>): the bytes behind this id never change
        headers={"Cache-Control": "private, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )
