"""POST /v1/identify: one photo in, ranked known individuals and a verdict out."""

from __future__ import annotations

import uuid
from time import perf_counter
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from fastapi.responses import Response

from reid.errors import NotFoundError
from reid.identify import Identification, Pipeline, QueryImage
from reid.imageio import encode_png
from reid.review import record_identification
from reid.runner import run_queries
from service.deps import (
    ImageMetaDep,
    PipelineDep,
    Role,
    pixel_budget,
    read_upload,
    require_role,
    run_model,
    upload_name,
)
from service.schemas import ErrorOut, IdentifyOut, SightingOut, Timing

router = APIRouter(prefix="/v1", tags=["identify"], dependencies=[Depends(require_role(Role.viewer))])
# Typed without `| None` so the document declares no null (a query string has none); absent = None.
TopK = Annotated[int, Query(ge=1, le=50, description="candidates to return (default REID_TOP_K)")]


def _timing(started: float, read_done: float, decode_s: float, identify_s: float) -> Timing:
    """Milliseconds per step of a request that started at `started` and finished reading at `read_done`."""
    return Timing(read=round((read_done - started) * 1000, 2), decode=round(decode_s * 1000, 2),
                  identify=round(identify_s * 1000, 2), total=round((perf_counter() - started) * 1000, 2))


@router.post(
    "/identify",
    response_model=IdentifyOut,
    summary="Identify the leopard in one photo",
    responses={413: {"model": ErrorOut, "description": "upload above REID_MAX_UPLOAD_BYTES"},
               422: {"description": "not a usable image, or a bad form field"}},
)
async def identify(
    request: Request,
    pipeline: PipelineDep,
    image: Annotated[UploadFile, File(description="JPEG, PNG, TIFF or WebP photo")],
    meta: ImageMetaDep,
    top_k: TopK = None,
) -> IdentifyOut:
    t0 = perf_counter()
    uploads = [(upload_name(image), await read_upload(image, request.app.state.settings.max_upload_bytes))]
    t1 = perf_counter()

    def work() -> tuple[Identification, float, float]:
        (result,), decode_s, identify_s = _identify_uploads(request, pipeline, uploads, top_k, meta.query_kwargs())
        return result, decode_s, identify_s

    result, decode_s, identify_s = await run_model(request, work)
    timing = _timing(t0, t1, decode_s, identify_s)
    return IdentifyOut.of(result, model_id=pipeline.model_id, calibrated=not pipeline.calibrator.is_uncalibrated,
                          timing=timing)


def _identify_uploads(request: Request, pipeline: Pipeline, uploads: list[tuple[str, bytes]], top_k: int | None,
                      kwargs: dict[str, Any]) -> tuple[list[Identification], float, float]:
    """Identify uploaded photos jointly (reid.runner.run_queries, one chunk; an unusable photo is
    a 422), queue each for review; results with the seconds spent decoding and identifying."""
    loaded: list[float] = []
    with pixel_budget(request) as budget:  # the sum over all photos of the request
        start = perf_counter()
        outcomes = list(run_queries(
            pipeline, uploads, lambda upload: [pipeline.load_query(upload[1], name=upload[0], budget=budget, **kwargs)],
            path=lambda upload: upload[0], chunk=len(uploads), top_k=top_k, raise_errors=True,
            on_item=lambda _: loaded.append(perf_counter())))
    for outcome, (_, data) in zip(outcomes, uploads, strict=True):
        assert outcome.query is not None  # raise_errors: every outcome is an identified photo
        record_identification(pipeline, outcome.query, outcome.identification, data=data, source="api")
    return [o.identification for o in outcomes], loaded[-1] - start, perf_counter() - loaded[-1]


MAX_SIGHTING_IMAGES = 32


@router.post(
    "/identify/sighting",
    response_model=SightingOut,
    summary="Identify a burst or several photos of one encounter jointly",
    responses={413: {"model": ErrorOut, "description": "the request is above REID_MAX_UPLOAD_BYTES"},
               422: {"description": "no photo, too many, an unusable photo (named), or a bad form field"}},
)
async def identify_sighting(
    request: Request,
    pipeline: PipelineDep,
    images: Annotated[list[UploadFile], File(min_length=1, max_length=MAX_SIGHTING_IMAGES,
                                             description=f"1-{MAX_SIGHTING_IMAGES} photos of one sighting")],
    meta: ImageMetaDep,
    top_k: TopK = None,
) -> SightingOut:
    t0 = perf_counter()
    limit = request.app.state.settings.max_upload_bytes
    uploads = [(upload_name(im), await read_upload(im, limit)) for im in images]
    t1 = perf_counter()
    kwargs = meta.query_kwargs()
    kwargs["sighting"] = kwargs["sighting"] or f"upload-{uuid.uuid4().hex[:12]}"

    def work() -> tuple[list[Identification], float, float]:
        return _identify_uploads(request, pipeline, uploads, top_k, kwargs)

    results, decode_s, identify_s = await run_model(request, work)
    timing = _timing(t0, t1, decode_s, identify_s)
    calibrated = not pipeline.calibrator.is_uncalibrated
    outs = [IdentifyOut.of(r, model_id=pipeline.model_id, calibrated=calibrated, timing=timing) for r in results]
    best = max(outs, key=lambda o: o.candidates[0].score if o.candidates else -1.0)
    return SightingOut(sighting=kwargs["sighting"], decision=best.decision, candidates=best.candidates,
                       flank_note=best.flank_note, images=outs)


@router.post(
    "/identify/evidence",
    summary="Evidence picture: the photo beside a candidate's gallery image, the matched region zoomed, "
            "the verdict written on it",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, 404: {"model": ErrorOut}, 413: {"model": ErrorOut}},
)
async def identify_evidence(
    request: Request,
    pipeline: PipelineDep,
    image: Annotated[UploadFile, File(description="JPEG, PNG, TIFF or WebP photo")],
    meta: ImageMetaDep,
    individual: Annotated[int, Query(ge=1, le=2**63 - 1, description="id of the candidate (default: rank 1)")] = None,
    lines: Annotated[bool, Query(description="false (lines=0): no lines or markers over the coats, to compare "
                                             "the rosettes themselves")] = True,
) -> Response:
    data = await read_upload(image, request.app.state.settings.max_upload_bytes)
    name = upload_name(image)

    def work() -> bytes:
        with pixel_budget(request) as budget:
            return evidence(pipeline.load_query(data, name=name, budget=budget, **meta.query_kwargs()))

    def evidence(query: QueryImage) -> bytes:
        (result,) = pipeline.identify([query], top_k=max(pipeline.settings.top_k, 20), audit=False)
        chosen = result.candidates[:1]
        if individual is not None:
            wanted = pipeline.catalog.individual_by_id(individual).id  # 404 for an unknown id
            chosen = [c for c in result.candidates if c.individual_id == wanted]
            if not chosen:
                raise NotFoundError(f"individual {individual} is not among this photo's candidates")
        if not chosen:
            raise NotFoundError("no candidate in the catalogue for this photo")
        return encode_png(pipeline.evidence_image(query, chosen[0], lines=lines, result=result))

    return Response(await run_model(request, work), media_type="image/png")
