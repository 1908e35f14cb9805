"""Keypoint verification on top of the embedding, through the real pipeline and shipped model.

Constructed cases (the coats and photos of tests/conftest.py):
- a look-alike: a different coat photographed in exactly the query's conditions, while the
  true individual was enrolled from night-IR (grey) frames only. The embedding alone ranks
  the look-alike first; its spots do not line up, the true animal's do.
- a burst: one clear frame and one frame with most of the animal hidden behind grass.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import MODEL, make_coat, photograph

from reid.errors import ReidError
from reid.identify import Pipeline, open_pipeline
from reid.keypoints.extract import extract
from reid.keypoints.index import KeypointIndex, searchable_groups

TRUE_COAT = 4242
LOOKALIKE_COAT = 7001  # found by trying coats 7000-7011: the one the ImageNet embedding prefers


def _jpeg(bgr: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", bgr)[1].tobytes()


def _night(bgr: np.ndarray) -> np.ndarray:
    """Night infrared look: grey, flatter contrast."""
    g = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.float32) * 0.8 + 30
    return cv2.cvtColor(np.clip(g, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)


def _behind_grass(bgr: np.ndarray, visible: float = 0.15, seed: int = 0) -> np.ndarray:
    """All but a narrow vertical strip of the animal covered by dark grass texture."""
    h, w = bgr.shape[:2]
    grass = cv2.GaussianBlur(np.random.default_rng(seed).integers(20, 90, (h, w, 3)).astype(np.uint8), (5, 5), 0)
    out = grass.copy()
    x0 = int(w * 0.4)
    out[:, x0:x0 + int(w * visible)] = bgr[:, x0:x0 + int(w * visible)]
    return out


def _enroll(pipe: Pipeline, name: str, photos: list[np.ndarray], station: str | None = None) -> None:
    pipe.enroll(name, [pipe.load_query(_jpeg(p), name=f"{name}-{n}.jpg", viewpoint="left", keep_bytes=True,
                                       station=station) for n, p in enumerate(photos)])


@pytest.fixture(scope="module")
def lookalike_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("lookalike")
    pipe = open_pipeline(data_dir=data_dir, model_path=MODEL)
    coat = make_coat(TRUE_COAT)
    _enroll(pipe, "True", [_night(photograph(coat, np.random.default_rng(s))) for s in (2, 3)])
    _enroll(pipe, "Lookalike", [photograph(make_coat(LOOKALIKE_COAT), np.random.default_rng(1))])
    for o in (7000, 7002, 7003, 7004):
        _enroll(pipe, f"Other-{o}", [photograph(make_coat(o), np.random.default_rng(1))])
    pipe.catalog.close()
    return data_dir


def _identify(data_dir: Path, bgr: np.ndarray, station: str | None = None, **settings: object):
    pipe = open_pipeline(data_dir=data_dir, model_path=MODEL, **settings)
    try:
        return pipe.identify([pipe.load_query(_jpeg(bgr), name="query.jpg", viewpoint="left", station=station)],
                             audit=False)[0]
    finally:
        pipe.flush()  # the keypoint index is written in the background
        pipe.catalog.close()


def test_verification_rejects_a_lookalike_the_embedding_ranks_first(lookalike_dir: Path) -> None:
    query = photograph(make_coat(TRUE_COAT), np.random.default_rng(1))
    global_only = _identify(lookalike_dir, query, local_matching=False)
    assert global_only.candidates[0].identity == "Lookalike"  # the construction fools the embedding
    fused = _identify(lookalike_dir, query)
    by_name = {c.identity: c for c in fused.candidates}
    assert fused.candidates[0].identity == "True"
    assert by_name["True"].inliers >= 20
    assert by_name["Lookalike"].inliers == 0 or by_name["Lookalike"].local_score < 0.1 * by_name["True"].local_score
    assert by_name["Lookalike"].score < 0.05 < 0.95 < by_name["True"].score
    assert fused.decision == "match"


def test_keypoint_votes_find_an_individual_outside_the_embedding_shortlist(lookalike_dir: Path) -> None:
    query = photograph(make_coat(TRUE_COAT), np.random.default_rng(1))
    # only the embedding's best individual (the look-alike) is verified: the true one is missed
    shortlist_only = _identify(lookalike_dir, query, rerank_individuals=1, vote_individuals=0)
    assert shortlist_only.candidates[0].identity != "True" or shortlist_only.candidates[0].inliers == 0
    with_votes = _identify(lookalike_dir, query, rerank_individuals=1, vote_individuals=3)
    assert with_votes.candidates[0].identity == "True" and with_votes.candidates[0].inliers >= 20


def test_a_burst_is_pooled_into_one_stronger_answer(lookalike_dir: Path) -> None:
    coat = make_coat(TRUE_COAT)
    clear = _night(photograph(coat, np.random.default_rng(11)))
    hidden = _night(_behind_grass(photograph(coat, np.random.default_rng(12))))
    pipe = open_pipeline(data_dir=lookalike_dir, model_path=MODEL)
    try:
        alone = pipe.identify([pipe.load_query(_jpeg(hidden), name="hidden.jpg", viewpoint="left")], audit=False)[0]
        burst = pipe.identify([pipe.load_query(_jpeg(f), name=f"frame{n}.jpg", viewpoint="left", sighting="s1")
                               for n, f in enumerate([clear, hidden])], audit=False)
    finally:
        pipe.catalog.close()
    assert alone.decision != "match"  # too little of the animal to be sure on its own
    for res in burst:
        assert res.decision == "match" and res.candidates[0].identity == "True"
    assert burst[1].candidates[0].score > alone.candidates[0].score
    assert burst[0].decision == burst[1].decision  # one verdict for the sighting


def test_keypoint_index_keeps_flanks_apart_and_counts_each_spot_once() -> None:
    coat = make_coat(TRUE_COAT)
    views = [extract(cv2.cvtColor(photograph(coat, np.random.default_rng(s)), cv2.COLOR_BGR2RGB)) for s in (1, 2, 3)]
    other = extract(cv2.cvtColor(photograph(make_coat(7002), np.random.default_rng(1)), cv2.COLOR_BGR2RGB))
    index = KeypointIndex()
    index.add(1, 10, "left", views[1])
    index.add(2, 10, "left", views[2])  # same animal twice
    index.add(3, 20, "right", views[1])  # the same pattern filed as another animal's RIGHT flank
    index.add(4, 30, "left", other)
    index.add(1, 10, "left", views[1])  # adding again is a no-op
    assert len(index) == 4
    votes = index.vote(views[0], "left")
    assert 20 not in votes.mass  # a left query never reaches right-flank keypoints
    assert votes.ranked()[0] == 10
    assert votes.images[10][0] in (1, 2) and set(votes.images[10]) <= {1, 2}
    unknown_side = index.vote(views[0], "unknown")
    assert 20 in unknown_side.mass  # an image of unknown side is compared with both flanks
    # two photos of one animal do not double its mass: each query spot counts once
    single = KeypointIndex()
    single.add(1, 10, "left", views[1])
    single.add(4, 30, "left", other)
    assert votes.mass[10] < 1.5 * single.vote(views[0], "left").mass[10]
    # the votes' geometry: both photos of the animal verify, the other coat does not
    matches = index.verify(views[0], votes, [1, 2, 4])
    assert matches[1].inliers >= 20 and matches[2].inliers >= 20 and matches[4].inliers == 0
    assert matches[1].pairs.shape == (matches[1].inliers, 4)
    assert searchable_groups("right") == ("right", "other")


def test_approximate_search_agrees_with_exact_on_the_winner() -> None:
    rgb = [cv2.cvtColor(photograph(make_coat(c), np.random.default_rng(s)), cv2.COLOR_BGR2RGB)
           for c, s in [(TRUE_COAT, 2), (TRUE_COAT, 3), (7000, 1), (7002, 1), (7003, 1), (7004, 1)]]
    owners = [10, 10, 20, 30, 40, 50]
    query = extract(cv2.cvtColor(photograph(make_coat(TRUE_COAT), np.random.default_rng(1)), cv2.COLOR_BGR2RGB))
    answers = []
    for exact_limit in (10**9, 0):  # 0: every group goes through the FAISS IVF index
        index = KeypointIndex(exact_limit=exact_limit)
        for n, (owner, img) in enumerate(zip(owners, rgb, strict=True)):
            index.add(n, owner, "left", extract(img))
        answers.append(index.vote(query, "left").ranked()[0])
        # enrolling after the IVF index was built reaches it without retraining
        index.add(99, 60, "left", query)
        answers.append(index.vote(query, "left").ranked()[0])
    assert answers == [10, 60, 10, 60]


def test_a_corrupt_keypoint_cache_file_is_recomputed(tmp_path: Path) -> None:
    from reid.keypoints.extract import load_features

    pipe = open_pipeline(data_dir=tmp_path, model_path=MODEL)
    coat = make_coat(TRUE_COAT)
    _enroll(pipe, "True", [photograph(coat, np.random.default_rng(s)) for s in (2, 3)])
    record = pipe.catalog.get_image(int(pipe.gallery.ids()[0]))
    cache = pipe.features_path(record)
    pipe.catalog.close()
    cache.write_bytes(b"not an npz")
    res = _identify(tmp_path, photograph(coat, np.random.default_rng(1)))
    assert res.candidates[0].identity == "True" and res.candidates[0].inliers >= 20
    assert len(load_features(cache)) > 0  # rewritten


# -- the same place, a different animal ------------------------------------------------------------
def _place(seed: int, size: tuple[int, int] = (320, 240)) -> np.ndarray:
    """A camera site's ground: stones and tufts of many tones (rich in keypoints, like real gravel)."""
    rng = np.random.default_rng(seed)
    w, h = size
    img = np.clip(np.full((h, w, 3), 110, np.float32) + rng.normal(0, 6, (h, w, 3)), 0, 255).astype(np.uint8)
    for _ in range(260):
        c = int(rng.integers(40, 200))
        cv2.ellipse(img, (int(rng.integers(0, w)), int(rng.integers(0, h))),
                    (int(rng.integers(3, 12)), int(rng.integers(2, 8))), float(rng.uniform(0, 180)), 0, 360,
                    (c, c + int(rng.integers(-15, 15)), c - 10), -1, cv2.LINE_AA)
    return cv2.GaussianBlur(img, (3, 3), 0)


