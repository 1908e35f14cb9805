"""Geometric verification: which matched keypoints agree on one transform (RANSAC / MAGSAC).

`verify_pairs` checks one gallery image's weighted matches; `exclusive_weights` lets a query
spot verified for two animals keep only its margin; `as_match` / `without_pairs` build the
result. reid.keypoints.index.KeypointIndex.verify runs them on the whole-gallery votes (the
identify path). `match_pair` is plain pairwise matching (Lowe ratio test + RANSAC), for the
review page's evidence picture and as the baseline of benchmarks/eval_local_nyala.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from reid.keypoints.extract import Features


@dataclass
class LocalMatch:
    """Verified correspondences between a query and one gallery image."""

    inliers: int
    score: float
    pairs: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))  # qx,qy,gx,gy
    weights: np.ndarray | None = None  # (M,) evidence weight per pair; pairs sorted by it, best first


def no_match() -> LocalMatch:
    return LocalMatch(0, 0.0, np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))


def f32(d: np.ndarray) -> np.ndarray:
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


def without_pairs(match: LocalMatch, drop: np.ndarray, min_inliers: int) -> LocalMatch:
    """The match less the dropped pairs (none left, or fewer than min_inliers: no match)."""
    keep = ~np.asarray(drop, bool)
    if int(keep.sum()) < min_inliers:
        return no_match()
    w = match.weights[keep] if match.weights is not None else np.ones(int(keep.sum()), np.float32)
    return as_match(match.pairs[keep, :2], match.pairs[keep, 2:4], w)


def as_match(qxy: np.ndarray, gxy: np.ndarray, w: np.ndarray) -> LocalMatch:
    """LocalMatch from verified pairs, strongest evidence first; score = sum of weights."""
    if len(w) == 0:
        return no_match()
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
        return no_match()
    matcher = cv2.BFMatcher(cv2.NORM_L2)
    knn = matcher.knnMatch(f32(q.descriptors), f32(g.descriptors), k=2)
    qi, gi = [], []
    for pair in knn:
        if len(pair) == 2 and pair[0].distance < ratio * pair[1].distance:
            qi.append(pair[0].queryIdx)
            gi.append(pair[0].trainIdx)
    if not qi:
        return no_match()
    qi_a, gi_a = np.array(qi), np.array(gi)
    ones = np.ones(len(qi_a), np.float32)
    idx = verify_pairs(q.keypoints[qi_a], g.keypoints[gi_a], ones, g.image_size,
                      model=model, thresh_frac=thresh_frac, min_inliers=min_inliers)
    return as_match(q.keypoints[qi_a[idx]], g.keypoints[gi_a[idx]], ones[idx])
