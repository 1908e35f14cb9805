"""Exports of a season (tests/season_data.py: real catalogue, real pipeline decisions) checked by
parsers of each format: Camtrap DP against the official 1.0.2 schemas (vendored, offline),
secr's trapID text files and camtrapR's tables against their column rules, with the counts an
analyst would expect computed here from results.csv and the catalogue, not by the exporter."""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from camtrap_dp_check import validate_camtrap_dp
from conftest import run_cli
from season_data import STATIONS, Season, session_season

SEASON_FROM = date(2025, 10, 1)


@pytest.fixture(scope="session")
def season(tmp_path_factory: pytest.TempPathFactory) -> Season:
    return session_season(tmp_path_factory)


# -- what the season holds, computed from the raw files ---------------------------------------------
def identifications(s: Season, date_from: date | None = None) -> list[dict]:
    """Every identified detection: catalogue photos (human) and season match/new-group rows (machine)."""
    out = []
    cat = s.catalogue_rows()
    confirmed = {(r["sha256"], r["box"]) for r in cat}
    for r in cat:
        out.append({"who": r["name"], "t": datetime.fromisoformat(r["timestamp"]), "station": r["station"],
                    "flank": r["viewpoint"], "method": "human", "camera": r["camera"], "sha256": r["sha256"]})
    for r in s.results():
        if (r["sha256"], r["box"]) in confirmed or r["decision"] not in ("match", "new"):
            continue
        if r["decision"] == "new" and not r["group"]:
            continue
        who = r["identity"] if r["decision"] == "match" else f"new-{r['group']}"
        out.append({"who": who, "t": datetime.fromisoformat(r["timestamp"]), "station": r["station"],
                    "flank": r["flank"], "method": "machine", "camera": r["camera"], "sha256": r["sha256"]})
    return [d for d in out if date_from is None or d["t"].date() >= date_from]


def flanks_known(s: Season) -> dict[str, set[str]]:
    known = defaultdict(set)
    for d in identifications(s):
        if d["flank"] in ("left", "right"):
            known[d["who"]].add(d["flank"])
    return known


def km(a: str, b: str) -> float:
    (la1, lo1), (la2, lo2) = STATIONS[a][:2], STATIONS[b][:2]
    p1, p2 = math.radians(la1), math.radians(la2)
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lo2 - lo1) / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(h))


def export(s: Season, fmt: str, out: Path, *extra: str) -> Path:
    proc = run_cli("export", fmt, "--out", out, "--data-dir", s.data_dir, "--season", s.results_dir, *extra)
    assert proc.returncode == 0, proc.stderr
    return out


# -- parsers --------------------------------------------------------------------------------------
def read_secr(folder: Path) -> tuple[list[tuple[str, str, int, str]], dict[str, tuple[float, float, str]]]:
    """captures.txt and traps.txt as read.capthist(fmt = "trapID") reads them (whitespace, # comments)."""
    def lines(name: str) -> list[list[str]]:
        text = (folder / name).read_text(encoding="utf-8")
        return [ln.split() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]

    captures = []
    for cols in lines("captures.txt"):
        assert len(cols) == 4, cols
        session, ident, occasion, detector = cols
        assert occasion.isdigit(), cols
        captures.append((session, ident, int(occasion), detector))
    traps = {}
    for cols in lines("traps.txt"):
        assert len(cols) == 4, cols
        detector, x, y, usage = cols
        assert re.fullmatch(r"[01]+", usage), usage
        traps[detector] = (float(x), float(y), usage)
    return captures, traps


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


