"""Batches on a Ray cluster: `reid batch ... --ray local|auto|ADDRESS`.

The driver (the `reid` process) plans chunks and keeps the journal exactly as a local run
does (reid.runner); only the identification of unfinished chunks moves to Ray actors. Each
actor is one worker process holding its own read-only Pipeline, opened from the same data
directory (on a multi-machine cluster: the same path on a shared or copied file system, like
the input photos). Results stream back as they finish; the runner journals them and the
driver writes the CSV in plan order, so the output is the local run's, byte for byte.

An actor that dies (killed, out of memory, node lost) is restarted by Ray and its unfinished
tasks are retried (`max_restarts`, `max_task_retries`). Workers write nothing to the
catalogue: what a local run would write (review items of a batch; a season writes its own
after the journal) comes back with the results and the driver writes it, and the log line a
local identify makes is made by the driver too.

Ray is optional (`pip install .[cluster]`) and imported only here, only when --ray is given.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from reid.batch import ChunkWork, Outcome
from reid.errors import ReidError
from reid.identify import Pipeline
from reid.runner import Chunk
from reid.settings import Settings

log = logging.getLogger(__name__)

MAX_RESTARTS = 4  # per actor: a worker that keeps dying is a bug, not bad luck
IN_FLIGHT = 2  # chunks queued per actor, so it never waits for the driver between chunks
#: Test hook: a worker process exits hard (as if killed) before its first chunk when this file
#: does not exist yet, creating it first, so exactly one worker dies once per run.
EXIT_ONCE_ENV = "REID_TEST_WORKER_EXIT_ONCE"


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ReidError("--ray needs Ray: pip install 'leopard-reid[cluster]' (or pip install ray)") from None
    return ray


def start_ray(ray: Any, address: str, requested: int | None) -> int:
    """Start ("local") or join ("auto", HOST:PORT) Ray unless this process already has; returns
    the number of worker processes to run: `requested`, else the cluster's CPUs."""
    if ray.is_initialized():
        return requested or int(ray.cluster_resources().get("CPU", 1))
    try:
        if address == "local":
            ray.init(num_cpus=requested or os.cpu_count() or 1, include_dashboard=False,
                     log_to_driver=False, configure_logging=False)
        else:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ReidError(f"cannot start or join Ray at {address!r}: {exc}") from None
    return requested or max(1, int(ray.cluster_resources().get("CPU", 1)))


def exit_once_for_tests() -> None:
    """The EXIT_ONCE_ENV hook: the first worker to get here dies hard, once per marker file."""
    marker = os.environ.get(EXIT_ONCE_ENV)
    if marker and not os.path.exists(marker):
        Path(marker).write_text(str(os.getpid()))
        os._exit(1)  # die like a killed process: no clean-up, no reply


def audit_detail(pipeline: Pipeline, outcome: Outcome) -> dict[str, Any] | None:
    """What Pipeline.identify logs for one identified query (None for a file that failed)."""
    q, res = outcome.query, outcome.identification
    if q is None:
        return None
    return {"name": q.name, "sha256": q.sha256, "model_id": pipeline.model_id, "decision": res.decision,
            "sighting": q.sighting, "candidates": [(c.identity, c.score) for c in res.candidates]}


@dataclass(frozen=True)
class WorkerOf:
    """A chunk worker class that takes the pipeline first, shipped as its other arguments and
    built on the worker against the worker's pipeline: e.g. `WorkerOf(SeasonWorker, (options,
    flank_classifier, sightings, lat_lon))` for `reid season run`. Called as (pipeline, items)."""

    cls: type
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __call__(self, pipeline: Pipeline, items: list[Any]) -> Any:
        return self.cls(pipeline, *self.args, **self.kwargs)(Chunk("", list(items)))


def slim_outcome(outcome: Outcome) -> Outcome:
    """An outcome small enough to send back for the driver's review queue: no keypoint matches,
    and no pixels when the driver can read the original file (a video frame keeps its crop)."""
    res = outcome.identification
    res = replace(res, candidates=[replace(c, match=None) for c in res.candidates])
    q = outcome.query
    if q is not None and outcome.item is not None and not outcome.item.is_video:
        q = replace(q, rgb=np.zeros((1, 1, 3), np.uint8), data=None)
    return replace(outcome, identification=res, query=q)


