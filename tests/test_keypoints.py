"""reid.keypoints: extraction, the whole-gallery index's votes and verification, the scene
geometry, pairwise matching and the evidence picture.

Images are drawn here: dark rings and blobs on a tawny coat, then re-photographed with a
homography, a mild non-rigid bend, new lighting and sensor noise.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from reid.keypoints import extract as kx
from reid.keypoints import scene
from reid.keypoints.draw import draw_evidence
from reid.keypoints.index import KeypointIndex
from reid.keypoints.verify import LocalMatch, match_pair
from reid.keypoints.vote import knn_search

TAWNY = np.array([205, 160, 95], np.float32)


def coat(seed: int, size: tuple[int, int] = (300, 400), n: int = 60) -> np.ndarray:
    """A procedural rosette pattern, RGB uint8."""
    rng = np.random.default_rng(seed)
    h, w = size
    shade = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 20)
    img = np.clip(TAWNY[None, None] * (1 + 2.0 * shade[..., None]), 0, 255).astype(np.uint8)
    img = np.ascontiguousarray(img)
    for _ in range(n):
        x, y = int(rng.integers(12, w - 12)), int(rng.integers(12, h - 12))
        r = int(rng.integers(5, 13))
        dark = tuple(int(v) for v in rng.integers(20, 70, 3))
        if rng.random() < 0.6:
            axes = (r, max(3, int(r * rng.uniform(0.55, 1.0))))
            a0 = int(rng.integers(0, 90))
            cv2.ellipse(img, (x, y), axes, int(rng.integers(0, 180)), a0, a0 + int(rng.integers(220, 360)),
                        dark, int(rng.integers(2, 4)), cv2.LINE_AA)
        else:
            cv2.circle(img, (x, y), max(2, r // 2), dark, -1, cv2.LINE_AA)
    return cv2.GaussianBlur(img, (3, 3), 0.8)


def rephotograph(img: np.ndarray, seed: int) -> np.ndarray:
    """Homography + mild non-rigid bend + relighting + noise."""
    rng = np.random.default_rng(seed)
    h, w = img.shape[:2]
    ang, sc = rng.uniform(-8, 8), rng.uniform(0.9, 1.1)
    m = cv2.getRotationMatrix2D((w / 2, h / 2), ang, sc)
    hmat = np.vstack([m, [rng.uniform(-2e-4, 2e-4), rng.uniform(-2e-4, 2e-4), 1]])
    out = cv2.warpPerspective(img, hmat, (w, h), borderMode=cv2.BORDER_REFLECT)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    mx = xx + 3 * np.sin(2 * np.pi * yy / 170)
    my = yy + 3 * np.sin(2 * np.pi * xx / 230)
    out = cv2.remap(out, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    f = out.astype(np.float32) / 255
    f = 0.85 * f ** rng.uniform(0.8, 1.2) + 0.05
    f += rng.normal(0, 0.02, f.shape)
    return np.clip(f * 255, 0, 255).astype(np.uint8)


def index_matches(query: kx.Features, gallery: list[kx.Features],
                  identities: list[str] | None = None) -> list[LocalMatch]:
    """The live path: the gallery in one KeypointIndex (image n owned by its identity), the
    query's votes verified for every gallery image."""
    index = KeypointIndex()
    idents = identities or [str(n) for n in range(len(gallery))]
    owner = {name: n for n, name in enumerate(dict.fromkeys(idents))}
    for image_id, (feats, ident) in enumerate(zip(gallery, idents, strict=True)):
        index.add(image_id, owner[ident], None, feats)
    found = index.verify(query, index.vote(query, None), range(len(gallery)))
    return [found[n] for n in range(len(gallery))]


@pytest.fixture(scope="module")
def views() -> dict[str, kx.Features]:
    a = coat(1)
    return {
        "a": kx.extract(a),
        "a2": kx.extract(rephotograph(a, 7)),
        "b": kx.extract(coat(2)),
        "c": kx.extract(coat(3)),
    }