def _at(place: np.ndarray, animal: np.ndarray, x: int, y: int, shift: tuple[int, int] = (0, 0)) -> np.ndarray:
    """A whole frame (no box): the animal small, at (x, y), in front of the site's ground."""
    frame = np.roll(place, shift, axis=(0, 1)).copy()
    frame[y:y + 95, x:x + 130] = cv2.resize(animal, (130, 95))
    return frame


def test_spots_that_move_with_the_scene_are_not_evidence(tmp_path: Path) -> None:
    site, elsewhere = _place(1), _place(2)
    other = _at(site, photograph(make_coat(8101), np.random.default_rng(1)), 30, 20)
    true = _at(elsewhere, photograph(make_coat(8102), np.random.default_rng(2)), 160, 120)
    # the true animal, later, at the OTHER animal's camera (nudged by a few pixels)
    query = _at(site, photograph(make_coat(8102), np.random.default_rng(3)), 150, 110, shift=(2, 3))
    pipe = open_pipeline(data_dir=tmp_path, model_path=MODEL)
    _enroll(pipe, "Other", [other], station="KZ-01")
    _enroll(pipe, "True", [true], station="KZ-02")
    pipe.catalog.close()
    unchecked = {c.identity: c for c in _identify(tmp_path, query, station="KZ-01", scene_check_candidates=0).candidates}
    assert unchecked["Other"].inliers > 30  # the shared ground "verifies" as if it were spots
    checked = _identify(tmp_path, query, station="KZ-01")  # the default: checked within a station
    by_name = {c.identity: c for c in checked.candidates}
    assert checked.candidates[0].identity == "True" and checked.decision == "match"
    assert by_name["Other"].inliers == 0 and by_name["Other"].score < 0.05
    assert by_name["True"].inliers == unchecked["True"].inliers  # the animal's own spots are kept
    # without a station any gallery photo may share the place: the default ("auto") checks every pair
    no_station = {c.identity: c for c in _identify(tmp_path, query).candidates}
    assert no_station["Other"].inliers == 0 and no_station["True"].inliers == unchecked["True"].inliers
    # scope "station" checks only pairs known to share the place
    stations_only = {c.identity: c for c in _identify(tmp_path, query, scene_check_scope="station").candidates}
    assert stations_only["Other"].inliers == unchecked["Other"].inliers
    everywhere = {c.identity: c for c in _identify(tmp_path, query, scene_check_scope="all").candidates}
    with pytest.raises(ReidError, match="one of 'station', 'all', 'auto'"):
        _identify(tmp_path, query, scene_check_scope="camera")
    assert everywhere["Other"].inliers == 0 and everywhere["True"].inliers == unchecked["True"].inliers
    # with a station given, the default checks only that station's photos (none at KZ-09)
    elsewhere_station = {c.identity: c for c in _identify(tmp_path, query, station="KZ-09").candidates}
    assert elsewhere_station["Other"].inliers == unchecked["Other"].inliers


