"""Each identify stage on its own (reid/stages/): decode, shortlist, sighting pooling, calibrate,
decide. The keypoint stage runs on real photos through the pipeline in test_fusion.py."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from reid.calibrate import Calibrator
from reid.catalog import GalleryEntry
from reid.errors import ImageError, ReidError
from reid.stages.calibration import calibrate, load_calibrator
from reid.stages.decide import Decider
from reid.stages.decode import QueryImage, load_query
from reid.stages.shortlist import Evidence, global_evidence, group_by_individual
from reid.stages.sightings import pool_sightings

VERDICTS = SimpleNamespace(match_threshold=0.5, match_margin=0.1, new_threshold=0.05)


def test_decode_crops_to_the_box_and_keeps_what_is_known() -> None:
    rgb = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    data = cv2.imencode(".png", rgb[:, :, ::-1])[1].tobytes()
    q = load_query(data, max_pixels=10_000_000, name="a.png", viewpoint="LEFT", box=(10, 20, 30, 40),
                   keep_bytes=True, sighting="s1")
    assert q.rgb.shape == (40, 30, 3) and np.array_equal(q.rgb, rgb[20:60, 10:40])
    assert (q.name, q.viewpoint, q.sighting, q.full_size) == ("a.png", "left", "s1", (160, 120))
    assert q.sha256 == hashlib.sha256(data).hexdigest() and q.data == data
    with pytest.raises(ImageError):
        load_query(b"not an image", max_pixels=10_000_000)


def test_shortlist_groups_by_individual_and_keeps_flanks_apart() -> None:
    entries = {1: GalleryEntry(1, 7, "Kyzyl", "left"), 2: GalleryEntry(2, 7, "Kyzyl", "right"),
               3: GalleryEntry(3, 8, "Tau", "left"), 4: GalleryEntry(4, 8, "Tau", "unknown")}
    sims, ids = np.array([0.9, 0.8, 0.7, 0.6, 0.5]), np.array([2, 1, 3, 4, -1])
    groups = group_by_individual(sims, ids, entries, "left")
    assert {ind: [e.image_id for e, _ in imgs] for ind, imgs in groups.items()} == {7: [1], 8: [3, 4]}
    ev = global_evidence(groups)
    assert (ev[7].cosine, ev[7].image_id, ev[8].cosine, ev[8].identity) == (0.8, 1, 0.7, "Tau")
    assert set(group_by_individual(sims, ids, entries, "unknown")) == {7, 8}


def test_images_of_one_sighting_pool_their_evidence() -> None:
    queries = [QueryImage(np.zeros((1, 1, 3), np.uint8), f"q{n}", sighting=s) for n, s in enumerate(["s", "s", None])]
    a = {7: Evidence(7, "Kyzyl", 0.5, 1, "left", local_score=3.0, inliers=12)}
    b = {7: Evidence(7, "Kyzyl", 0.7, 2, "left"), 8: Evidence(8, "Tau", 0.6, 3, "left")}
    c = {7: Evidence(7, "Kyzyl", 0.1, 1, "left")}
    pooled = pool_sightings(queries, [a, b, c])
    assert set(pooled[0]) == {7}  # never an individual its own shortlist cannot show
    assert (pooled[0][7].cosine, pooled[0][7].local_score, pooled[0][7].image_id) == (0.7, 3.0, 1)
    assert pooled[1][7] is pooled[0][7] and pooled[1][8] is b[8]
    assert pooled[2] is c  # no sighting: its own evidence


def test_calibrate_is_monotone_and_empty_is_empty() -> None:
    cal = Calibrator.uncalibrated()
    probs = calibrate(cal, [Evidence(1, "a", c, 1, "left") for c in (-1.0, 0.0, 0.5, 1.0)])
    assert np.all(np.diff(probs) > 0) and probs[0] == pytest.approx(0.0) and probs[-1] == pytest.approx(1.0)
    assert calibrate(cal, []).shape == (0,)


def test_an_unusable_calibration_file_is_refused_or_replaced(tmp_path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    settings = SimpleNamespace(calibration=str(bad))
    checkpoint = SimpleNamespace(model_id="m", path=None, meta={})
    with pytest.raises(ReidError):
        load_calibrator(settings, tmp_path, checkpoint, strict=True)
    cal, source = load_calibrator(settings, tmp_path, checkpoint, strict=False)
    assert source == "none" and cal == Calibrator.uncalibrated()


def test_decide_orders_candidates_and_gives_the_verdict() -> None:
    decide = Decider(VERDICTS)
    q = QueryImage(np.zeros((1, 1, 3), np.uint8), "q", viewpoint="left", sighting="s")
    ranked = [Evidence(1, "a", 0.5, 10, "left"), Evidence(2, "b", 0.9, 20, "left", local_score=2.0, inliers=9),
              Evidence(3, "c", 0.4, 30, "left", local_score=1.0, inliers=7)]
    res = decide(q, ranked, np.array([0.1, 0.9, 0.1]), top_k=2)
    assert res.decision == "match" and (res.name, res.sighting) == ("q", "s")
    assert [c.identity for c in res.candidates] == ["b", "c"]  # a tie in P: the keypoint score orders it
    assert [c.rank for c in res.candidates] == [1, 2] and res.candidates[0].inliers == 9
    assert decide(q, ranked, np.array([0.01, 0.02, 0.03]), top_k=3).decision == "new"
    assert decide(q, ranked, np.array([0.5, 0.45, 0.0]), top_k=3).decision == "review"  # too close to call
    assert decide(q, [], np.zeros(0), top_k=3).decision == "new"
