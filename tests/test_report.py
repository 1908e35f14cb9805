"""The season report: one offline HTML file whose numbers match the catalogue and the season
results, rendered by a real headless Chromium without console errors; the same page live
under the web app, and the export downloads, for roles that may see locations only."""

from __future__ import annotations

import io
import os
import re
import shutil
import sqlite3
import zipfile
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from conftest import run_cli
from live import chromium, console_errors, live_server
from season_data import Season, session_season
from test_exports import identifications, km

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def season(tmp_path_factory: pytest.TempPathFactory) -> Season:
    return session_season(tmp_path_factory)


def pending_in_queue(catalog_path: Path) -> int:
    with sqlite3.connect(catalog_path) as con:
        return con.execute("SELECT COUNT(*) FROM review_items WHERE status = 'pending'").fetchone()[0]


def expected_numbers(s: Season, with_season: bool = True) -> dict[str, str]:
    """The summary computed from the raw files: catalogue rows and results.csv."""
    cat = s.catalogue_rows()
    rows = [r for r in s.results() if r["decision"] not in ("error", "duplicate")] if with_season else []
    animals = [r for r in rows if r["decision"] != "empty"]
    days = 0.0
    if with_season:
        for line in (s.results_dir / "deployments.csv").read_text().splitlines()[1:]:
            cols = line.split(",")
            a, b = datetime.fromisoformat(cols[5]), datetime.fromisoformat(cols[6])
            lost = (datetime.fromisoformat(cols[8]) - datetime.fromisoformat(cols[7])) if cols[7] else None
            days += ((b - a) - (lost or (a - a))).total_seconds() / 86400
    spans = defaultdict(list)  # cameras seen only in catalogue photos: first to last photo
    for r in cat:
        spans[(r["station"], r["camera"])].append(datetime.fromisoformat(r["timestamp"]))
    days += sum((max(t) - min(t)).total_seconds() / 86400 for t in spans.values())
    return {
        "photos": str(len({r["sha256"] for r in cat} | {r["sha256"] for r in rows})),
        "detections": str(len(cat) + len(animals)),
        "encounters": str(len({r["sighting"] for r in cat} | {r["encounter"] for r in animals})),
        "individuals": str(len({r["name"] for r in cat})),
        "new": str(len({r["group"] for r in animals if r["decision"] == "new" and r["group"]})),
        "pending_reviews": str(pending_in_queue(s.data_dir / "catalog.sqlite")),
        "camera_days": f"{round(days, 1)}",
    }


