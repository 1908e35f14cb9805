"""Read what `reid season run` leaves in RESULTS_DIR (results.csv, deployments.csv, summary.json).

The column names are the contract between the season runner and the exports; anything
missing or malformed is one clear ReidError naming the file, line and column.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from reid.errors import ReidError
from reid.season.ingest import optional_float

RESULT_COLUMNS = ("path", "station", "camera", "timestamp", "encounter", "box", "flank", "decision", "identity",
                  "probability", "runner_up", "runner_up_probability", "travel_flag", "group", "image_width",
                  "image_height", "sha256", "detection_conf", "matched_spots", "travel_note")
#: The first columns, in this order, are required; the rest are read when present.
REQUIRED_COLUMNS = RESULT_COLUMNS[:14]
DEPLOYMENT_COLUMNS = ("deploymentID", "locationID", "cameraID", "latitude", "longitude", "deploymentStart",
                      "deploymentEnd")
DECISIONS = ("match", "new", "review", "error", "empty", "duplicate")


@dataclass(frozen=True)
class ResultRow:
    path: str
    station: str
    camera: str
    timestamp: datetime | None
    encounter: str
    box: tuple[float, float, float, float] | None
    flank: str
    decision: str
    identity: str
    probability: float | None
    runner_up: str
    runner_up_probability: float | None
    travel_flag: bool
    group: str
    image_width: int | None
    image_height: int | None
    sha256: str
    travel_note: str
    line: int


@dataclass(frozen=True)
class Deployment:
    """One camera's effort: from a season's deployments.csv, or first to last photo."""

    deployment_id: str
    station: str
    camera: str
    lat: float | None
    lon: float | None
    start: datetime | None
    end: datetime | None
    problems: tuple[tuple[datetime, datetime], ...] = ()
    source: str = "season"  # season (deployments.csv) or photos (first to last photo)


@dataclass(frozen=True)
class SeasonResults:
    folder: Path
    rows: list[ResultRow]
    deployments: list[Deployment]
    summary: dict[str, Any]


def parse_time(text: str, where: str) -> datetime | None:
    """ISO 8601 as written; None when empty."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ReidError(f"{where}: timestamp {text!r} is not ISO 8601") from None


def _int(text: str, where: str) -> int | None:
    value = optional_float(text, where)
    return None if value is None else int(value)


def _box(text: str, where: str) -> tuple[float, float, float, float] | None:
    text = (text or "").strip()
    if not text:
        return None
    parts = text.split(",")
    values = [optional_float(p, where) for p in parts]
    if len(values) != 4 or any(v is None for v in values) or values[2] <= 0 or values[3] <= 0:  # type: ignore[operator]
        raise ReidError(f"{where}: box {text!r} is not x,y,w,h in pixels")
    return tuple(values)  # type: ignore[return-value]


def _read_csv(path: Path, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            missing = [c for c in required if c not in header]
            if missing:
                raise ReidError(f"{path}: missing column(s) {', '.join(missing)} (is this a season results folder?)")
            return [(n, row) for n, row in enumerate(reader, start=2)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ReidError(f"{path}: cannot read ({exc})") from None


def _result(line: int, r: dict[str, str], path: Path) -> ResultRow:
    where = f"{path}, line {line}"
    decision = (r.get("decision") or "").strip()
    if decision not in DECISIONS:
        raise ReidError(f"{where}: decision {decision!r} is not one of {', '.join(DECISIONS)}")
    flag = (r.get("travel_flag") or "").strip().lower()
    return ResultRow(
        path=(r.get("path") or "").strip(), station=(r.get("station") or "").strip(),
        camera=(r.get("camera") or "").strip(), timestamp=parse_time(r.get("timestamp", ""), where),
        encounter=(r.get("encounter") or "").strip(), box=_box(r.get("box", ""), where),
        flank=(r.get("flank") or "unknown").strip().lower() or "unknown", decision=decision,
        identity=(r.get("identity") or "").strip(), probability=optional_float(r.get("probability", ""), where),
        runner_up=(r.get("runner_up") or "").strip(),
        runner_up_probability=optional_float(r.get("runner_up_probability", ""), where),
        travel_flag=flag in ("1", "true", "yes", "y"), group=(r.get("group") or "").strip(),
        image_width=_int(r.get("image_width", ""), where), image_height=_int(r.get("image_height", ""), where),
        sha256=(r.get("sha256") or "").strip(), travel_note=(r.get("travel_note") or "").strip(), line=line,
    )


def _problems(r: dict[str, str], where: str) -> tuple[tuple[datetime, datetime], ...]:
    """Optional `problemN_from`/`problemN_to` columns: periods a camera did not work."""
    out = []
    for n in range(1, 10):
        start, end = r.get(f"problem{n}_from"), r.get(f"problem{n}_to")
        if not start and not end:
            continue
        a, b = parse_time(start or "", where), parse_time(end or "", where)
        if a is None or b is None or b < a:
            raise ReidError(f"{where}: problem{n}_from/_to need a start and a later end")
        out.append((a, b))
    return tuple(out)


def _deployment(line: int, r: dict[str, str], path: Path) -> Deployment:
    where = f"{path}, line {line}"
    dep_id = (r.get("deploymentID") or "").strip()
    if not dep_id:
        raise ReidError(f"{where}: empty deploymentID")
    return Deployment(
        deployment_id=dep_id, station=(r.get("locationID") or "").strip() or dep_id,
        camera=(r.get("cameraID") or "").strip(), lat=optional_float(r.get("latitude", ""), where),
        lon=optional_float(r.get("longitude", ""), where), start=parse_time(r.get("deploymentStart", ""), where),
        end=parse_time(r.get("deploymentEnd", ""), where), problems=_problems(r, where),
    )


def read_season_results(results_dir: str | Path) -> SeasonResults:
    """The season run's outputs; deployments.csv and summary.json are optional."""
    folder = Path(results_dir)
    results = folder / "results.csv"
    if not results.is_file():
        raise ReidError(f"{folder}: no results.csv here (give the --out folder of `reid season run`)")
    rows = [_result(n, r, results) for n, r in _read_csv(results, REQUIRED_COLUMNS)]
    deployments: list[Deployment] = []
    if (folder / "deployments.csv").is_file():
        deployments = [_deployment(n, r, folder / "deployments.csv")
                       for n, r in _read_csv(folder / "deployments.csv", DEPLOYMENT_COLUMNS)]
    summary: dict[str, Any] = {}
    if (folder / "summary.json").is_file():
        try:
            summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ReidError(f"{folder / 'summary.json'}: not readable JSON ({exc})") from None
    return SeasonResults(folder=folder, rows=rows, deployments=deployments, summary=summary)
