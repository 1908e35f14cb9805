"""POST /v1/identify: one photo in, ranked known individuals and a verdict out."""

from __future__ import annotations

from time import perf_counter
from typing import Annotated

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import Response

from reid.errors import NotFoundError
from reid.identify import Identification
from reid.imageio import encode_png
from service.deps import ImageMetaDep, PipelineDep, read_upload, run_model, upload_name
from service.schemas import ErrorOut, IdentifyOut, Timing

router = APIRouter(prefix="/v1", tags=["identify"])


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
    top_k: Annotated[int | None, Query(ge=1, le=50, description="candidates to return (default REID_TOP_K)")] = None,
) -> IdentifyOut:
    t0 = perf_counter()
    data = await read_upload(image, pipeline.settings.max_upload_bytes)
    name = upload_name(image)
    t1 = perf_counter()

    def work() -> tuple[Identification, float, float]:
        start = perf_counter()
        query = pipeline.load_query(data, name=name, **meta.query_kwargs())
        decoded = perf_counter()
        (result,) = pipeline.identify([query], top_k=top_k, actor="api")
        return result, decoded - start, perf_counter() - decoded

    result, decode_s, identify_s = await run_model(request, work)
    timing = Timing(read=round((t1 - t0) * 1000, 2), decode=round(decode_s * 1000, 2),
                    identify=round(identify_s * 1000, 2), total=round((perf_counter() - t0) * 1000, 2))
    return IdentifyOut.of(result, model_id=pipeline.model_id, calibrated=not pipeline.calibrator.identity,
                          timing=timing)


@router.post(
    "/identify/evidence",
    summary="Evidence picture: the photo beside a candidate's gallery image, matched spots joined",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, 404: {"model": ErrorOut}, 413: {"model": ErrorOut}},
)
async def identify_evidence(
    request: Request,
    pipeline: PipelineDep,
    image: Annotated[UploadFile, File(description="JPEG, PNG, TIFF or WebP photo")],
    meta: ImageMetaDep,
    individual: Annotated[str | None, Query(description="id or name of the candidate (default: rank 1)")] = None,
) -> Response:
    data = await read_upload(image, pipeline.settings.max_upload_bytes)
    name = upload_name(image)

    def work() -> bytes:
        query = pipeline.load_query(data, name=name, **meta.query_kwargs())
        (result,) = pipeline.identify([query], top_k=max(pipeline.settings.top_k, 20), audit=False)
        chosen = result.candidates[:1]
        if individual is not None:
            wanted = pipeline.catalog.get_individual(individual).id  # 404 for an unknown id
            chosen = [c for c in result.candidates if c.individual_id == wanted]
            if not chosen:
                raise NotFoundError(f"individual {individual!r} is not among this photo's candidates")
        if not chosen:
            raise NotFoundError("no candidate in the catalogue for this photo")
        return encode_png(pipeline.evidence_image(query, chosen[0]))

    return Response(await run_model(request, work), media_type="image/png")