def test_a_copy_of_an_enrolled_photo_at_its_station_keeps_its_spots(tmp_path: Path) -> None:
    # Same place AND same animal in the same spot (a re-upload, re-cropped; a resting animal):
    # the spots move with the scene, but nothing inside the ellipse changed, so they are kept.
    enrolled = _at(_place(1), photograph(make_coat(8102), np.random.default_rng(2)), 95, 70)
    pipe = open_pipeline(data_dir=tmp_path, model_path=MODEL)
    _enroll(pipe, "True", [enrolled], station="KZ-01")
    _enroll(pipe, "Other", [_at(_place(2), photograph(make_coat(8101), np.random.default_rng(1)), 95, 70)],
            station="KZ-02")
    pipe.catalog.close()
    copy = np.ascontiguousarray(enrolled[6:, 9:])
    unchecked = {c.identity: c for c in _identify(tmp_path, copy, station="KZ-01", scene_check_candidates=0).candidates}
    checked = _identify(tmp_path, copy, station="KZ-01")
    assert checked.candidates[0].identity == "True" and checked.decision == "match"
    assert checked.candidates[0].inliers == unchecked["True"].inliers > 20


# -- the keypoint index on disk ---------------------------------------------------------------------
def test_keypoint_index_round_trips_through_a_file(tmp_path: Path) -> None:
    rgb = [cv2.cvtColor(photograph(make_coat(c), np.random.default_rng(s)), cv2.COLOR_BGR2RGB)
           for c, s in [(TRUE_COAT, 2), (7000, 1), (7002, 1), (7003, 1)]]
    query = extract(cv2.cvtColor(photograph(make_coat(TRUE_COAT), np.random.default_rng(1)), cv2.COLOR_BGR2RGB))
    index = KeypointIndex(exact_limit=0)  # every group through the IVF lists: they are saved too
    for n, img in enumerate(rgb):
        index.add(n, 10 * n, ("left", "right")[n % 2], extract(img))
    index.prepare()
    index.save(tmp_path / "kp.npz")
    again = KeypointIndex.load(tmp_path / "kp.npz", exact_limit=0)
    assert again.image_ids() == index.image_ids() and again.descriptor_count == index.descriptor_count
    assert again.vote(query, None).mass == index.vote(query, None).mass
    assert again.owners() == {0: 0, 1: 10, 2: 20, 3: 30}
    (tmp_path / "bad.npz").write_bytes(b"not an index")
    with pytest.raises(ValueError, match="not a keypoint index"):
        KeypointIndex.load(tmp_path / "bad.npz")


