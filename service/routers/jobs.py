"""Admin jobs: POST /v1/jobs/retrain, GET /v1/jobs/{id}; GET /v1/models (versions, confirmations since)."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, create_model

from reid import model_versions as mv
from reid.retrain import RetrainConfig
from service.deps import AdminDep, SettingsDep, ViewerDep
from service.jobs import Job, JobRunner
from service.schemas import ErrorOut, not_bool

router = APIRouter(tags=["jobs"])

_TUNABLE = {f.name: type(f.default) for f in dataclasses.fields(RetrainConfig)
            if f.name not in ("minutes", "epochs") and f.default is not None}


#: The advanced RetrainConfig fields as a closed schema: the document lists exactly what the
#: server accepts (an unknown field is a 422 that both agree on).
RetrainRecipe = create_model(
    "RetrainRecipe", __config__=ConfigDict(extra="forbid"),
    **{name: (Annotated[kind | None, BeforeValidator(not_bool)], Field(default=None, ge=0))  # false is no 0
       for name, kind in _TUNABLE.items()},
)


class RetrainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    minutes: Annotated[float | None, BeforeValidator(not_bool)] = Field(default=None, gt=0, le=24 * 60,
                                  description="time for training and the gate (default 15)")
    epochs: Annotated[int | None, BeforeValidator(not_bool)] = Field(default=None, ge=1, le=1000)
    dry_run: StrictBool = Field(default=False, description="train and measure, write and promote nothing")
    base: str | None = Field(default=None, max_length=80, pattern=mv.VERSION_PATTERN,
                             description="a version of this data dir (`shipped` = the installed default) to "
                                         "start from; default: the model in use")
    recipe: RetrainRecipe = Field(default_factory=RetrainRecipe,  # type: ignore[valid-type]
                                  description=f"advanced RetrainConfig fields: {', '.join(_TUNABLE)}")


class JobOut(BaseModel):
    id: str
    kind: str
    status: str = Field(description="running | done | failed | interrupted (its server process ended first)")
    phase: str
    done: int
    total: int
    eta_s: float | None
    elapsed_s: float
    result: dict[str, Any] | None = None
    error: str | None = None

    @classmethod
    def of(cls, job: Job) -> JobOut:
        return cls(id=job.id, kind=job.kind, status=job.status, phase=job.phase, done=job.done, total=job.total,
                   eta_s=job.eta_s(), elapsed_s=round((job.finished or time.time()) - job.started, 1),
                   result=job.result, error=job.error)


_RUNNER_LOCK = threading.Lock()


def _runner(request: Request) -> JobRunner:
    app = request.app
    with _RUNNER_LOCK:
        if not hasattr(app.state, "jobs"):
            app.state.jobs = JobRunner(app.state.settings.data_dir)
    return app.state.jobs


def _params(body: RetrainRequest, settings: Any) -> dict[str, Any]:
    recipe: dict[str, Any] = {key: _TUNABLE[key](value)
                              for key, value in body.recipe.model_dump(exclude_none=True).items()}
    if body.minutes is not None:
        recipe["minutes"] = body.minutes
    if body.epochs is not None:
        recipe["epochs"] = body.epochs
    base = None
    if body.base:
        try:
            mv.check_version_name(body.base)
        except Exception as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
        if body.base == mv.SHIPPED:
            from reid.settings import default_model_path

            base = default_model_path()
        else:
            base = mv.checkpoint_path(settings.data_dir, body.base)
            if not base.is_file():
                raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no model version {body.base!r}")
    return {"recipe": recipe, "dry_run": body.dry_run, "base": base}


@router.post("/v1/jobs/retrain", status_code=status.HTTP_202_ACCEPTED, response_model=JobOut,
             summary="Retrain on the confirmed individuals in the background (admin; one at a time)",
             responses={404: {"model": ErrorOut, "description": "no such base version in this data dir"},
                        409: {"model": ErrorOut, "description": "a retraining job is already running"}})
def start_retrain(request: Request, actor: AdminDep, settings: SettingsDep,
                  body: RetrainRequest | None = None) -> JobOut:
    params = _params(body or RetrainRequest(), settings)
    runner = _runner(request)
    job, started = runner.start(request.app, "retrain", params, actor.name)
    if not started:
        raise HTTPException(status.HTTP_409_CONFLICT,
                            detail=f"a retraining job is already running ({job.id}); one at a time")
    return JobOut.of(job)


@router.get("/v1/jobs/{job_id:uuid}", response_model=JobOut, summary="A job's progress, evaluation table and decision")
def get_job(request: Request, job_id: uuid.UUID, actor: AdminDep) -> JobOut:
    job = _runner(request).get(job_id.hex)
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no job {job_id.hex!r} in this data dir")
    return JobOut.of(job)


@router.get("/v1/models", summary="Model versions of this data dir and confirmations since the one in force")
def list_models(request: Request, actor: ViewerDep, settings: SettingsDep) -> dict[str, Any]:
    return {"answering_model_id": request.app.state.pipeline.model_id,
            "versions": [v.summary() | {"path": None} for v in mv.list_versions(settings.data_dir)],
            "since_trained": mv.confirmations_since_model(settings.data_dir)}
