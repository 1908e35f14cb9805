"""The `reid` command: enroll, identify, batch, eval, split, serve, synth, check.

Every verb is a thin layer over the library (reid.identify's one pipeline, reid.batch,
reid.evaluate). Errors the library raises on purpose (ReidError) end as one line
`reid: error: ...` on stderr and exit code 2, never a traceback; Ctrl-C exits 130.
Progress and log messages go to stderr, data (tables, JSON) to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from reid.argtypes import add_crop_arguments, add_ray_arguments, fraction, positive_int, ray_address
from reid.calibrate import KINDS
from reid.errors import NotFoundError, ReidError

log = logging.getLogger("reid")

EXIT_OK, EXIT_FAIL, EXIT_ERROR, EXIT_INTERRUPT = 0, 1, 2, 130


class _Formatter(logging.Formatter):
    """INFO as plain lines (progress for people); warnings and errors with their level."""

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        if record.levelno >= logging.WARNING:
            return f"reid: {record.levelname.lower()}: {msg}"
        return msg


class _Logging:
    """Log to stderr while a command runs; restore the previous setup afterwards, so that
    calling main() in-process (tests, notebooks) leaves the host's logging alone."""

    def __init__(self) -> None:
        self.handler: logging.Handler | None = None
        self.saved: list[tuple[logging.Logger, int]] = []

    def start(self, verbosity: int) -> None:
        level = logging.DEBUG if verbosity > 0 else logging.WARNING if verbosity < 0 else logging.INFO
        root, faiss_log = logging.getLogger(), logging.getLogger("faiss")
        self.saved = [(root, root.level), (faiss_log, faiss_log.level)]
        self.handler = logging.StreamHandler(sys.stderr)
        self.handler.setFormatter(_Formatter())
        self.handler.setLevel(level)
        root.addHandler(self.handler)
        root.setLevel(min(level, root.level) if root.level else level)
        # faiss announces which SIMD build it loaded at INFO on every import; not news to a user.
        faiss_log.setLevel(logging.WARNING)

    def stop(self) -> None:
        if self.handler is not None:
            logging.getLogger().removeHandler(self.handler)
            self.handler = None
        for logger, level in self.saved:
            logger.setLevel(level)
        self.saved = []


def _error(message: str) -> None:
    print(f"reid: error: {message}", file=sys.stderr)


# -- shared options ------------------------------------------------------------------------------------
def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("common options")
    g.add_argument("--data-dir", type=Path, default=None,
                   help="catalogue folder (default: $REID_DATA_DIR or ./reid-data)")
    g.add_argument("--model", type=Path, default=None,
                   help="model checkpoint (default: $REID_MODEL or the shipped model in models/)")
    g.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    g.add_argument("-q", "--quiet", action="count", default=0, help="less log output, no progress bars")
    return p


def _settings(args: argparse.Namespace, **overrides: Any) -> Any:
    from reid.settings import Settings

    values = {"data_dir": args.data_dir, "model_path": args.model, **overrides}
    return Settings.from_env(**values)


def _pipeline(args: argparse.Namespace, **overrides: Any) -> Any:
    from reid.identify import open_pipeline

    settings = _settings(args, **overrides)
    log.debug("data dir %s, model %s", settings.data_dir, settings.resolved_model_path)
    return open_pipeline(settings)


def _progress(args: argparse.Namespace) -> bool:
    return not args.quiet


def _box(text: str) -> tuple[float, float, float, float]:
    try:
        vals = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected x,y,w,h in pixels, e.g. 120,80,400,260") from None
    if len(vals) != 4:
        raise argparse.ArgumentTypeError(f"{text!r}: expected four numbers x,y,w,h")
    if vals[2] <= 0 or vals[3] <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: width and height must be positive")
    return vals  # type: ignore[return-value]




# -- verbs -------------------------------------------------------------------------------------------
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp"}


