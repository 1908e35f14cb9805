"""`reid season run SEASON_DIR --out RESULTS_DIR [--deployments CSV] [--detections JSON]`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from reid.argtypes import add_ray_arguments, positive_float, positive_int, ray_address, unit_interval
from reid.season.encounters import DEFAULT_GAP_S
from reid.season.megadetector import DEFAULT_THRESHOLD
from reid.season.travel import DEFAULT_MAX_KM_PER_DAY


def cmd_season_run(args: argparse.Namespace) -> int:
    from reid.cli import _pipeline, _progress
    from reid.errors import ReidError
    from reid.season.ingest import read_deployments
    from reid.season.megadetector import load_detections
    from reid.season.run import SeasonOptions, run_season

    if not args.season_dir.is_dir():
        raise ReidError(f"{args.season_dir}: not a folder")
    # bad input files fail in a second, before the model loads
    if args.detections is not None:
        load_detections(args.detections, threshold=args.detection_threshold)
    if args.deployments is not None:
        read_deployments(args.deployments)
    if ray_address(args) is not None:  # --workers alone: one line, before any model loads
        from reid.cluster import import_ray

        import_ray()  # not installed: one line before the model loads
    options = SeasonOptions(gap_s=args.gap, detection_threshold=args.detection_threshold,
                            max_km_per_day=args.max_km_per_day, chunk=args.chunk, top_k=args.top_k,
                            group_threshold=args.group_threshold, estimate_flanks=not args.no_flank_estimate,
                            flank_min_confidence=args.flank_confidence)
    pipeline = _pipeline(args)
    executor = None
    if args.ray is not None:
        from reid.cluster import RayExecutor

        executor = RayExecutor(pipeline, args.ray, workers=args.workers)
    try:
        s = run_season(pipeline, args.season_dir, args.out, deployments_csv=args.deployments,
                       detections_json=args.detections, options=options, progress=_progress(args),
                       executor=executor)
    finally:
        pipeline.close()
    d = s["decisions"]
    print(f"{s['photos']} photos, {s['detections']} detections in {s['encounters']} encounters: "
          f"{d['match']} match, {d['review']} review, {d['new']} new ({s['unknown_groups']} putative new "
          f"individuals), {d['empty']} empty, {d['duplicate']} duplicate, {d['error']} errors")
    print(f"{s['flank_links']} flank links, {s['travel_flags']} travel flags, {len(s['no_time'])} photos without "
          f"a usable time; {s['timing']['images_per_s']} photos/s, {s['timing']['detections_per_s']} detections/s")
    if s["timing"]["resumed_photos"]:
        print(f"resumed: {s['timing']['resumed_photos']} photos came from the interrupted run's journal")
    if s["engine"] != "local":
        print(f"engine: {s['engine']}, {s['workers']} worker processes")
    print(f"results: {Path(args.out) / 'results.csv'}")
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("season", help="identify a camera-trap season (stations, MegaDetector, encounters)",
                       description="Work with a camera-trap season: `reid season run` (see its --help).")
    verbs = p.add_subparsers(dest="season_command", metavar="VERB", required=True)
    r = verbs.add_parser(
        "run", parents=[common], help="identify every detection of a season folder, resumable",
        description="Identify a season stored as SEASON_DIR/STATION/CAMERA/... (or described by "
                    "--deployments): MegaDetector boxes (--detections), encounters per station, paired "
                    "cameras linking both flanks, one verdict per animal per encounter, travel plausibility, "
                    "unknown animals grouped into putative new individuals. Writes RESULTS_DIR/results.csv, "
                    "deployments.csv, groups.csv, flank_links.csv and summary.json. Interrupted (Ctrl-C, kill), "
                    "the same command continues where it stopped. See docs/seasons.md.")
    r.add_argument("season_dir", type=Path, metavar="SEASON_DIR")
    r.add_argument("--out", type=Path, required=True, metavar="RESULTS_DIR")
    r.add_argument("--deployments", type=Path, default=None, metavar="CSV",
                   help="deploymentID/folder, locationID, cameraID, latitude, longitude, deploymentStart, "
                        "deploymentEnd, clock_offset (seconds added to the camera's time)")
    r.add_argument("--detections", type=Path, default=None, metavar="JSON",
                   help="MegaDetector / AddaxAI batch output (format >= 1.3); without it whole frames are identified")
    r.add_argument("--detection-threshold", type=unit_interval, default=DEFAULT_THRESHOLD, metavar="P",
                   help=f"keep animal boxes with confidence >= P (default {DEFAULT_THRESHOLD})")
    r.add_argument("--gap", type=positive_float, default=DEFAULT_GAP_S, metavar="SECONDS",
                   help=f"photos at one station closer than this are one encounter (default {DEFAULT_GAP_S:g})")
    r.add_argument("--max-km-per-day", type=positive_float, default=DEFAULT_MAX_KM_PER_DAY, metavar="KM",
                   help=f"flag matches implying faster travel (default {DEFAULT_MAX_KM_PER_DAY:g}; "
                        "reid/season/travel.py cites the source)")
    r.add_argument("--group-threshold", type=unit_interval, default=None, metavar="P",
                   help="P(same individual) needed to group two unknown animals (default: REID_MATCH_THRESHOLD)")
    r.add_argument("--flank-confidence", type=unit_interval, default=0.9, metavar="P",
                   help="estimated flanks below this confidence are 'unknown' (default 0.9)")
    r.add_argument("--no-flank-estimate", action="store_true", help="do not estimate flanks (all 'unknown')")
    r.add_argument("--chunk", type=positive_int, default=32, metavar="N",
                   help="photos identified together and saved to the resume journal at a time (default 32)")
    r.add_argument("--top-k", type=positive_int, default=5, metavar="K", help="candidates kept per detection (default 5)")
    add_ray_arguments(r, "identify encounters")
    r.set_defaults(func=cmd_season_run)
