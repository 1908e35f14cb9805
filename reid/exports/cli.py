"""`reid export FORMAT --out DIR` and `reid report -o FILE.html`: thin verbs over reid.exports."""

from __future__ import annotations

import argparse
import json
import logging
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from reid.argtypes import number
from reid.errors import ReidError

positive_days = number(int, low=1, what='a whole number of days')

log = logging.getLogger("reid")

FORMATS = ("camtrap-dp", "secr", "camtrapr")  # the built-in writers (reid.exports.list_exporters)


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a date YYYY-MM-DD") from None


def _offset(text: str) -> timedelta:
    m = re.fullmatch(r"([+-])(\d{1,2}):?(\d{2})", text.strip())
    if not m or int(m.group(2)) > 14 or int(m.group(3)) >= 60:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a UTC offset like +05:00")
    sign = -1 if m.group(1) == "-" else 1
    return sign * timedelta(hours=int(m.group(2)), minutes=int(m.group(3)))



def _selection_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("what to include")
    g.add_argument("--season", type=Path, metavar="RESULTS_DIR",
                   help="also include a season run's machine identifications (the --out folder of `reid season run`)")
    g.add_argument("--from", dest="date_from", type=_date, metavar="YYYY-MM-DD", help="first day (inclusive)")
    g.add_argument("--to", dest="date_to", type=_date, metavar="YYYY-MM-DD", help="last day (inclusive)")
    g.add_argument("--coordinates", default="exact", metavar="exact|round:N|withhold",
                   help="station coordinates as stored (default), rounded to N decimals of a degree, or withheld "
                        "(they show where an endangered cat lives: see docs/exports.md)")
    g.add_argument("--utc-offset", type=_offset, default=timedelta(hours=5), metavar="+HH:MM",
                   help="offset of the cameras' local time from UTC (default +05:00, Kazakhstan)")


def _options(args: argparse.Namespace, **extra: Any) -> Any:
    from reid.exports.geo import CoordinatePolicy
    from reid.exports.records import ExportOptions

    if args.date_from and args.date_to and args.date_to < args.date_from:
        raise ReidError(f"--to {args.date_to} is before --from {args.date_from}")
    return ExportOptions(date_from=args.date_from, date_to=args.date_to,
                         coordinates=CoordinatePolicy.parse(args.coordinates), utc_offset=args.utc_offset, **extra)


def _catalog(args: argparse.Namespace) -> Any:
    from reid.catalog import Catalog
    from reid.cli import _settings

    data_dir = _settings(args).data_dir
    if not (Path(data_dir) / "catalog.sqlite").is_file():
        raise ReidError(f"no catalogue in {data_dir} (give --data-dir, or enroll individuals first)")
    return Catalog(data_dir)


def _project(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReidError(f"--project {path}: not a readable JSON file ({exc})") from None
    if not isinstance(value, dict):
        raise ReidError(f"--project {path}: expected a JSON object (title, contributors, ...)")
    return value


def cmd_export(args: argparse.Namespace) -> int:
    from reid.exports import run_export

    options = _options(args, occasion_days=args.occasion_days, flank=args.flank,
                       confirmed_only=args.confirmed_only, project=_project(args.project))
    result = run_export(args.format, _catalog(args), args.out, season_dir=args.season, options=options)
    if options.coordinates.mode == "exact":
        log.warning("the export holds exact station coordinates: share it only with people who may know where "
                    "the leopards are (--coordinates round:N or withhold generalise them)")
    for line in result.warnings:
        log.info("%s", line)
    for path in result.files:
        print(path)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from reid.exports.records import load_export_data
    from reid.exports.report import render_report

    data = load_export_data(_catalog(args), season_dir=args.season, options=_options(args))
    images = args.images
    if images is None and data.season is not None:
        hint = data.season.summary.get("season_dir")
        images = Path(hint) if isinstance(hint, str) and Path(hint).is_dir() else None
    html = render_report(data, images_dir=images, title=args.title)
    out = Path(args.output)
    if out.parent and not out.parent.is_dir():
        raise ReidError(f"-o {out}: folder {out.parent} does not exist")
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out)
    print(out)
    return 0


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("export", parents=[common], help="export identifications as Camtrap DP, secr or camtrapR files",
                       description="Write the catalogue's confirmed identifications (and, with --season, a season "
                                   "run's machine identifications, marked as such) in a standard format. "
                                   "See docs/exports.md.")
    p.add_argument("format", choices=FORMATS, help="camtrap-dp (TDWG Camtrap DP 1.0.2), secr (captures.txt, "
                                                   "traps.txt) or camtrapr (record_table.csv, camera_table.csv)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to write (created if needed)")
    _selection_options(p)
    g = p.add_argument_group("capture histories (secr, camtrapr)")
    g.add_argument("--occasion-days", type=positive_days, default=1, metavar="N", help="length of an occasion (default 1)")
    g.add_argument("--flank", choices=("both", "left", "right"), default="both",
                   help="both: individuals with linked flanks count once, one-flank ones are marked (default); "
                        "left/right: only photos of that flank")
    g.add_argument("--confirmed-only", action="store_true", help="leave out machine identifications")
    g = p.add_argument_group("Camtrap DP")
    g.add_argument("--project", type=Path, metavar="FILE.json",
                   help="package metadata: title, contributors, description, samplingDesign, taxonomic")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("report", parents=[common], help="write the season report (one offline HTML file)",
                       description="A self-contained HTML report: summary, station map, individuals with their "
                                   "best photo per flank, detections over time, travel flags, unknown groups.")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="FILE.html")
    p.add_argument("--images", type=Path, metavar="SEASON_DIR",
                   help="the season's photo folder (results.csv paths are relative to it), for thumbnails")
    p.add_argument("--title", default=None, help="report title (default: Season report)")
    _selection_options(p)
    p.set_defaults(func=cmd_report)