def test_a_saved_keypoint_index_is_read_back_not_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    coat = make_coat(TRUE_COAT)
    query = photograph(coat, np.random.default_rng(1))
    pipe = open_pipeline(data_dir=tmp_path / "a", model_path=MODEL)
    _enroll(pipe, "True", [photograph(coat, np.random.default_rng(2))])
    _enroll(pipe, "Other", [photograph(make_coat(7000), np.random.default_rng(1))])
    pipe.catalog.close()
    first = _identify(tmp_path / "a", query)  # builds the index from the cached keypoints, saves it
    saved = pipe.keypoint_index_path()
    assert saved.is_file() and saved.with_suffix(".json").is_file()

    real = Pipeline.local_features

    def no_rebuild(self: Pipeline, image_id: int, *, scene: bool = False):
        assert scene, "gallery keypoints were re-read: the saved index was not used"
        return real(self, image_id, scene=scene)

    with monkeypatch.context() as m:
        m.setattr(Pipeline, "local_features", no_rebuild)
        second = _identify(tmp_path / "a", query)
    assert [(c.identity, c.inliers, c.score) for c in second.candidates] == \
        [(c.identity, c.inliers, c.score) for c in first.candidates]
    assert first.candidates[0].identity == "True" and first.candidates[0].inliers >= 20

    # another catalogue with the same image ids but other photos must not use this file
    pipe = open_pipeline(data_dir=tmp_path / "b", model_path=MODEL)
    _enroll(pipe, "Other", [photograph(make_coat(7000), np.random.default_rng(1))])
    _enroll(pipe, "True", [photograph(coat, np.random.default_rng(2))])
    pipe.catalog.close()
    pipe.keypoint_index_path().parent.mkdir(parents=True, exist_ok=True)
    for suffix in (".npz", ".json"):
        (pipe.keypoint_index_path().with_suffix(suffix)).write_bytes(saved.with_suffix(suffix).read_bytes())
    with caplog.at_level("WARNING"):
        other = _identify(tmp_path / "b", query)
    assert "other images than this catalogue's" in caplog.text
    assert other.candidates[0].identity == "True" and other.candidates[0].inliers >= 20

    # a damaged file is rebuilt, not fatal
    caplog.clear()
    saved.write_bytes(b"\0" * 100)
    with caplog.at_level("WARNING"):
        damaged = _identify(tmp_path / "a", query)
    assert "unreadable" in caplog.text and damaged.candidates[0].identity == "True"


