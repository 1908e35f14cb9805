"""The pipeline: one entry point, used by the CLI, the season batch and the HTTP service.

    bytes/file -> imageio (safe decode, EXIF) -> crop -> embed -> FAISS shortlist
               -> group by individual (same flank only) -> calibrate -> verdict

Enrollment runs the same first steps and writes to the catalogue instead of matching.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reid import imageio
from reid.calibrate import Calibrator, calibration_path
from reid.catalog import Catalog, GalleryEntry, ImageRecord, normalise_viewpoint
from reid.embed import Embedder
from reid.errors import ImageError, ReidError
from reid.gallery import Gallery
from reid.model import Checkpoint, load_checkpoint
from reid.settings import Settings

log = logging.getLogger(__name__)

DECISIONS = ("match", "new", "review", "error")
FLANKS = ("left", "right")


@dataclass
class QueryImage:
    """A decoded image to identify or enroll, with what is known about it."""

    rgb: np.ndarray  # the animal crop, RGB uint8
    name: str  # file path or upload name, echoed in results
    viewpoint: str = "unknown"
    sighting: str | None = None
    station: str | None = None
    timestamp: str | None = None
    lat: float | None = None
    lon: float | None = None
    box: tuple[float, float, float, float] | None = None
    sha256: str | None = None
    data: bytes | None = field(default=None, repr=False)  # original file bytes (for enrollment copies)
    full_size: tuple[int, int] | None = None  # (width, height) before cropping


@dataclass
class Candidate:
    rank: int
    individual_id: int
    identity: str
    score: float  # calibrated P(query shows this individual)
    cosine: float  # best global-embedding similarity to one of its gallery images
    image_id: int  # that gallery image: the evidence to look at
    viewpoint: str  # flank of that gallery image


@dataclass
class Identification:
    name: str
    decision: str
    candidates: list[Candidate]
    viewpoint: str = "unknown"
    error: str | None = None
    sighting: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(scores: Sequence[float], settings: Settings) -> str:
    """match: rank-1 high and clearly ahead; new: nothing plausible; review: in between."""
    if not scores:
        return "new"
    p1 = scores[0]
    p2 = scores[1] if len(scores) > 1 else 0.0
    if p1 >= settings.match_threshold and p1 - p2 >= settings.match_margin:
        return "match"
    if p1 < settings.new_threshold:
        return "new"
    return "review"


def flank_compatible(query_viewpoint: str, gallery_viewpoint: str) -> bool:
    """Left and right flanks carry different patterns: compare them only when a side is unknown."""
    if query_viewpoint in FLANKS and gallery_viewpoint in FLANKS:
        return query_viewpoint == gallery_viewpoint
    return True


def rank_individuals(sims: np.ndarray, ids: np.ndarray, entries: dict[int, GalleryEntry],
                     viewpoint: str) -> list[tuple[GalleryEntry, float]]:
    """Best-scoring compatible gallery image per individual, sorted by cosine (descending)."""
    best: dict[int, tuple[GalleryEntry, float]] = {}
    for sim, image_id in zip(sims.tolist(), ids.tolist(), strict=True):
        entry = entries.get(int(image_id))
        if entry is None or not flank_compatible(viewpoint, entry.viewpoint):
            continue
        if entry.individual_id not in best or sim > best[entry.individual_id][1]:
            best[entry.individual_id] = (entry, float(sim))
    return sorted(best.values(), key=lambda t: -t[1])


class Pipeline:
    """Holds the catalogue, model, index and calibration for one data directory."""

    def __init__(self, settings: Settings, checkpoint: Checkpoint | None = None) -> None:
        self.settings = settings
        self.catalog = Catalog(settings.data_dir)
        self.checkpoint = checkpoint or load_checkpoint(settings.resolved_model_path)
        if settings.threads:
            import torch

            torch.set_num_threads(settings.threads)
        self.embedder = Embedder(self.checkpoint, backend=settings.embed_backend,
                                 batch_size=settings.embed_batch_size, onnx_dir=Path(settings.cache_dir) / "onnx")
        self.model_id = self.checkpoint.model_id
        self.catalog.register_model(self.model_id, self.checkpoint.version,
                                    str(self.checkpoint.path) if self.checkpoint.path else None)
        self.calibrator = self._load_calibrator()
        self._write_lock = threading.Lock()
        self._backfill_embeddings()
        self.gallery = Gallery.open(self.catalog, self.model_id, self.embedder.dim)

    def _load_calibrator(self) -> Calibrator:
        if self.checkpoint.path is not None:
            side = calibration_path(self.checkpoint.path)
            if side.is_file():
                return Calibrator.load(side)
        if "calibration" in self.checkpoint.meta:
            return Calibrator(**self.checkpoint.meta["calibration"])
        log.warning("model %s ships no calibration: scores are rescaled cosines, not probabilities", self.model_id)
        return Calibrator.uncalibrated()

    def _backfill_embeddings(self) -> None:
        """A new model meets an old catalogue: embed the enrolled images it has no vectors for."""
        missing = self.catalog.images_missing_embedding(self.model_id)
        if not missing:
            return
        log.info("embedding %d catalogue images for model %s", len(missing), self.model_id)
        for start in range(0, len(missing), 64):
            chunk = missing[start:start + 64]
            crops = [self.crop_of(rec) for rec in chunk]
            self.catalog.set_embeddings(self.model_id, [r.id for r in chunk], self.embedder.embed(crops))

    def crop_of(self, record: ImageRecord) -> np.ndarray:
        """The stored copy of a catalogue image, cropped as enrolled."""
        decoded = imageio.load(self.catalog.data_dir / record.stored_path, max_pixels=self.settings.max_pixels)
        return imageio.crop(decoded.rgb, record.box_tuple)

    # -- input ------------------------------------------------------------------------------------
    def load_query(self, source: bytes | str | Path, *, name: str | None = None, viewpoint: str | None = None,
                   box: tuple[float, float, float, float] | None = None, keep_bytes: bool = False,
                   **meta: Any) -> QueryImage:
        """Decode (bytes or path), read EXIF time, crop to the box. Raises ImageError."""
        import hashlib

        if isinstance(source, bytes):
            data, label = source, name or "upload"
        else:
            data, label = imageio.read_bytes(source), name or str(source)
        decoded = imageio.decode(data, name=label, max_pixels=self.settings.max_pixels)
        rgb = imageio.crop(decoded.rgb, box)
        timestamp = meta.pop("timestamp", None) or (decoded.timestamp.isoformat() if decoded.timestamp else None)
        return QueryImage(
            rgb=rgb, name=label, viewpoint=normalise_viewpoint(viewpoint), box=box, timestamp=timestamp,
            sha256=hashlib.sha256(data).hexdigest(), data=data if keep_bytes else None,
            full_size=(decoded.width, decoded.height), **meta,
        )

    # -- identify -------------------------------------------------------------------------------------
    def identify(self, queries: Sequence[QueryImage], *, top_k: int | None = None,
                 audit: bool = True, actor: str = "system") -> list[Identification]:
        """Rank known individuals for each query; one embedding batch for all of them."""
        if not queries:
            return []
        top_k = top_k or self.settings.top_k
        vectors = self.embedder.embed([q.rgb for q in queries])
        depth = min(len(self.gallery), max(self.settings.shortlist_images, top_k * 20))
        sims, ids = self.gallery.search(vectors, depth)
        entries = self.catalog.gallery_entries(sorted({int(i) for i in ids.ravel() if i >= 0}))
        results = []
        for q, qs, qi in zip(queries, sims, ids, strict=True):
            ranked = rank_individuals(qs, qi, entries, q.viewpoint)[:top_k]
            probs = self.calibrator.predict(np.asarray([[c] for _, c in ranked])) if ranked else np.zeros(0)
            order = np.argsort(-probs, kind="stable")
            candidates = [
                Candidate(rank=r + 1, individual_id=ranked[i][0].individual_id, identity=ranked[i][0].individual,
                          score=round(float(probs[i]), 6), cosine=round(ranked[i][1], 6),
                          image_id=ranked[i][0].image_id, viewpoint=ranked[i][0].viewpoint)
                for r, i in enumerate(order)
            ]
            decision = decide([c.score for c in candidates], self.settings)
            results.append(Identification(name=q.name, decision=decision, candidates=candidates,
                                          viewpoint=q.viewpoint, sighting=q.sighting))
        if audit:
            for q, res in zip(queries, results, strict=True):
                self.catalog.audit("identify", actor=actor, detail={
                    "name": q.name, "sha256": q.sha256, "model_id": self.model_id, "decision": res.decision,
                    "candidates": [(c.identity, c.score) for c in res.candidates],
                })
        return results

    # -- enroll ----------------------------------------------------------------------------------------
    def enroll(self, individual: str, images: Sequence[QueryImage], *, actor: str = "system",
               save_index: bool = True) -> list[tuple[ImageRecord, bool]]:
        """Add images of a named individual (created if new). Re-enrolling a file is a no-op."""
        if not images:
            return []
        for q in images:
            if q.data is None or q.sha256 is None:
                raise ReidError(f"{q.name}: enrollment needs the original file bytes (load_query(..., keep_bytes=True))")
        vectors = self.embedder.embed([q.rgb for q in images])
        out: list[tuple[ImageRecord, bool]] = []
        with self._write_lock:
            ind = self.catalog.create_individual(individual, actor=actor, exist_ok=True)
            try:
                for q, vec in zip(images, vectors, strict=True):
                    sha, rel = self.catalog.store_file(q.data, Path(q.name).suffix or ".jpg")  # type: ignore[arg-type]
                    rec, created = self.catalog.add_image(
                        individual_id=ind.id, sha256=sha, stored_path=rel, box=q.box, viewpoint=q.viewpoint,
                        sighting=q.sighting, station=q.station, timestamp=q.timestamp, lat=q.lat, lon=q.lon,
                        source_path=q.name, width=(q.full_size or (None, None))[0],
                        height=(q.full_size or (None, None))[1], model_id=self.model_id, vector=vec, actor=actor,
                    )
                    out.append((rec, created))
            finally:
                # Whatever reached the catalogue reaches the index, even if a later image failed.
                if out:
                    self.gallery.add([r.id for r, _ in out], vectors[: len(out)], save=save_index)
        return out

    def save_index(self) -> None:
        with self._write_lock:
            self.gallery.save()


def open_pipeline(settings: Settings | None = None, **overrides: Any) -> Pipeline:
    """The usual way in: settings from the environment, explicit overrides win."""
    settings = settings or Settings.from_env(**overrides)
    try:
        return Pipeline(settings)
    except ImageError as exc:
        raise ReidError(f"catalogue image unreadable while preparing the gallery: {exc}") from None
