"""/v1/reviews: the review queue over HTTP: list, one item, its photo and evidence, decide, undo.

Reading needs the viewer role; deciding the reviewer role (a confirmation enrolls the photo
into the catalogue at once); archiving the admin role.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi import Path as FastPath
from fastapi.responses import FileResponse, Response

from reid import imageio, review
from reid.errors import NotFoundError
from service.deps import (
    AdminDep,
    AuthDep,
    PipelineDep,
    ReviewerDep,
    Role,
    RowId,
    SettingsDep,
    may_see_locations,
    require_role,
    run_model,
)
from service.review_schemas import (
    ArchiveIn,
    ArchiveOut,
    DecisionIn,
    NewIndividualIn,
    ReviewItemOut,
    ReviewListOut,
)
from service.schemas import MAX_ROW_ID, ErrorOut

router = APIRouter(prefix="/v1/reviews", tags=["review"], dependencies=[Depends(require_role(Role.viewer))])

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "no such item or individual"},
    409: {"model": ErrorOut, "description": "decided meanwhile by someone else, changed since loaded, or a name taken"},
}


def item_out(pipeline: Any, item: review.ReviewItem, *, locations: bool) -> ReviewItemOut:
    seen = review.last_seen(pipeline.catalog, [c.individual_id for c in item.candidates])
    return ReviewItemOut.of(item, locations=locations, last_seen=seen)


@router.get("", response_model=ReviewListOut, summary="Review items, pending first in review order")
def list_reviews(
    pipeline: PipelineDep, settings: SettingsDep, actor: AuthDep,
    status: Annotated[str, Query(pattern="^(pending|auto|decided|archived|all)$")] = "pending",
    station: Annotated[str | None, Query(max_length=200)] = None,
    flank: Annotated[str | None, Query(pattern="^(left|right|front|back|unknown)$")] = None,
    date_from: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}-\d{2}$", description="YYYY-MM-DD")] = None,
    date_to: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}-\d{2}$", description="YYYY-MM-DD")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ROW_ID)] = 0,
) -> ReviewListOut:
    locations = may_see_locations(actor, settings)
    items, total = review.list_items(pipeline.catalog, status=status, station=station if locations else None,
                                     viewpoint=flank, date_from=date_from, date_to=date_to, limit=limit, offset=offset)
    return ReviewListOut(total=total, counts=review.counts(pipeline.catalog),
                         items=[item_out(pipeline, it, locations=locations) for it in items])


@router.get("/{item_id:int}", response_model=ReviewItemOut, responses=_ERRORS, summary="One review item with its history")
def get_review(item_id: RowId, pipeline: PipelineDep, settings: SettingsDep, actor: AuthDep) -> ReviewItemOut:
    item = review.get_item(pipeline.catalog, item_id)
    return item_out(pipeline, item, locations=may_see_locations(actor, settings))


@router.get("/{item_id:int}/photo", summary="The query photo as stored", responses=_ERRORS,
            response_class=Response)
def review_photo(item_id: RowId, pipeline: PipelineDep, settings: SettingsDep, actor: AuthDep) -> Response:
    item = review.get_item(pipeline.catalog, item_id)
    return _stored_photo(pipeline, settings, actor, item.stored_path, f"the photo of review item {item_id}")


@router.get("/{item_id:int}/photos/{position:int}", summary="One photo of a multi-photo item, as stored",
            responses=_ERRORS, response_class=Response)
def review_item_photo(item_id: RowId, position: Annotated[int, FastPath(ge=0, le=MAX_ROW_ID)], pipeline: PipelineDep,
                      settings: SettingsDep, actor: AuthDep) -> Response:
    item = review.get_item(pipeline.catalog, item_id)
    photo = next((p for p in item.photos if p.position == position), None)
    if photo is None:
        raise NotFoundError(f"review item {item_id} has no photo {position}")
    return _stored_photo(pipeline, settings, actor, photo.stored_path, f"photo {position} of review item {item_id}")


def _stored_photo(pipeline: Any, settings: Any, actor: Any, stored_path: str, what: str) -> Response:
    root = pipeline.catalog.data_dir.resolve()
    path = (root / stored_path).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise NotFoundError(f"{what} is missing from the data directory")
    headers = {"Cache-Control": "private, max-age=86400", "X-Content-Type-Options": "nosniff"}
    if may_see_locations(actor, settings):
        return FileResponse(path, media_type=_media_type(path.suffix), headers=headers)
    # EXIF may hold GPS: roles that may not see locations get the pixels only
    decoded = imageio.load(path, max_pixels=settings.max_pixels, max_bytes=settings.max_file_bytes)
    return Response(imageio.encode_jpeg(decoded.rgb), media_type="image/jpeg", headers=headers)


def _media_type(suffix: str) -> str:
    return {".png": "image/png", ".tif": "image/tiff", ".tiff": "image/tiff",
            ".webp": "image/webp"}.get(suffix.lower(), "image/jpeg")


class _EvidenceCache:
    """The last few items' query crops and verified spots, and the pictures drawn: a reviewer's page
    asks for five candidates of one item at once."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self.entries: OrderedDict[Any, Any] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: Any, make: Any) -> Any:
        with self.lock:
            if key in self.entries:
                self.entries.move_to_end(key)
                return self.entries[key]
        value = make()
        with self.lock:
            self.entries[key] = value
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)
        return value


_cache = _EvidenceCache()


