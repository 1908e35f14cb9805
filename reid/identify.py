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
from reid.budget import PixelBudget
from reid.calibrate import Calibrator, calibration_path, project_calibration_path
from reid.catalog import Catalog, GalleryEntry, ImageRecord, normalise_viewpoint
from reid.embed import Embedder
from reid.errors import ImageError, ReidError
from reid.gallery import Gallery
from reid.keypoints.scene import SceneCheck
from reid.keypoints.store import KeypointStore
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
    image_id: int  # the gallery image with the strongest evidence: the one to look at
    viewpoint: str  # flank of that gallery image
    inliers: int = 0  # geometrically verified keypoint matches with that image
    local_score: float = 0.0  # their one-vs-many distinctiveness (0: not verified)
    match: Any = field(default=None, repr=False, compare=False)  # reid.keypoints.verify.LocalMatch, for evidence

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "match"}


@dataclass
class Identification:
    name: str
    decision: str
    candidates: list[Candidate]
    viewpoint: str = "unknown"
    error: str | None = None
    sighting: str | None = None
    flank_note: str | None = None  # reid.explain.flank_note: a flank of some animals is not enrolled

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "candidates"}
        out["candidates"] = [c.to_dict() for c in self.candidates]
        return out


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


@dataclass
class Evidence:
    """What speaks for one individual: global similarity and verified keypoints."""

    individual_id: int
    identity: str
    cosine: float
    image_id: int  # best image by the strongest evidence available
    viewpoint: str
    local_score: float = 0.0
    inliers: int = 0
    match: Any = None

    def features(self, names: Sequence[str]) -> list[float]:
        values = {"cosine": self.cosine, "local": float(np.log1p(self.local_score)), "inliers": float(self.inliers)}
        return [values[n] for n in names]

    def merge(self, other: Evidence) -> Evidence:
        """Pool two images of one sighting: the stronger evidence of each kind wins."""
        best = self if (self.local_score, self.cosine) >= (other.local_score, other.cosine) else other
        return Evidence(self.individual_id, self.identity, max(self.cosine, other.cosine), best.image_id,
                        best.viewpoint, max(self.local_score, other.local_score),
                        max(self.inliers, other.inliers), best.match)


def rank_order(probs: np.ndarray, local_scores: Sequence[float], cosines: Sequence[float]) -> np.ndarray:
    """Candidate order: probability (as reported, to 6 decimals), ties by keypoint score, then cosine.

    A calibration can be flat over a range of scores (a table beyond its knots, or P ~0 for
    every unverified candidate); the raw evidence then orders them, not float noise."""
    return np.lexsort((-np.asarray(cosines, np.float64), -np.asarray(local_scores, np.float64),
                       -np.round(np.asarray(probs, np.float64), 6)))


def group_by_individual(sims: np.ndarray, ids: np.ndarray, entries: dict[int, GalleryEntry],
                        viewpoint: str) -> dict[int, list[tuple[GalleryEntry, float]]]:
    """Compatible shortlisted gallery images per individual, each list best cosine first."""
    groups: dict[int, list[tuple[GalleryEntry, float]]] = {}
    for sim, image_id in zip(sims.tolist(), ids.tolist(), strict=True):
        entry = entries.get(int(image_id))
        if entry is None or not flank_compatible(viewpoint, entry.viewpoint):
            continue
        groups.setdefault(entry.individual_id, []).append((entry, float(sim)))
    return groups  # FAISS returns neighbours sorted, so each list is already best first


