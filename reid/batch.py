"""Season batch: enroll a labels CSV, identify a folder / zip / queries CSV into a results CSV.

Both go through the one pipeline (`reid.identify.Pipeline`); this module only walks inputs,
chunks them so embedding runs in batches, reports bad files without stopping, and writes
outputs atomically. The flow is split into small steps:

    open_source(path) -> BatchSource (list of BatchItem: one file each, loaded lazily)
    iter_identified(pipeline, items) -> Outcome per query, in input order (reid.runner.run_queries)
    run_batch: reid.runner plans chunks, journals each finished one (resume after a kill),
    then writes the results CSV (one row per photo, or the EVAL.md ranks) + JSON summary
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from reid import imageio
from reid.catalog import box_key
from reid.damage import remove_stale_temps
from reid.errors import LabelsError, ReidError
from reid.fileio import atomic_write_text
from reid.identify import Pipeline, QueryImage
from reid.labels import LabelRow, read_labels
from reid.runner import (
    Chunk,
    Journal,
    Outcome,
    fingerprint_digest,
    journal_path,
    plan_chunks,
    run_chunks,
    run_queries,
)
from reid.stages.decode import load_video

log = logging.getLogger(__name__)

RESULT_COLUMNS = ("path", "decision", "rank", "identity", "score")  # --format ranks (EVAL.md)
#: --format rows (the default): one row per photo (video frame), the names the season results use.
ROW_COLUMNS = ("path", "resolved_path", "flank", "station", "timestamp", "decision", "identity", "probability",
               "runner_up", "runner_up_probability", "matched_spots", "note")
FORMATS = ("rows", "ranks")
#: Zip archives are extracted before walking; refuse archives that would expand beyond this.
MAX_ZIP_BYTES = 20 * 1024**3


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(*, total: int, desc: str, enabled: bool, unit: str = "file") -> Any:
    """tqdm on stderr (stdout stays clean for data), or a do-nothing bar."""
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True)


# -- enrollment ---------------------------------------------------------------------------------------
@dataclass
class EnrollSummary:
    """What `enroll_labels` did; `errors` are (path as in the CSV, reason)."""

    csv: str
    rows: int = 0
    individuals: int = 0  # distinct identities in the CSV
    enrolled: int = 0  # images new to the catalogue
    already: int = 0  # images that were enrolled before (re-running a CSV adds nothing)
    errors: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["errors"] = [{"path": p, "error": e} for p, e in self.errors]
        return d


def _load_row(pipeline: Pipeline, row: LabelRow, *, keep_bytes: bool, data: bytes | None = None) -> QueryImage:
    return pipeline.load_query(
        row.file if data is None else data, name=row.path, viewpoint=row.viewpoint, box=row.box,
        keep_bytes=keep_bytes, sighting=row.sighting, station=row.station, timestamp=row.timestamp,
        lat=row.lat, lon=row.lon, crop=row.crop,
    )


def _enrolled_as(pipeline: Pipeline, key: tuple[str, str], row: LabelRow) -> bool:
    """Is this file+box already in the catalogue under row.identity? ReidError if under another name."""
    rec = pipeline.catalog.find_image(key[0], row.box)
    if rec is None or rec.individual is None:
        return False
    if rec.individual != row.identity:
        raise ReidError(f"already enrolled as {rec.individual!r} (image {rec.id}), not {row.identity!r}")
    return True


def _enroll_chunk(pipeline: Pipeline, identity: str, queries: list[QueryImage],
                  summary: EnrollSummary) -> None:
    try:
        results = pipeline.enroll(identity, queries, save_index=False)
    except ReidError as exc:
        if len(queries) == 1:
            summary.errors.append((queries[0].name, str(exc)))
            log.warning("skipped %s: %s", queries[0].name, exc)
            return
        # One image refused (e.g. enrolled under another name): retry one by one so only that
        # image is skipped. Images committed before the failure come back as 'already there'
        # and get their vectors into the index.
        for q in queries:
            _enroll_chunk(pipeline, identity, [q], summary)
        return
    for _, created in results:
        if created:
            summary.enrolled += 1
        else:
            summary.already += 1


def enroll_labels(pipeline: Pipeline, csv_path: str | Path, *, progress: bool = True,
                  rows: Sequence[LabelRow] | None = None) -> EnrollSummary:
    """Enroll every image of a labels CSV (identity required) under its identity.

    Images are grouped per identity and embedded in chunks of settings.chunk_size; a bad image is logged
    and listed in `errors`, never fatal. Files already enrolled under the same identity are
    skipped before decoding, so re-running a CSV is cheap and adds nothing. The FAISS index
    is saved once at the end (also after an interruption: the catalogue is the truth and
    the index must not fall behind it).
    """
    start = time.perf_counter()
    rows = list(rows) if rows is not None else read_labels(csv_path, require_identity=True)
    summary = EnrollSummary(csv=str(csv_path), rows=len(rows))
    groups: dict[str, list[LabelRow]] = {}
    for row in rows:
        if not row.identity:
            raise LabelsError(f"{csv_path}, line {row.line}: identity is empty (every gallery image needs one)")
        groups.setdefault(row.identity, []).append(row)
    summary.individuals = len(groups)
    bar = _progress(total=len(rows), desc="enroll", enabled=progress, unit="img")
    seen: dict[tuple[str, str], str] = {}  # (sha256, box) -> identity, within this CSV
    try:
        for identity, group in groups.items():
            step = pipeline.settings.chunk_size
            for lo in range(0, len(group), step):
                queries: list[QueryImage] = []
                for row in group[lo:lo + step]:
                    bar.update(1)
                    try:
                        data = imageio.read_bytes(row.file, max_bytes=pipeline.settings.max_file_bytes)
                        key = (hashlib.sha256(data).hexdigest(), box_key(row.box))
                        if key in seen and seen[key] != identity:
                            raise ReidError(f"the same image is listed as {seen[key]!r} too")
                        if key in seen or _enrolled_as(pipeline, key, row):
                            summary.already += 1  # skipped before decoding: re-runs are cheap
                            continue
                        seen[key] = identity  # a file listed twice must not reach the index twice
                        queries.append(_load_row(pipeline, row, keep_bytes=True, data=data))
                    except ReidError as exc:
                        summary.errors.append((row.path, str(exc)))
                        log.warning("skipped %s: %s", row.path, exc)
                if queries:
                    _enroll_chunk(pipeline, identity, queries, summary)
    finally:
        bar.close()
        pipeline.save_index()
        summary.seconds = round(time.perf_counter() - start, 3)
    log.debug("enrolled %d new images of %d individuals (%d already there, %d errors) in %.1f s",
             summary.enrolled, summary.individuals, summary.already, len(summary.errors), summary.seconds)
    return summary


# -- batch sources -------------------------------------------------------------------------------------
@dataclass
class BatchItem:
    """One input file of a batch. `path` is what the results CSV shows for it."""

    path: str
    file: Path
    row: LabelRow | None = None  # from a queries CSV: viewpoint, box, sighting, ...
    crop: bool | None = None  # without a row: already a crop of the animal (--crop/--no-crop); None: detect

    @property
    def is_video(self) -> bool:
        return self.file.suffix.lower() in imageio.VIDEO_SUFFIXES


@dataclass
class BatchSource:
    """The files of a batch, in a stable order. Close it to remove a zip's temp extraction."""

    source: Path
    kind: str  # "csv", "folder" or "zip"
    items: list[BatchItem]
    _tmp: Path | None = None

    def close(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> BatchSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _skip_name(name: str) -> bool:
    # Hidden files and macOS archive debris ('._x.jpg' resource forks, __MACOSX/) are not photos;
    # reporting each as an error would bury the real problems.
    return name.startswith(".") or name == "__MACOSX"


def walk_folder(root: Path) -> list[BatchItem]:
    """Images and videos under `root` (recursive, sorted), paths relative to `root`."""
    media = imageio.IMAGE_SUFFIXES | imageio.VIDEO_SUFFIXES
    items = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not _skip_name(d))
        for name in sorted(filenames):
            if _skip_name(name) or Path(name).suffix.lower() not in media:
                continue
            file = Path(dirpath) / name
            items.append(BatchItem(path=file.relative_to(root).as_posix(), file=file))
    return items