# -- secr -----------------------------------------------------------------------------------------
def test_secr_files_parse_with_the_right_counts(season: Season, tmp_path: Path) -> None:
    out = export(season, "secr", tmp_path / "secr", "--from", str(SEASON_FROM))
    captures, traps = read_secr(out)
    header = (out / "traps.txt").read_text().splitlines()[0]
    assert "UTM zone 40N (EPSG:32640), metres" in header
    detectors = {r["Detector"]: r for r in read_csv(out / "detectors.csv")}
    ids = {r["ID"]: r for r in read_csv(out / "individuals.csv")}
    assert set(detectors) == set(traps) and {r["station"] for r in detectors.values()} == set(STATIONS)
    for name in list(traps) + list(ids):
        assert re.fullmatch(r"[A-Za-z0-9.-]+", name), f"{name!r}: no whitespace or underscores in secr ids"
    # occasions: one per day from the first deployment day to the last; usage from camera effort
    usage_len = {len(u) for _, _, u in traps.values()}
    assert usage_len == {10}  # 2025-10-01 .. 2025-10-10
    by_station = {r["station"]: r["Detector"] for r in detectors.values()}
    assert traps[by_station["S_03"]][2] == "1111110000"  # its camera stopped on 6 October
    for session, ident, occasion, detector in captures:
        assert session == "1" and ident in ids
        assert detector in traps, f"capture at unknown detector {detector}"
        assert traps[detector][2][occasion - 1] == "1", "capture on an occasion without effort"
    # right counts: individuals, captures (individual x day x station), detectors
    expected = identifications(season, SEASON_FROM)
    want = {(d["who"], (d["t"].date() - SEASON_FROM).days + 1, d["station"]) for d in expected}
    got = {(ids[i]["individual"], occ, detectors[det]["station"]) for _, i, occ, det in captures}
    assert got == want and len(captures) == len(want)
    assert {r["individual"] for r in ids.values()} == {d["who"] for d in expected}
    # metres: UTM distances between detectors match great-circle distances between stations
    for a, b in (("S01", "S02"), ("S01", "S04")):
        (xa, ya, _), (xb, yb, _) = traps[by_station[a]], traps[by_station[b]]
        assert math.hypot(xa - xb, ya - yb) / 1000 == pytest.approx(km(a, b), rel=0.005)


def test_flanks_one_individual_when_linked_marked_when_one_flank_only(season: Season, tmp_path: Path) -> None:
    captures, _ = read_secr(export(season, "secr", tmp_path / "both"))
    ids = {r["individual"]: r for r in read_csv(tmp_path / "both" / "individuals.csv")}
    known = flanks_known(season)
    for name, flanks in known.items():
        if flanks == {"left", "right"}:
            assert ids[name]["flanks"] == "both" and ids[name]["ID"].count("-left") == 0
        else:
            (side,) = flanks
            assert ids[name]["ID"].endswith(f"-{side}") and ids[name]["flanks"] == f"{side} only"
    assert ids["Kyzyl"]["flanks"] == "left only"  # known by its left flank only
    # Tau Sheri's left and right photos are one animal: one id carries captures of both flanks
    tau = [c for c in captures if c[1] == ids["Tau Sheri"]["ID"]]
    assert len({c[1] for c in tau}) == 1 and len(tau) >= 2
    # --flank left: only left-flank photos count, nobody gets a flank suffix
    captures_l, _ = read_secr(export(season, "secr", tmp_path / "left", "--flank", "left"))
    ids_l = {r["ID"]: r for r in read_csv(tmp_path / "left" / "individuals.csv")}
    assert all(not i.endswith(("-left", "-right")) for i in ids_l)
    left = {(d["who"], d["t"].date(), d["station"]) for d in identifications(season) if d["flank"] == "left"}
    assert len({(ids_l[c[1]]["individual"], c[2], c[3]) for c in captures_l}) == len(
        {(w, day, st) for w, day, st in left})


def test_occasion_length_and_confirmed_only(season: Season, tmp_path: Path) -> None:
    captures, traps = read_secr(export(season, "secr", tmp_path / "o3", "--from", str(SEASON_FROM),
                                       "--occasion-days", "3", "--confirmed-only"))
    assert {len(u) for _, _, u in traps.values()} == {4}  # 10 days in occasions of 3 days
    # the catalogue photos are all before the season: confirmed-only leaves nothing in it
    assert captures == []
    captures, _ = read_secr(export(season, "secr", tmp_path / "all", "--confirmed-only"))
    ids = {r["ID"]: r["individual"] for r in read_csv(tmp_path / "all" / "individuals.csv")}
    assert set(ids.values()) == {r["name"] for r in season.catalogue_rows()}


def test_withheld_coordinates_keep_distances_but_not_positions(season: Season, tmp_path: Path) -> None:
    _, exact = read_secr(export(season, "secr", tmp_path / "e"))
    _, hidden = read_secr(export(season, "secr", tmp_path / "w", "--coordinates", "withhold"))
    assert "undisclosed origin" in (tmp_path / "w" / "traps.txt").read_text()
    assert all(x < 1_000_000 and y < 1_000_000 for x, y, _ in hidden.values())
    a, b = sorted(exact)[:2]
    d_exact = math.hypot(exact[a][0] - exact[b][0], exact[a][1] - exact[b][1])
    assert math.hypot(hidden[a][0] - hidden[b][0], hidden[a][1] - hidden[b][1]) == pytest.approx(d_exact, abs=0.2)
    assert all(r["latitude"] == "" for r in read_csv(tmp_path / "w" / "detectors.csv"))


