"""`reid season run`: a season folder in, results.csv / deployments.csv / summary.json out.

    ingest (stations, cameras, corrected times, sha256) -> detections (MegaDetector boxes,
    empty frames, failures) -> dedupe by bytes -> encounters and animals (reid.season.encounters)
    -> chunks of whole encounters through reid.runner (journal: resume after a kill), each
    chunk: decode, crop, embed (+ mirrored: flank), identify with the animal as sighting
    -> per animal one verdict, cannot-link, flank links, travel, groups of unknowns
    (reid.season.outputs) -> files

Everything after the journal is a pure function of it, so a resumed run writes the same
files as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from reid import imageio
from reid.batch import _progress
from reid.errors import ImageError, ReidError
from reid.identify import Pipeline, QueryImage
from reid.runner import Journal, error_message, fingerprint_digest, journal_path, plan_chunks, run_chunks
from reid.season.encounters import DEFAULT_GAP_S, Sighting, group_encounters
from reid.season.ingest import SeasonPhoto, ingest, read_deployments
from reid.season.megadetector import DEFAULT_THRESHOLD, Detection, Detections, load_detections
from reid.season.travel import DEFAULT_MAX_KM_PER_DAY
from reid.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class SeasonOptions:
    gap_s: float = DEFAULT_GAP_S  # encounter gap at one station
    detection_threshold: float = DEFAULT_THRESHOLD
    max_km_per_day: float = DEFAULT_MAX_KM_PER_DAY
    chunk: int = 32  # photos per identification call / journal entry (whole encounters)
    top_k: int = 5
    group_threshold: float | None = None  # P(same) to group unknowns; None: the match threshold
    estimate_flanks: bool = True
    flank_min_confidence: float = 0.9


@dataclass
class PhotoPlan:
    """One photo (or video) of the season and what to do with it."""

    photo: SeasonPhoto
    status: str  # "identify", "empty", "error", "duplicate"
    sightings: list[Sighting] = field(default_factory=list)
    detections: list[Detection] | None = None  # None: whole frame
    size: tuple[int, int] | None = None  # (width, height) after EXIF rotation
    message: str = ""
    original: str = ""  # for a duplicate: the path identified instead

    @property
    def path(self) -> str:
        return self.photo.path


def _image_size(file: Path) -> tuple[int, int] | None:
    """(width, height) as decoded (EXIF orientation applied), from the header only."""
    try:
        with Image.open(file) as img:
            w, h = img.size
            orientation = img.getexif().get(0x0112, 1)
    except Exception:  # unreadable: the decode reports why
        return None
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def plan_photos(photos: list[SeasonPhoto], detections: Detections | None) -> list[PhotoPlan]:
    """Per photo: duplicate, empty, MegaDetector failure, or the sightings to identify."""
    plans: list[PhotoPlan] = []
    first_of: dict[str, str] = {}
    empty_sha = hashlib.sha256(b"").hexdigest()
    for photo in photos:
        if photo.sha256 != empty_sha and photo.sha256 in first_of:
            plans.append(PhotoPlan(photo, "duplicate", original=first_of[photo.sha256]))
            continue
        first_of.setdefault(photo.sha256, photo.path)
        plan = PhotoPlan(photo, "identify")
        if detections is not None:
            kind, found = detections.lookup(photo.path)
            if kind == "failure":
                plan.status, plan.message = "error", f"MegaDetector could not process it: {found}"
            elif kind == "boxes":
                plan.detections = list(found)  # type: ignore[arg-type]
                if not plan.detections:
                    plan.status = "empty"
            else:
                log.debug("%s is not in the detections file: identified as a whole frame", photo.path)
        if plan.status == "identify" and not photo.is_video:
            plan.size = _image_size(photo.file)
            if plan.detections and plan.size is None:
                plan.status, plan.message = "error", f"{photo.path}: not a readable image"
                plans.append(plan)
                continue
            boxes = [d.pixels(*plan.size) for d in plan.detections] if plan.detections and plan.size else [None]
            for k, box in enumerate(boxes):
                plan.sightings.append(Sighting(
                    key=f"{photo.path}#{k}", photo=photo.path, frame=photo.path, station=photo.station,
                    camera=photo.camera, timestamp=photo.timestamp, box=box))
        elif plan.status == "identify":  # a video: one sighting stands for it when encounters are made
            plan.sightings.append(Sighting(key=f"{photo.path}#v", photo=photo.path, frame=photo.path,
                                           station=photo.station, camera=photo.camera, timestamp=photo.timestamp))
        plans.append(plan)
    return plans


def _video_crops(plan: PhotoPlan, settings: Settings) -> list[dict[str, Any]]:
    """Sampled frames of a video, each cut into the boxes MegaDetector found on that frame (the
    detection with the nearest frame_number within half the sampling step), else the whole frame."""
    every_s = settings.video_every_s
    frames = imageio.video_frames(plan.photo.file, every_s=every_s, max_frames=settings.video_max_frames,
                                  max_pixels=settings.max_pixels)
    import cv2

    cap = cv2.VideoCapture(str(plan.photo.file))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    cap.release()
    out = []
    for t, rgb in frames:
        h, w = rgb.shape[:2]
        boxes: list[tuple[Detection | None, tuple[float, float, float, float] | None]] = [(None, None)]
        if plan.detections is not None:
            index = round(t * fps)
            near = [d for d in plan.detections if d.frame_number is not None
                    and abs(d.frame_number - index) <= max(1, fps * every_s / 2)]
            if near:
                best = min(abs(d.frame_number - index) for d in near)  # type: ignore[operator]
                boxes = [(d, d.pixels(w, h)) for d in near if abs(d.frame_number - index) == best]  # type: ignore[operator]
            else:
                boxes = []  # the JSON has this video, and nothing on this frame
        for k, (det, box) in enumerate(boxes):
            out.append({"rgb": rgb, "t": round(t, 3), "k": k, "box": box, "conf": det.conf if det else None,
                        "size": (w, h)})
    return out


def _round_vector(v: np.ndarray) -> list[float]:
    return [round(float(x), 6) for x in v]


class SeasonWorker:
    """Identifies one chunk of photos; returns JSON-able records for the journal."""

    def __init__(self, pipeline: Pipeline, options: SeasonOptions, flank_classifier: Any | None,
                 sightings: dict[str, Sighting], lat_lon: dict[str, tuple[float | None, float | None]]) -> None:
        self.pipeline, self.options, self.flanks = pipeline, options, flank_classifier
        self.sightings, self.lat_lon = sightings, lat_lon

    def __call__(self, chunk: Any) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        queries: list[QueryImage] = []
        meta: list[dict[str, Any]] = []
        for plan in chunk.items:
            try:
                crops = self._crops(plan)
            except ImageError as exc:
                msg = error_message(plan.path, exc)
                log.warning("%s", msg)
                records.append({"kind": "error", "path": plan.path, "error": msg})
                continue
            if not crops:
                records.append({"kind": "empty", "path": plan.path})
                continue
            for c in crops:
                queries.append(c.pop("query"))
                meta.append(c)
        if not queries:
            return records
        rgbs = [q.rgb for q in queries]
        if self.flanks is not None:
            both = self.pipeline.embedder.embed([*rgbs, *[np.ascontiguousarray(r[:, ::-1]) for r in rgbs]])
            vectors = both[: len(rgbs)]
            estimates = self.flanks.estimate(vectors - both[len(rgbs):])
        else:
            vectors = self.pipeline.embedder.embed(rgbs)
            estimates = [("unknown", 0.0)] * len(rgbs)
        for q, (flank, _) in zip(queries, estimates, strict=True):
            q.viewpoint = flank
        results = self.pipeline.identify(queries, top_k=self.options.top_k, vectors=vectors)
        for q, m, res, v, (flank, flank_p) in zip(queries, meta, results, vectors, estimates, strict=True):
            records.append({
                "kind": "detection", "path": m["path"], "key": m["key"], "animal": q.sighting, "box": q.box,
                "conf": m["conf"], "t": m["t"], "width": m["size"][0], "height": m["size"][1],
                "timestamp": q.timestamp or "", "flank": flank, "flank_p": flank_p, "decision": res.decision,
                "candidates": [[c.identity, c.score, c.inliers, c.viewpoint] for c in res.candidates],
                # grouping needs the vectors of `new` detections only (an animal is new only when
                # every member is: the best member's P is below the new threshold); a season of
                # matches keeps its journal and memory small
                "vector": _round_vector(v) if res.decision == "new" else None,
            })
        return records

    def _crops(self, plan: PhotoPlan) -> list[dict[str, Any]]:
        photo = plan.photo
        lat, lon = self.lat_lon.get(photo.path, (None, None))
        out = []
        if photo.is_video:
            base = self.sightings[f"{photo.path}#v"]
            for c in _video_crops(plan, self.pipeline.settings):
                when = photo.timestamp + timedelta(seconds=c["t"]) if photo.timestamp else None
                # one animal per video unless a frame holds several: then each box is its own
                animal = base.animal if c["k"] == 0 else f"{base.animal}#{c['t']}#{c['k']}"
                out.append(self._crop(c["rgb"], c["box"], photo, animal, when, lat, lon, c["size"],
                                      key=f"{photo.path}@{c['t']}#{c['k']}", t=c["t"], conf=c["conf"]))
            return out
        decoded = imageio.load(photo.file, max_pixels=self.pipeline.settings.max_pixels,
                                max_bytes=self.pipeline.settings.max_file_bytes)
        size = (decoded.width, decoded.height)
        confs = [d.conf for d in plan.detections] if plan.detections else [None]
        for s, conf in zip(plan.sightings, confs, strict=True):
            out.append(self._crop(decoded.rgb, s.box, photo, s.animal, photo.timestamp, lat, lon, size,
                                  key=s.key, t=None, conf=conf))
        return out

    def _crop(self, rgb: np.ndarray, box: Any, photo: SeasonPhoto, animal: str, when: Any, lat: Any, lon: Any,
              size: tuple[int, int], *, key: str, t: float | None, conf: float | None) -> dict[str, Any]:
        q = QueryImage(rgb=imageio.crop(rgb, box), name=photo.path, box=box, sighting=animal, station=photo.station,
                       timestamp=when.isoformat(timespec="seconds") if when else None, lat=lat, lon=lon,
                       sha256=photo.sha256, full_size=size)
        return {"query": q, "path": photo.path, "key": key, "t": t, "conf": conf, "size": size}


def _confirmed_flanks(pipeline: Pipeline) -> tuple[Any, str]:
    """Catalogue photos with a left/right flank (evenly spread, at most MAX_CONFIRMED) for the
    flank classifier: a loader and a key saying which photos they are."""
    from reid.season.flanks import MAX_CONFIRMED

    records = [r for ind in pipeline.catalog.list_individuals() for r in pipeline.catalog.images_of(ind.id)
               if r.viewpoint in ("left", "right")]
    records = sorted(records, key=lambda r: r.id)
    records = records[:: max(1, len(records) // MAX_CONFIRMED)][:MAX_CONFIRMED]
    if not records:
        return None, ""
    key = hashlib.sha256(json.dumps([(r.sha256, r.box, r.viewpoint) for r in records]).encode()).hexdigest()

    def load() -> tuple[list[np.ndarray], list[str]]:
        crops, labels = [], []
        for r in records:
            try:
                crops.append(pipeline.crop_of(r))
                labels.append(r.viewpoint)
            except ImageError:
                continue
        return crops, labels

    return load, key


def season_fingerprint(pipeline: Pipeline, season_dir: Path, plans: list[PhotoPlan], options: SeasonOptions,
                       extra_files: list[Path]) -> dict[str, Any]:
    from dataclasses import asdict

    return {
        "season": str(season_dir.resolve()),
        "photos": fingerprint_digest({"p": [(p.path, p.photo.sha256, p.status) for p in plans]}),
        "files": [hashlib.sha256(f.read_bytes()).hexdigest() for f in extra_files],
        "options": asdict(options), "model": pipeline.model_id, "calibration": pipeline.calibration_source,
        "catalogue": pipeline.catalog.counts(), "gallery": len(pipeline.gallery),
        "settings": {k: str(v) for k, v in sorted(pipeline.settings.model_dump().items())
                     if k not in ("data_dir", "cache_dir", "api_token", "host", "port", "threads")},
    }


def run_season(pipeline: Pipeline, season_dir: str | Path, out_dir: str | Path, *,
               deployments_csv: str | Path | None = None, detections_json: str | Path | None = None,
               options: SeasonOptions | None = None, progress: bool = True,
               executor: Any | None = None) -> dict[str, Any]:
    """Identify a season; writes RESULTS_DIR/results.csv, deployments.csv, groups.csv,
    flank_links.csv and summary.json. Interrupted, the same call resumes. Returns the summary.

    `executor` (reid.cluster.RayExecutor): the unfinished chunks are identified by worker
    processes, each building a SeasonWorker on its own pipeline; the journal, the outputs and
    the review items stay with this process, so the files are the local run's."""
    from reid.season import outputs

    options = options or SeasonOptions()
    season_dir, out_dir = Path(season_dir), Path(out_dir)
    start = time.perf_counter()
    deployments = read_deployments(deployments_csv) if deployments_csv else []
    detections = load_detections(detections_json, threshold=options.detection_threshold) if detections_json else None
    photos = ingest(season_dir, deployments)
    if not photos:
        raise ReidError(f"{season_dir}: no images or videos found")
    plans = plan_photos(photos, detections)
    sightings = [s for p in plans for s in p.sightings]
    encounters = group_encounters(sightings, gap_s=options.gap_s)
    by_key = {s.key: s for s in sightings}
    lat_lon = {p.path: ((p.photo.deployment.lat, p.photo.deployment.lon) if p.photo.deployment else (None, None))
               for p in plans}
    order = {e.id: n for n, e in enumerate(encounters)}
    work = sorted((p for p in plans if p.status == "identify"),
                  key=lambda p: (order[p.sightings[0].encounter], p.path))
    chunks = plan_chunks(work, size=options.chunk, group=lambda p: p.sightings[0].encounter,
                         weight=lambda p: 8 if p.photo.is_video else 1, max_group_chunks=8)
    extra = [Path(f) for f in (deployments_csv, detections_json) if f]
    out_dir.mkdir(parents=True, exist_ok=True)
    journal = Journal(journal_path(out_dir / "results.csv"),
                      season_fingerprint(pipeline, season_dir, plans, options, extra))
    flank_clf = None
    if options.estimate_flanks:
        from reid.season.flanks import load_or_fit

        confirmed, key = _confirmed_flanks(pipeline)
        flank_clf = load_or_fit(pipeline.embedder.embed, pipeline.model_id, Path(pipeline.settings.cache_dir),
                                min_confidence=options.flank_min_confidence, confirmed=confirmed, confirmed_key=key)
    worker = SeasonWorker(pipeline, options, flank_clf, by_key, lat_lon)
    remote = None
    if executor is not None:
        from reid.cluster import WorkerOf

        shipped = WorkerOf(SeasonWorker, (options, flank_clf, by_key, lat_lon))
        remote = lambda todo: executor(shipped, todo)  # noqa: E731
    resumed = sum(len(c.items) for c in chunks if c.key in journal.done)
    records: list[dict[str, Any]] = []
    bar = _progress(total=len(work), desc="season", enabled=progress, unit="photo")
    bar.update(0)
    try:
        for _, data in run_chunks(chunks, worker, journal, on_chunk=lambda c: bar.update(len(c.items)),
                                  executor=remote):
            records.extend(data)
    finally:
        bar.close()
        journal.close()
    identify_s = time.perf_counter() - start
    summary = outputs.write_outputs(pipeline, out_dir, plans, encounters, records, deployments, options,
                                    detections=detections)
    journal.remove()
    seconds = time.perf_counter() - start
    n_det = summary["detections"]
    summary["timing"] = {"seconds": round(seconds, 3), "identify_seconds": round(identify_s, 3),
                         "images_per_s": round(len(work) / seconds, 3) if seconds else 0.0,
                         "detections_per_s": round(n_det / seconds, 3) if seconds else 0.0,
                         "resumed_photos": resumed}
    summary["engine"] = getattr(executor, "engine", "remote") if executor is not None else "local"
    summary["workers"] = int(getattr(executor, "workers", 0)) if executor is not None else 1
    outputs.write_summary(out_dir, summary)
    return summary


__all__ = ["PhotoPlan", "SeasonOptions", "plan_photos", "run_season"]
