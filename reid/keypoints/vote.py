"""One-vs-many keypoint votes (LNBNN): the neighbour search and the vote weights.

Why one-vs-many: on real photos two different animals at one camera share rocks, trunks and
grass, and pairwise SIFT + RANSAC verifies hundreds of background "inliers" between them.
LNBNN weighs each match by how much closer it is than the best match to the (k+1)-th other
individual, so a point that matches many animals (background) weighs ~0 (measured: see
reid.keypoints.extract). reid.keypoints.index holds every gallery keypoint and calls these
for each query.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


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