def test_extract_shapes_and_rootsift(views: dict[str, kx.Features]) -> None:
    f = views["a"]
    assert len(f) > 100
    assert f.keypoints.shape == (len(f), 2) and f.keypoints.dtype == np.float32
    assert f.descriptors.shape == (len(f), 128)
    assert f.image_size == (400, 300)
    # RootSIFT descriptors are unit-length and non-negative
    assert np.allclose(np.linalg.norm(f.descriptors, axis=1), 1, atol=1e-3)
    assert f.descriptors.min() >= 0


def test_keypoints_in_original_pixels_and_box() -> None:
    img = coat(5)
    big = cv2.resize(img, (1200, 900), interpolation=cv2.INTER_CUBIC)
    small_f = kx.extract(img, max_side=400)
    big_f = kx.extract(big, max_side=400)  # same pixels seen by SIFT, 3x coordinates
    assert big_f.image_size == (1200, 900)
    assert big_f.keypoints[:, 0].max() > 400  # mapped back, not left in the resized frame
    m = match_pair(big_f, small_f)
    assert m.inliers >= 20
    assert np.allclose(m.pairs[:, 0:2], 3 * m.pairs[:, 2:4] + 1, atol=6)  # (x+0.5)*3-0.5
    box = (100, 50, 200, 150)
    bf = kx.extract(img, box=box)
    assert len(bf) > 10
    assert (bf.keypoints[:, 0] >= 99).all() and (bf.keypoints[:, 0] <= 300).all()
    assert (bf.keypoints[:, 1] >= 49).all() and (bf.keypoints[:, 1] <= 200).all()


def test_same_pattern_beats_other_pattern(views: dict[str, kx.Features]) -> None:
    same = match_pair(views["a2"], views["a"])
    other = match_pair(views["a2"], views["b"])
    assert same.inliers >= 25
    assert same.inliers > 4 * max(other.inliers, 1)
    ms = index_matches(views["a2"], [views["b"], views["a"], views["c"]])
    assert len(ms) == 3
    assert ms[1].inliers >= 15
    assert ms[1].score > 5 * max(ms[0].score, ms[2].score, 1e-3)
    assert ms[1].pairs.shape == (ms[1].inliers, 4)


def test_save_load_round_trip(tmp_path, views: dict[str, kx.Features]) -> None:
    p = tmp_path / "sub" / "a.npz"
    kx.save_features(p, views["a"])
    assert p.exists() and not list(p.parent.glob("*.tmp"))
    g = kx.load_features(p)
    f = views["a"]
    assert g.image_size == f.image_size
    assert np.array_equal(g.keypoints, f.keypoints)
    assert g.descriptors.dtype == np.float32
    assert np.allclose(g.descriptors, f.descriptors, atol=2e-3)
    assert np.allclose(g.scales, f.scales) and np.allclose(g.angles, f.angles)
    # the cached features match as well as the fresh ones
    assert match_pair(views["a2"], g).inliers >= 0.8 * match_pair(views["a2"], f).inliers


def test_draw_evidence(tmp_path, views: dict[str, kx.Features]) -> None:
    q = rephotograph(coat(1), 7)
    g = cv2.resize(coat(1), (600, 450))  # different size: both are scaled to one height
    gf = kx.extract(g)
    m = match_pair(views["a2"], gf)
    assert m.inliers > 10
    out = draw_evidence(q, g, m, labels=("query", "Tau Sheri"), max_lines=20)
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
    h = out.shape[0]
    assert h == 300
    assert out.shape[1] == 400 + 8 + 400  # 600x450 scaled to height 300 -> 400 wide
    ok, png = cv2.imencode(".png", out[:, :, ::-1])
    assert ok and len(png) > 1000
    (tmp_path / "evidence.png").write_bytes(png.tobytes())
    # nothing to draw is still a picture
    empty = draw_evidence(q, g, LocalMatch(0, 0.0, np.zeros((0, 4), np.float32)))
    assert empty.shape == out.shape