def test_saliency_keeps_the_animals_keypoints_of_a_whole_frame(tmp_path: Path) -> None:
    frame = cv2.cvtColor(_at(_place(1), photograph(make_coat(8102), np.random.default_rng(2)), 95, 70),
                         cv2.COLOR_BGR2RGB)
    pipe = open_pipeline(data_dir=tmp_path, model_path=MODEL)

    def on_animal(f) -> np.ndarray:  # the animal sits at x 95-225, y 70-165 (_at)
        x, y = f.keypoints[:, 0], f.keypoints[:, 1]
        return (x >= 95) & (x < 225) & (y >= 70) & (y < 165)

    everything = pipe.extract_keypoints(frame, boxed=True)  # a box: no saliency mask
    salient = pipe.extract_keypoints(frame)
    saliency = pipe.saliency(frame)
    assert saliency.shape == (14, 14) and saliency.max() == pytest.approx(1.0)
    assert len(salient) < len(everything)
    assert on_animal(salient).sum() >= 0.8 * on_animal(everything).sum()  # the animal's spots stay
    assert on_animal(salient).mean() > on_animal(everything).mean() + 0.1  # the ground goes
    pipe.close()


def test_a_resident_back_at_its_own_station_is_still_found(tmp_path: Path) -> None:
    # Issue 17: at a fixed camera a resident walks its usual trail, so a later photo puts its
    # spots where they were, lined up with the place. Only the background may be discounted:
    # the resident keeps its match, while a different animal standing on that same spot (the
    # ground around it lines up too) or elsewhere in the frame is not matched.
    site = _place(1)
    pipe = open_pipeline(data_dir=tmp_path, model_path=MODEL)
    _enroll(pipe, "Resident", [_at(site, photograph(make_coat(8102), np.random.default_rng(2)), 95, 70)],
            station="KZ-01")
    _enroll(pipe, "Other", [_at(_place(2), photograph(make_coat(8101), np.random.default_rng(1)), 95, 70)],
            station="KZ-02")
    pipe.catalog.close()
    back = _at(site, photograph(make_coat(8102), np.random.default_rng(5)), 100, 74, shift=(1, 2))
    unchecked = _identify(tmp_path, back, station="KZ-01", scene_check_candidates=0)
    old = _identify(tmp_path, back, station="KZ-01", scene_check_animal=0.0)  # any spot on the place goes
    assert unchecked.candidates[0].identity == "Resident" and unchecked.decision == "match"
    assert old.candidates[0].inliers == 0 and old.decision == "new"  # the failure the default must not have
    checked = _identify(tmp_path, back, station="KZ-01")
    assert checked.candidates[0].identity == "Resident" and checked.decision == "match"
    assert checked.candidates[0].inliers >= 20
    for x, y in ((100, 74), (170, 130)):  # a stranger on the resident's spot, and elsewhere
        stranger = _at(site, photograph(make_coat(8103), np.random.default_rng(6)), x, y, shift=(1, 2))
        assert _identify(tmp_path, stranger, station="KZ-01", scene_check_candidates=0).decision == "match"  # the ground
        res = _identify(tmp_path, stranger, station="KZ-01")
        assert res.decision != "match" and res.candidates[0].inliers == 0
