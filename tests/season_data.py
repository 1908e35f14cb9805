"""A small season for the export and report tests, made the way a field team would have it.

A catalogue (real SQLite, photos enrolled through the real model) of three known leopards, and
a season folder `images/STATION/CAMERA/*.jpg` identified by the real pipeline (encounters
pooled as sightings), written as `RESULTS_DIR/results.csv` + `deployments.csv` + `summary.json`
in the column contract of `reid season run` (issue 15). Nothing here is a typed-in answer:
decisions, identities and probabilities are what the pipeline said; `group` joins the `new`
rows of one unknown animal (what the season runner's clustering is for); travel flags are the
km/day from the individual's previous sighting.

Built once per test session (cached under the session's base temp dir): test modules define
`season = pytest.fixture(scope="session")(...)` over `session_season`.
"""

from __future__ import annotations

import csv
import json
import math
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import MODEL, make_coat, photograph

#: station -> (lat, lon, cameras); S04 is ~220 km from the others (a long move to flag).
STATIONS = {"S01": (44.20, 56.10, ("A", "B")), "S02": (44.32, 56.25, ("A", "B")),
            "S_03": (44.05, 56.40, ("A",)), "S04": (42.60, 58.20, ("A",))}
SEASON_START, SEASON_END = datetime(2025, 10, 1, 10, 0), datetime(2025, 10, 10, 16, 0)
EARLY_END = {("S_03", "A"): datetime(2025, 10, 6, 12, 0)}  # a camera whose batteries ran out
PROBLEMS = {("S02", "B"): (datetime(2025, 10, 4, 0, 0), datetime(2025, 10, 5, 23, 59))}
KNOWN = {"Tau Sheri": ("male", ("left", "right"), "S01"), "Aybala": ("female", ("left", "right"), "S02"),
         "Kyzyl": (None, ("left",), "S_03")}
#: (encounter, time, station, [(camera, animal, flank)])
ENCOUNTERS = [
    ("E1", datetime(2025, 10, 2, 21, 14, 5), "S01", [("A", "Tau Sheri", "left"), ("B", "Tau Sheri", "right")]),
    ("E2", datetime(2025, 10, 3, 3, 10, 0), "S02", [("A", "Aybala", "left"), ("B", "Aybala", "right")]),
    ("E3", datetime(2025, 10, 5, 22, 0, 0), "S_03", [("A", "Kyzyl", "left")]),
    ("E4", datetime(2025, 10, 7, 1, 30, 0), "S01", [("A", "stranger", "left"), ("B", "stranger", "right")]),
    ("E5", datetime(2025, 10, 8, 2, 0, 0), "S04", [("A", "Tau Sheri", "left")]),
    ("E6", datetime(2025, 10, 9, 4, 45, 0), "S02", [("A", "stranger", "left")]),
]
COAT_SEEDS = {"Tau Sheri": 21000, "Aybala": 22000, "Kyzyl": 23000, "stranger": 29000}
RESULT_COLUMNS = ["path", "station", "camera", "timestamp", "encounter", "box", "flank", "decision", "identity",
                  "probability", "runner_up", "runner_up_probability", "travel_flag", "group", "image_width",
                  "image_height", "sha256", "detection_conf", "matched_spots", "travel_note"]
MAX_KM_PER_DAY = 15.0
SEASON_BOX = (8.0, 6.0, 300.0, 226.0)


@dataclass
class Season:
    data_dir: Path  # the catalogue
    season_dir: Path  # images/STATION/CAMERA/*.jpg
    results_dir: Path  # results.csv, deployments.csv, summary.json

    def results(self) -> list[dict[str, str]]:
        with open(self.results_dir / "results.csv", newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))

    def catalogue_rows(self) -> list[sqlite3.Row]:
        con = sqlite3.connect(self.data_dir / "catalog.sqlite")
        con.row_factory = sqlite3.Row
        try:
            return con.execute("SELECT m.*, i.name, i.sex FROM images m JOIN individuals i ON i.id = m.individual_id"
                               ).fetchall()
        finally:
            con.close()