def _with_background(animal: np.ndarray, background: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.concatenate([animal, background], axis=1))


def _rock(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rock = np.full((300, 300, 3), 120, np.uint8)
    for _ in range(120):  # grey pebbles and cracks
        c = int(rng.integers(40, 220))
        p = (int(rng.integers(0, 300)), int(rng.integers(0, 300)))
        if rng.random() < 0.5:
            cv2.circle(rock, p, int(rng.integers(3, 12)), (c, c, c), -1)
        else:
            q = (p[0] + int(rng.integers(-40, 40)), p[1] + int(rng.integers(-40, 40)))
            cv2.line(rock, p, q, (c, c, c), int(rng.integers(1, 4)))
    return rock


def test_one_vs_many_downweights_shared_background() -> None:
    """Two other animals shot in front of the query's rock: pairwise counts the rock, LNBNN must not."""
    rock = _rock(11)
    a = coat(21, (300, 400))
    query = _with_background(rephotograph(a, 3), rock)
    gal_imgs = [
        _with_background(coat(22, (300, 400)), rock),  # another animal, same camera spot
        _with_background(a, _rock(12)),  # the query's animal, photographed elsewhere
        _with_background(coat(23, (300, 400)), rock),  # a third animal, same spot again
        _with_background(coat(24, (300, 400)), _rock(13)),
    ]
    fq = kx.extract(query)
    gal = [kx.extract(g) for g in gal_imgs]
    # the failure being fixed: pairwise verification finds lots of background "inliers"
    pair = [match_pair(fq, g) for g in gal]
    assert min(pair[0].inliers, pair[2].inliers) >= 30
    ms = index_matches(fq, gal)
    assert ms[1].inliers >= 15
    assert ms[1].score > 3 * max(ms[0].score, ms[2].score, ms[3].score, 1e-3)
    assert (ms[1].pairs[:, 0] < 400).all()  # the true match's evidence is the animal
    # background pairs that survive at all carry little weight
    bg_w = sum(float(m.weights[m.pairs[:, 0] >= 400].sum()) for m in ms if m.inliers)
    assert bg_w < 0.25 * ms[1].score


def test_identities_group_images_of_one_animal(views: dict[str, kx.Features]) -> None:
    """Two photos of the same animal must not act as each other's 'background'."""
    a_again = kx.extract(rephotograph(coat(1), 99))
    gal = [views["a"], a_again, views["b"], views["c"]]
    ms = index_matches(views["a2"], gal, identities=["A", "A", "B", "C"])
    assert min(ms[0].score, ms[1].score) > 5 * max(ms[2].score, ms[3].score, 1e-3)


def test_featureless_and_empty_inputs() -> None:
    flat = np.full((200, 300, 3), 128, np.uint8)
    f = kx.extract(flat)
    assert len(f) == 0 and f.descriptors.shape == (0, 128) and f.image_size == (300, 200)
    g = kx.extract(coat(4))
    assert match_pair(f, g).inliers == 0
    assert match_pair(g, f).inliers == 0
    ms = index_matches(f, [g, g])
    assert [m.inliers for m in ms] == [0, 0] and all(m.score == 0 for m in ms)
    ms = index_matches(g, [f, f])
    assert [m.inliers for m in ms] == [0, 0]
    assert index_matches(g, []) == []
    tiny = kx.extract(np.zeros((20, 20, 3), np.uint8))
    assert len(tiny) == 0


def test_deterministic(views: dict[str, kx.Features]) -> None:
    gal = [views["b"], views["a"], views["c"]]
    r1 = index_matches(views["a2"], gal)
    r2 = index_matches(views["a2"], gal)
    for x, y in zip(r1, r2, strict=True):
        assert x.inliers == y.inliers and x.score == y.score
        assert np.array_equal(x.pairs, y.pairs)
    p1 = match_pair(views["a2"], views["a"])
    p2 = match_pair(views["a2"], views["a"])
    assert p1.inliers == p2.inliers and np.array_equal(p1.pairs, p2.pairs)


def test_knn_search_is_exact(views: dict[str, kx.Features]) -> None:
    gal = [views["b"], views["a"], views["c"]]
    base = np.concatenate([g.descriptors for g in gal]).astype(np.float32)
    query = views["a2"].descriptors.astype(np.float32)
    d, nn = knn_search(query, base, 5, "flat")
    brute = ((query[:, None, :] - base[None, :, :]) ** 2).sum(2)
    assert np.array_equal(nn[:, 0], brute.argmin(1))
    assert np.allclose(d, np.sort(brute, 1)[:, :5], atol=1e-4)
    assert (np.diff(d, axis=1) >= 0).all()


def test_votes_rank_the_right_individual(views: dict[str, kx.Features]) -> None:
    index = KeypointIndex()
    for image_id, (name, owner) in enumerate((("b", 10), ("a", 11), ("c", 12))):
        index.add(image_id, owner, "left", views[name])
    votes = index.vote(views["a2"], "left")
    assert votes.ranked()[0] == 11 and votes.images[11] == [1]
    assert index.vote(views["a2"], "right").ranked() == []  # a known flank never meets the other
    assert len(index.vote(kx.extract(np.full((50, 50, 3), 128, np.uint8)), "left").weights) == 0


def test_bad_cache_file_is_an_image_error(tmp_path) -> None:
    from reid.errors import ImageError

    p = tmp_path / "broken.npz"
    p.write_bytes(b"not a zip")
    with pytest.raises(ImageError):
        kx.load_features(p)


def test_changed_share_tells_a_copy_from_a_new_animal_at_one_place() -> None:
    place = coat(11, n=200)  # stands in for a site's ground: textured, rich in keypoints
    frame = place.copy()
    frame[100:200, 130:270] = cv2.resize(coat(12), (140, 100))  # the animal, in the middle
    later = place.copy()
    later[100:200, 130:270] = cv2.resize(coat(13), (140, 100))  # another animal, same spot
    recrop = np.ascontiguousarray(frame[9:, 12:])
    q = kx.extract(recrop, ellipse=0.9, outside=True)
    h_copy = scene.scene_homography(q, kx.extract(frame, ellipse=0.9, outside=True))
    h_later = scene.scene_homography(q, kx.extract(later, ellipse=0.9, outside=True))
    assert h_copy is not None and h_later is not None  # the place lines up either way
    assert np.allclose(h_copy[:2, 2], [12, 9], atol=1.5)  # the crop's offset
    assert scene.changed_share(recrop, frame, h_copy, ellipse=0.9) < scene.SCENE_UNCHANGED_SHARE
    assert scene.changed_share(recrop, later, h_later, ellipse=0.9) > 0.1
    assert scene.changed_share(recrop, coat(14), h_copy, ellipse=0.9) > 0.3  # nothing alike


def test_changed_at_marks_where_something_moved() -> None:
    # another animal on the same spot: the ground around it is unchanged, the coats differ
    place = coat(11, n=200)
    frame = place.copy()
    frame[100:200, 130:270] = cv2.resize(coat(12), (140, 100))
    later = place.copy()
    later[100:200, 130:270] = cv2.resize(coat(13), (140, 100))
    h = scene.scene_homography(kx.extract(later, ellipse=0.9, outside=True),
                               kx.extract(frame, ellipse=0.9, outside=True))
    assert h is not None
    on_coat = np.array([[150, 120], [200, 150], [250, 180]], np.float32)
    on_ground = np.array([[60, 60], [330, 60], [60, 250], [330, 250]], np.float32)
    assert scene.changed_at(later, frame, h, on_coat).all()
    assert not scene.changed_at(later, frame, h, on_ground).any()
    assert scene.changed_at(later, frame, h, np.zeros((0, 2), np.float32)).shape == (0,)
