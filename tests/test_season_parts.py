"""The parts of a season run that need no model: MegaDetector parsing, deployments and times,
encounters, cannot-link, travel plausibility, grouping, conflict resolution."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reid.errors import ReidError
from reid.season import grouping
from reid.season.encounters import Sighting, cannot_link, group_encounters
from reid.season.ingest import camera_time, ingest, read_deployments
from reid.season.megadetector import load_detections
from reid.season.outputs import resolve_conflicts
from reid.season.travel import Place, check_travel, haversine_km, last_seen


def _json(tmp_path: Path, data: object, name: str = "md.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


# -- MegaDetector ---------------------------------------------------------------------------------------
def test_megadetector_batch_output(tmp_path: Path) -> None:
    md = {"info": {"format_version": "1.4"},
          "detection_categories": {"1": "person", "2": "animal", "3": "vehicle"},  # numbering differs: by NAME
          "images": [
              {"file": "ST01\\CAM-A\\a.jpg", "detections": [
                  {"category": "2", "conf": 0.9, "bbox": [0.1, 0.2, 0.5, 0.25]},
                  {"category": "2", "conf": 0.15, "bbox": [0.6, 0.6, 0.1, 0.1]},  # below 0.2
                  {"category": "1", "conf": 0.99, "bbox": [0.0, 0.0, 0.1, 0.1]}]},  # a person
              {"file": "ST01/CAM-A/empty.jpg", "detections": []},
              {"file": "ST01/CAM-A/bad.jpg", "failure": "Failure image access"},
              {"file": "ST02/CAM-A/clip.mp4", "detections": [
                  {"category": "2", "conf": 0.8, "bbox": [0.1, 0.1, 0.2, 0.2], "frame_number": 30}]}]}
    det = load_detections(_json(tmp_path, md))
    kind, boxes = det.lookup("ST01/CAM-A/a.jpg")  # Windows separators normalised
    assert kind == "boxes" and len(boxes) == 1 and det.below_threshold == 1
    assert boxes[0].pixels(1000, 800) == (100.0, 160.0, 500.0, 200.0)  # normalised x,y,w,h -> pixels
    assert det.lookup("ST01/CAM-A/empty.jpg") == ("boxes", [])
    assert det.lookup("ST01/CAM-A/bad.jpg") == ("failure", "Failure image access")
    assert det.lookup("ST02/CAM-A/clip.mp4")[1][0].frame_number == 30
    assert det.lookup("ST09/nowhere.jpg") == ("missing", None)
    # MegaDetector run on the parent folder: matched by the longest common tail
    assert det.lookup("season/ST01/CAM-A/a.jpg")[0] == "boxes"
    assert load_detections(_json(tmp_path, md), threshold=0.1).lookup("ST01/CAM-A/a.jpg")[1].__len__() == 2


def test_megadetector_list_shaped_output(tmp_path: Path) -> None:
    data = [{"file": "a.jpg", "detections": [{"category": "animal", "confidence": 0.7, "bbox": [10, 20, 110, 70]},
                                             {"category": "person", "confidence": 0.9, "bbox": [0, 0, 5, 5]}]},
            {"img_id": "b.jpg", "bbox": [[0, 0, 50, 40]], "category": ["animal"], "confidence": [0.5]}]
    det = load_detections(_json(tmp_path, data))
    boxes = det.lookup("a.jpg")[1]
    assert len(boxes) == 1 and boxes[0].pixels(640, 480) == (10.0, 20.0, 100.0, 50.0)  # x1,y1,x2,y2 -> x,y,w,h
    assert det.lookup("b.jpg")[1][0].pixels(640, 480) == (0.0, 0.0, 50.0, 40.0)
    with pytest.raises(ReidError, match="x1, y1, x2, y2"):  # normalised boxes in the pixel format
        load_detections(_json(tmp_path, [{"file": "a.jpg", "detections": [
            {"category": "animal", "conf": 0.9, "bbox": [0.5, 0.5, 0.2, 0.2]}]}], "bad.json"))


@pytest.mark.parametrize("data, message", [
    ({"something": 1}, "convert"),
    ({"images": [], "detection_categories": {"1": "person"}}, "no category named 'animal'"),
    ({"images": [{"file": "a.jpg", "detections": [{"category": "1", "conf": "high", "bbox": [0, 0, 1, 1]}]}],
      "detection_categories": {"1": "animal"}}, "not a number"),
    ({"images": [{"detections": []}], "detection_categories": {"1": "animal"}}, "no 'file'"),
])
def test_megadetector_refuses_what_it_cannot_read(tmp_path: Path, data: object, message: str) -> None:
    with pytest.raises(ReidError, match=message):
        load_detections(_json(tmp_path, data))


def test_megadetector_unreadable_file(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(ReidError, match="not a readable JSON"):
        load_detections(tmp_path / "x.json")
    with pytest.raises(ReidError, match="no such file"):
        load_detections(tmp_path / "missing.json")


# -- deployments and times -------------------------------------------------------------------------------
def _photo(path: Path, when: datetime | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    if when:
        exif[0x0132] = when.strftime("%Y:%m:%d %H:%M:%S")
    Image.new("RGB", (32, 24), (120, 90, 60)).save(path, "JPEG", exif=exif.tobytes())


def test_ingest_layout_deployments_clock_offset_and_missing_times(tmp_path: Path) -> None:
    season = tmp_path / "season"
    t = datetime(2024, 5, 1, 22, 0, 0)
    _photo(season / "ST01/CAM-A/IMG_0001.JPG", t)
    _photo(season / "ST01/CAM-B/IMG_0001.JPG", t + timedelta(hours=1))  # this clock runs an hour fast
    _photo(season / "ST02/RCNX_20240502_031500.jpg", None)  # time from the file name only
    _photo(season / "ST02/nothing.jpg", None)
    (season / "ST02/dup.jpg").write_bytes((season / "ST02/nothing.jpg").read_bytes())
    deps = tmp_path / "deployments.csv"
    deps.write_text("deploymentID,locationID,cameraID,latitude,longitude,deploymentStart,deploymentEnd,clock_offset\n"
                    "d1,ST01,CAM-A,43.7,55.1,2024-04-01,2024-06-01,0\n"
                    "d2,ST01,CAM-B,43.7,55.1,2024-04-01,2024-06-01,-01:00\n")
    photos = {p.path: p for p in ingest(season, read_deployments(deps))}
    a, b = photos["ST01/CAM-A/IMG_0001.JPG"], photos["ST01/CAM-B/IMG_0001.JPG"]
    assert (a.station, a.camera, a.deployment.deployment_id, a.time_source) == ("ST01", "CAM-A", "d1", "exif")
    assert b.timestamp == t and b.deployment.lat == 43.7  # corrected by the clock offset
    named = photos["ST02/RCNX_20240502_031500.jpg"]
    assert (named.station, named.camera, named.timestamp, named.time_source) == (
        "ST02", "ST02", datetime(2024, 5, 2, 3, 15), "filename")
    assert photos["ST02/nothing.jpg"].timestamp is None  # reported later, never dropped
    assert photos["ST02/dup.jpg"].sha256 == photos["ST02/nothing.jpg"].sha256
    assert camera_time(season / "ST02/nothing.jpg") == (None, "none")


def test_deployments_errors(tmp_path: Path) -> None:
    bad = tmp_path / "d.csv"
    bad.write_text("locationID,cameraID,deploymentStart\nST01,A,yesterday\n")
    with pytest.raises(ReidError, match="line 2.*ISO 8601"):
        read_deployments(bad)
    bad.write_text("cameraID\nA\n")
    with pytest.raises(ReidError, match="no station"):
        read_deployments(bad)


# -- encounters ------------------------------------------------------------------------------------------
def _s(key: str, station: str, camera: str, seconds: float | None, box=None, frame: str | None = None) -> Sighting:
    t = None if seconds is None else datetime(2024, 5, 1, 22) + timedelta(seconds=seconds)
    return Sighting(key=key, photo=frame or key, frame=frame or key, station=station, camera=camera, timestamp=t,
                    box=box)


def test_encounters_join_both_cameras_of_a_station_within_the_gap() -> None:
    s = [_s("a1", "ST01", "A", 0), _s("b1", "ST01", "B", 1), _s("a2", "ST01", "A", 50), _s("a3", "ST01", "A", 200),
         _s("c1", "ST02", "A", 5), _s("x", "ST01", "A", None)]
    encounters = group_encounters(s, gap_s=60)
    by = {x.key: x for x in s}
    assert by["a1"].encounter == by["b1"].encounter == by["a2"].encounter  # both cameras, 50 s apart
    assert by["a3"].encounter != by["a1"].encounter  # 150 s later: a new encounter
    assert by["c1"].encounter not in (by["a1"].encounter, by["a3"].encounter)  # another station
    assert len({x.encounter for x in s}) == 4 == len(encounters)  # the untimed photo is its own
    # one animal per photo: the whole encounter is one animal (paired cameras link its flanks)
    assert by["a1"].animal == by["b1"].animal == by["a2"].animal


def test_two_animals_in_a_frame_are_tracked_and_cannot_link() -> None:
    left, right = (0, 100, 150, 100), (200, 100, 150, 100)
    s = [_s("f1#0", "ST03", "A", 0, left, "f1"), _s("f1#1", "ST03", "A", 0, right, "f1"),
         _s("f2#0", "ST03", "A", 2, (5, 102, 150, 100), "f2"), _s("f2#1", "ST03", "A", 2, (195, 99, 150, 100), "f2")]
    group_encounters(s)
    by = {x.key: x for x in s}
    assert by["f1#0"].animal == by["f2#0"].animal and by["f1#1"].animal == by["f2#1"].animal  # tracks by overlap
    assert by["f1#0"].animal != by["f1#1"].animal
    assert cannot_link(s) == {tuple(sorted((by["f1#0"].animal, by["f1#1"].animal)))}


# -- travel ----------------------------------------------------------------------------------------------
def test_haversine_and_travel_flags() -> None:
    assert haversine_km(43.0, 55.0, 44.0, 55.0) == pytest.approx(111.2, abs=0.2)  # one degree of latitude
    t0 = datetime(2024, 5, 1, 22)
    home = Place("ST01", 43.70, 55.10, t0)
    near = check_travel(home, Place("ST02", 43.76, 55.28, t0 + timedelta(hours=3)))
    assert near is not None and not near.flagged and near.km == pytest.approx(15.9, abs=0.3)  # 16 km in a night
    far = check_travel(home, Place("ST04", 45.0, 56.9, t0 + timedelta(hours=2)))
    assert far.flagged and far.km > 190 and "same leopard or two?" in far.note("Tau Sheri")
    slow = check_travel(home, Place("ST04", 45.0, 56.9, t0 + timedelta(days=21)))  # 210 km in three weeks
    assert not slow.flagged and slow.km_per_day < 30
    assert check_travel(home, Place("ST09", None, None, t0)) is None
    assert last_seen([home, Place("ST04", 45.0, 56.9, t0 + timedelta(days=2))], t0 + timedelta(days=1)) == home


# -- grouping --------------------------------------------------------------------------------------------
def test_cluster_merges_best_pairs_first_and_respects_cannot_link() -> None:
    P = grouping.PairEvidence
    animals = ["a", "b", "c", "d"]
    member_animal = ["a", "b", "c", "d"]
    pairs = [P(0, 1, 0.9, probability=0.95), P(1, 2, 0.8, probability=0.9), P(2, 3, 0.1, probability=0.2)]
    assert grouping.cluster(animals, pairs, member_animal, set(), threshold=0.5) == {
        "a": "U001", "b": "U001", "c": "U001", "d": "U002"}
    # a and c were seen in one frame: b joins a (stronger), c stays apart
    assert grouping.cluster(animals, pairs, member_animal, {("a", "c")}, threshold=0.5) == {
        "a": "U001", "b": "U001", "c": "U002", "d": "U003"}


def test_a_chance_match_in_one_frame_pair_does_not_join_two_bursts() -> None:
    P = grouping.PairEvidence
    member_animal = ["a", "a", "b", "b", "c"]
    pairs = [P(0, 2, 0.5, probability=0.9), P(1, 3, 0.5, probability=0.1), P(0, 3, 0.5, probability=0.05),
             P(1, 4, 0.5, probability=0.95)]
    scores = grouping.animal_pair_scores(pairs, member_animal)
    assert scores[("a", "b")] == 0.1  # two frames each: the second-best pair speaks
    assert scores[("a", "c")] == 0.95  # c has one frame: its one pair is all there is
    assert grouping.cluster(["a", "b", "c"], pairs, member_animal, set(), threshold=0.5) == {
        "a": "U001", "b": "U002", "c": "U001"}


def test_pair_evidence_skips_opposite_flanks_and_same_animal() -> None:
    v = np.eye(4, dtype=np.float32)[[0, 0, 0, 1]]
    pairs = grouping.pair_evidence(v, ["left", "right", "left", "left"], ["x", "y", "x", "z"], None,
                                   lambda x: x[:, 0], ["cosine"])
    found = {(p.a, p.b) for p in pairs}
    assert (0, 1) not in found and (0, 2) not in found  # opposite flanks; one animal
    assert (0, 3) in found and (2, 3) in found
    assert all(p.probability == p.cosine for p in pairs)


def test_pairwise_scores() -> None:
    s = grouping.pairwise_scores(["a", "a", "b", "b"], ["1", "1", "1", "2"])
    assert s["pairwise_precision"] == pytest.approx(1 / 3, abs=1e-3) and s["pairwise_recall"] == 0.5
    assert grouping.pairwise_scores(["a", "a", "b"], ["x", "x", "y"])["adjusted_rand_index"] == 1.0


def test_two_animals_seen_together_never_get_one_name() -> None:
    verdicts = {
        "e1a1": {"identity": "Tau", "probability": 0.97, "decision": "match", "note": "",
                 "candidates": [["Tau", 0.97, 30, "left"], ["Kyzyl", 0.2, 5, "left"]]},
        "e1a2": {"identity": "Tau", "probability": 0.81, "decision": "match", "note": "",
                 "candidates": [["Tau", 0.81, 12, "left"], ["Aybala", 0.4, 9, "left"], ["Kyzyl", 0.1, 1, "left"]]},
    }
    changed = resolve_conflicts(verdicts, {("e1a1", "e1a2")})
    assert verdicts["e1a1"]["identity"] == "Tau" and verdicts["e1a1"]["decision"] == "match"
    assert verdicts["e1a2"]["identity"] == "Aybala" and verdicts["e1a2"]["decision"] == "review"
    assert changed == [{"animal": "e1a2", "was": "Tau", "with": "e1a1"}]


def test_video_frames_use_the_detections_of_their_frame_number(tmp_path: Path) -> None:
    import cv2

    from reid.season.run import _video_crops, plan_photos
    from reid.settings import Settings

    clip = tmp_path / "ST01" / "CAM-A" / "clip.mp4"
    clip.parent.mkdir(parents=True)
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 2.0, (160, 120))
    assert writer.isOpened()
    for n in range(6):  # 3 s at 2 fps: frames 0, 2, 4 are sampled (t = 0, 1, 2 s)
        writer.write(np.full((120, 160, 3), 40 * n, np.uint8))
    writer.release()
    md = {"info": {"format_version": "1.4"}, "detection_categories": {"1": "animal"},
          "images": [{"file": "ST01/CAM-A/clip.mp4", "frame_rate": 2.0, "detections": [
              {"category": "1", "conf": 0.9, "bbox": [0.0, 0.0, 0.5, 0.5], "frame_number": 0},
              {"category": "1", "conf": 0.8, "bbox": [0.5, 0.5, 0.5, 0.5], "frame_number": 0},
              {"category": "1", "conf": 0.7, "bbox": [0.25, 0.25, 0.5, 0.5], "frame_number": 4}]}]}
    plan = plan_photos(ingest(tmp_path), load_detections(_json(tmp_path, md)))[0]
    assert plan.status == "identify" and plan.photo.is_video
    crops = _video_crops(plan, Settings())  # one frame a second, at most 30
    by_time = {}
    for c in crops:
        by_time.setdefault(c["t"], []).append(c["box"])
    assert by_time == {0.0: [(0.0, 0.0, 80.0, 60.0), (80.0, 60.0, 80.0, 60.0)], 2.0: [(40.0, 30.0, 80.0, 60.0)]}


def test_season_run_help(capsys: pytest.CaptureFixture[str]) -> None:
    from reid.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["season", "run", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for option in ("--out", "--deployments", "--detections", "--detection-threshold", "--gap", "--max-km-per-day",
                   "--data-dir", "--model"):
        assert option in out