def rank_individuals(sims: np.ndarray, ids: np.ndarray, entries: dict[int, GalleryEntry],
                     viewpoint: str) -> list[tuple[GalleryEntry, float]]:
    """Best-scoring compatible gallery image per individual, sorted by cosine (descending)."""
    groups = group_by_individual(sims, ids, entries, viewpoint)
    return sorted((imgs[0] for imgs in groups.values()), key=lambda t: -t[1])


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
        self.calibration_source = "none"  # file | project | shipped | none: set by _load_calibrator
        self.calibrator = self._load_calibrator()
        self.verdict_policy = self._load_verdict_policy()
        self._write_lock = threading.Lock()
        self.keypoints = KeypointStore(settings, self.catalog, self.crop_of)  # feature cache + keypoint index
        self.scene_check = SceneCheck(settings, self.keypoints)
        self._backfill_embeddings()
        from reid.catalog_sync import CatalogWatch

        self._watch = CatalogWatch(self.catalog, self.model_id)  # before the index is read: see sync()
        self.gallery = Gallery.open(self.catalog, self.model_id, self.embedder.dim)

    def sync(self):
        """Apply catalogue changes made since the indexes were loaded, by this process or another
        (`reid enroll` while the service runs): one cheap read when nothing changed.
        Returns reid.catalog_sync.SyncReport."""
        return self._watch.sync(self)

    def _load_calibrator(self) -> Calibrator:
        """The calibration in use, first found of: REID_CALIBRATION, the data dir's own
        (`reid calibrate`), the model's shipped one. Sets `calibration_source` to say which.

        One that cannot be used (unreadable, NaN, unknown feature, not monotone, another
        model's) is never used half-broken: `strict_calibration` (the CLI) refuses it with
        one line; otherwise (the service) a warning, and the shipped one is used instead."""
        candidates: list[tuple[str, Path]] = []
        if self.settings.calibration is not None:
            candidates.append(("file", Path(self.settings.calibration)))
        own = project_calibration_path(self.catalog.data_dir, self.model_id)
        if self.settings.calibration is None and own.is_file():  # promoted by `reid calibrate`
            candidates.append(("project", own))
        for source, path in candidates:
            try:
                cal = Calibrator.load(path)
                if cal.model_id and cal.model_id != self.model_id:
                    # another model's cosines mean something else: its probabilities would be wrong
                    raise ValueError(f"it was fitted for model {cal.model_id}, not {self.model_id}")
            except (OSError, ValueError, TypeError, AttributeError) as exc:
                if self.strict_calibration:
                    raise ReidError(f"calibration {path} cannot be read (or used): {exc}") from None
                log.warning("calibration %s cannot be used (%s); using the model's shipped calibration", path, exc)
                continue
            self.calibration_source = source
            return cal
        self.calibration_source = "shipped"
        if self.checkpoint.path is not None:
            side = calibration_path(self.checkpoint.path)
            if side.is_file():
                try:
                    return Calibrator.load(side)
                except (OSError, ValueError, TypeError, AttributeError) as exc:
                    raise ReidError(f"the model's shipped calibration {side} cannot be used: {exc}") from None
        if "calibration" in self.checkpoint.meta:
            return Calibrator(**self.checkpoint.meta["calibration"])
        log.warning("model %s ships no calibration: scores are rescaled cosines, not probabilities", self.model_id)
        self.calibration_source = "none"
        return Calibrator.uncalibrated()

    def _load_verdict_policy(self):
        """The error-budget verdict policy named by REID_VERDICT_POLICY (reid.open_set), or None."""
        if self.settings.verdict_policy is None:
            return None
        from reid.open_set import VerdictPolicy

        try:
            return VerdictPolicy.load(self.settings.verdict_policy)
        except (OSError, ValueError, TypeError) as exc:
            raise ReidError(f"verdict policy {self.settings.verdict_policy} cannot be read: {exc}") from None

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
        box = record.box_tuple
        data = imageio.read_bytes(self.catalog.data_dir / record.stored_path)
        # decoded as load_query decoded it at enrollment (the same reduction for the same file
        # and box), so cached keypoints and this crop share their pixel coordinates
        decoded = imageio.decode(data, name=record.stored_path, max_pixels=self.settings.max_pixels, reduce_for=box)
        return imageio.crop(decoded.rgb, imageio.scale_box(box, decoded.scale))

    # -- input ------------------------------------------------------------------------------------
    def load_query(self, source: bytes | str | Path, *, name: str | None = None, viewpoint: str | None = None,
                   box: tuple[float, float, float, float] | None = None, keep_bytes: bool = False,
                   budget: PixelBudget | None = None, **meta: Any) -> QueryImage:
        """Decode (bytes or path), read EXIF time, crop to the box. Raises ImageError.

        A large JPEG is decoded at a reduced size that keeps the box (or frame) >= WORK_SIDE
        px (imageio.decode); `budget` is charged its decoded pixels (the service's per-request
        and process-wide limits)."""
        import hashlib

        if isinstance(source, bytes):
            data, label = source, name or "upload"
        else:
            data, label = imageio.read_bytes(source), name or str(source)
        decoded = imageio.decode(data, name=label, max_pixels=self.settings.max_pixels, budget=budget, reduce_for=box)
        rgb = imageio.crop(decoded.rgb, imageio.scale_box(box, decoded.scale))
        timestamp = meta.pop("timestamp", None) or (decoded.timestamp.isoformat() if decoded.timestamp else None)
        return QueryImage(
            rgb=rgb, name=label, viewpoint=normalise_viewpoint(viewpoint), box=box, timestamp=timestamp,
            sha256=hashlib.sha256(data).hexdigest(), data=data if keep_bytes else None,
            full_size=decoded.full_size, **meta,
        )

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
            vectors = self.embedder.embed([q.rgb for q in queries])
        depth = min(len(self.gallery), max(self.settings.shortlist_images, top_k * 20))
        sims, ids = self.gallery.search(vectors, depth)
        entries = self.catalog.gallery_entries(sorted({int(i) for i in ids.ravel() if i >= 0}))
        evidence = [self._evidence(q, v, qs, qi, entries)
                    for q, v, qs, qi in zip(queries, vectors, sims, ids, strict=True)]
        pooled = list(evidence)
        by_sighting: dict[str, list[int]] = {}
        for n, q in enumerate(queries):
            if q.sighting:
                by_sighting.setdefault(q.sighting, []).append(n)
        for members in by_sighting.values():
            if len(members) < 2:
                continue
            merged: dict[int, Evidence] = {}
            for n in members:
                for ind, ev in evidence[n].items():
                    merged[ind] = ev.merge(merged[ind]) if ind in merged else ev
            for n in members:
                # Pooled strength, but only for individuals this image can show: a left-flank
                # image never inherits a right-flank-only individual from its sighting.
                pooled[n] = {ind: merged[ind] for ind in evidence[n]}
        results = [self._rank(q, ev, top_k) for q, ev in zip(queries, pooled, strict=True)]
        from reid.explain import flank_note

        missing_flanks: dict[str, list[str]] = {}
        for res in results:
            res.flank_note = flank_note(res, self.catalog, missing_flanks)
        if audit:
            # A line in the log, never a catalogue audit row: identifications change nothing, and
            # a row per request would grow the catalogue without bound (anyone may identify).
            for q, res in zip(queries, results, strict=True):
                log.debug("identify by %s: %s -> %s %s", actor, q.name, res.decision,
                          [(c.identity, round(c.score, 3)) for c in res.candidates[:3]])
        return results

    def _evidence(self, q: QueryImage, vector: np.ndarray, sims: np.ndarray, ids: np.ndarray,
                  entries: dict[int, GalleryEntry]) -> dict[int, Evidence]:
        """Global evidence for every shortlisted individual, verified keypoints for the top ones.

        The query's keypoints vote over the whole gallery once (reid.keypoints.index); the votes
        are verified for the `rerank_individuals` best by cosine and the `vote_individuals`
        best by votes (`rerank_images` images each), so an animal the embedding ranks low can
        still win on its spots.
        """
        groups = group_by_individual(sims, ids, entries, q.viewpoint)
        evidence = {ind: Evidence(ind, imgs[0][0].individual, imgs[0][1], imgs[0][0].image_id, imgs[0][0].viewpoint)
                    for ind, imgs in groups.items()}
        if not self.settings.local_matching or not len(self.gallery):
            return evidence

        query_features = self.extract_keypoints(q.rgb, boxed=q.box is not None)
        index = self.keypoint_index()
        votes = index.vote(query_features, q.viewpoint)
        n_img = self.settings.rerank_images
        by_cosine = sorted(groups, key=lambda ind: -groups[ind][0][1])[: self.settings.rerank_individuals]
        by_votes = votes.ranked()[: self.settings.vote_individuals]
        # per candidate: its images with the most votes first, then its best-cosine images
        shortlist = {ind: list(dict.fromkeys(votes.images.get(ind, [])[:n_img]
                                             + [e.image_id for e, _ in groups.get(ind, [])[:n_img]]))
                     for ind in dict.fromkeys(by_cosine + by_votes)}
        image_ids = [i for imgs in shortlist.values() for i in imgs]
        matches = index.verify(query_features, votes, image_ids)
        missing = [i for i in image_ids if i not in entries and matches[i].inliers]
        if missing:
            entries = {**entries, **self.catalog.gallery_entries(missing)}
        for ind, imgs in shortlist.items():
            for image_id in imgs:
                m = matches[image_id]
                if not m.inliers:
                    continue
                entry = entries[image_id]
                ev = evidence.get(ind)
                if ev is None:  # found by its spots only: its cosine is not in the FAISS shortlist
                    ev = evidence[ind] = Evidence(ind, entry.individual, self._cosine(vector, image_id), image_id,
                                                  entry.viewpoint)
                if m.score > ev.local_score:
                    ev.local_score, ev.inliers, ev.match = float(m.score), int(m.inliers), m
                    ev.image_id, ev.viewpoint = image_id, entry.viewpoint
        self.scene_check(q, evidence.values(), index.min_inliers)
        return evidence

    def _cosine(self, vector: np.ndarray, image_id: int) -> float:
        """Cosine between a query and one gallery image (for candidates found by keypoints)."""
        stored = self.gallery.vector(image_id)
        return float(np.dot(vector, stored)) if stored is not None else 0.0

    def flush(self) -> None:
        """Wait for background writes (the keypoint index) to finish."""
        self.keypoints.flush()

    def close(self) -> None:
        """Finish background writes and close the catalogue (before its folder may be removed)."""
        self.flush()
        self.catalog.close()

    def _rank(self, q: QueryImage, evidence: dict[int, Evidence], top_k: int) -> Identification:
        ranked = list(evidence.values())
        names = self.calibrator.features
        probs = (self.calibrator.predict(np.asarray([e.features(names) for e in ranked]))
                 if ranked else np.zeros(0))
        order = rank_order(probs, [e.local_score for e in ranked], [e.cosine for e in ranked])[:top_k]
        candidates = [
            Candidate(rank=r + 1, individual_id=ranked[i].individual_id, identity=ranked[i].identity,
                      score=round(float(probs[i]), 6), cosine=round(ranked[i].cosine, 6),
                      image_id=ranked[i].image_id, viewpoint=ranked[i].viewpoint, inliers=ranked[i].inliers,
                      local_score=round(ranked[i].local_score, 4), match=ranked[i].match)
            for r, i in enumerate(order)
        ]
        if self.verdict_policy is not None:  # open-set score against an error budget (reid.open_set)
            decision = self.verdict_policy.decide([(c.identity, c.score, c.local_score, c.cosine)
                                                   for c in candidates])[0]
        else:
            decision = decide([c.score for c in candidates], self.settings)
        return Identification(name=q.name, decision=decision,
                              candidates=candidates, viewpoint=q.viewpoint, sighting=q.sighting)

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
        out: list[tuple[ImageRecord, bool]] = []
        with self._write_lock:
            ind = (self.catalog.individual_by_id(individual_id) if individual_id is not None
                   else self.catalog.create_individual(individual, actor=actor, exist_ok=True))
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