def safe_extract_zip(zip_path: Path, dest: Path) -> None:
    """Extract, refusing absolute paths, '..' members and links (zip-slip) and oversize archives."""
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ReidError(f"{zip_path}: not a readable zip archive ({exc})") from None
    with zf:
        infos = zf.infolist()
        total = 0
        for info in infos:
            name = info.filename.replace("\\", "/")
            parts = PurePosixPath(name).parts
            if name.startswith("/") or (parts and ":" in parts[0]) or ".." in parts:
                raise ReidError(f"{zip_path}: refusing unsafe member path {info.filename!r} (outside the archive)")
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise ReidError(f"{zip_path}: refusing symbolic link member {info.filename!r}")
            total += info.file_size
        if total > MAX_ZIP_BYTES:
            raise ReidError(f"{zip_path}: expands to {total / 2**30:.1f} GiB, above the "
                            f"{MAX_ZIP_BYTES // 2**30} GiB limit")
        root = dest.resolve()
        for info in infos:
            target = (root / info.filename.replace("\\", "/")).resolve()
            if not target.is_relative_to(root):  # belt and braces after the checks above
                raise ReidError(f"{zip_path}: refusing unsafe member path {info.filename!r}")
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                # the member's own time, not the extraction's: a video's frames are timed from it
                stamp = time.mktime((*info.date_time, 0, 0, -1))
                os.utime(target, (stamp, stamp))
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                # A damaged member becomes a missing file: its error row comes from the walk.
                log.warning("%s: could not extract %s (%s)", zip_path, info.filename, exc)
                target.unlink(missing_ok=True)