def _km(a: tuple[float, float], b: tuple[float, float]) -> float:
    (la1, lo1), (la2, lo2) = (map(math.radians, a)), (map(math.radians, b))
    h = math.sin((la2 - la1) / 2) ** 2 + math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(h))


def _photo(animal: str, flank: str, rng: np.random.Generator, path: Path) -> None:
    coat = make_coat(COAT_SEEDS[animal] + (0 if flank == "left" else 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), photograph(coat, rng), [cv2.IMWRITE_JPEG_QUALITY, 90])


def _enroll_catalogue(pipe, root: Path, rng: np.random.Generator) -> None:
    for n, (name, (sex, flanks, station)) in enumerate(KNOWN.items()):
        pipe.catalog.create_individual(name, sex=sex, exist_ok=True)
        lat, lon, cameras = STATIONS[station]
        when = datetime(2025, 9, 20 + n, 23, 0)
        queries = []
        for k in range(2):
            for flank in flanks:
                path = root / "earlier" / f"{name.replace(' ', '-')}-{flank}-{k}.jpg"
                _photo(name, flank, rng, path)
                queries.append(pipe.load_query(path, viewpoint=flank, keep_bytes=True, sighting=f"{name}-{k}",
                                               station=station, timestamp=(when + timedelta(days=k)).isoformat(),
                                               lat=lat, lon=lon))
        pipe.enroll(name, queries)
        # Enrollment's API has no camera field on this branch; the catalogue column does.
        with pipe.catalog.transaction() as con:
            for q in queries:
                camera = cameras[list(flanks).index(q.viewpoint)] if q.viewpoint in flanks else cameras[0]
                con.execute("UPDATE images SET camera = ? WHERE sha256 = ?", (camera, q.sha256))


def _write_deployments(path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["deploymentID", "locationID", "cameraID", "latitude", "longitude", "deploymentStart",
                    "deploymentEnd", "problem1_from", "problem1_to"])
        for station, (lat, lon, cameras) in STATIONS.items():
            for cam in cameras:
                end = EARLY_END.get((station, cam), SEASON_END)
                a, b = PROBLEMS.get((station, cam), ("", ""))
                w.writerow([f"{station}-{cam}", station, cam, lat, lon, SEASON_START.isoformat(), end.isoformat(),
                            a and a.isoformat(), b and b.isoformat()])