# -- camtrapR ----------------------------------------------------------------------------------------
def test_camtrapr_tables(season: Season, tmp_path: Path) -> None:
    out = export(season, "camtrapr", tmp_path / "ct", "--from", str(SEASON_FROM))
    cams, recs = read_csv(out / "camera_table.csv"), read_csv(out / "record_table.csv")
    assert list(cams[0])[:7] == ["Station", "Camera", "utm_x", "utm_y", "utm_zone", "Setup_date", "Retrieval_date"]
    assert list(recs[0])[:12] == ["Station", "Species", "Individual", "DateTimeOriginal", "Date", "Time",
                                  "delta.time.secs", "delta.time.mins", "delta.time.hours", "delta.time.days",
                                  "Directory", "FileName"]
    deployments = read_csv(season.results_dir / "deployments.csv")
    assert len(cams) == len(deployments)  # one row per camera
    for c in cams:
        assert "_" not in c["Station"] and c["utm_zone"] == "40N"
        float(c["utm_x"]), float(c["utm_y"])
        assert date.fromisoformat(c["Setup_date"]) <= date.fromisoformat(c["Retrieval_date"])
    assert [(c["Problem1_from"], c["Problem1_to"]) for c in cams if c["Problem1_from"]] == [("2025-10-04", "2025-10-05")]
    stations = {c["Station"] for c in cams}
    expected = identifications(season, SEASON_FROM)
    assert len(recs) == len(expected)
    assert sorted((r["Individual"].split("-left")[0].replace("-", " "), r["DateTimeOriginal"]) for r in recs) == sorted(
        (d["who"].replace("-", " "), d["t"].strftime("%Y-%m-%d %H:%M:%S")) for d in expected)
    for r in recs:
        assert r["Station"] in stations and r["Flank"] in ("left", "right", "unknown")
        t = datetime.strptime(r["DateTimeOriginal"], "%Y-%m-%d %H:%M:%S")
        assert r["Date"] == f"{t:%Y-%m-%d}" and r["Time"] == f"{t:%H:%M:%S}"
        assert int(r["delta.time.mins"]) == int(r["delta.time.secs"]) // 60
    # the whole catalogue: cameras with photos before the season are still one row each, the
    # weeks between those photos and the season's deployment a problem period
    cams = read_csv(export(season, "camtrapr", tmp_path / "all") / "camera_table.csv")
    assert len({(c["Station"], c["Camera"]) for c in cams}) == len(cams) == len(deployments)
    s01a = next(c for c in cams if (c["Station"], c["Camera"]) == ("S01", "A"))
    assert s01a["Setup_date"] < "2025-10-01" and s01a["Problem1_to"] == "2025-10-01"
    # the paired cameras of E1: two records of one individual, 3 seconds apart
    e1 = [r for r in recs if r["FileName"].startswith("E1-")]
    assert len(e1) == 2 and {r["Camera"] for r in e1} == {"A", "B"} and e1[1]["delta.time.secs"] == "3"


# -- Camtrap DP -----------------------------------------------------------------------------------------
def test_camtrap_dp_package_is_valid_and_complete(season: Season, tmp_path: Path) -> None:
    out = export(season, "camtrap-dp", tmp_path / "dp")
    assert validate_camtrap_dp(out / "datapackage.json") == []
    pkg = json.loads((out / "datapackage.json").read_text())
    assert pkg["project"]["individualAnimals"] is True
    assert pkg["taxonomic"][0]["scientificName"] == "Panthera pardus tulliana"
    assert {r["name"] for r in pkg["resources"]} == {"deployments", "media", "observations", "individuals"}
    deps, media, obs = (read_csv(out / f"{n}.csv") for n in ("deployments", "media", "observations"))
    season_deps = {d["deploymentID"] for d in read_csv(season.results_dir / "deployments.csv")}
    assert season_deps <= {d["deploymentID"] for d in deps}
    # observations: every catalogue photo (human) and every season row but error/duplicate (machine)
    results = season.results()
    kept = [r for r in results if r["decision"] not in ("error", "duplicate")]
    cat = season.catalogue_rows()
    assert len(obs) == len(cat) + len(kept)
    assert sum(o["classificationMethod"] == "human" for o in obs) == len(cat)
    assert len(media) == len({r["sha256"] for r in cat} | {r["sha256"] for r in kept})
    assert sum(o["observationType"] == "blank" for o in obs) == sum(r["decision"] == "empty" for r in results)
    ident = identifications(season)
    assert sum(bool(o["individualID"]) for o in obs) == len(ident)
    # the encounter is the event, shared by both cameras of the pair
    e1 = [o for o in obs if o["eventID"] == "E1"]
    assert len(e1) == 2 and len({o["deploymentID"] for o in e1}) == 2 and len({o["individualID"] for o in e1}) == 1
    # flanks travel in observationTags; boxes are normalised
    by_sha = {r["sha256"]: r for r in kept}
    for o in obs:
        if o["mediaID"] in by_sha:
            r = by_sha[o["mediaID"]]
            assert f"flank:{r['flank']}" in o["observationTags"].split(" | ")
            assert o["eventStart"] == r["timestamp"] + "+05:00"
            if not r["box"]:
                assert o["bboxX"] == "" and o["observationType"] == "blank"
                continue
            x, y, w, h = (float(v) for v in r["box"].split(","))
            assert float(o["bboxX"]) == pytest.approx(x / int(r["image_width"]), abs=1e-4)
            assert float(o["bboxHeight"]) == pytest.approx(h / int(r["image_height"]), abs=1e-4)
    individuals = read_csv(out / "individuals.csv")
    assert {i["individualName"] for i in individuals} == {d["who"] for d in ident}
    known = flanks_known(season)
    assert all(set(i["flanksKnown"].split("|")) == known[i["individualName"]] for i in individuals)
    # the check can fail: a value outside the standard's vocabulary is caught
    text = (out / "observations.csv").read_text()
    (out / "observations.csv").write_text(text.replace(",media,animal,", ",media,leopard,", 1))
    assert any("observations" in p and "constraint" in p for p in validate_camtrap_dp(out / "datapackage.json"))