def stats_in(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-stat="(\w+)">([^<]*)<', html))


def test_report_file_numbers_match_the_catalogue_and_season(season: Season, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    proc = run_cli("report", "-o", out, "--data-dir", season.data_dir, "--season", season.results_dir,
                   "--images", season.season_dir)
    assert proc.returncode == 0, proc.stderr
    html = out.read_text()
    want = expected_numbers(season)
    got = stats_in(html)
    assert {k: got[k] for k in want} == want
    # one card per individual with its detections; the unknown group is a separate section
    cards = dict(re.findall(r'data-individual="([^"]+)">.*?data-card="detections">(\d+)<', html, flags=re.S))
    per_individual = defaultdict(int)
    for d in identifications(season):
        per_individual[d["who"]] += 1
    assert cards == {k: str(v) for k, v in per_individual.items()}
    assert html.index('id="groups"') < html.index('data-individual="new-1"')
    # the travel flag: Tau Sheri from S01 to S04, with the distance between the stations
    flag = re.search(r'<tr class="flag-row"><td class="flag">Tau Sheri</td>.*?</tr>', html, flags=re.S)
    assert flag and f"{km('S01', 'S04'):.1f}" in flag.group(0)
    # self-contained: thumbnails embedded, nothing fetched from anywhere
    images = re.findall(r'<img src="([^"]+)"', html)
    assert images and all(src.startswith("data:image/jpeg;base64,") for src in images)
    assert not re.search(r'(src|href)="(https?:)?//', html) and "<script" not in html
    # every individual shows a photo of each flank it was seen with
    assert len(re.findall(r'alt="Tau Sheri, (left|right) flank"', html)) == 2


def test_report_refuses_a_missing_folder(season: Season, tmp_path: Path) -> None:
    proc = run_cli("report", "-o", tmp_path / "no" / "r.html", "--data-dir", season.data_dir)
    assert proc.returncode == 2 and "does not exist" in proc.stderr


@pytest.mark.browser
def test_report_renders_in_chromium_without_console_errors(season: Season, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    proc = run_cli("report", "-o", out, "--data-dir", season.data_dir, "--season", season.results_dir,
                   "--images", season.season_dir, "--title", "Ustyurt plateau, autumn 2025 (synthetic season)")
    assert proc.returncode == 0, proc.stderr
    with chromium(1280, 900) as browser:
        browser.get(out.as_uri())
        stats = {e.get_attribute("data-stat"): e.text for e in browser.find_elements("css selector", "[data-stat]")}
        assert {k: stats[k] for k in expected_numbers(season)} == expected_numbers(season)
        # every thumbnail decoded, the map and both charts drawn
        assert browser.execute_script("return [...document.images].every(i => i.complete && i.naturalWidth > 0)")
        assert browser.find_elements("css selector", "svg.map g.station")
        assert len(browser.find_elements("css selector", ".chart svg")) == 2
        assert console_errors(browser) == []
        shot = os.environ.get("REID_REPORT_SCREENSHOT")  # docs/report.png is made this way
        if shot:
            height = browser.execute_script("return document.body.scrollHeight")
            browser.set_window_size(1280, min(height + 120, 3200))
            browser.save_screenshot(str(REPO / shot))


def test_exports_and_report_over_http_need_a_role_that_sees_locations(season: Season, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(season.data_dir, data_dir)
    with live_server(data_dir, env={"REID_API_TOKEN": "s3cret"}) as server:
        for path in ("/report", "/v1/exports/secr.zip", "/v1/exports"):
            r = httpx.get(server.url + path)
            assert r.status_code == 401 and "Authorization: Bearer" in r.json()["detail"]
        auth = {"Authorization": "Bearer s3cret"}
        r = httpx.get(server.url + "/v1/exports/secr.zip", headers=auth, params={"occasion_days": 2})
        assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
        names = zipfile.ZipFile(io.BytesIO(r.content)).namelist()
        assert {"secr/captures.txt", "secr/traps.txt", "secr/individuals.csv", "secr/README.txt"} <= set(names)
        captures = zipfile.ZipFile(io.BytesIO(r.content)).read("secr/captures.txt").decode()
        assert "occasions of 2 day(s)" in captures
        r = httpx.get(server.url + "/v1/exports/camtrap-dp.zip", headers=auth, params={"coordinates": "withhold"})
        assert r.status_code == 409 and "Camtrap DP requires" in r.json()["detail"]
        r = httpx.get(server.url + "/v1/exports/camtrap-dp.zip", headers=auth, params={"coordinates": "round:1"})
        assert r.status_code == 200 and "camtrap-dp/datapackage.json" in zipfile.ZipFile(io.BytesIO(r.content)).namelist()
        # an unknown format is a 404; a bad date or coordinate policy a 422 naming the field (schema patterns)
        for path, code in (("/v1/exports/excel.zip", 404), ("/v1/exports/secr.zip?from=2025-13-01", 422),
                           ("/v1/exports/secr.zip?coordinates=fuzzy", 422)):
            r = httpx.get(server.url + path, headers=auth)
            assert r.status_code == code and "detail" in r.json()
        r = httpx.get(server.url + "/report", headers=auth)
        assert r.status_code == 200 and stats_in(r.text)["individuals"] == str(len({x["name"] for x in season.catalogue_rows()}))


def test_a_viewer_may_not_export_or_see_the_report() -> None:
    from fastapi.testclient import TestClient

    from reid.settings import Settings
    from service.app import create_app
    from service.deps import Actor, Role, authenticate

    app = create_app(Settings())
    app.dependency_overrides[authenticate] = lambda: Actor("guest", Role.viewer)
    # no lifespan: the refusal comes before the catalogue is touched; a loopback Host the guard accepts
    client = TestClient(app, base_url="http://127.0.0.1")
    for path in ("/report", "/v1/exports/secr.zip"):
        r = client.get(path)
        assert r.status_code == 403 and "guest" in r.json()["detail"]


@pytest.mark.browser
def test_live_report_page_in_chromium(season: Season, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(season.data_dir, data_dir)
    with live_server(data_dir) as server, chromium() as browser:  # laptop mode: the local user is admin
        browser.get(server.url + "/report")
        stats = {e.get_attribute("data-stat"): e.text for e in browser.find_elements("css selector", "[data-stat]")}
        want = expected_numbers(season, with_season=False)
        assert {k: stats[k] for k in want} == want
        assert browser.execute_script("return [...document.images].every(i => i.complete && i.naturalWidth > 0)")
        assert console_errors(browser) == []
