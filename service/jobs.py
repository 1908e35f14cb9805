"""Background jobs of the service: one retraining at a time, in a worker thread.

A job's state (phase, steps, ETA, the held-out evaluation table, the decision) is kept in
the data dir's catalogue (service/job_store.py): GET /v1/jobs/{id} answers after a
restart, a job cut off by one is reported `interrupted`, and the one-at-a-time rule is
checked there. The live Job object of a job this process runs is the freshest copy; the
store gets its progress at every phase change and at most every SAVE_EVERY_S otherwise.
When a retrained model is promoted and the service answers with the data dir's model (no
REID_MODEL), the app switches to the new pipeline, which promotion has already built
(embeddings and index): requests never wait for it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from reid.errors import ReidError
from service.job_store import HEARTBEAT_S, Job, JobStore

log = logging.getLogger("service")

SAVE_EVERY_S = 2.0
__all__ = ["Job", "JobRunner", "retrain_job"]


class JobRunner:
    """At most one job at a time per data dir; `start` returns (the job, True) or, while one
    runs, (that one, False)."""

    def __init__(self, data_dir: str | Path) -> None:
        self._lock = threading.Lock()
        self.store = JobStore(data_dir)
        self.jobs: dict[str, Job] = {}  # the jobs this process ran: live objects

    def start(self, app: FastAPI, kind: str, params: dict[str, Any], actor: str) -> tuple[Job, bool]:
        with self._lock:
            job = Job(id=uuid.uuid4().hex, kind=kind, actor=actor)
            running = self.store.claim(job)
            if running is not None:
                return self.jobs.get(running.id, running), False
            self.jobs[job.id] = job
        threading.Thread(target=self._run, args=(app, job, params, actor), name=f"job-{job.id}", daemon=True).start()
        return job, True

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id) or self.store.get(job_id)

    def _save(self, job: Job) -> None:
        try:
            self.store.save(job)
        except sqlite3.Error as exc:  # a busy catalogue must not end the job: the next save catches up
            log.warning("job %s: state not saved (%s)", job.id, exc)

    def _reporter(self, job: Job) -> Callable[[str, int, int], None]:
        last = [0.0]

        def report(phase: str, done: int, total: int) -> None:
            changed = phase != job.phase
            job.progress(phase, done, total)
            if changed or time.time() - last[0] >= SAVE_EVERY_S:
                last[0] = time.time()
                self._save(job)
        return report

    def _heartbeat(self, job: Job, stop: threading.Event) -> None:
        """Slow phases report nothing for minutes: the heartbeat says the process is alive."""
        while not stop.wait(HEARTBEAT_S):
            try:
                self.store.heartbeat(job.id)
            except sqlite3.Error as exc:
                log.warning("job %s: heartbeat not saved (%s)", job.id, exc)

    def _run(self, app: FastAPI, job: Job, params: dict[str, Any], actor: str) -> None:
        stop = threading.Event()
        threading.Thread(target=self._heartbeat, args=(job, stop), name=f"job-{job.id}-heartbeat", daemon=True).start()
        try:
            job.result = retrain_job(app, self._reporter(job), params, actor)
            job.status = "done"
        except ReidError as exc:  # the data or the request says no (too few individuals...): one line
            log.warning("job %s failed: %s", job.id, exc)
            job.status, job.error = "failed", str(exc)
        except Exception as exc:  # noqa: BLE001 - a failed job is reported, never takes the server down
            log.exception("job %s failed", job.id)
            job.status, job.error = "failed", str(exc) or type(exc).__name__
        finally:
            stop.set()
            job.finished = time.time()
            self._save(job)


def retrain_job(app: FastAPI, report: Callable[[str, int, int], None], params: dict[str, Any],
                actor: str) -> dict[str, Any]:
    from dataclasses import replace

    from reid.retrain import RetrainConfig, retrain

    settings = app.state.settings
    cfg = replace(RetrainConfig(), **params.get("recipe", {}))
    result = retrain(settings, cfg, base_path=params.get("base"), dry_run=params.get("dry_run", False),
                     actor=actor, report=report, progress=False)
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