def test_odd_season_rows_stay_valid_and_never_name_the_wrong_animal(season: Season, tmp_path: Path) -> None:
    """A match to an individual renamed since the run and a path that climbs out of the folder."""
    results = tmp_path / "results"
    shutil.copytree(season.results_dir, results)
    rows = read_csv(results / "results.csv")
    first = next(r for r in rows if r["decision"] == "match")
    first.update(identity="Ghost", path="../outside/odd..name.jpg")
    with open(results / "results.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    proc = run_cli("export", "camtrap-dp", "--out", tmp_path / "dp", "--data-dir", season.data_dir,
                   "--season", results)
    assert proc.returncode == 0 and "'Ghost', no longer in the catalogue" in proc.stderr
    assert validate_camtrap_dp(tmp_path / "dp" / "datapackage.json") == []
    (obs,) = [o for o in read_csv(tmp_path / "dp" / "observations.csv") if o["mediaID"] == first["sha256"]]
    assert obs["individualID"] == "" and obs["observationType"] == "animal"


def test_camtrap_dp_rounded_coordinates(season: Season, tmp_path: Path) -> None:
    project = tmp_path / "project.json"
    project.write_text(json.dumps({"title": "Ustyurt leopards 2025", "samplingDesign": "opportunistic",
                                   "contributors": [{"title": "A. Ranger", "role": "principalInvestigator"}]}))
    out = export(season, "camtrap-dp", tmp_path / "dp", "--coordinates", "round:1", "--from", str(SEASON_FROM),
                 "--to", "2025-10-05", "--project", project)
    assert validate_camtrap_dp(out / "datapackage.json") == []
    meta = json.loads((out / "datapackage.json").read_text())
    assert meta["title"] == "Ustyurt leopards 2025" and meta["contributors"][0]["title"] == "A. Ranger"
    assert meta["project"]["samplingDesign"] == "opportunistic" and meta["coordinatePrecision"] == 0.1
    deps = read_csv(out / "deployments.csv")
    assert all(len(d["latitude"].split(".")[-1]) <= 1 and int(d["coordinateUncertainty"]) > 5000 for d in deps)
    pkg = json.loads((out / "datapackage.json").read_text())
    assert pkg["temporal"] == {"start": "2025-10-01", "end": "2025-10-05"}
    obs = read_csv(out / "observations.csv")
    assert obs and all("2025-10-01" <= o["eventStart"][:10] <= "2025-10-05" for o in obs)