def run_on_worker(work: Any, pipeline: Pipeline, items: list[Any]
                  ) -> tuple[Any, list[dict[str, Any]], list[Outcome]]:
    """One chunk on a worker: (journal data, identify log details and outcomes for the driver).

    `work` is a reid.batch.ChunkWork (outcomes come back when its `review` is set: the driver
    queues them), or any picklable callable (pipeline, items) -> journal data that writes
    nothing to the catalogue (`reid season run`: a WorkerOf(SeasonWorker, ...))."""
    if isinstance(work, ChunkWork):
        outcomes = work.outcomes(pipeline, items, audit=False)
        audits = [a for a in (audit_detail(pipeline, o) for o in outcomes) if a is not None]
        return work.records(outcomes), audits, ([slim_outcome(o) for o in outcomes] if work.review else [])
    return work(pipeline, items), [], []


class ChunkWorker:
    """One worker process: its own pipeline, identifies whole chunks (a Ray actor class)."""

    def __init__(self, settings: Settings) -> None:
        self.pipeline = Pipeline(settings)

    def run(self, work: Any, key: str, items: list[Any]) -> tuple[str, Any, list[dict], list[Outcome], int]:
        exit_once_for_tests()
        data, audits, outcomes = run_on_worker(work, self.pipeline, items)
        return key, data, audits, outcomes, os.getpid()


class RayExecutor:
    """A reid.batch.BatchExecutor on Ray actors. `address`: "local" starts a Ray runtime on this
    machine (loopback only, no dashboard), "auto" or HOST:PORT joins an existing cluster."""

    engine = "ray"

    def __init__(self, pipeline: Pipeline, address: str, *, workers: int | None = None) -> None:
        self.pipeline = pipeline
        self.address = address
        self.requested = workers
        self.pids: set[int] = set()  # worker processes that returned results

    @property
    def workers(self) -> int:
        """Worker processes that identified chunks (a restarted actor counts again: a new process)."""
        return len(self.pids)

    def _start(self, ray: Any) -> int:
        return start_ray(ray, self.address, self.requested)

    def __call__(self, work: Any, chunks: Sequence[Chunk[Any]], *,
                 on_outcome: Callable[[Outcome], None] | None = None) -> Iterator[tuple[Chunk[Any], Any]]:
        """Identify `chunks` on the workers; (chunk, journal data) as each one finishes.
        `on_outcome`: called on the driver with each identified query of a batch chunk
        (`work.review` set), before the chunk is journaled (reid.review.review_hook)."""
        ray = import_ray()
        n = min(self._start(ray), len(chunks))
        # Saved before the workers open the data dir, so each reads the index instead of building it.
        self.pipeline.save_index()
        if len(self.pipeline.gallery):
            self.pipeline.keypoint_index()
        self.pipeline.flush()
        # One torch thread per worker: the workers are the parallelism.
        settings = self.pipeline.settings.replace(threads=1)
        actor_cls = ray.remote(num_cpus=1, max_restarts=MAX_RESTARTS, max_task_retries=MAX_RESTARTS)(ChunkWorker)
        actors = [actor_cls.remote(settings) for _ in range(n)]
        by_key = {c.key: c for c in chunks}
        queue = list(reversed(chunks))
        owner: dict[Any, Any] = {}  # future -> actor

        def submit(actor: Any) -> None:
            c = queue.pop()
            owner[actor.run.remote(work, c.key, c.items)] = actor

        try:
            for actor in actors:
                for _ in range(IN_FLIGHT):
                    if queue:
                        submit(actor)
            while owner:
                ready, _ = ray.wait(list(owner), num_returns=1)
                actor = owner.pop(ready[0])
                try:
                    key, data, audits, outcomes, pid = ray.get(ready[0])
                except ray.exceptions.RayError as exc:
                    raise ReidError(f"a Ray worker failed {MAX_RESTARTS} times: {exc}") from None
                self.pids.add(pid)
                for detail in audits:  # what Pipeline.identify logs in a local run
                    log.debug("identify by system: %s -> %s %s", detail["name"], detail["decision"],
                              [(i, round(p, 3)) for i, p in detail["candidates"][:3]])
                if on_outcome is not None:
                    for outcome in outcomes:
                        on_outcome(outcome)
                if queue:
                    submit(actor)
                yield by_key[key], data
        finally:
            for actor in actors:
                ray.kill(actor, no_restart=True)
            if self.address == "local":
                ray.shutdown()


__all__ = ["EXIT_ONCE_ENV", "ChunkWorker", "RayExecutor", "WorkerOf", "audit_detail", "import_ray", "run_on_worker",
           "slim_outcome", "start_ray"]