def verified_spots(pipeline: Any, item: review.ReviewItem) -> tuple[Any, dict[int, Any]]:
    """The item's query crop, and per gallery image the spots its identification verified (what
    a candidate's "N spots" counts): the stored photo identified again, as it was queued."""
    from reid.keypoints.verify import LocalMatch

    query = pipeline.load_query(pipeline.catalog.data_dir / item.stored_path, name=item.file_name,
                                viewpoint=item.viewpoint, box=item.box_tuple, station=item.station)
    (found,) = pipeline.identify([query], top_k=max(5, len(item.candidates)), audit=False)
    # a candidate without verified spots draws none (not a pairwise match that finds some)
    return query.rgb, {c.image_id: c.match or LocalMatch(0, 0.0) for c in found.candidates}


def evidence_match(pipeline: Any, item: review.ReviewItem, image_id: int) -> tuple[Any, Any]:
    """(query crop, the spots drawn) for one gallery image of an item's candidates: the verified
    spots; a pairwise match only where the gallery changed since and that image gives none now."""
    from reid.keypoints.verify import match_pair

    rgb, verified = _cache.get(("query", item.id, item.sha256, str(pipeline.catalog.data_dir)),
                               lambda: verified_spots(pipeline, item))
    if image_id in verified:
        return rgb, verified[image_id]
    return rgb, match_pair(pipeline.extract_keypoints(rgb, boxed=bool(item.box)), pipeline.local_features(image_id))


def evidence_png(pipeline: Any, item: review.ReviewItem, individual_id: int | None) -> bytes:
    """The query beside the gallery image behind a candidate's evidence, matched spots joined."""
    from reid.keypoints.draw import draw_evidence

    cands = item.candidates if individual_id is None else [c for c in item.candidates
                                                           if c.individual_id == individual_id]
    if not cands:
        raise NotFoundError(f"individual {individual_id} is not among review item {item.id}'s candidates")
    cand = cands[0]
    gallery = pipeline.catalog.get_image(cand.image_id)  # 404 once removed (an undone confirmation)
    data_dir = pipeline.catalog.data_dir

    def draw() -> bytes:
        rgb, match = evidence_match(pipeline, item, gallery.id)
        picture = draw_evidence(rgb, pipeline.crop_of(gallery), match, labels=(
            "query", f"{cand.identity} ({gallery.viewpoint}) P={cand.probability:.2f}"))
        return imageio.encode_png(picture)

    return _cache.get(("png", item.id, gallery.id, gallery.individual_id, cand.identity, str(data_dir)), draw)


@router.get("/{item_id:int}/evidence", summary="Evidence picture for one candidate of a stored item",
            response_class=Response, responses={200: {"content": {"image/png": {}}}, **_ERRORS})
async def review_evidence(
    request: Request, item_id: RowId, pipeline: PipelineDep,
    individual_id: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID, description="the candidate's individual id (default: rank 1)")] = None,
) -> Response:
    item = review.get_item(pipeline.catalog, item_id)
    png = await run_model(request, lambda: evidence_png(pipeline, item, individual_id))
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=300"})


@router.post("/{item_id:int}/decision", response_model=ReviewItemOut, responses=_ERRORS,
             summary="Decide an item: confirm, new, not_identifiable or skip (reviewer role)")
async def decide(request: Request, item_id: RowId, body: Annotated[DecisionIn, Body()], pipeline: PipelineDep,
                 settings: SettingsDep, actor: ReviewerDep) -> ReviewItemOut:
    item = await run_model(request, lambda: review.decide(
        pipeline, item_id, body.action, individual_id=getattr(body, "individual_id", None),
        name=getattr(body, "name", None),
        viewpoint=body.viewpoint, actor=actor.name, version=body.version))
    return item_out(pipeline, item, locations=may_see_locations(actor, settings))


@router.post("/new-individual", response_model=list[ReviewItemOut], responses=_ERRORS,
             summary="Several pending items are one new individual (reviewer role)")
async def decide_new(request: Request, body: NewIndividualIn, pipeline: PipelineDep, settings: SettingsDep,
                     actor: ReviewerDep) -> list[ReviewItemOut]:
    items = await run_model(request, lambda: review.decide_new(pipeline, body.item_ids, body.name, actor=actor.name))
    return [item_out(pipeline, it, locations=may_see_locations(actor, settings)) for it in items]


@router.post("/{item_id:int}/undo", response_model=ReviewItemOut, responses=_ERRORS,
             summary="Undo the item's latest decision (reviewer role)")
async def undo(request: Request, item_id: RowId, pipeline: PipelineDep, settings: SettingsDep,
               actor: ReviewerDep) -> ReviewItemOut:
    item = await run_model(request, lambda: review.undo(pipeline, item_id, actor=actor.name))
    return item_out(pipeline, item, locations=may_see_locations(actor, settings))


@router.post("/archive", response_model=ArchiveOut, summary="Archive decided items; drop those past the retention")
def archive(body: ArchiveIn, pipeline: PipelineDep, settings: SettingsDep, actor: AdminDep) -> ArchiveOut:
    archived = review.archive_decided(pipeline.catalog, older_than_days=body.older_than_days, actor=actor.name)
    purged = review.purge_expired(pipeline.catalog, settings.review_retention_days, actor=actor.name)
    return ArchiveOut(archived=archived, purged=purged, retention_days=settings.review_retention_days)
