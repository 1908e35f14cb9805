"""Keypoint evidence: RootSIFT extraction, one-vs-many (LNBNN) weighting, geometric verification.

Pieces used by the pipeline (through reid.keypoint_index, which holds every gallery
keypoint in one index): `extract`, `lnbnn_votes`, `verify_pairs`, `exclusive_weights`,
`draw_evidence`. `match_pair` (plain pairwise matching) and `match_shortlist` (LNBNN over
an explicit list of images) are the same steps for callers without an index, and the
baselines of benchmarks/eval_local_nyala.py.

Why one-vs-many: on real photos two different animals at one camera share rocks, trunks and
grass, and pairwise SIFT + RANSAC verifies hundreds of background "inliers" between them.
LNBNN weighs each match by how much closer it is than the best match to the (k+1)-th other
individual, so a point that matches many animals (background) weighs ~0. Measured on
nyala-dev with benchmarks/eval_local_nyala.py (keypoints only, whole gallery of the same
flank, 150 queries of its EVAL.md split): plain SIFT + RANSAC pairs and CLAHE + RootSIFT
pairs rank far below LNBNN; LNBNN on 640 px rotation-invariant RootSIFT 0.080 top-1,
upright RootSIFT at 320 px 0.187-0.200 (the defaults below), at 240 px 0.167; a centred
ellipse mask (a crude "the animal is in the middle" prior) 0.247, not used because camera-
trap frames without a box do not centre the animal. On all 590 queries, LNBNN at 640 px
rotation-invariant: 0.171 top-1, 0.408 top-5. The pipeline's numbers (fused with the
embedding, 20% new individuals) are in README "Accuracy".
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from reid.errors import ImageError
from reid.fileio import atomic_writer

DESC_DIM = 128
SCENE_THRESH_FRAC = 0.03  # scene check: pixel tolerance, as a share of the photo's long side
# Scene check: below this changed share the two photos show the same thing (changed_share).
# benchmarks/scene_changed_share.py on synthetic fixed-camera leopards (reid synth
# --same-place, 1,500 pairs at one station each): different animals 0.31-0.96 (mild
# renders) and 0.21-1.00 (all render conditions), never below 0.15; re-crops of one photo
# below it in 93-96% (a few dark, noisy frames reach 0.29-0.36).
SCENE_UNCHANGED_SHARE = 0.15


@dataclass
class Features:
    """Keypoints of one image (coordinates in ORIGINAL image pixels) and their descriptors."""

    keypoints: np.ndarray  # (N, 2) float32 x, y
    descriptors: np.ndarray  # (N, 128) RootSIFT, float32 (or float16 / uint8 as stored)
    image_size: tuple[int, int]  # (width, height) of the original image
    scales: np.ndarray | None = None  # (N,) keypoint diameter in original pixels
    angles: np.ndarray | None = None  # (N,) degrees

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])


@dataclass
class LocalMatch:
    """Verified correspondences between a query and one gallery image."""

    inliers: int
    score: float
    pairs: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))  # qx,qy,gx,gy
    weights: np.ndarray | None = None  # (M,) evidence weight per pair; pairs sorted by it, best first


def _empty_features(image_size: tuple[int, int]) -> Features:
    return Features(
        keypoints=np.zeros((0, 2), np.float32),
        descriptors=np.zeros((0, DESC_DIM), np.float32),
        image_size=image_size,
        scales=np.zeros((0,), np.float32),
        angles=np.zeros((0,), np.float32),
    )


def _no_match() -> LocalMatch:
    return LocalMatch(0, 0.0, np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))


def _grey(rgb: np.ndarray) -> np.ndarray:
    if rgb.ndim == 2:
        return rgb if rgb.dtype == np.uint8 else np.clip(rgb, 0, 255).astype(np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] not in (3, 4):
        raise ImageError(f"expected an HxWx3 RGB image, got shape {rgb.shape}")
    rgb = rgb[:, :, :3]
    if rgb.dtype != np.uint8:
        rgb = np.clip(rgb, 0, 255).astype(np.uint8)
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def _box_origin(shape: tuple[int, ...], box: tuple[float, float, float, float]) -> tuple[int, int]:
    # Same rounding/clipping as reid.imageio.crop, so keypoints map back exactly.
    x, y = box[0], box[1]
    return max(0, int(round(x))), max(0, int(round(y)))


def extract(
    rgb: np.ndarray,
    *,
    box: tuple[float, float, float, float] | None = None,
    max_side: int = 320,
    max_features: int = 1500,
    rootsift: bool = True,
    clahe: bool = True,
    upright: bool = True,
    ellipse: float = 0.0,
    outside: bool = False,
) -> Features:
    """RootSIFT keypoints of an RGB image (only inside the animal's box when one is given).

    The region is converted to grey, resized so its long side is <= `max_side` (never
    enlarged), contrast-equalised with CLAHE (night IR and harsh sun both flatten coat
    patterns), and SIFT keeps the `max_features` strongest points. Keypoints come back in
    ORIGINAL image pixels (box offset and resize undone).

    Defaults were chosen on real nyala photos (benchmarks/eval_local_nyala.py):
    - max_side=320, not 640: coat marks are large structures; at 640 the 1500 strongest
      points are mostly fur, grass and gravel texture (top-1 on 20-animal shortlists 0.20
      at 640 vs 0.42 at 320). The default assumes the region is the ANIMAL (a detector box
      or an animal-filling crop): for a whole wide camera-trap frame without a box, pass a
      box, or a larger max_side.
    - upright=True (HotSpotter's gravity assumption): animals are photographed upright, so
      rotation invariance only adds confusable matches (0.42 vs 0.34 top-1, same setting).
    - CLAHE on (0.20 vs 0.15 top-1 over the whole gallery).
    `rootsift=False, clahe=False, upright=False` gives plain SIFT (the baseline).

    `ellipse` > 0 keeps only keypoints inside the ellipse inscribed in the region, scaled by
    it (1 = touching the edges): the corners of an animal's box or crop are mostly ground,
    sky and vegetation, and of a whole frame the camera's info bar and logo.
    """
    from reid.imageio import crop

    H, W = rgb.shape[:2]
    size = (int(W), int(H))
    ox = oy = 0
    if box is not None:
        region = crop(rgb, box)
        ox, oy = _box_origin(rgb.shape, box)
    else:
        region = rgb
    grey = _grey(region)
    h, w = grey.shape[:2]
    scale = min(1.0, float(max_side) / max(h, w)) if max_side else 1.0
    if scale < 1.0:
        grey = cv2.resize(grey, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    if clahe:
        grey = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(grey)
    sift = cv2.SIFT_create(nfeatures=max(0, int(max_features)))
    if upright:
        # Gravity assumption (HotSpotter): animals stand upright in camera-trap photos,
        # so drop SIFT's rotation invariance - one descriptor per point, angle 0.
        kps = sift.detect(grey, None)
        uniq: dict[tuple[int, int, int], cv2.KeyPoint] = {}
        for kp in kps:
            key = (round(kp.pt[0] * 4), round(kp.pt[1] * 4), round(kp.size * 4))
            if key not in uniq or kp.response > uniq[key].response:
                uniq[key] = kp
        kps = [cv2.KeyPoint(kp.pt[0], kp.pt[1], kp.size, 0.0, kp.response, kp.octave, kp.class_id)
               for kp in uniq.values()]
        kps, desc = sift.compute(grey, kps) if kps else ((), None)
    else:
        kps, desc = sift.detectAndCompute(grey, None)
    if desc is None or len(kps) == 0:
        return _empty_features(size)
    if ellipse > 0:
        gh, gw = grey.shape[:2]
        pts = np.array([k.pt for k in kps], np.float32).reshape(-1, 2)
        dx = (pts[:, 0] - (gw - 1) / 2) / (gw / 2)
        dy = (pts[:, 1] - (gh - 1) / 2) / (gh / 2)
        # outside=True keeps the corners instead: the scene around the animal (scene_homography)
        inside = np.nonzero((dx * dx + dy * dy > ellipse * ellipse) if outside
                            else (dx * dx + dy * dy <= ellipse * ellipse))[0]
        if len(inside) == 0:
            return _empty_features(size)
        kps, desc = [kps[i] for i in inside], desc[inside]
    # SIFT may return a few more than nfeatures (ties); keep the strongest.
    if max_features and len(kps) > max_features:
        order = np.argsort([-k.response for k in kps], kind="stable")[:max_features]
        kps = [kps[i] for i in order]
        desc = desc[order]
    desc = desc.astype(np.float32)
    if rootsift:
        # RootSIFT (Arandjelovic & Zisserman 2012): L1-normalise, sqrt -> Hellinger kernel
        # under L2; the result has unit L2 norm, so L2 distance <-> cosine.
        desc /= np.maximum(desc.sum(axis=1, keepdims=True), 1e-7)
        np.sqrt(desc, out=desc)
    inv = 1.0 / scale
    pts = np.array([k.pt for k in kps], np.float32)
    # pixel-centre aware mapping from the resized frame back to the original
    pts = (pts + 0.5) * inv - 0.5
    pts[:, 0] += ox
    pts[:, 1] += oy
    return Features(
        keypoints=pts.astype(np.float32),
        descriptors=np.ascontiguousarray(desc, dtype=np.float32),
        image_size=size,
        scales=np.array([k.size * inv for k in kps], np.float32),
        angles=np.array([k.angle for k in kps], np.float32),
    )


def save_features(path: Path, f: Features) -> None:
    """Write features atomically as a compact .npz (descriptors as float16)."""
    n = len(f)
    arrays = {
        "keypoints": np.asarray(f.keypoints, np.float32).reshape(n, 2),
        "descriptors": np.asarray(f.descriptors).astype(np.float16).reshape(n, DESC_DIM),
        "image_size": np.asarray(f.image_size, np.int64),
    }
    if f.scales is not None:
        arrays["scales"] = np.asarray(f.scales, np.float32)
    if f.angles is not None:
        arrays["angles"] = np.asarray(f.angles, np.float32)
    with atomic_writer(path, "wb") as fh:
        np.savez_compressed(fh, **arrays)


def load_features(path: Path) -> Features:
    """Read features written by `save_features` (descriptors come back as float32)."""
    try:
        with np.load(Path(path), allow_pickle=False) as z:
            kp = z["keypoints"].astype(np.float32)
            desc = z["descriptors"].astype(np.float32)
            size = tuple(int(v) for v in z["image_size"])
            scales = z["scales"].astype(np.float32) if "scales" in z.files else None
            angles = z["angles"].astype(np.float32) if "angles" in z.files else None
        n = len(kp)
        if (kp.shape != (n, 2) or desc.shape != (n, DESC_DIM) or len(size) != 2
                or any(a is not None and a.shape != (n,) for a in (scales, angles))):
            raise ValueError("arrays of inconsistent shapes")
        if not (np.isfinite(kp).all() and np.isfinite(desc).all()):
            raise ValueError("NaN or infinite values")
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - any damage (BadZipFile, EOFError, ...) means: recompute
        raise ImageError(f"{path}: unreadable keypoint cache ({type(exc).__name__}: {exc})") from None
    return Features(kp, desc, (size[0], size[1]), scales, angles)


# ----------------------------------------------------------------------------- matching


def _f32(d: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(d, dtype=np.float32)


def _plausible(h: np.ndarray | None) -> bool:
    """Reject degenerate or mirrored fits: a flank is never seen flipped or squashed 16x."""
    if h is None or not np.all(np.isfinite(h)):
        return False
    if h.shape == (3, 3):
        if abs(h[2, 2]) < 1e-12:
            return False
        h = h / h[2, 2]
    det = float(h[0, 0] * h[1, 1] - h[0, 1] * h[1, 0])
    return 1 / 16 < det < 16


def _fit(src: np.ndarray, dst: np.ndarray, model: str, thr: float) -> np.ndarray:
    n = len(src)
    if model == "none":
        return np.ones(n, bool)
    cv2.setRNGSeed(12345)  # USAC/RANSAC sample with OpenCV's RNG: fixed seed = same answer every run
    try:
        if model == "affine":
            h, m = cv2.estimateAffinePartial2D(
                src, dst, method=cv2.RANSAC, ransacReprojThreshold=thr, maxIters=2000, confidence=0.995
            )
        else:
            h, m = cv2.findHomography(src, dst, cv2.USAC_MAGSAC, thr, maxIters=2000, confidence=0.995)
    except cv2.error:
        return np.zeros(n, bool)
    if m is None or not _plausible(h):
        return np.zeros(n, bool)
    return m.ravel().astype(bool)


def verify_pairs(
    qxy: np.ndarray,
    gxy: np.ndarray,
    weights: np.ndarray,
    g_size: tuple[int, int],
    *,
    model: str = "homography",
    thresh_frac: float = 0.03,
    min_inliers: int = 6,
    rounds: int = 3,
) -> np.ndarray:
    """Indices of the geometrically verified matches (empty when fewer than `min_inliers`).

    Threshold is a fraction of the gallery image's long side so it means the same at any
    resolution; it is loose on purpose because flanks bend and stretch between photos.
    RANSAC maximises the inlier COUNT, so a big consistent set of low-weight background
    matches (a rock seen by both photos) can beat the animal's fewer, heavier matches. We
    therefore fit up to `rounds` models on what is left after removing earlier inliers and
    keep the one with the largest inlier WEIGHT (also helps with a bent body: two halves).
    """
    none = np.zeros(0, np.int64)
    if len(qxy) < max(4, min_inliers):
        return none
    # one-to-one: a gallery point keeps only its heaviest match (repeated texture
    # otherwise piles many query points onto one gallery point)
    order = np.argsort(-weights, kind="stable")
    _, first = np.unique(np.round(gxy[order], 1), axis=0, return_index=True)
    keep = np.sort(order[first])
    n = len(keep)
    if n < max(4, min_inliers):
        return none
    thr = float(thresh_frac) * float(max(g_size))
    src = qxy[keep].reshape(-1, 1, 2).astype(np.float32)
    dst = gxy[keep].reshape(-1, 1, 2).astype(np.float32)
    wk = weights[keep]
    left = np.arange(n)
    best = none
    best_w = 0.0
    for _ in range(max(1, rounds if model != "none" else 1)):
        if len(left) < max(4, min_inliers):
            break
        m = _fit(src[left], dst[left], model, thr)
        if m.sum() < min_inliers:
            break
        w = float(wk[left[m]].sum())
        if w > best_w:
            best_w, best = w, left[m]
        left = left[~m]
    return keep[np.sort(best)] if len(best) >= min_inliers else none


def scene_homography(query_scene: Features, gallery_scene: Features, *, ratio: float = 0.8,
                     min_scene_inliers: int = 8, thresh_frac: float = SCENE_THRESH_FRAC) -> np.ndarray | None:
    """Homography (query -> gallery pixels) that lines up two photos' surroundings, or None.

    Two photos taken at one place line up their backgrounds (rocks, trunks, the ground) by
    one homography, while the animal has moved between visits. It is fitted on the
    keypoints outside the animal's ellipse (extract(..., outside=True)); None when the two
    surroundings do not agree (different places, or too few points).
    """
    if len(query_scene) < min_scene_inliers or len(gallery_scene) < min_scene_inliers:
        return None
    knn = cv2.BFMatcher(cv2.NORM_L2).knnMatch(_f32(query_scene.descriptors), _f32(gallery_scene.descriptors), k=2)
    good = [m[0] for m in knn if len(m) == 2 and m[0].distance < ratio * m[1].distance]
    if len(good) < min_scene_inliers:
        return None
    src = query_scene.keypoints[[g.queryIdx for g in good]]
    dst = gallery_scene.keypoints[[g.trainIdx for g in good]]
    side = float(max(gallery_scene.image_size))
    homography, inliers = cv2.findHomography(src, dst, cv2.RANSAC, thresh_frac * side)
    if homography is None or int(inliers.sum()) < min_scene_inliers:
        return None
    return homography


def moves_with_scene(match: LocalMatch, homography: np.ndarray, gallery_size: tuple[int, int], *,
                     thresh_frac: float = SCENE_THRESH_FRAC) -> np.ndarray:
    """Which of a match's verified pairs the scene homography explains too (bool per pair).

    Such a "spot" is really the place: on nyala-dev (whole frames) dropping those pairs
    raised keypoint-only top-1 from 0.247 to 0.282 (README "Accuracy"). It assumes the
    surroundings are NOT the animal, and that the animal moved: see `changed_share`.
    """
    if len(match.pairs) == 0:
        return np.zeros(0, bool)
    moved = cv2.perspectiveTransform(match.pairs[:, :2].reshape(-1, 1, 2).astype(np.float64), homography)
    side = float(max(gallery_size))
    return np.linalg.norm(moved.reshape(-1, 2) - match.pairs[:, 2:4], axis=1) < thresh_frac * side


def changed_share(query_rgb: np.ndarray, gallery_rgb: np.ndarray, homography: np.ndarray, *,
                  ellipse: float, side: int = 160, cell: int = 8, min_correlation: float = 0.5) -> float:
    """Share of the query's animal ellipse that differs from the gallery photo, once the
    scene homography lines the two up (0 = the same picture; 1 = all changed).

    Why: a spot that moves with the scene is the place only if the animal moved. When
    nothing inside the ellipse changed (a re-upload or re-crop of an enrolled photo, an
    animal resting in the same spot between two frames) the spots are the animal's and must
    be kept. Both photos go grey at `side` px; the ellipse is cut into `cell` px squares and
    a textured square has changed when the two photos correlate below `min_correlation`
    there (correlation, not difference: day/night exposure cancels; two coats in one spot
    are both tawny, so only their marks tell them apart). Flat squares (sky, bare ground,
    plain fur) say nothing and are not counted; squares the homography maps outside the
    gallery photo count as changed.
    """
    grid = _change_grid(query_rgb, gallery_rgb, homography, side=side, cell=cell, min_correlation=min_correlation)
    if grid is None:
        return 1.0
    changed, counted, _, (h, w) = grid
    ch, cw = changed.shape
    cy, cx = (np.mgrid[0:ch, 0:cw] + 0.5) * cell
    region = ((cx - w / 2) / (w / 2)) ** 2 + ((cy - h / 2) / (h / 2)) ** 2 <= (ellipse if ellipse > 0 else 1.0) ** 2
    if (counted & region).sum() < 8:
        return 1.0  # too little texture to tell: treat as changed (the check applies)
    return float((changed & region).sum() / (counted & region).sum())


def changed_at(query_rgb: np.ndarray, gallery_rgb: np.ndarray, homography: np.ndarray, points: np.ndarray, *,
               side: int = 160, cell: int = 8, min_correlation: float = 0.5) -> np.ndarray:
    """Whether the query differs from the lined-up gallery photo around each query point (bool
    per (x, y) point; the squares of `changed_share`; a flat square counts as unchanged).

    A spot that lines up with the place AND sits where nothing changed between the two photos
    is the place (ground beside two animals that stood on one spot); where the picture changed,
    something moved there: the animal."""
    points = np.asarray(points, np.float32).reshape(-1, 2)
    grid = _change_grid(query_rgb, gallery_rgb, homography, side=side, cell=cell, min_correlation=min_correlation)
    if grid is None or len(points) == 0:
        return np.ones(len(points), bool)
    changed, _, scale, _ = grid
    ch, cw = changed.shape
    col = np.clip(((points[:, 0] + 0.5) * scale - 0.5) // cell, 0, cw - 1).astype(int)
    row = np.clip(((points[:, 1] + 0.5) * scale - 0.5) // cell, 0, ch - 1).astype(int)
    return changed[row, col]


def _change_grid(query_rgb: np.ndarray, gallery_rgb: np.ndarray, homography: np.ndarray, *, side: int, cell: int,
                 min_correlation: float) -> tuple[np.ndarray, np.ndarray, float, tuple[int, int]] | None:
    """Per `cell` px square of the query at `side` px: (changed, counted, query scale, (h, w) at
    that scale), or None
    when the query is smaller than one square."""
    qh, qw = query_rgb.shape[:2]
    gh, gw = gallery_rgb.shape[:2]
    qs = min(1.0, side / max(qh, qw))
    gs = min(1.0, side / max(gh, gw))
    q = cv2.resize(_grey(query_rgb), (max(1, round(qw * qs)), max(1, round(qh * qs))), interpolation=cv2.INTER_AREA)
    g = cv2.resize(_grey(gallery_rgb), (max(1, round(gw * gs)), max(1, round(gh * gs))), interpolation=cv2.INTER_AREA)
    # the homography in the small frames: gallery_small <- gallery <- query <- query_small
    small = np.diag([gs, gs, 1.0]) @ np.asarray(homography, np.float64) @ np.diag([1 / qs, 1 / qs, 1.0])
    h, w = q.shape
    warped = cv2.warpPerspective(g.astype(np.float32), small, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    valid = cv2.warpPerspective(np.ones_like(g, np.float32), small, (w, h),
                                flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP) > 0.5
    ch, cw = h // cell, w // cell
    if ch == 0 or cw == 0:
        return None

    def cells(x: np.ndarray) -> np.ndarray:  # (ch, cw, cell*cell)
        x = x[: ch * cell, : cw * cell].reshape(ch, cell, cw, cell)
        return x.transpose(0, 2, 1, 3).reshape(ch, cw, cell * cell)

    # a light blur first: sensor noise and JPEG blocks resample differently in a re-crop
    a = cells(cv2.GaussianBlur(q.astype(np.float32), (0, 0), 1.0))
    b = cells(cv2.GaussianBlur(warped, (0, 0), 1.0))
    inside_gallery = cells(valid.astype(np.float32)).min(axis=2) > 0
    a = a - a.mean(axis=2, keepdims=True)
    b = b - b.mean(axis=2, keepdims=True)
    sa, sb = np.sqrt((a * a).mean(axis=2)), np.sqrt((b * b).mean(axis=2))
    textured = np.maximum(sa, sb) > 8.0  # grey-level spread: below it a square is flat in both photos
    corr = (a * b).mean(axis=2) / np.maximum(sa * sb, 1e-6)
    changed = (inside_gallery & textured & (corr < min_correlation)) | ~inside_gallery
    counted = textured | ~inside_gallery
    return changed, counted, qs, (h, w)


def without_pairs(match: LocalMatch, drop: np.ndarray, min_inliers: int) -> LocalMatch:
    """The match less the dropped pairs (none left, or fewer than min_inliers: no match)."""
    keep = ~np.asarray(drop, bool)
    if int(keep.sum()) < min_inliers:
        return _no_match()
    w = match.weights[keep] if match.weights is not None else np.ones(int(keep.sum()), np.float32)
    return as_match(match.pairs[keep, :2], match.pairs[keep, 2:4], w)


def as_match(qxy: np.ndarray, gxy: np.ndarray, w: np.ndarray) -> LocalMatch:
    """LocalMatch from verified pairs, strongest evidence first; score = sum of weights."""
    if len(w) == 0:
        return _no_match()
    order = np.argsort(-w, kind="stable")
    pairs = np.concatenate([qxy, gxy], axis=1).astype(np.float32)[order]
    return LocalMatch(inliers=len(w), score=float(w.sum()), pairs=pairs, weights=w[order].astype(np.float32))


def match_pair(
    q: Features,
    g: Features,
    *,
    ratio: float = 0.8,
    model: str = "homography",
    thresh_frac: float = 0.03,
    min_inliers: int = 6,
) -> LocalMatch:
    """Pairwise baseline: Lowe ratio test + RANSAC/MAGSAC; score = inlier count.

    Kept for comparison and one-off checks. It cannot tell rosettes from shared background
    (same rock, same trunk at the same camera), which is why `match_shortlist` exists.
    """
    if len(q) < 2 or len(g) < 2:
        return _no_match()
    matcher = cv2.BFMatcher(cv2.NORM_L2)
    knn = matcher.knnMatch(_f32(q.descriptors), _f32(g.descriptors), k=2)
    qi, gi = [], []
    for pair in knn:
        if len(pair) == 2 and pair[0].distance < ratio * pair[1].distance:
            qi.append(pair[0].queryIdx)
            gi.append(pair[0].trainIdx)
    if not qi:
        return _no_match()
    qi_a, gi_a = np.array(qi), np.array(gi)
    ones = np.ones(len(qi_a), np.float32)
    idx = verify_pairs(q.keypoints[qi_a], g.keypoints[gi_a], ones, g.image_size,
                      model=model, thresh_frac=thresh_frac, min_inliers=min_inliers)
    return as_match(q.keypoints[qi_a[idx]], g.keypoints[gi_a[idx]], ones[idx])


def _cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="ignore")
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


_BF16 = _cpu_has_bf16()
_BLOCK = 256  # query rows per GEMM block: keeps the (rows x gallery) score matrix in cache-sized pieces


def knn_search(query: np.ndarray, base: np.ndarray, k: int, index: str = "flat") -> tuple[np.ndarray, np.ndarray]:
    """Squared-L2 k nearest neighbours (distances, indices), rows sorted ascending.

    "flat": exact, one fp32 GEMM + top-k in torch. Measured on this project's 2-core CPU
    with ~1200 x 55k RootSIFT: ~2.5x faster than faiss IndexFlatL2, whose search slows
    sharply above ~25k base vectors. "bf16": bf16 GEMM shortlists k+8 candidates that are
    then re-ranked exactly in fp32: 1.3-1.6x faster on a CPU with bf16 units, 99.9% the
    same neighbours; emulated (slow) elsewhere. "auto" picks bf16 only where /proc/cpuinfo
    lists avx512_bf16 or amx_bf16, else flat. "kdtree": cv2
    FLANN, 1 tree / 32 checks - fast but it lost 0.14 top-1 on nyala shortlists (see
    benchmarks/eval_local_nyala.py), so it is not the default.
    """
    k = min(k, len(base))
    if index == "auto":
        index = "bf16" if _BF16 else "flat"
    if index == "kdtree":
        fl = cv2.flann_Index(base, {"algorithm": 1, "trees": 1})
        idx, dist = fl.knnSearch(query, k, params={"checks": 32})
        return dist.astype(np.float32), idx.astype(np.int64)
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a project dependency
        d2 = (query**2).sum(1)[:, None] - 2 * query @ base.T + (base**2).sum(1)[None, :]
        idx = np.argpartition(d2, k - 1, axis=1)[:, :k]
        dist = np.take_along_axis(d2, idx, 1)
        o = np.argsort(dist, axis=1)
        return np.take_along_axis(dist, o, 1), np.take_along_axis(idx, o, 1)
    with torch.no_grad():
        q_t, b_t = torch.from_numpy(query), torch.from_numpy(base)
        bn = (b_t * b_t).sum(1)
        qn = (q_t * q_t).sum(1)
        low = index == "bf16"
        kc = min(len(base), k + 8) if low else k
        b_low = b_t.to(torch.bfloat16) if low else b_t
        dists, idxs = [], []
        for s in range(0, len(q_t), _BLOCK):
            qb = q_t[s : s + _BLOCK]
            # ||q-b||^2 = |q|^2 + |b|^2 - 2 q.b : rank by 2 q.b - |b|^2 (|q|^2 is per row)
            sc = (qb.to(torch.bfloat16) @ b_low.T).float() if low else qb @ b_t.T
            sc.mul_(2).sub_(bn)
            v, i = sc.topk(kc, dim=1)
            if low:  # exact re-rank of the candidates
                diff = b_t[i] - qb[:, None, :]
                d2 = (diff * diff).sum(2)
                d2, o = d2.topk(k, dim=1, largest=False)
                i = torch.gather(i, 1, o)
            else:
                d2 = qn[s : s + _BLOCK, None] - v
            dists.append(d2)
            idxs.append(i)
        dist = torch.cat(dists).clamp_(min=0).numpy()
        idx = torch.cat(idxs).numpy().astype(np.int64)
    return dist, idx


def lnbnn_votes(
    dist: np.ndarray, img: np.ndarray, idn: np.ndarray, valid: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised LNBNN votes from sorted neighbour lists.

    dist/img/idn/valid: (Nq, K) neighbour distance, owning image, owning identity, validity,
    each row sorted by distance. Returns (query row, neighbour column, weight) of the votes:
    the nearest point of each image whose identity is among the row's k nearest identities,
    weighted by d(normaliser) - d, the normaliser being the (k+1)-th nearest identity.
    """
    nq, kk = dist.shape
    # invalid columns get unique ids so they never merge with anything
    uniq = -(np.arange(nq * kk, dtype=np.int64).reshape(nq, kk) + 1)
    idv = np.where(valid, idn, uniq)
    imv = np.where(valid, img, uniq)
    tri = np.tril(np.ones((kk, kk), bool), -1)  # tri[j, f]: f < j
    same_id = idv[:, :, None] == idv[:, None, :]
    first_id = ~np.any(same_id & tri[None], axis=2) & valid
    first_img = ~np.any((imv[:, :, None] == imv[:, None, :]) & tri[None], axis=2) & valid
    cs = np.cumsum(first_id, axis=1)  # distinct identities seen up to column j
    f_idx = np.argmax(same_id, axis=2)  # first column holding the same identity
    id_rank = np.take_along_axis(cs, f_idx, axis=1) - 1
    is_norm = first_id & (cs == k + 1)
    has_norm = is_norm.any(axis=1)
    d_norm = np.where(
        has_norm,
        dist[np.arange(nq), np.argmax(is_norm, axis=1)],
        np.where(valid, dist, -np.inf).max(axis=1),  # fallback: farthest retrieved point
    )
    vote = first_img & (id_rank < k)
    w = d_norm[:, None] - dist
    vote &= w > 0
    rows, cols = np.nonzero(vote)
    return rows, cols, w[rows, cols].astype(np.float32)


def match_shortlist(
    q: Features,
    gallery: Sequence[Features],
    *,
    identities: Sequence[Hashable] | None = None,
    k: int = 4,
    extra: int = 8,
    model: str = "homography",
    thresh_frac: float = 0.03,
    min_inliers: int = 6,
    index: str = "auto",
    squared: bool = False,
    neighbours: tuple[np.ndarray, np.ndarray] | None = None,
    exclusive: bool = True,
) -> list[LocalMatch]:
    """One-vs-many verification of a shortlist (HotSpotter LNBNN), one LocalMatch per image.

    All shortlisted gallery descriptors go into one index. For each query feature the
    nearest neighbours are grouped by identity (each image is its own identity when
    `identities` is None); the best `k` identities get a vote of weight
    d(normaliser) - d(match), where the normaliser is the best distance to the (k+1)-th
    identity. A feature that matches many individuals about equally well - grass, rock,
    the same tree trunk at one camera - gets ~0 weight; a spot that matches one animal
    much better than all others gets a large weight. Each image's weighted matches are then
    verified geometrically and its score is the sum of inlier weights.

    `neighbours` = (squared L2 distances, indices into the concatenation of the gallery's
    descriptors), rows sorted ascending, lets a caller supply the search from its own
    (persistent) index; -1 indices mark missing neighbours.
    """
    n_g = len(gallery)
    if n_g == 0:
        return []
    if identities is None:
        ident = np.arange(n_g)
    else:
        if len(identities) != n_g:
            raise ValueError("identities must have one entry per gallery image")
        _, ident = np.unique(np.array([str(i) for i in identities]), return_inverse=True)
    sizes = np.array([len(g) for g in gallery])
    if len(q) == 0 or sizes.sum() == 0:
        return [_no_match() for _ in gallery]
    owner = np.repeat(np.arange(n_g), sizes)
    local_idx = np.concatenate([np.arange(s) for s in sizes])
    if neighbours is None:
        base = np.concatenate([_f32(g.descriptors) for g in gallery if len(g)], axis=0)
        dist, nn = knn_search(_f32(q.descriptors), base, min(len(base), k + 1 + extra), index)
    else:
        dist, nn = neighbours
    valid = nn >= 0
    dist = np.maximum(dist.astype(np.float32), 0)
    if not squared:
        dist = np.sqrt(dist)
    nn_c = np.where(valid, nn, 0)
    img = owner[nn_c]
    # With few identities in the shortlist the (k+1)-th identity may not exist; shrink k so
    # the normaliser is always another animal (a background point shared by all of them
    # then scores ~0), except for a single-identity gallery where it falls back to the
    # farthest retrieved point (a loose ratio test).
    n_ids = int(ident.max()) + 1
    k_eff = max(1, min(k, n_ids - 1))
    rows, cols, w = lnbnn_votes(dist, img, ident[img], valid, k_eff)
    v_img = img[rows, cols]
    v_g = local_idx[nn_c[rows, cols]]

    # per-image geometric verification of that image's weighted votes
    inl_rows, inl_g, inl_w, inl_img = [], [], [], []
    for j, g in enumerate(gallery):
        sel = np.nonzero(v_img == j)[0]
        if len(sel) == 0:
            continue
        idx = verify_pairs(q.keypoints[rows[sel]], g.keypoints[v_g[sel]], w[sel], g.image_size,
                          model=model, thresh_frac=thresh_frac, min_inliers=min_inliers)
        sel = sel[idx]
        inl_rows.append(rows[sel])
        inl_g.append(v_g[sel])
        inl_w.append(w[sel])
        inl_img.append(np.full(len(sel), j))
    if not inl_rows:
        return [_no_match() for _ in gallery]
    r_all, g_all = np.concatenate(inl_rows), np.concatenate(inl_g)
    w_all, i_all = np.concatenate(inl_w), np.concatenate(inl_img)
    if exclusive:
        w_all = exclusive_weights(r_all, ident[i_all], w_all)

    out: list[LocalMatch] = []
    for j, g in enumerate(gallery):
        sel = (i_all == j) & (w_all > 0)
        if sel.sum() < min_inliers:
            out.append(_no_match())
            continue
        out.append(as_match(q.keypoints[r_all[sel]], g.keypoints[g_all[sel]], w_all[sel]))
    return out


def exclusive_weights(rows: np.ndarray, ident: np.ndarray, w: np.ndarray) -> np.ndarray:
    """One query spot belongs to one animal: verified votes keep only their margin.

    If a query point is a geometric inlier for two different identities, it is most likely
    background that both gallery photos share (same rock, same camera). Each such vote keeps
    w - (best weight of the same point for any OTHER identity), clipped at 0; a point that is
    an inlier for one identity only (in any number of its images) keeps its full weight.
    """
    out = w.copy()
    if len(w) == 0:
        return out
    # best weight per (query point, identity)
    key = rows.astype(np.int64) * (int(ident.max()) + 1) + ident
    uk, inv = np.unique(key, return_inverse=True)
    best = np.zeros(len(uk), np.float32)
    np.maximum.at(best, inv, w)
    k_row = uk // (int(ident.max()) + 1)
    # per query point: the top two identity weights
    order = np.lexsort((-best, k_row))
    k_sorted, b_sorted = k_row[order], best[order]
    start = np.r_[True, k_sorted[1:] != k_sorted[:-1]]
    first_idx = np.nonzero(start)[0]
    top1 = dict(zip(k_sorted[first_idx].tolist(), b_sorted[first_idx].tolist(), strict=True))
    second_mask = np.r_[False, ~start[1:]] & np.r_[True, start[:-1]]  # 2nd entry of each group
    top2 = dict(zip(k_sorted[second_mask].tolist(), b_sorted[second_mask].tolist(), strict=True))
    for n in range(len(w)):
        r = int(rows[n])
        mine = best[inv[n]]
        t1, t2 = top1[r], top2.get(r, 0.0)
        other = t2 if mine >= t1 else t1  # best weight of this point for another identity
        out[n] = max(0.0, float(w[n]) - other)
    return out


# ----------------------------------------------------------------------------- drawing


def _put_label(img: np.ndarray, text: str, org: tuple[int, int]) -> None:
    h = img.shape[0]
    fs = max(0.45, min(1.2, h / 600.0))
    th = max(1, int(round(fs * 2)))
    (tw, tht), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, fs, th)
    x, y = org
    cv2.rectangle(img, (x - 4, y - tht - 6), (x + tw + 4, y + base + 2), (0, 0, 0), -1)
    cv2.putText(img, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, fs, (255, 255, 255), th, cv2.LINE_AA)


def draw_evidence(
    query_rgb: np.ndarray,
    gallery_rgb: np.ndarray,
    match: LocalMatch,
    *,
    labels: tuple[str, str] | None = None,
    max_lines: int = 60,
    height: int | None = None,
) -> np.ndarray:
    """Side-by-side RGB picture: query left, gallery right, matched spots joined by lines.

    Both images are scaled to the same height (the smaller of the two, between 240 and
    720 px unless `height` is given), each at most 2x as wide as high (a 100000x16 strip is
    shrunk to fit, not stretched to 1.5 million pixels wide): the picture is at most
    720 x 2888 px whatever comes in. The strongest `max_lines` matches are drawn.
    """
    qa = query_rgb[..., :3] if query_rgb.ndim == 3 else query_rgb[..., None]
    ga = gallery_rgb[..., :3] if gallery_rgb.ndim == 3 else gallery_rgb[..., None]
    if height is None:
        height = int(np.clip(min(qa.shape[0], ga.shape[0]), 240, 720))
    max_width = 2 * height

    def fit(a: np.ndarray) -> tuple[np.ndarray, float]:
        s = min(height / a.shape[0], max_width / a.shape[1])
        size = (max(1, min(max_width, round(a.shape[1] * s))), max(1, min(height, round(a.shape[0] * s))))
        out = cv2.resize(np.ascontiguousarray(a), size, interpolation=cv2.INTER_AREA)
        return (out if out.ndim == 3 and out.shape[2] == 3 else np.dstack([out.reshape(size[1], size[0])] * 3)), s

    qr, sq = fit(qa)
    gr, sg = fit(ga)
    gap = 8
    canvas = np.full((height, qr.shape[1] + gap + gr.shape[1], 3), 255, np.uint8)
    canvas[: qr.shape[0], : qr.shape[1]] = qr
    xoff = qr.shape[1] + gap
    canvas[: gr.shape[0], xoff:] = gr
    pairs = np.asarray(match.pairs, np.float32).reshape(-1, 4)[: max(0, int(max_lines))]
    n = len(pairs)
    thick = max(1, round(height / 360))
    rad = max(3, round(height / 120))
    for i, (qx, qy, gx, gy) in enumerate(pairs):
        hue = int(180 * i / max(1, n))
        col = cv2.cvtColor(np.uint8([[[hue, 230, 255]]]), cv2.COLOR_HSV2RGB)[0, 0].tolist()
        p1 = (int(round(qx * sq)), int(round(qy * sq)))
        p2 = (int(round(gx * sg)) + xoff, int(round(gy * sg)))
        cv2.line(canvas, p1, p2, col, thick, cv2.LINE_AA)
        cv2.circle(canvas, p1, rad, col, thick, cv2.LINE_AA)
        cv2.circle(canvas, p2, rad, col, thick, cv2.LINE_AA)
    if labels is not None:
        pad = max(18, round(height / 20))
        _put_label(canvas, str(labels[0]), (8, pad + 4))
        _put_label(canvas, str(labels[1]), (xoff + 8, pad + 4))
    _put_label(canvas, f"{match.inliers} matched spots, score {match.score:.2f}", (8, height - 10))
    return canvas