def _enroll_rows(args: argparse.Namespace) -> tuple[Any, str]:
    """The rows to enroll and what to call them: a labels CSV, or photos of one --individual."""
    from reid.labels import LabelRow, read_labels

    inputs: list[Path] = args.inputs
    if args.individual is None:
        photos = [p for p in inputs if p.suffix.lower() in PHOTO_SUFFIXES]
        if photos or len(inputs) > 1:
            shown = photos[0] if photos else inputs[1]
            raise ReidError(f"{shown} is a photo: name the animal, e.g. reid enroll --individual 'Tau Sheri' "
                            f"--viewpoint left {shown} (or give one labels CSV)")
        if args.viewpoint is not None:
            raise ReidError("--viewpoint goes with --individual; a labels CSV has a viewpoint column")
        # a bad CSV fails before the model loads; --crop/--no-crop: rows whose `crop` column is empty
        rows = read_labels(inputs[0], require_identity=True)
        if args.crop is not None:
            rows = [r if r.crop is not None else replace(r, crop=args.crop) for r in rows]
        return rows, str(inputs[0])
    name = args.individual.strip()
    if not name:
        raise ReidError("--individual needs a name")
    rows = []
    for n, photo in enumerate(inputs, 1):
        if photo.suffix.lower() == ".csv":
            raise ReidError(f"{photo}: with --individual give photos; a labels CSV is enrolled without it")
        if not photo.is_file():
            raise ReidError(f"{photo}: no such file")
        rows.append(LabelRow(line=n, path=str(photo), file=photo, identity=name, viewpoint=args.viewpoint,
                             crop=args.crop))
    return rows, f"photos of {name}"


def cmd_enroll(args: argparse.Namespace) -> int:
    from reid.batch import enroll_labels

    rows, what = _enroll_rows(args)
    pipeline = _pipeline(args)
    summary = enroll_labels(pipeline, what, rows=rows, progress=_progress(args))
    counts = pipeline.catalog.counts()
    print(f"enrolled {summary.enrolled} new images ({summary.already} already there, {len(summary.errors)} "
          f"skipped) of {summary.individuals} individuals in {summary.seconds:.1f} s; the catalogue now holds "
          f"{counts['individuals']} individuals, {counts['images']} images")
    return EXIT_FAIL if summary.errors else EXIT_OK  # 1: the catalogue lacks something asked for


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(fmt.format(*r).rstrip() for r in [header, *rows])


def cmd_identify(args: argparse.Namespace) -> int:
    from reid.review import record_identification
    from reid.runner import run_queries

    pipeline = _pipeline(args)
    if len(pipeline.gallery) == 0:
        log.warning("the catalogue in %s is empty: enroll individuals first (reid enroll LABELS.csv)",
                    pipeline.settings.data_dir)

    def load(image: str) -> list[Any]:
        return [pipeline.load_query(image, viewpoint=args.viewpoint, box=args.box, sighting=args.sighting,
                                    crop=args.crop)]

    results = []
    # one sighting is identified in one call (pooled): its group is never cut
    for outcome in run_queries(pipeline, args.images, load, path=str, chunk=pipeline.settings.chunk_size,
                               top_k=args.top_k, sighting=lambda _: args.sighting, max_group_chunks=None,
                               on_error=_error):
        q, res = outcome.query, outcome.identification
        if q is not None:  # not a confident match: a person reviews it
            record_identification(pipeline, q, res, path=q.name, source="cli")
            if args.evidence is not None:
                _write_evidence(pipeline, q, res, args.evidence, several=len(args.images) > 1,
                                lines=args.evidence_lines == "on")
        results.append(res)
    failed = sum(r.decision == "error" for r in results)
    if args.json:
        # each result says which model answered (a data dir's version changes with `reid models`)
        json.dump([{**r.to_dict(), "model_id": pipeline.model_id} for r in results], sys.stdout, indent=2)
        print()
    else:
        for n, res in enumerate(results):
            if n:
                print()
            if res.decision == "error":
                print(f"{res.name}: error")
                continue
            verdict = f"match: {res.candidates[0].identity}" if res.decision == "match" else res.decision
            print(f"{res.name}  (flank: {res.viewpoint})  -> {verdict}")
            if res.flank_note:
                print(f"  note: {res.flank_note}")
            if not res.candidates:
                print("  no compatible individual in the catalogue")
                continue
            rows = [[str(c.rank), c.identity, f"{c.score:.3f}", c.viewpoint, res.decision if c.rank == 1 else ""]
                    for c in res.candidates]
            print(_table(rows, ["rank", "identity", "score", "flank", "decision"]))
    return EXIT_ERROR if failed else EXIT_OK


