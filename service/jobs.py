"""Background jobs of the service: one retraining at a time, in a worker thread.

A job's state (phase, steps, ETA, the held-out evaluation table, the decision) lives in
memory: a restart forgets finished jobs, while what a job wrote (the model version, its
run record) stays in the data dir. When a retrained model is promoted and the service
answers with the data dir's model (no REID_MODEL), the app switches to the new pipeline,
which promotion has already built (embeddings and index): requests never wait for it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI

from reid.errors import ReidError

log = logging.getLogger("service")


@dataclass
class Job:
    id: str
    kind: str
    status: str = "running"  # running | done | failed
    phase: str = "starting"
    done: int = 0
    total: int = 0
    started: float = field(default_factory=time.time)
    phase_started: float = field(default_factory=time.time)
    finished: float | None = None
    result: dict[str, Any] | None = None
    error: str | None = None

    def progress(self, phase: str, done: int, total: int) -> None:
        if phase != self.phase:
            self.phase, self.phase_started = phase, time.time()
        self.done, self.total = done, total

    def eta_s(self) -> float | None:
        """Seconds left in the current phase at its pace so far."""
        if self.status != "running" or not self.done or not self.total:
            return None
        pace = (time.time() - self.phase_started) / self.done
        return round(pace * max(0, self.total - self.done), 1)


class JobRunner:
    """At most one job at a time; `start` returns None while one runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.jobs: dict[str, Job] = {}
        self.running: Job | None = None

    def start(self, app: FastAPI, kind: str, params: dict[str, Any], actor: str) -> Job | None:
        with self._lock:
            if self.running is not None:
                return None
            job = Job(id=uuid.uuid4().hex, kind=kind)
            self.jobs[job.id] = job
            self.running = job
        threading.Thread(target=self._run, args=(app, job, params, actor), name=f"job-{job.id}", daemon=True).start()
        return job

    def _run(self, app: FastAPI, job: Job, params: dict[str, Any], actor: str) -> None:
        try:
            job.result = retrain_job(app, job, params, actor)
            job.status = "done"
        except ReidError as exc:  # the data or the request says no (too few individuals...): one line
            log.warning("job %s failed: %s", job.id, exc)
            job.status, job.error = "failed", str(exc)
        except Exception as exc:  # noqa: BLE001 - a failed job is reported, never takes the server down
            log.exception("job %s failed", job.id)
            job.status, job.error = "failed", str(exc) or type(exc).__name__
        finally:
            job.finished = time.time()
            with self._lock:
                self.running = None


def retrain_job(app: FastAPI, job: Job, params: dict[str, Any], actor: str) -> dict[str, Any]:
    from dataclasses import replace

    from reid.retrain import RetrainConfig, retrain

    settings = app.state.settings
    cfg = replace(RetrainConfig(), **params.get("recipe", {}))
    result = retrain(settings, cfg, base_path=params.get("base"), dry_run=params.get("dry_run", False),
                     actor=actor, report=job.progress, progress=False)
    rec = result.record
    answering = app.state.pipeline.model_id
    if result.pipeline is not None:
        if settings.model_path is None:
            old, app.state.pipeline = app.state.pipeline, result.pipeline
            answering = result.pipeline.model_id
            threading.Thread(target=result.pipeline.keypoint_index, name="keypoint-index", daemon=True).start()
            old.flush()
        else:
            result.pipeline.close()
    return {"version": result.version, "promoted": result.promoted, "gate": rec["gate"],
            "table": rec["held_out_table"], "training": {k: v for k, v in rec["training"].items() if k != "history"},
            "data": rec["data"], "seconds": rec["seconds"], "peak_rss_mib": rec["peak_rss_mib"],
            "answering_model_id": answering,
            "note": None if settings.model_path is None or not result.promoted else
            f"REID_MODEL={settings.model_path} is set and wins: this server still answers with it"}