def _identify_season(pipe, season_dir: Path, rng: np.random.Generator) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    last_seen = {}  # identity -> (time, station)
    for rec in pipe.catalog.list_individuals():
        for img in pipe.catalog.images_of(rec.id):
            t = datetime.fromisoformat(img.timestamp)
            if rec.name not in last_seen or t > last_seen[rec.name][0]:
                last_seen[rec.name] = (t, img.station)
    groups: dict[str, str] = {}
    for encounter, when, station, shots in ENCOUNTERS:
        queries, truth = [], []
        for i, (camera, animal, flank) in enumerate(shots):
            rel = f"{station}/{camera}/{encounter}-{i}.jpg"
            _photo(animal, flank, rng, season_dir / rel)
            ts = (when + timedelta(seconds=3 * i)).isoformat()
            # A MegaDetector-like box around the animal (the photos are 320 x 240).
            queries.append(pipe.load_query(season_dir / rel, name=rel, viewpoint=flank, sighting=encounter,
                                           station=station, timestamp=ts, box=SEASON_BOX))
            truth.append(animal)
        for (camera, _animal, flank), q, res, animal in zip(shots, queries, pipe.identify(queries), truth,
                                                             strict=True):
            cands = res.candidates
            identity = cands[0].identity if cands and res.decision in ("match", "review") else ""
            flag, note = False, ""
            if res.decision == "match" and identity in last_seen:
                t0, s0 = last_seen[identity]
                km = _km(STATIONS[s0][:2], STATIONS[station][:2])
                days = max((datetime.fromisoformat(q.timestamp) - t0).total_seconds() / 86400, 1 / 24)
                flag = km / days > MAX_KM_PER_DAY
                if flag:
                    note = f"same leopard or two? {km:.1f} km from {s0} in {days:.1f} days ({km / days:.1f} km/day)"
            if res.decision == "match":
                last_seen[identity] = (datetime.fromisoformat(q.timestamp), station)
            group = groups.setdefault(animal, str(len(groups) + 1)) if res.decision == "new" else ""
            rows.append({
                "path": q.name, "station": station, "camera": camera, "timestamp": q.timestamp,
                "encounter": encounter, "box": ",".join(f"{v:g}" for v in SEASON_BOX), "flank": flank, "decision": res.decision, "identity": identity,
                "probability": f"{cands[0].score:.4f}" if cands else "", "runner_up": cands[1].identity if len(cands) > 1 else "",
                "runner_up_probability": f"{cands[1].score:.4f}" if len(cands) > 1 else "",
                "travel_flag": "true" if flag else "false", "group": group,
                "image_width": q.full_size[0], "image_height": q.full_size[1], "sha256": q.sha256,
                "detection_conf": "", "matched_spots": cands[0].inliers if cands else "", "travel_note": note})
    return rows


def _empty_and_bad_rows(season_dir: Path, rows: list[dict[str, object]]) -> None:
    """Two empty frames, a second copy of one file (duplicate) and an unreadable file (error)."""
    import hashlib

    for k in range(2):
        rel = f"S02/A/empty-{k}.jpg"
        (season_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(season_dir / rel), np.full((240, 320, 3), 90 + k, np.uint8))
        rows.append({**dict.fromkeys(RESULT_COLUMNS, ""), "path": rel, "station": "S02", "camera": "A",
                     "timestamp": datetime(2025, 10, 6, 12, k).isoformat(), "decision": "empty", "flank": "unknown",
                     "image_width": 320, "image_height": 240, "travel_flag": "false",
                     "sha256": hashlib.sha256((season_dir / rel).read_bytes()).hexdigest()})
    first = rows[0]
    rows.append({**first, "path": str(first["path"]).replace(".jpg", "-copy.jpg"), "decision": "duplicate"})
    rows.append({**dict.fromkeys(RESULT_COLUMNS, ""), "path": "S04/A/broken.jpg", "station": "S04", "camera": "A",
                 "decision": "error", "travel_flag": "false"})


def build_season(root: Path) -> Season:
    from reid.identify import open_pipeline

    season = Season(root / "reid-data", root / "season" / "images", root / "results")
    if (season.results_dir / "summary.json").is_file():
        return season
    rng = np.random.default_rng(2025)
    pipe = open_pipeline(data_dir=season.data_dir, model_path=MODEL)
    try:
        _enroll_catalogue(pipe, root, rng)
        rows = _identify_season(pipe, season.season_dir, rng)
    finally:
        pipe.catalog.close()
    _empty_and_bad_rows(season.season_dir, rows)
    season.results_dir.mkdir(parents=True, exist_ok=True)
    _write_deployments(season.results_dir / "deployments.csv")
    with open(season.results_dir / "results.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=RESULT_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    decisions = [str(r["decision"]) for r in rows]
    (season.results_dir / "summary.json").write_text(json.dumps(
        {"images": len({r["path"] for r in rows}), "detections": len(rows),
         "decisions": {d: decisions.count(d) for d in sorted(set(decisions))}}, indent=2))
    return season


def session_season(tmp_path_factory: pytest.TempPathFactory) -> Season:
    """The session's season (built by the first test module that asks; the others reuse it)."""
    return build_season(tmp_path_factory.getbasetemp() / "export-season")