def _write_evidence(pipeline: Any, query: Any, res: Any, out: Path, *, several: bool, lines: bool = True) -> None:
    """Side-by-side picture of the query and its rank-1 candidate's best gallery image (or the
    query alone with what the verdict says, when there is no candidate)."""
    from reid.imageio import write_png

    path = out.with_name(f"{out.stem}-{Path(query.name).stem}{out.suffix or '.png'}") if several else out
    best = res.candidates[0] if res.candidates else None
    write_png(path, pipeline.evidence_image(query, best, lines=lines, result=res))
    print(f"evidence: {path}", file=sys.stderr)


def cmd_batch(args: argparse.Namespace) -> int:
    from reid.batch import open_source, run_batch, with_crop
    from reid.review import review_hook

    with with_crop(open_source(args.source), args.crop) as source:  # a bad CSV or unsafe zip fails before the model loads
        if not source.items:
            raise ReidError(f"{args.source}: no images or videos found")
        executor = None
        if ray_address(args) is not None:  # --workers alone: one line, before any model loads
            from reid.cluster import RayExecutor, import_ray

            import_ray()  # not installed: one line before the model loads
        pipeline = _pipeline(args)
        if args.ray is not None:
            executor = RayExecutor(pipeline, args.ray, workers=args.workers)
        summary = run_batch(pipeline, source, args.out, top_k=args.top_k, progress=_progress(args),
                            fmt=args.format, chunk=args.chunk, executor=executor,
                            on_outcome=review_hook(pipeline, source="batch"))
    d = summary.decisions
    if summary.resumed_files:
        print(f"resumed: {summary.resumed_files} files came from the interrupted run's journal")
    if summary.engine != "local":
        print(f"engine: {summary.engine}, {summary.workers} worker processes")
    print(f"{summary.queries} images identified from {summary.files} files: {d['match']} match, {d['new']} new, "
          f"{d['review']} review, {d['error']} errors ({summary.images_per_s} images/s)")
    print(f"results: {summary.out_csv}\nsummary: {summary.summary_json}")
    return EXIT_OK


# Settings behind `reid eval --ranking`: local = every individual the keypoint votes reach is
# verified, none is picked by the embedding.
RANKINGS: dict[str, dict[str, object]] = {
    "fused": {},
    "global": {"local_matching": False},
    "local": {"rerank_individuals": 0, "vote_individuals": 1_000_000},
}