# -- the command line's refusals --------------------------------------------------------------------------
@pytest.mark.parametrize(("args", "message"), [
    (("camtrap-dp", "--coordinates", "withhold"), "Camtrap DP requires deployment coordinates"),
    (("secr", "--coordinates", "round:9"), "--coordinates"),
    (("secr", "--from", "2025-10-05", "--to", "2025-10-01"), "is before"),
    (("secr", "--season", "."), "no results.csv"),
])
def test_export_refusals_are_one_line(season: Season, tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    proc = run_cli("export", *args, "--out", tmp_path / "x", "--data-dir", season.data_dir, cwd=tmp_path)
    assert proc.returncode == 2 and message in proc.stderr
    assert proc.stderr.startswith("reid: error:") and "Traceback" not in proc.stderr


def test_export_without_a_catalogue_is_refused(tmp_path: Path) -> None:
    proc = run_cli("export", "secr", "--out", tmp_path / "x", "--data-dir", tmp_path / "none")
    assert proc.returncode == 2 and "no catalogue" in proc.stderr
    assert not (tmp_path / "none").exists()


def test_bad_results_csv_names_the_line(season: Season, tmp_path: Path) -> None:
    bad = tmp_path / "results"
    bad.mkdir()
    rows = (season.results_dir / "results.csv").read_text().splitlines()
    rows[3] = rows[3].replace(",match,", ",maybe,", 1)
    (bad / "results.csv").write_text("\n".join(rows) + "\n")
    proc = run_cli("export", "secr", "--out", tmp_path / "x", "--data-dir", season.data_dir, "--season", bad)
    assert proc.returncode == 2 and "line 4" in proc.stderr and "maybe" in proc.stderr


# -- pieces ----------------------------------------------------------------------------------------
def test_registry_lists_the_formats_and_refuses_unknown_ones() -> None:
    from reid.errors import ReidError
    from reid.exports import create_exporter, list_exporters
    from reid.exports.cli import FORMATS

    assert list_exporters() == ["camtrap-dp", "camtrapr", "secr"] == sorted(FORMATS)
    assert create_exporter("secr").name == "secr"
    with pytest.raises(ReidError, match="unknown export format"):
        create_exporter("excel")


def test_utm_projection() -> None:
    from reid.exports.geo import UtmZone, to_utm, utm_zone_for

    assert utm_zone_for(44.2, 56.1).label == "40N" and utm_zone_for(-33.9, 18.4).epsg == 32734
    zone = UtmZone(40, True)
    assert to_utm(0.0, 57.0, zone) == pytest.approx((500000.0, 0.0))
    # on the central meridian northing is k0 times the meridian arc (WGS84: 4,984,944.378 m to 45 N)
    assert to_utm(45.0, 57.0, zone)[1] == pytest.approx(0.9996 * 4984944.378, abs=0.01)
    # conformal: the same scale north-south and east-west, off the central meridian
    lat, lon, d = 44.5, 59.5, 1e-5
    e2, a = 0.00669437999014, 6378137.0
    w = math.sqrt(1 - e2 * math.sin(math.radians(lat)) ** 2)
    x0, y0 = to_utm(lat, lon, zone)
    x1, y1 = to_utm(lat + d, lon, zone)
    x2, y2 = to_utm(lat, lon + d, zone)
    k_north = math.hypot(x1 - x0, y1 - y0) / (a * (1 - e2) / w**3 * math.radians(d))
    k_east = math.hypot(x2 - x0, y2 - y0) / (a / w * math.cos(math.radians(lat)) * math.radians(d))
    assert k_north == pytest.approx(k_east, rel=1e-6)
    assert to_utm(-10.0, 57.0, UtmZone(40, False))[1] < 10_000_000


def test_coordinate_policy() -> None:
    from reid.errors import ReidError
    from reid.exports.geo import CoordinatePolicy

    assert CoordinatePolicy.parse("round:2").apply(44.123456, 56.987654) == (44.12, 56.99)
    assert CoordinatePolicy.parse("withhold").apply(44.1, 56.1) == (None, None)
    assert CoordinatePolicy.parse("exact").apply(44.1, 56.1) == (44.1, 56.1)
    assert CoordinatePolicy.parse("round:1").uncertainty_m == 7872
    for bad in ("round", "round:-1", "fuzzy"):
        with pytest.raises(ReidError):
            CoordinatePolicy.parse(bad)


def test_effort_subtracts_problem_periods() -> None:
    from reid.exports.capture import operating
    from reid.exports.records import Deployment
    from reid.exports.report import camera_days

    start = datetime(2025, 10, 1)
    cam = Deployment("d", "S", "A", 44.0, 56.0, start, start + timedelta(days=10),
                     problems=((start + timedelta(days=2), start + timedelta(days=4)),))
    assert camera_days(cam) == pytest.approx(8.0)
    assert operating([cam], start + timedelta(days=1), start + timedelta(days=2))
    assert not operating([cam], start + timedelta(days=2, hours=1), start + timedelta(days=3))
    assert not operating([cam], start + timedelta(days=11), start + timedelta(days=12))
