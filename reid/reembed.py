"""Re-embedding the catalogue on Ray workers: `reid models use|rollback VERSION --ray ...` and
`reid retrain --ray ...`.

A new model meets an old catalogue: every enrolled image needs a vector under the new model
before its FAISS index can be built. Locally the pipeline does it when it opens
(`Pipeline._backfill_embeddings`, in the embedder's batches of `embed_batch_size`). Here each
such batch is a shard sent to a Ray actor instead (one worker process each, the model loaded
once), so both paths embed the very same batches; the workers return the vectors and
the driver writes each shard's vectors into the catalogue as it arrives. Then the caller
opens the pipeline as usual: nothing is left to backfill, and the index is built from the
catalogue exactly as the local path builds it.

Promotion stays atomic (reid.model_versions): the vectors are written under the new model's
id beside the old model's, and the pointer moves only after the index is ready, so the old
model answers until then. An interrupted re-embedding resumes where it stopped (only images
without a vector are sent). Workers read the data directory (same path on every node) and
write nothing; a worker that dies is restarted by Ray and its shards are retried.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reid.catalog import Catalog, ImageRecord
from reid.cluster import MAX_RESTARTS, exit_once_for_tests, import_ray, start_ray
from reid.errors import ImageError, ReidError
from reid.settings import Settings

log = logging.getLogger(__name__)

IN_FLIGHT = 2  # shards queued per worker, so it never waits for the driver


@dataclass(frozen=True)
class ReembedReport:
    model_id: str
    images: int  # embedded by this call (0: every image had a vector already)
    workers: int  # worker processes that returned vectors (a restarted one counts again)
    seconds: float

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0


class EmbedWorker:
    """One worker process: the model loaded once, embeds shards of catalogue images (a Ray actor class)."""

    def __init__(self, settings: Settings) -> None:
        from reid.embed import Embedder
        from reid.model import load_checkpoint

        if settings.threads:
            import torch

            torch.set_num_threads(settings.threads)
        self.settings = settings
        self.checkpoint = load_checkpoint(settings.resolved_model_path)
        self.embedder = Embedder(self.checkpoint, backend=settings.embed_backend,
                                 batch_size=settings.embed_batch_size, onnx_dir=Path(settings.cache_dir) / "onnx")

    def embed(self, records: list[ImageRecord]) -> tuple[list[int], np.ndarray | None, str | None, int]:
        """(image ids, their vectors, None, pid), or (ids, None, why, pid) when a stored image is
        unreadable: the driver reports it as the local path does, instead of Ray retrying it."""
        from reid.stages.decode import stored_crop

        exit_once_for_tests()
        ids = [r.id for r in records]
        try:
            crops = [stored_crop(self.settings.data_dir, r, max_pixels=self.settings.max_pixels,
                                 max_bytes=self.settings.max_file_bytes) for r in records]
        except ImageError as exc:
            return ids, None, str(exc), os.getpid()
        return ids, self.embedder.embed(crops), None, os.getpid()


def model_id_of(settings: Settings) -> str:
    from reid.model import load_checkpoint

    return load_checkpoint(settings.resolved_model_path).model_id


def reembed_on_ray(settings: Settings, address: str, *, workers: int | None = None) -> ReembedReport:
    """Embed every enrolled image that has no vector under `settings`' model, on Ray workers.

    `address`: "local" starts Ray on this machine (and stops it afterwards), "auto" or
    HOST:PORT joins a cluster. Vectors are written by this process, shard by shard. A shard is
    one embedder batch (`settings.embed_batch_size`, the local path's batches too)."""
    started = time.perf_counter()
    model_id = model_id_of(settings)
    catalog = Catalog(settings.data_dir)
    try:
        missing = catalog.images_missing_embedding(model_id)
        if not missing:
            return ReembedReport(model_id, 0, 0, time.perf_counter() - started)
        ray = import_ray()
        step = settings.embed_batch_size
        shards = [missing[i:i + step] for i in range(0, len(missing), step)]
        n = min(start_ray(ray, address, workers), len(shards))
        log.info("embedding %d catalogue images for model %s on %d Ray workers", len(missing), model_id, n)
        # One torch thread per worker: the workers are the parallelism.
        actor_cls = ray.remote(num_cpus=1, max_restarts=MAX_RESTARTS, max_task_retries=MAX_RESTARTS)(EmbedWorker)
        # Absolute paths: a worker's working directory is not the driver's.
        shipped = settings.replace(threads=1, data_dir=Path(settings.data_dir).resolve(),
                                   cache_dir=Path(settings.cache_dir).resolve(),
                                   model_path=Path(settings.resolved_model_path).resolve())
        actors = [actor_cls.remote(shipped) for _ in range(n)]
        queue = list(reversed(shards))
        owner: dict[Any, Any] = {}  # future -> actor
        pids: set[int] = set()
        try:
            for actor in actors:
                for _ in range(IN_FLIGHT):
                    if queue:
                        owner[actor.embed.remote(queue.pop())] = actor
            while owner:
                ready, _ = ray.wait(list(owner), num_returns=1)
                actor = owner.pop(ready[0])
                try:
                    ids, vectors, error, pid = ray.get(ready[0])
                except ray.exceptions.RayError as exc:
                    raise ReidError(f"a Ray worker failed {MAX_RESTARTS} times: {exc}") from None
                if error is not None:
                    raise ReidError(f"catalogue image unreadable while preparing the gallery: {error}")
                catalog.set_embeddings(model_id, ids, vectors)
                pids.add(pid)
                if queue:
                    owner[actor.embed.remote(queue.pop())] = actor
        finally:
            for actor in actors:
                ray.kill(actor, no_restart=True)
            if address == "local":
                ray.shutdown()
        report = ReembedReport(model_id, len(missing), len(pids), time.perf_counter() - started)
        log.info("embedded %d catalogue images in %.1f s (%.2f images/s) on %d Ray worker processes",
                 report.images, report.seconds, report.images_per_s, report.workers)
        return report
    finally:
        catalog.close()


__all__ = ["EmbedWorker", "ReembedReport", "reembed_on_ray"]
