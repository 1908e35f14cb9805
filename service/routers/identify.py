"""POST /v1/identify: one photo in, ranked known individuals and a verdict out."""

from __future__ import annotations

from time import perf_counter
from typing import Annotated

from fastapi import APIRouter, File, Query, Request, UploadFile

from reid.identify import Identification
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
