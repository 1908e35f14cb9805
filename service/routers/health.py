"""GET /healthz: is the service up, which model, how big is the catalogue, is the index in sync.

It needs no key (container health checks have none); callers without one, where keys are
needed, learn only that the service is up - nothing about the catalogue.
"""

from __future__ import annotations

from fastapi import APIRouter

from service.deps import AuthDep, PipelineDep, Role
from service.schemas import HealthOut, HealthPublicOut, IndexStatus

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthOut | HealthPublicOut, summary="Liveness and catalogue/index status")
def healthz(pipeline: PipelineDep, actor: AuthDep) -> HealthOut | HealthPublicOut:
    if not actor.may(Role.viewer):
        return HealthPublicOut(status="ok")
    pipeline.sync()  # changes another process made (a CLI enroll) are applied, not reported as drift
    check = pipeline.gallery.check(pipeline.catalog, pipeline.model_id)
    # An out-of-sync index is reported, not fatal: a request may be mid-enrollment, and the
    # index is rebuilt from the catalogue at the next start. 200 either way, so the container
    # healthcheck only fails when the process cannot answer at all.
    return HealthOut(
        status="ok" if check.ok else "degraded",
        model_id=pipeline.model_id,
        embed_backend=pipeline.embedder.backend,
        calibrated=not pipeline.calibrator.is_uncalibrated,
        calibration=pipeline.calibrator.fitted_on,
        calibration_source=pipeline.calibration_source,
        counts=pipeline.catalog.counts(),
        index=IndexStatus(ok=check.ok, index_count=check.index_count, catalog_count=check.catalog_count,
                          message=check.message),
    )
