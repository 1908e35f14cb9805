"""`reid season run` end to end on the synthetic season (`reid synth --season`), as a user runs it:
enroll known.csv, run the season with deployments and MegaDetector boxes, read the files.
And the same run SIGKILLed midway and started again: identical outputs."""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

import pytest
from conftest import run_cli
from test_resume import kill_when_journal_has

from reid.errors import NotFoundError
from reid.runner import journal_path
from reid.season.encounters import iou
from reid.season.grouping import pairwise_scores
from reid.season.outputs import RESULT_COLUMNS
from reid.settings import default_model_path

OUTPUTS = ("results.csv", "deployments.csv", "groups.csv", "flank_links.csv")
# The shipped rosette model (the session's other tests use the ImageNet baseline): the flank
# classifier and the verdicts are what a user of `reid season run` gets.
SHIPPED = {"REID_MODEL": str(default_model_path())}


def _read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _box(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split(","))


@pytest.fixture(scope="session")
def season(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("season")
    synth = root / "synth"
    proc = run_cli("synth", "--season", synth, "--seed", "0")
    assert proc.returncode == 0, proc.stderr
    data = root / "data"
    proc = run_cli("enroll", synth / "known.csv", "--data-dir", data, "-q", env=SHIPPED)
    assert proc.returncode == 0, proc.stderr
    return {"synth": synth, "data": data, "root": root}


def _season_args(season: dict[str, Path], out: Path) -> list[str]:
    s = season["synth"]
    return ["season", "run", str(s / "images"), "--out", str(out), "--deployments", str(s / "deployments.csv"),
            "--detections", str(s / "megadetector.json"), "--data-dir", str(season["data"]), "-q", "--chunk", "3"]


@pytest.fixture(scope="session")
def season_run(season: dict[str, Path]) -> Path:
    out = season["root"] / "results"
    proc = run_cli(*_season_args(season, out), timeout=600, env=SHIPPED)
    assert proc.returncode == 0, proc.stderr
    assert "results:" in proc.stdout
    return out


def test_every_detection_is_processed_once(season: dict[str, Path], season_run: Path) -> None:
    rows = _read(season_run / "results.csv")
    with open(season_run / "results.csv", encoding="utf-8") as fh:
        assert tuple(next(csv.reader(fh))) == RESULT_COLUMNS
    truth = _read(season["synth"] / "truth.csv")
    for t in truth:  # every animal of every photo has its row, at its box
        mine = [r for r in rows if r["path"] == t["path"] and r["box"]]
        assert any(iou(_box(r["box"]), _box(t["box"])) > 0.6 for r in mine), t
    boxed = [(r["path"], r["box"]) for r in rows if r["box"]]
    assert len(boxed) == len(set(boxed)) == len(truth)  # nothing twice, nothing extra (the 0.12 box is dropped)
    decisions = {r["path"]: r["decision"] for r in rows if not r["box"]}
    assert decisions == {"ST01/CAM-A/IMG_0005.JPG": "empty", "ST01/CAM-A/IMG_0006.JPG": "empty",
                         "ST04/CAM-A/IMG_0099.JPG": "error"}
    summary = json.loads((season_run / "summary.json").read_text())
    assert summary["no_time"] == ["ST03/CAM-A/no_time.jpg"]  # reported, and still identified
    assert [r["timestamp"] for r in rows if r["path"] == "ST03/CAM-A/no_time.jpg"] == [""]
    assert summary["errors"][0]["path"] == "ST04/CAM-A/IMG_0099.JPG"
    assert not journal_path(season_run / "results.csv").exists()


def test_same_bytes_identified_once_and_reported_as_duplicate(season_run: Path) -> None:
    rows = {r["path"]: r for r in _read(season_run / "results.csv")}
    dup, orig = rows["ST03/CAM-A/IMG_0001_copy.JPG"], rows["ST03/CAM-A/IMG_0001.JPG"]
    assert dup["decision"] == "duplicate" and orig["decision"] == "match"
    assert dup["sha256"] == orig["sha256"] and dup["identity"] == orig["identity"]
    summary = json.loads((season_run / "summary.json").read_text())
    assert summary["duplicates"] == [{"path": "ST03/CAM-A/IMG_0001_copy.JPG", "original": "ST03/CAM-A/IMG_0001.JPG"}]


def test_clock_offset_and_paired_cameras_link_both_flanks(season: dict[str, Path], season_run: Path) -> None:
    rows = _read(season_run / "results.csv")
    truth = _read(season["synth"] / "truth.csv")
    by_path = {(r["path"], r["identity"]): r for r in truth}
    tau = [r for r in rows if by_path.get((r["path"], "synth-00302"))]
    # synth-00302 is enrolled by its left flank only; its right flank (CAM-B, clock an hour fast)
    # is the same encounter and so the same individual
    assert {r["camera"] for r in tau} == {"CAM-A", "CAM-B"} and len({r["encounter"] for r in tau}) == 1
    assert {r["identity"] for r in tau} == {"synth-00302"} and {r["decision"] for r in tau} == {"match"}
    assert [r["timestamp"] for r in tau if r["camera"] == "CAM-B"][0].startswith("2024-04-01T21:00")
    links = _read(season_run / "flank_links.csv")
    assert {(r["identity"], r["flank"]) for r in links} == {("synth-00302", "right")}
    # flanks were estimated per crop: every crop of a lateral render gets its side
    flank_of = {(t["path"], t["box"]): t["flank"] for t in truth}
    estimated = [(r["flank"], t["flank"]) for r in rows if r["box"] for t in truth
                 if t["path"] == r["path"] and iou(_box(r["box"]), _box(t["box"])) > 0.6]
    assert sum(a == b for a, b in estimated) >= len(estimated) - 1 and flank_of


def test_unknowns_are_grouped_and_both_flanks_joined(season: dict[str, Path], season_run: Path) -> None:
    rows = _read(season_run / "results.csv")
    truth = _read(season["synth"] / "truth.csv")
    new_rows = [r for r in rows if r["decision"] == "new"]
    ident = {}
    for r in new_rows:
        t = next(t for t in truth if t["path"] == r["path"] and iou(_box(r["box"]), _box(t["box"])) > 0.6)
        ident[(r["path"], r["box"])] = t["identity"]
        assert r["identity"] == "" and r["group"]  # a new row names no individual; it has a group
    assert set(ident.values()) == {"synth-00303", "synth-00304", "synth-00305"}  # the three newcomers
    scores = pairwise_scores(list(ident.values()), [r["group"] for r in new_rows])
    assert scores["pairwise_precision"] == 1.0 and scores["pairwise_recall"] >= 0.5
    newcomer = [r for r in new_rows if ident[(r["path"], r["box"])] == "synth-00303"]
    assert len({r["group"] for r in newcomer}) == 1  # one putative individual ...
    assert {r["flank"] for r in newcomer} == {"left", "right"}  # ... with both flanks (paired cameras)
    groups = {g["group"]: g for g in _read(season_run / "groups.csv")}
    assert groups[newcomer[0]["group"]]["flanks"] == "left;right"


def test_two_animals_in_one_frame_are_never_one_individual(season_run: Path) -> None:
    rows = _read(season_run / "results.csv")
    by_photo: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        if r["box"] and r["decision"] != "duplicate":
            by_photo.setdefault(r["path"], []).append(r)
    shared = [p for p in by_photo.values() if len(p) > 1]
    assert shared  # the season has frames with two animals
    for photo in shared:
        names = [r["identity"] or r["group"] for r in photo]
        assert len(set(names)) == len(names)


def test_travel_flag_on_the_long_move(season_run: Path) -> None:
    rows = _read(season_run / "results.csv")
    far = [r for r in rows if r["path"].startswith("ST04/CAM-A/IMG_000") and r["box"]]
    assert far and {r["identity"] for r in far} == {"synth-00300"}
    assert {r["travel_flag"] for r in far} == {"yes"}
    assert all("same leopard or two?" in r["travel_note"] and "ST03" in r["travel_note"] for r in far)
    flagged = {r["path"] for r in rows if r["travel_flag"] == "yes"}
    assert flagged == {r["path"] for r in far}  # and nowhere else
    deployments = _read(season_run / "deployments.csv")
    assert len(deployments) == 6 and all(d["latitude"] and d["deploymentStart"] for d in deployments)


def test_season_killed_with_sigkill_resumes_to_the_same_outputs(season: dict[str, Path], season_run: Path) -> None:
    out = season["root"] / "killed"
    cmd = [sys.executable, "-m", "reid.cli", *_season_args(season, out)]
    done = kill_when_journal_has(cmd, journal_path(out / "results.csv"), 2, {**os.environ, **SHIPPED})
    assert done >= 2 and not (out / "results.csv").exists()
    proc = run_cli(*_season_args(season, out), timeout=600, env=SHIPPED)
    assert proc.returncode == 0, proc.stderr
    assert "resumed:" in proc.stdout
    for name in OUTPUTS:
        assert (out / name).read_bytes() == (season_run / name).read_bytes(), name
    full, resumed = (json.loads((d / "summary.json").read_text()) for d in (season_run, out))
    assert resumed["timing"]["resumed_photos"] >= 2 * 1 and full["timing"]["resumed_photos"] == 0
    for s in (full, resumed):
        s.pop("timing")
    assert full == resumed


def test_season_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from reid.cli import main

    (tmp_path / "ST01").mkdir()
    bad = tmp_path / "md.json"
    bad.write_text('{"images": []}')
    assert main(["season", "run", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    assert main(["season", "run", str(tmp_path), "--out", str(tmp_path / "o"), "--detections", str(bad),
                 "--data-dir", str(tmp_path / "d")]) == 2
    assert "convert it to the MegaDetector batch output format" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()  # refused before the model and the catalogue were opened


def _decide_everything_as_proposed(season: dict[str, Path], season_run: Path, tmp_path: Path):
    """A person works through a copy of the season's review queue, accepting each proposal."""
    import shutil

    from reid import review
    from reid.identify import open_pipeline

    data = tmp_path / "data"
    shutil.copytree(season["data"], data)
    pipe = open_pipeline(data_dir=data, model_path=default_model_path())
    items, total = review.list_items(pipe.catalog, status="pending", limit=500)
    return pipe, items, total


def test_review_queue_holds_one_item_per_unknown_group_and_per_flank_link(
        season: dict[str, Path], season_run: Path, tmp_path: Path) -> None:
    from reid import review

    groups = {g["group"]: g for g in _read(season_run / "groups.csv")}
    links = _read(season_run / "flank_links.csv")
    summary = json.loads((season_run / "summary.json").read_text())
    assert summary["review_items"] == {"unknown_groups": len(groups), "flank_links": 1}
    pipe, items, total = _decide_everything_as_proposed(season, season_run, tmp_path)
    try:
        by_source: dict[str, list[review.ReviewItem]] = {}
        for item in items:
            by_source.setdefault(item.source or "", []).append(item)
        group_items = {i.sighting.split()[-1]: i for i in by_source["season-group"]}
        assert sorted(group_items) == sorted(groups)  # one item per group, nothing per photo
        for g, item in group_items.items():
            assert item.verdict == "new" and item.candidates == []
            assert sorted({p.file_name for p in item.photos}) == groups[g]["paths"].split(";")
            assert len(item.photos) == int(groups[g]["detections"])
        (link,) = by_source["season-flank-link"]
        assert link.verdict == "review" and link.candidates[0].identity == "synth-00302"
        assert [(p.file_name, p.viewpoint) for p in link.photos] == [(r["path"], r["flank"]) for r in links]
        assert total == len(groups) + 1

        # deciding the group of the newcomer seen on both cameras: one new individual, both flanks
        rows = _read(season_run / "results.csv")
        truth = _read(season["synth"] / "truth.csv")
        g303 = {r["group"] for r in rows if r["decision"] == "new" for t in truth
                if t["path"] == r["path"] and t["identity"] == "synth-00303"
                and iou(_box(r["box"]), _box(t["box"])) > 0.6}
        (g,) = g303
        (decided,) = review.decide_new(pipe, [group_items[g].id], "Newcomer 303", actor="tester")
        ind = pipe.catalog.individual_by_name("Newcomer 303")
        images = pipe.catalog.images_of(ind.id)
        assert decided.status == "decided" and decided.individual_id == ind.id
        assert len(images) == len(group_items[g].photos) and {r.viewpoint for r in images} == {"left", "right"}
        # the new individual is identifiable at once, and the decision can be undone as a whole
        review.undo(pipe, group_items[g].id, actor="tester")
        assert pipe.catalog.images_of(ind.id) == []
        assert review.get_item(pipe.catalog, group_items[g].id).status == "pending"
        with pytest.raises(NotFoundError):  # the individual the decision created went with it
            pipe.catalog.individual_by_name("Newcomer 303")
    finally:
        pipe.close()


def test_each_animal_photographed_on_both_flanks_together_ends_up_one_individual_with_both(
        season: dict[str, Path], season_run: Path, tmp_path: Path) -> None:
    """Issue 15's done-when line, after a person accepts each proposal of the season's queue:
    flank links confirmed as proposed, each putative new individual named."""
    from reid import review

    truth = _read(season["synth"] / "truth.csv")
    known = {r["identity"] for r in _read(season["synth"] / "known.csv")}
    per_encounter: dict[tuple[str, str], set[str]] = {}
    for t in truth:
        per_encounter.setdefault((t["identity"], t["encounter"]), set()).add(t["flank"])
    together = sorted(k for k, flanks in per_encounter.items() if {"left", "right"} <= flanks)
    # known by its left flank only; two newcomers
    assert [identity for identity, _ in together] == ["synth-00302", "synth-00303", "synth-00304"]
    pipe, items, _ = _decide_everything_as_proposed(season, season_run, tmp_path)
    try:
        for n, item in enumerate(items):
            if item.source == "season-flank-link":
                review.decide(pipe, item.id, "confirm", individual_id=item.candidates[0].individual_id)
            else:
                review.decide_new(pipe, [item.id], f"new {n}")
        rows = _read(season_run / "results.csv")
        sha_of = {(r["path"], r["box"]): r["sha256"] for r in rows}
        con = pipe.catalog._connect()
        for identity, encounter in together:
            if identity in known:
                ind_id = pipe.catalog.individual_by_name(identity).id
            else:  # a newcomer: the individuals its photos of that encounter were enrolled under
                shas = {sha_of[(r["path"], r["box"])] for r in rows for t in truth
                        if t["identity"] == identity and t["encounter"] == encounter and t["path"] == r["path"]
                        and r["box"] and iou(_box(r["box"]), _box(t["box"])) > 0.6}
                owners = {r[0] for r in con.execute(
                    f"SELECT DISTINCT individual_id FROM images WHERE sha256 IN ({','.join('?' * len(shas))})",
                    sorted(shas))}
                assert len(owners) == 1, identity
                ind_id = owners.pop()
            assert {r.viewpoint for r in pipe.catalog.images_of(ind_id)} >= {"left", "right"}, identity
    finally:
        pipe.close()