def with_crop(source: BatchSource, crop: bool | None) -> BatchSource:
    """--crop/--no-crop: every item is (not) a crop of the animal, unless its CSV row says (column `crop`)."""
    if crop is not None:
        for item in source.items:
            item.crop = crop
            if item.row is not None and item.row.crop is None:
                item.row = replace(item.row, crop=crop)
    return source


def open_source(source: str | Path) -> BatchSource:
    """A labels/queries CSV, a folder, or a .zip (extracted to a temp dir that close() removes)."""
    source = Path(source)
    if source.is_dir():
        return BatchSource(source, "folder", walk_folder(source))
    if not source.exists():
        raise ReidError(f"{source}: no such file or folder")
    suffix = source.suffix.lower()
    if suffix == ".zip":
        remove_stale_temps(Path(tempfile.gettempdir()), "reid-batch-")
        tmp = Path(tempfile.mkdtemp(prefix=f"reid-batch-{os.getpid()}-"))
        try:
            safe_extract_zip(source, tmp)
            return BatchSource(source, "zip", walk_folder(tmp), _tmp=tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    if suffix in (".csv", ".txt"):
        rows = read_labels(source)  # identity optional for queries
        return BatchSource(source, "csv", [BatchItem(path=r.path, file=r.file, row=r) for r in rows])
    raise ReidError(f"{source}: expected a labels CSV, a folder or a .zip archive")


# -- identification ------------------------------------------------------------------------------------
def _load_item(pipeline: Pipeline, item: BatchItem) -> list[QueryImage]:
    """Decode one item into queries: one for an image, one per sampled frame for a video."""
    row = item.row
    if not item.is_video:
        if row is not None:
            return [_load_row(pipeline, row, keep_bytes=False)]
        return [pipeline.load_query(item.file, name=item.path, crop=item.crop)]
    s = pipeline.settings
    # All frames of one video are one encounter: they share a sighting id.
    return load_video(item.file, every_s=s.video_every_s, max_frames=s.video_max_frames, max_pixels=s.max_pixels,
                      name=item.path, box=row.box if row else None, viewpoint=row.viewpoint if row else None,
                      timestamp=row.timestamp if row else None,
                      sighting=(row.sighting if row and row.sighting else None) or item.path,
                      station=row.station if row else None, lat=row.lat if row else None,
                      lon=row.lon if row else None, crop=row.crop if row else item.crop)


def iter_identified(pipeline: Pipeline, items: Sequence[BatchItem], *, top_k: int = 5, progress: bool = True,
                    chunk: int | None = None,
                    audit: bool = True, on_item: Callable[[BatchItem], None] | None = None) -> Iterator[Outcome]:
    """Identify items in input order (reid.runner.run_queries), embedding about `chunk` queries
    at a time (default: settings.chunk_size, REID_CHUNK_SIZE).

    A file that cannot be read yields one `error` outcome (message logged) and the batch goes on.
    A chunk is not cut inside a run of consecutive items of one sighting (up to 4 x `chunk`
    queries), so a burst listed together is pooled as one sighting.
    """
    bar = _progress(total=len(items), desc="identify", enabled=progress)

    def done(item: BatchItem) -> None:
        bar.update(1)
        if on_item is not None:
            on_item(item)

    try:
        yield from run_queries(pipeline, items, lambda item: _load_item(pipeline, item), path=lambda i: i.path,
                               chunk=chunk or pipeline.settings.chunk_size, top_k=top_k, audit=audit,
                               sighting=_item_sighting, on_item=done)
    finally:
        bar.close()


# -- outputs -------------------------------------------------------------------------------------------
def outcome_record(outcome: Outcome, resolved: str | None = None) -> dict[str, Any]:
    """What the journal keeps of one query: enough to write either results format.
    `resolved`: the file's full path as the results show it (default: where it was read)."""
    res, q, item = outcome.identification, outcome.query, outcome.item
    if resolved is None:
        resolved = str(item.file.resolve()) if item is not None else ""
    return {
        "path": outcome.path, "file": resolved,
        "decision": res.decision, "error": res.error or "", "flank": res.viewpoint,
        "station": (q.station if q is not None else None) or (item.row.station if item and item.row else "") or "",
        "timestamp": (q.timestamp if q is not None else None) or "",
        "candidates": [[c.identity, c.score, c.inliers, c.viewpoint] for c in res.candidates],
    }


def rank_rows(rec: dict[str, Any]) -> list[list[str]]:
    """The EVAL.md results-CSV rows of one query: one per candidate, or one for error / no gallery."""
    if rec["decision"] == "error" or not rec["candidates"]:
        return [[rec["path"], rec["decision"], "", "", ""]]
    return [[rec["path"], rec["decision"], str(r), ident, f"{score:.6f}"]
            for r, (ident, score, _, _) in enumerate(rec["candidates"], 1)]


def person_row(rec: dict[str, Any]) -> list[str]:
    """One row a person reads. `new` names no individual: identity and runner-up stay empty and
    `probability` is the highest any known individual got (why it is new)."""
    cands = rec["candidates"]
    decision = rec["decision"]
    ident = prob = runner = runner_p = spots = ""
    if cands:
        prob = f"{cands[0][1]:.6f}"
        if decision in ("match", "review"):
            ident, spots = cands[0][0], str(cands[0][2])
            if len(cands) > 1:
                runner, runner_p = cands[1][0], f"{cands[1][1]:.6f}"
    note = rec["error"] if decision == "error" else ("" if cands else "no compatible individual in the catalogue")
    return [rec["path"], rec["file"], rec["flank"], rec["station"], rec["timestamp"], decision, ident, prob,
            runner, runner_p, spots, note]


def result_rows(outcome: Outcome) -> list[list[str]]:
    """The EVAL.md results-CSV rows of one outcome (ranks format)."""
    return rank_rows(outcome_record(outcome))


class AtomicCsv:
    """Rows go to a temp file beside the target; rename on success, delete on failure."""

    def __init__(self, path: Path, header: Sequence[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # the pid in the name: a later run removes what a killed one left (remove_stale_temps)
        prefix = f".{self.path.name}."
        remove_stale_temps(self.path.parent, prefix)
        fd, tmp = tempfile.mkstemp(prefix=f"{prefix}{os.getpid()}-", suffix=".tmp", dir=self.path.parent)
        self.tmp = Path(tmp)
        self.fh = os.fdopen(fd, "w", newline="", encoding="utf-8")
        self.writer = csv.writer(self.fh)
        self.writer.writerow(header)

    def __enter__(self) -> AtomicCsv:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.fh.close()
        if exc_type is None:
            os.chmod(self.tmp, 0o644)  # mkstemp makes 0600; results are meant to be shared
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def summary_path(out_csv: Path) -> Path:
    """results.csv -> results.summary.json"""
    return Path(out_csv).with_suffix(".summary.json")


@dataclass
class BatchSummary:
    source: str
    out_csv: str
    summary_json: str
    files: int = 0  # input files (an image or a video each)
    queries: int = 0  # identified images, video frames counted one each
    decisions: dict[str, int] = field(default_factory=dict)  # match/new/review/error -> count
    errors: list[dict[str, str]] = field(default_factory=list)  # {path, error}
    seconds: float = 0.0
    images_per_s: float = 0.0
    model_id: str = ""
    top_k: int = 5
    format: str = "rows"
    resumed_files: int = 0  # files whose results came from the journal of an interrupted run
    engine: str = "local"  # local (this process) or ray (reid.cluster worker processes)
    workers: int = 1  # processes that identified chunks of this run


    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def batch_fingerprint(pipeline: Pipeline, src: BatchSource, *, top_k: int, chunk: int) -> dict[str, Any]:
    """What must be equal for an interrupted run's journal to be reused."""
    s = pipeline.settings
    return {
        "source": str(Path(src.source).resolve()), "kind": src.kind, "top_k": top_k, "chunk": chunk,
        "items": fingerprint_digest({"paths": [i.path for i in src.items]}),
        "model": pipeline.model_id, "calibration": pipeline.calibration_source,
        "catalogue": pipeline.catalog.counts(), "gallery": len(pipeline.gallery),
        "settings": {k: str(v) for k, v in sorted(s.model_dump().items())
                     if k not in ("data_dir", "cache_dir", "api_token", "host", "port", "threads")},
    }


@dataclass(frozen=True)
class ChunkWork:
    """Identify one chunk into journal records. Picklable, so a cluster worker (reid.cluster)
    runs the very same code against its own copy of the pipeline."""

    top_k: int
    zip_source: str | None = None  # a zip batch: results name the member inside the archive
    review: bool = False  # on a cluster worker: send the outcomes back for the driver's review queue

    def resolved(self, item: BatchItem | None) -> str:
        if item is None:
            return ""
        if self.zip_source is not None:  # the extraction is temporary: name the member inside the archive
            return f"{self.zip_source}/{item.path}"
        return str(item.file.resolve())

    def outcomes(self, pipeline: Pipeline, items: Sequence[BatchItem], *, audit: bool = True) -> list[Outcome]:
        return list(iter_identified(pipeline, items, top_k=self.top_k, progress=False, audit=audit))

    def records(self, outcomes: Sequence[Outcome]) -> list[dict[str, Any]]:
        return [outcome_record(o, self.resolved(o.item)) for o in outcomes]


#: Runs a batch's unfinished chunks elsewhere (reid.cluster.RayExecutor): (work, chunks) ->
#: (chunk, records) as each finishes; given `on_outcome=`, it calls it with each identified
#: query (for the review queue). Its `engine` and `workers` attributes go to the summary.
BatchExecutor = Callable[[ChunkWork, Sequence[Chunk[BatchItem]]], Iterator[tuple[Chunk[BatchItem], Any]]]


def _item_weight(item: BatchItem, video_weight: int) -> int:
    return video_weight if item.is_video else 1


def _item_sighting(item: BatchItem) -> str | None:
    return item.row.sighting if item.row is not None else None


def run_batch(pipeline: Pipeline, source: str | Path | BatchSource, out_csv: str | Path, *, top_k: int = 5,
              progress: bool = True, fmt: str = "rows", chunk: int | None = None,
              on_outcome: Callable[[Outcome], None] | None = None,
              executor: BatchExecutor | None = None) -> BatchSummary:
    """Identify every image (and sampled video frame) of a folder, zip or queries CSV.

    Writes `out_csv` atomically (fmt "rows": one row per photo, ROW_COLUMNS; "ranks": the
    EVAL.md results CSV `path,decision,rank,identity,score`, top_k rows per image) and a JSON
    summary beside it (`summary_path(out_csv)`). Finished chunks of `chunk` photos are kept in
    a journal beside `out_csv` (reid.runner): run again after an interruption (Ctrl-C, kill -9),
    the batch resumes where it stopped and writes what an uninterrupted run would have.
    `executor` (reid.cluster): chunks are identified by worker processes instead; the outputs
    and the journal are the same.
    """
    if fmt not in FORMATS:
        raise ReidError(f"unknown results format {fmt!r}: use one of {', '.join(FORMATS)}")
    out_csv = Path(out_csv)
    own = not isinstance(source, BatchSource)
    src = open_source(source) if own else source
    assert isinstance(src, BatchSource)
    start = time.perf_counter()
    decisions: Counter[str] = Counter()
    summary = BatchSummary(source=str(src.source), out_csv=str(out_csv), summary_json=str(summary_path(out_csv)),
                           files=len(src.items), model_id=pipeline.model_id, top_k=top_k, format=fmt)
    if len(pipeline.gallery) == 0:
        log.warning("the catalogue is empty: every image will come out as 'new'; enroll individuals first")
    chunk = chunk or pipeline.settings.chunk_size
    video_weight = pipeline.settings.video_weight
    chunks = plan_chunks(src.items, size=chunk, group=_item_sighting,
                         weight=lambda item: _item_weight(item, video_weight))
    journal = Journal(journal_path(out_csv), batch_fingerprint(pipeline, src, top_k=top_k, chunk=chunk))

    spec = ChunkWork(top_k, str(Path(src.source).resolve()) if src.kind == "zip" else None)

    def work(c: Any) -> list[dict[str, Any]]:
        outcomes = spec.outcomes(pipeline, c.items)
        if on_outcome is not None:  # e.g. reid.review.review_hook: queue it for a person
            for outcome in outcomes:
                on_outcome(outcome)
        return spec.records(outcomes)

    # On a cluster the photos are identified in worker processes; with on_outcome their outcomes
    # come back too, and the driver queues them (review items) as a local run does.
    remote = None
    if executor is not None:
        remote_spec = replace(spec, review=on_outcome is not None)
        remote = ((lambda todo: executor(remote_spec, todo, on_outcome=on_outcome)) if on_outcome is not None
                  else (lambda todo: executor(remote_spec, todo)))

    bar = _progress(total=len(src.items), desc="identify", enabled=progress)
    try:
        summary.resumed_files = sum(len(c.items) for c in chunks if c.key in journal.done)
        with AtomicCsv(out_csv, ROW_COLUMNS if fmt == "rows" else RESULT_COLUMNS) as out:
            for _, records in run_chunks(chunks, work, journal, on_chunk=lambda c: bar.update(len(c.items)),
                                         executor=remote):
                for rec in records:
                    decisions[rec["decision"]] += 1
                    if rec["decision"] == "error":
                        summary.errors.append({"path": rec["path"], "error": rec["error"]})
                    else:
                        summary.queries += 1
                    if fmt == "rows":
                        out.writer.writerow(person_row(rec))
                    else:
                        out.writer.writerows(rank_rows(rec))
    finally:
        bar.close()
        journal.close()
        if own:
            src.close()
    journal.remove()  # the outputs are complete: nothing left to resume
    summary.seconds = round(time.perf_counter() - start, 3)
    summary.decisions = {d: decisions.get(d, 0) for d in ("match", "new", "review", "error")}
    if executor is not None:
        summary.engine = getattr(executor, "engine", "remote")
        summary.workers = int(getattr(executor, "workers", 0))
    summary.images_per_s = round(summary.queries / summary.seconds, 2) if summary.seconds > 0 else 0.0
    _write_json(summary_path(out_csv), summary.to_dict())
    log.debug("%d images from %d files: %s; %.1f images/s -> %s", summary.queries, summary.files,
             ", ".join(f"{k} {v}" for k, v in summary.decisions.items()), summary.images_per_s, out_csv)
    return summary


__all__ = [
    "BatchExecutor", "BatchItem", "BatchSource", "ChunkWork", "BatchSummary", "EnrollSummary", "Outcome", "enroll_labels", "iter_identified",
    "open_source", "person_row", "rank_rows", "result_rows", "run_batch", "safe_extract_zip", "summary_path", "walk_folder",
]
