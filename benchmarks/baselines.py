"""Keypoint matching baselines only benchmarks use (eval_local_nyala.py, bench_local.py).

`match_shortlist`: LNBNN over an explicit list of images, each verified on its own: the same
steps as the live whole-gallery index (reid.keypoints.index.KeypointIndex.vote / verify), for
comparisons without an index. The pairwise baseline is reid.keypoints.verify.match_pair.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

from reid.keypoints.extract import Features
from reid.keypoints.verify import LocalMatch, as_match, exclusive_weights, f32, no_match, verify_pairs
from reid.keypoints.vote import knn_search, lnbnn_votes


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
        return [no_match() for _ in gallery]
    owner = np.repeat(np.arange(n_g), sizes)
    local_idx = np.concatenate([np.arange(s) for s in sizes])
    if neighbours is None:
        base = np.concatenate([f32(g.descriptors) for g in gallery if len(g)], axis=0)
        dist, nn = knn_search(f32(q.descriptors), base, min(len(base), k + 1 + extra), index)
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
        return [no_match() for _ in gallery]
    r_all, g_all = np.concatenate(inl_rows), np.concatenate(inl_g)
    w_all, i_all = np.concatenate(inl_w), np.concatenate(inl_img)
    if exclusive:
        w_all = exclusive_weights(r_all, ident[i_all], w_all)

    out: list[LocalMatch] = []
    for j, g in enumerate(gallery):
        sel = (i_all == j) & (w_all > 0)
        if sel.sum() < min_inliers:
            out.append(no_match())
            continue
        out.append(as_match(q.keypoints[r_all[sel]], g.keypoints[g_all[sel]], w_all[sel]))
    return out