def cmd_eval(args: argparse.Namespace) -> int:
    from reid.evaluate import evaluate
    from reid.labels import read_labels

    read_labels(args.gallery, require_identity=True)  # fail fast on bad CSVs, before the model loads
    read_labels(args.queries)
    tmp = None
    data_dir = args.data_dir
    if data_dir is None:
        # A fresh catalogue by default: an evaluation must never write into the user's.
        tmp = Path(tempfile.mkdtemp(prefix="reid-eval-"))
        data_dir = tmp
    try:
        ranking = "global" if args.no_local else args.ranking
        pipeline = _pipeline(args, data_dir=data_dir, **RANKINGS[ranking])
        try:
            if args.data_dir is not None and pipeline.catalog.counts()["images"]:
                log.warning("%s already holds a catalogue: its individuals count as known", data_dir)
            metrics = evaluate(pipeline, args.gallery, args.queries, top_k=args.top_k, progress=_progress(args),
                               cross_fit=args.cross_fit, fit_out=args.fit_calibration, ranking=ranking,
                               calibration_kind=args.calibration)
        finally:
            pipeline.close()  # before its folder is removed: a keypoint index may be being written
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    text = json.dumps(metrics, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    return EXIT_OK


def cmd_calibrate(args: argparse.Namespace) -> int:
    from reid.calibrate import project_calibration_path
    from reid.catalog import now_iso
    from reid.evaluate import recalibrate, split_by_sighting, with_encounters
    from reid.labels import LabelRow

    pipeline = _pipeline(args)
    data_dir, current, catalog = pipeline.catalog.data_dir, pipeline.calibrator, pipeline.catalog
    rows = [LabelRow(line=n, path=r.stored_path, file=data_dir / r.stored_path, identity=r.individual,
                     viewpoint=r.viewpoint, sighting=r.sighting, timestamp=r.timestamp, station=r.station,
                     lat=r.lat, lon=r.lon, box=r.box_tuple)
            for n, r in enumerate((r for ind in catalog.list_individuals() for r in catalog.images_of(ind.id)), 2)]
    # photos without a sighting id: one encounter per individual, station and 30-minute visit
    gallery, queries = split_by_sighting(with_encounters(rows), new_fraction=args.new_fraction, seed=args.seed)
    out = args.out or project_calibration_path(data_dir, pipeline.model_id)
    tmp = Path(tempfile.mkdtemp(prefix="reid-calibrate-"))
    try:
        # the split is enrolled into a scratch catalogue: the project's own is only read
        # the model in force here (the data dir's own version, if any), not the scratch dir's default
        scratch = _pipeline(args, data_dir=tmp, model_path=pipeline.checkpoint.path)
        try:
            new, report = recalibrate(scratch, current, f"catalogue {data_dir}", gallery, queries,
                                      kind=args.calibration, progress=_progress(args))
        finally:
            scratch.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    held = report["refit_held_out"]
    new.fitted_on = (f"reid calibrate on {data_dir} ({now_iso()}): its catalogue split by sighting, "
                     f"{report['gallery_images']} gallery images, {report['queries']} queries "
                     f"({args.new_fraction:g} of individuals held out as new, seed {args.seed}); held out: "
                     f"log-loss {held['log_loss']}, ECE {held['ece']}, wrong matches {held['wrong_matches']}")
    new.ece = held["ece"]
    promote = (report["better"] or args.force) and not args.dry_run
    report["written_to"] = str(out) if promote else None
    if promote:
        out.parent.mkdir(parents=True, exist_ok=True)
        new.save(out)
        catalog.audit("calibrate", actor=args.actor, detail={"path": str(out), "log_loss": held["log_loss"],
                                                             "previous": report["current"]["log_loss"]})
    pipeline.close()
    print(json.dumps(report, indent=2))
    cur = report["current"]["log_loss"]
    if promote:
        if out != project_calibration_path(data_dir, pipeline.model_id):
            use = f"; use it with REID_CALIBRATION={out}"
        elif pipeline.settings.calibration is not None:
            use = f"; REID_CALIBRATION={pipeline.settings.calibration} is set and still wins: unset it to use this one"
        else:
            use = "; identify, batch and the service use it from now on"
        print(f"calibration written to {out} (held-out log-loss {held['log_loss']} vs {cur} for the one in use){use}",
              file=sys.stderr)
    else:
        why = ("--dry-run" if args.dry_run else
               f"no refit measured better (lower log-loss and no lower top-1; best: {held['kind']}, log-loss "
               f"{held['log_loss']} vs {cur}, top-1 {held['top1']} vs {report['current']['top1']})")
        print(f"kept the calibration in use: {why}", file=sys.stderr)
    return EXIT_OK


def cmd_split(args: argparse.Namespace) -> int:
    from reid.evaluate import split_by_sighting
    from reid.labels import read_labels, write_labels

    rows = read_labels(args.labels, require_identity=True)
    gallery, queries = split_by_sighting(rows, new_fraction=args.new_fraction, seed=args.seed)
    out = Path(args.out_dir)
    g = write_labels(out / "gallery.csv", gallery)
    q = write_labels(out / "queries.csv", queries)
    known = {r.identity for r in gallery}
    new = {r.identity for r in queries if r.identity not in known}
    print(f"gallery: {len(gallery)} images of {len(known)} individuals -> {g}")
    print(f"queries: {len(queries)} images ({len(new)} individuals not in the gallery) -> {q}")
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    import importlib.util

    try:
        found = importlib.util.find_spec("service.app") is not None
    except ModuleNotFoundError:
        found = False
    if not found:
        raise ReidError("the web service (service/app.py) is not installed with this copy of reid")
    try:
        import uvicorn
    except ImportError:
        raise ReidError("uvicorn is not installed: pip install uvicorn") from None
    from service.app import create_app
    from service.settings import ServerSettings

    settings = ServerSettings.from_env(data_dir=args.data_dir, model_path=args.model)
    host = args.host or settings.host
    port = args.port or settings.port
    _refuse_open_laptop_mode(host, settings)
    if host not in ("0.0.0.0", "::", "") and not _is_loopback(host):
        # the address it was told to listen on is a name people will use to reach it
        named = f"[{host}]" if ":" in host and not host.startswith("[") else host
        settings = settings.replace(allowed_hosts=(*settings.allowed_hosts, named.lower()))
    shown = f"[{host}]" if ":" in host else host
    print(f"reid service on http://{shown}:{port}/  (data {settings.data_dir}; Ctrl-C to stop)",
          file=sys.stderr, flush=True)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning" if args.quiet else "info")
    return EXIT_OK


def _is_loopback(host: str) -> bool:
    import ipaddress

    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _refuse_open_laptop_mode(host: str, settings: Any) -> None:
    """Laptop mode (no keys, no token) makes everyone admin: only this computer may reach it."""
    import sqlite3

    if _is_loopback(host) or settings.api_token:
        return
    path = Path(settings.data_dir) / "catalog.sqlite"
    if path.is_file():
        try:
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as con:
                if con.execute("SELECT 1 FROM api_keys LIMIT 1").fetchone():
                    return
        except sqlite3.Error:
            pass
    raise ReidError(f"refusing to serve on {host} without keys: anyone on the network would be admin; make one "
                    f"first (reid keys add NAME --role admin) or serve on 127.0.0.1")


def cmd_check(args: argparse.Namespace) -> int:
    from reid.catalog import Catalog
    from reid.damage import damaged_catalog, report_and_repair, sqlite_problem
    from reid.gallery import Gallery
    from reid.model import load_checkpoint
    from reid.names import name_id_collisions

    settings = _settings(args)
    data_dir = Path(settings.data_dir)
    if not (data_dir / "catalog.sqlite").is_file():
        raise NotFoundError(f"no catalogue in {data_dir} (nothing enrolled yet?)")
    problem = sqlite_problem(data_dir / "catalog.sqlite")
    if problem is not None:
        raise damaged_catalog(data_dir / "catalog.sqlite", problem)
    catalog = Catalog(data_dir)
    checkpoint = load_checkpoint(settings.resolved_model_path)
    model_id = checkpoint.model_id
    missing_vectors = len(catalog.images_missing_embedding(model_id))
    # Look at the index file as it is on disk: Gallery.open (and so the pipeline) would
    # silently rebuild a stale one.
    gallery = Gallery(checkpoint.model.dim, Gallery.index_path(data_dir, model_id))
    loaded = gallery.load()
    check = gallery.check(catalog, model_id)
    missing_files = sum(
        not (data_dir / rec.stored_path).is_file()
        for ind in catalog.list_individuals() for rec in catalog.images_of(ind.id)
    )
    counts = catalog.counts()
    print(f"catalogue {data_dir}: {counts['individuals']} individuals, {counts['images']} images; model {model_id}")
    if not loaded:
        print(f"index {gallery.path}: missing or unreadable")
    else:
        print(f"index {gallery.path}: {check.message}")
    if missing_vectors:
        print(f"{missing_vectors} images have no embedding for this model yet")
    if missing_files:
        print(f"{missing_files} stored image files are missing from {data_dir / 'images'}")
    collisions = name_id_collisions(catalog)
    for name, own_id, other in collisions:
        # before names and ids were kept apart, "3" could mean id 3: check these by eye
        print(f"individual {name!r} (id {own_id}) has a name equal to the id of {other!r} (id {name}): older "
              f"versions may have filed photos meant for one under the other; check both")
    repair = args.rebuild or args.repair
    derived_ok = report_and_repair(data_dir, model_id, repair=repair)
    ok = loaded and check.ok and not missing_vectors
    catalog.close()
    if ok and not repair:
        return EXIT_OK if not missing_files and derived_ok else EXIT_FAIL
    if not repair:
        print("run `reid check --repair` to move damaged files aside and rebuild the index from the catalogue")
        return EXIT_FAIL
    pipeline = _pipeline(args)  # embeds images that lack vectors for this model
    pipeline.gallery.rebuild(pipeline.catalog, pipeline.model_id)
    after = pipeline.gallery.check(pipeline.catalog, pipeline.model_id)
    print(f"rebuilt: {after.message}")
    return EXIT_OK if after.ok and not missing_files else EXIT_FAIL


def cmd_synth(argv: Sequence[str]) -> int:
    try:
        from reid.training import synth
    except ImportError as exc:
        raise ReidError(f"reid synth is not available in this copy ({exc})") from None
    return int(synth.main(list(argv)) or 0)


# -- parser ---------------------------------------------------------------------------------------------
#: Modules that add verbs of their own: each has `register(sub, common)`, which adds its
#: subparsers (with `parents=[common]`) and sets `func`. Their handlers import what they
#: need when called, so `reid --help` stays fast and the identify path loads nothing extra.
COMMAND_GROUPS: tuple[str, ...] = ("reid.cli_security", "reid.exports.cli", "reid.review_cli", "reid.season.cli",
                                   "reid.verdict_fit", "reid.cli_retrain")


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="reid", description="Re-identify individual leopards from their rosettes.",
        epilog="Run `reid COMMAND --help` for a command's options. Exit codes: 0 ok, 1 some items "
               "failed, 2 error, 130 interrupted.")
    from reid import __version__

    parser.add_argument("--version", action="version", version=f"reid {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("enroll", parents=[common], help="add photos of known animals to the catalogue",
                       description="Enroll every image of a labels CSV (docs/eval.md format; identity required), "
                                   "or photos of one animal: reid enroll --individual NAME [--viewpoint left|right] "
                                   "PHOTO... Bad images are reported and skipped; enrolling a photo again adds "
                                   "nothing. Enroll whole-body photos of both flanks: a flank never enrolled "
                                   "cannot be recognised.")
    p.add_argument("inputs", nargs="+", type=Path, metavar="LABELS.csv | PHOTO")
    p.add_argument("--individual", default=None, metavar="NAME",
                   help="the photos show this animal (created if new)")
    p.add_argument("--viewpoint", choices=["left", "right", "unknown"], default=None,
                   help="flank the photos show (with --individual; default unknown)")
    add_crop_arguments(p, "with a labels CSV: for rows whose crop column is empty")
    p.set_defaults(func=cmd_enroll)

    p = sub.add_parser("identify", parents=[common], help="rank known individuals for one or more photos",
                       description="Identify photos against the catalogue: ranked candidates with "
                                   "calibrated scores and a verdict (match / new / review).")
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    p.add_argument("--viewpoint", choices=["left", "right", "unknown"], default="unknown",
                   help="flank shown (left-flank photos are only compared with left flanks)")
    p.add_argument("--box", type=_box, default=None, metavar="X,Y,W,H", help="the animal's box in pixels")
    add_crop_arguments(p)
    p.add_argument("--top-k", type=positive_int, default=5, metavar="K", help="candidates per image (default 5)")
    p.add_argument("--sighting", default=None, metavar="ID",
                   help="the images are one sighting (a burst, a video's frames): identify them jointly")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--evidence", type=Path, default=None, metavar="OUT.png",
                   help="write the query beside its rank-1 candidate with the matched spots joined "
                        "(several images: OUT-<image>.png)")
    p.add_argument("--evidence-lines", choices=["on", "off"], default="on",
                   help="off: no lines or markers over the coats in the evidence picture, to compare the "
                        "rosettes themselves (the matched region is still outlined and zoomed)")
    p.set_defaults(func=cmd_identify)

    p = sub.add_parser("batch", parents=[common], help="identify a folder, zip or queries CSV into a results CSV",
                       description="Identify every image (and sampled video frame) of a folder (recursive), a "
                                   ".zip or a queries CSV. Writes a results CSV (one row per photo: path, "
                                   "resolved_path, flank, station, timestamp, decision, identity, probability, "
                                   "runner_up, runner_up_probability, matched_spots, note; or with --format ranks "
                                   "the EVAL.md ranks) and a JSON summary beside it; unreadable files get an "
                                   "`error` row. Interrupted (Ctrl-C, kill), the same command resumes where it "
                                   "stopped.")
    p.add_argument("source", type=Path, metavar="LABELS.csv|FOLDER|ZIP")
    p.add_argument("--out", type=Path, required=True, metavar="RESULTS.csv")
    p.add_argument("--top-k", type=positive_int, default=5, metavar="K", help="candidates per image (default 5)")
    p.add_argument("--format", choices=("rows", "ranks"), default="rows",
                   help="rows (default): one row per photo for people; ranks: path,decision,rank,identity,score "
                        "with K rows per photo (EVAL.md, what `reid eval` and scoring read)")
    p.add_argument("--chunk", type=positive_int, default=None, metavar="N",
                   help="photos identified together and saved to the resume journal at a time "
                        "(default: $REID_CHUNK_SIZE or 32)")
    add_ray_arguments(p, "identify chunks")
    add_crop_arguments(p, "with a queries CSV: for rows whose crop column is empty")
    p.set_defaults(func=cmd_batch)

    p = sub.add_parser("eval", parents=[common], help="EVAL.md metrics of a gallery/queries split",
                       description="Enroll the gallery CSV into a fresh temporary catalogue (or --data-dir), "
                                   "identify the queries and print the EVAL.md metrics as JSON.")
    p.add_argument("--gallery", type=Path, required=True, metavar="G.csv")
    p.add_argument("--queries", type=Path, required=True, metavar="Q.csv")
    p.add_argument("--top-k", type=positive_int, default=5, metavar="K", help="candidates per query (>= 5 used)")
    p.add_argument("--out", type=Path, default=None, metavar="METRICS.json", help="also write the JSON here")
    p.add_argument("--ranking", choices=RANKINGS, default="fused",
                   help="what ranks the candidates: fused (embedding + verified keypoints, the service's "
                        "answer), global (embedding only) or local (verified keypoints only, candidates from "
                        "whole-gallery keypoint votes, no embedding)")
    p.add_argument("--no-local", action="store_true", help="same as --ranking global")
    p.add_argument("--cross-fit", action="store_true",
                   help="score with calibrators fitted on other individuals' queries (2 folds): calibration "
                        "for data the shipped calibration was not fitted on")
    p.add_argument("--fit-calibration", type=Path, default=None, metavar="CAL.json",
                   help="fit a calibration on these labelled queries and write it (e.g. <model>.calibration.json)")
    p.add_argument("--calibration", choices=KINDS, default="auto",
                   help="what --cross-fit and --fit-calibration fit: a monotone table (grid), a logistic, or "
                        "auto (the default: whichever has the lower held-out log-loss; reid/calibrate.py)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("calibrate", parents=[common], help="refit the calibration on the catalogue's own photos",
                       description="Split the catalogue's confirmed photos by sighting, identify one half "
                                   "against the other in a scratch catalogue, fit a calibration on them and "
                                   "compare it (cross-fitted, held out) with the one in use. When it measures "
                                   "better (lower log-loss over all candidates, top-1 no lower) it is written to "
                                   "the data dir, "
                                   "where identify, batch and the service use it for this model. Prints the "
                                   "comparison as JSON.")
    p.add_argument("--new-fraction", type=fraction, default=0.2, metavar="F",
                   help="share of individuals held out as newcomers (default 0.2)")
    p.add_argument("--seed", type=int, default=0, help="which individuals are held out (default 0)")
    p.add_argument("--calibration", choices=KINDS, default="auto",
                   help="what to fit: grid, logistic, or auto (the default: both are tried, held out)")
    p.add_argument("--out", type=Path, default=None, metavar="CAL.json",
                   help="write here instead (then use it with REID_CALIBRATION)")
    p.add_argument("--dry-run", action="store_true", help="measure and report, write nothing")
    p.add_argument("--force", action="store_true", help="write the refit even if it measures no better")
    p.add_argument("--actor", default="cli", help="who asked, for the audit log (default cli)")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("split", parents=[common], help="split a labels CSV by sighting into gallery and queries",
                       description="Per individual, the first half of its sightings (natural order) become "
                                   "the gallery and the rest queries (EVAL.md). Writes gallery.csv and "
                                   "queries.csv with paths relative to the output folder.")
    p.add_argument("labels", type=Path, metavar="LABELS.csv")
    p.add_argument("--out-dir", type=Path, required=True, metavar="DIR")
    p.add_argument("--new-fraction", type=fraction, default=0.0, metavar="F",
                   help="share of individuals held out of the gallery entirely (new individuals)")
    p.add_argument("--seed", type=int, default=0, help="which individuals are held out (default 0)")
    p.set_defaults(func=cmd_split)

    p = sub.add_parser("serve", parents=[common], help="run the web service",
                       description="Serve the HTTP API, its documentation (/docs, works offline) and the web "
                                   "pages with uvicorn. Enrolling from another terminal meanwhile is fine: the "
                                   "service notices catalogue changes at the next request.")
    p.add_argument("--host", default=None, help="interface (default $REID_HOST or 127.0.0.1: this computer only)")
    p.add_argument("--port", type=int, default=None, help="default $REID_PORT or 8000")
    p.set_defaults(func=cmd_serve)

    sub.add_parser("synth", help="synthetic leopard coats and camera-trap images (see `reid synth --help`)",
                   add_help=False)

    p = sub.add_parser("check", parents=[common], help="check the catalogue, index, keypoint caches and calibration",
                       description="SQLite's integrity check of the catalogue, the FAISS index against the "
                                   "catalogue, every keypoint cache, the data dir's calibration, names that "
                                   "equal another individual's id; --repair fixes what can be fixed.")
    p.add_argument("--rebuild", action="store_true", help="rebuild the index from the catalogue")
    p.add_argument("--repair", action="store_true",
                   help="move damaged keypoint caches and calibration aside (recomputed / shipped one used) "
                        "and rebuild the index")
    p.set_defaults(func=cmd_check)

    import importlib

    for module in COMMAND_GROUPS:
        importlib.import_module(module).register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `reid` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    logs = _Logging()
    args = None  # the error handlers below name its data dir when parsing got that far
    try:
        if argv and argv[0] == "synth":
            # Everything after `synth` belongs to reid.training.synth's own parser (including --help).
            logs.start(0)
            return cmd_synth(argv[1:])
        args = build_parser().parse_args(argv)
        logs.start(args.verbose - args.quiet)
        from tqdm.contrib.logging import logging_redirect_tqdm

        with logging_redirect_tqdm():  # log lines print above progress bars instead of through them
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("reid: interrupted", file=sys.stderr)
        return EXIT_INTERRUPT
    except ReidError as exc:
        _error(str(exc))
        return EXIT_ERROR
    except sqlite3.DatabaseError as exc:  # damage found after the catalogue opened, or a lock held too long
        from reid.catalog import busy_catalog, is_busy

        if is_busy(exc):
            _error(str(busy_catalog(getattr(args, "data_dir", None))))
        else:
            _error(f"the catalogue database failed ({exc}); `reid check` tells what is damaged, "
                   "`reid restore BACKUP --force` brings a backup back")
        return EXIT_ERROR
    except BrokenPipeError:
        # `reid identify ... | head`: the reader left; not an error worth a traceback. Point
        # stdout at devnull so the interpreter's final flush does not complain either.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    finally:
        logs.stop()


if __name__ == "__main__":
    sys.exit(main())
