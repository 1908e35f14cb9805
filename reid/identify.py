"""The pipeline: one entry point, used by the CLI, the season batch and the HTTP service.

`Pipeline.identify` runs the stages in order, each in its own module (reid/stages/):

    decode     reid.stages.decode             bytes/file -> QueryImage (safe decode, EXIF, crop)
    embed      reid.embed                     crops -> unit vectors (CNN, ONNX Runtime)
    shortlist  reid.stages.shortlist          FAISS neighbours grouped by individual, same flank only
    keypoints  reid.stages.keypoint_evidence  extract, vote, verify, scene check (reid.keypoints)
    (pool)     reid.stages.sightings          images of one sighting share their evidence
    calibrate  reid.stages.calibration        evidence -> P(same individual)
    decide     reid.stages.decide             ranked candidates and the verdict match / new / review

Enrollment runs the same first steps and writes to the catalogue instead of matching.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from reid.budget import PixelBudget
from reid.catalog import Catalog, ImageRecord
from reid.embed import Embedder
from reid.errors import ImageError, ReidError
from reid.gallery import Gallery
from reid.keypoints.store import KeypointStore
from reid.model import Checkpoint, load_checkpoint
from reid.settings import Settings
from reid.stages.calibration import calibrate, load_calibrator
from reid.stages.decide import (
    DECISIONS,
    Candidate,
    Decider,
    Identification,
    decide,
    load_verdict_policy,
    rank_order,
)
from reid.stages.decode import QueryImage, load_query, stored_crop
from reid.stages.keypoint_evidence import KeypointEvidence
from reid.stages.shortlist import (
    FLANKS,
    Evidence,
    Shortlist,
    flank_compatible,
    global_evidence,
    group_by_individual,
)
from reid.stages.sightings import pool_sightings

# The pipeline's records and rules, importable from here as before the stages had modules.
__all__ = ["DECISIONS", "FLANKS", "Candidate", "Evidence", "Identification", "Pipeline", "QueryImage", "decide",
           "flank_compatible", "group_by_individual", "open_pipeline", "rank_order"]

log = logging.getLogger(__name__)


class Pipeline:
    """Holds the catalogue, model, index and calibration for one data directory."""

    def __init__(self, settings: Settings, checkpoint: Checkpoint | None = None, *,
                 strict_calibration: bool = True) -> None:
        self.settings = settings
        self.strict_calibration = strict_calibration
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
        # calibration_source: file | project | shipped | none (reid.stages.calibration)
        self.calibrator, self.calibration_source = load_calibrator(settings, self.catalog.data_dir, self.checkpoint,
                                                                   strict=strict_calibration)
        self.decide = Decider(settings, load_verdict_policy(settings))
        self._write_lock = threading.Lock()
        self.keypoints = KeypointStore(settings, self.catalog, self.crop_of)  # feature cache + keypoint index
        self._backfill_embeddings()
        from reid.catalog_sync import CatalogWatch

        self._watch = CatalogWatch(self.catalog, self.model_id)  # before the index is read: see sync()
        self.gallery = Gallery.open(self.catalog, self.model_id, self.embedder.dim)
        self.shortlist = Shortlist(settings, self.gallery, self.catalog)
        self.keypoint_evidence = KeypointEvidence(settings, self.catalog, self.gallery, self.keypoints)

    def sync(self):
        """Apply catalogue changes made since the indexes were loaded, by this process or another
        (`reid enroll` while the service runs): one cheap read when nothing changed.
        Returns reid.catalog_sync.SyncReport."""
        return self._watch.sync(self)

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
        """The stored copy of a catalogue image, cropped as enrolled (reid.stages.decode)."""
        return stored_crop(self.catalog.data_dir, record, max_pixels=self.settings.max_pixels,
                           max_bytes=self.settings.max_file_bytes)

    # -- input ------------------------------------------------------------------------------------
    def load_query(self, source: bytes | str | Path, *, name: str | None = None, viewpoint: str | None = None,
                   box: tuple[float, float, float, float] | None = None, keep_bytes: bool = False,
                   budget: PixelBudget | None = None, **meta: Any) -> QueryImage:
        """Decode (bytes or path), read EXIF time, crop to the box (reid.stages.decode). Raises ImageError."""
        return load_query(source, max_pixels=self.settings.max_pixels, max_bytes=self.settings.max_file_bytes,
                          name=name, viewpoint=viewpoint, box=box, keep_bytes=keep_bytes, budget=budget, **meta)

    # -- identify -------------------------------------------------------------------------------------
    def identify(self, queries: Sequence[QueryImage], *, top_k: int | None = None,
                 audit: bool = True, actor: str = "system", vectors: np.ndarray | None = None) -> list[Identification]:
        """Rank known individuals for each query; one embedding batch for all of them.

        `audit`: log one DEBUG line per query naming `actor` (the catalogue audit holds changes only).

        Queries sharing a `sighting` id are one observation: their evidence is pooled and
        they get one ranking and one verdict. `vectors`: the queries' embeddings when the caller
        has them already (the season run embeds once for flank and grouping too).
        """
        if not queries:
            return []
        self.sync()  # never answer from a stale index
        top_k = top_k or self.settings.top_k
        if vectors is None:
            vectors = self.embedder.embed([q.rgb for q in queries])  # embed
        sims, ids, entries = self.shortlist(vectors, top_k)  # shortlist
        groups = [group_by_individual(q_sims, q_ids, entries, q.viewpoint)
                  for q, q_sims, q_ids in zip(queries, sims, ids, strict=True)]
        evidence = [global_evidence(g) for g in groups]
        # extract, vote, verify, scene check: each stage once for the whole chunk
        self.keypoint_evidence.many(queries, vectors, groups, entries, evidence)
        results = []
        for q, found in zip(queries, pool_sightings(queries, evidence), strict=True):
            ranked = list(found.values())
            probs = calibrate(self.calibrator, ranked)  # calibrate
            results.append(self.decide(q, ranked, probs, top_k))  # decide
        from reid.explain import flank_note

        missing_flanks: dict[str, list[str]] = {}
        for q, res in zip(queries, results, strict=True):
            res.flank_note = flank_note(res, self.catalog, missing_flanks)
            res.crop = q.crop  # as declared or detected (reid.stages.keypoint_evidence)
        if audit:
            # A line in the log, never a catalogue audit row: identifications change nothing, and
            # a row per request would grow the catalogue without bound (anyone may identify).
            for q, res in zip(queries, results, strict=True):
                log.debug("identify by %s: %s -> %s %s", actor, q.name, res.decision,
                          [(c.identity, round(c.score, 3)) for c in res.candidates[:3]])
        return results

    def flush(self) -> None:
        """Wait for background writes (the keypoint index) to finish."""
        self.keypoints.flush()

    def close(self) -> None:
        """Finish background writes and close the catalogue (before its folder may be removed)."""
        self.flush()
        self.catalog.close()


    # -- keypoints (reid.keypoints.store) --------------------------------------------------------------
    def keypoint_index(self):
        """The whole-gallery keypoint index, kept in step with the gallery (KeypointStore.index)."""
        return self.keypoints.index(self.gallery)

    def keypoint_index_path(self) -> Path:
        return self.keypoints.index_path()

    def features_path(self, record: ImageRecord, *, scene: bool = False) -> Path:
        return self.keypoints.features_path(record, scene=scene)

    def extract_keypoints(self, rgb: np.ndarray, *, scene: bool = False, boxed: bool = False):
        """RootSIFT keypoints of a crop with this pipeline's settings (KeypointStore.extract)."""
        return self.keypoints.extract(rgb, scene=scene, boxed=boxed)

    def local_features(self, image_id: int, *, scene: bool = False):
        """Keypoints of a gallery image, from the feature cache (KeypointStore.features)."""
        return self.keypoints.features(image_id, scene=scene)

    def saliency(self, rgb: np.ndarray) -> np.ndarray:
        """The saliency map of an image (reid.keypoints.saliency)."""
        return self.keypoints.saliency(rgb)

    def evidence_image(self, query: QueryImage, candidate: Candidate | None, *, lines: bool = True,
                       result: Identification | None = None) -> np.ndarray:
        """This photo beside the candidate's gallery image, the matched region zoomed, the verdict
        written on it (reid.evidence); candidate None: the photo alone with what `result` says."""
        from reid.evidence import EvidenceText, evidence_picture

        decision = result.decision if result is not None else ""
        note = result.flank_note if result is not None else None
        shown = f"this photo: {Path(query.name).name} ({query.viewpoint} flank)"
        if candidate is None:
            text = EvidenceText(title=f"no known individual to compare with{' - ' + decision if decision else ''}",
                                detail=shown, note=note)
            return evidence_picture(query.rgb, None, None, text, lines=lines)
        match = candidate.match
        gallery_rgb = self.crop_of(self.catalog.get_image(candidate.image_id))
        who = f"{candidate.identity} - {candidate.viewpoint} flank - P = {candidate.score:.2f}"
        # a `new` verdict must not read as "Kyzyl is new": the name is only the nearest candidate
        title = f"match: {who}" if decision == "match" else f"{decision or 'candidate'} - nearest candidate: {who}"
        text = EvidenceText(
            title=title,
            detail=f"rank {candidate.rank}, {candidate.inliers} matched spots; {shown}", note=note,
            query_caption="this photo", gallery_caption=f"{candidate.identity}, enrolled photo {candidate.image_id}")
        return evidence_picture(query.rgb, gallery_rgb, None if match is None else match.pairs, text, lines=lines)

    # -- enroll ----------------------------------------------------------------------------------------
    def enroll(self, individual: str, images: Sequence[QueryImage], *, actor: str = "system",
               save_index: bool = True, individual_id: int | None = None) -> list[tuple[ImageRecord, bool]]:
        """Add images of a named individual (created if new). Re-enrolling a file is a no-op.

        `individual_id`: enroll into exactly that existing individual instead (a reviewer's
        confirmation), never one found by name."""
        if not images:
            return []
        for q in images:
            if q.data is None or q.sha256 is None:
                raise ReidError(f"{q.name}: enrollment needs the original file bytes (load_query(..., keep_bytes=True))")
        vectors = self.embedder.embed([q.rgb for q in images])
        # a crop of the animal keeps all its keypoints (reid.keypoints.crops): decided once, stored
        crops = [self.keypoints.is_crop(q.rgb, boxed=q.box is not None, declared=q.crop, at_station=bool(q.station))
                 if self.settings.local_matching else False for q in images]
        out: list[tuple[ImageRecord, bool]] = []
        with self._write_lock:
            ind = (self.catalog.individual_by_id(individual_id) if individual_id is not None
                   else self.catalog.create_individual(individual, actor=actor, exist_ok=True))
            try:
                for q, vec, crop in zip(images, vectors, crops, strict=True):
                    sha, rel = self.catalog.store_file(q.data, Path(q.name).suffix or ".jpg")  # type: ignore[arg-type]
                    rec, created = self.catalog.add_image(
                        individual_id=ind.id, sha256=sha, stored_path=rel, box=q.box, viewpoint=q.viewpoint,
                        sighting=q.sighting, station=q.station, timestamp=q.timestamp, lat=q.lat, lon=q.lon,
                        source_path=q.name, width=(q.full_size or (None, None))[0],
                        height=(q.full_size or (None, None))[1], model_id=self.model_id, vector=vec, actor=actor, crop=crop,
                    )
                    out.append((rec, created))
            finally:
                # Whatever reached the catalogue reaches the index, even if a later image failed.
                if out:
                    self.gallery.add([r.id for r, _ in out], vectors[: len(out)], save=save_index)
        if self.settings.local_matching:
            for (rec, created), q in zip(out, images, strict=False):
                if created or not self.features_path(rec).is_file():
                    self.keypoints.cache(rec, q.rgb)
        return out

    def save_index(self) -> None:
        with self._write_lock:
            self.gallery.save()


def open_pipeline(settings: Settings | None = None, *, strict_calibration: bool = True,
                  **overrides: Any) -> Pipeline:
    """The usual way in: settings from the environment, explicit overrides win.
    strict_calibration=False (the service): a calibration that cannot be used is warned
    about and the shipped one used, rather than refusing to start."""
    settings = settings or Settings.from_env(**overrides)
    try:
        return Pipeline(settings, strict_calibration=strict_calibration)
    except ImageError as exc:
        raise ReidError(f"catalogue image unreadable while preparing the gallery: {exc}") from None
