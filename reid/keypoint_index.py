"""Whole-gallery keypoint voting: which individuals do the query's spots point at?

The embedding shortlist alone misses many true individuals on real photos (nyala-dev: the
right animal is outside the embedding's top 20 for about half the queries), and keypoint
verification can only rescue what is shortlisted. HotSpotter's answer is to send every
query descriptor to ONE index over all gallery descriptors and let each one vote, with
LNBNN weights, for the few individuals it matches distinctly better than the others.
This module is that index; `reid.local.match_shortlist` then verifies the union of the
embedding's and the votes' candidates geometrically.

Flanks are kept apart: one sub-index per viewpoint group, and a query searches only the
groups its flank is compatible with (left never votes for right).

Search is exact (a torch GEMM, `reid.local._knn`) up to `exact_limit` descriptors and a
FAISS IVF index above it, so a 10,000-image gallery (~2-4 M descriptors) answers in tens of
milliseconds instead of seconds; see benchmarks/bench_identify.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from reid import local

FLANK_GROUPS = ("left", "right", "other")


def _group(viewpoint: str | None) -> str:
    return viewpoint if viewpoint in ("left", "right") else "other"


def searchable_groups(query_viewpoint: str | None) -> tuple[str, ...]:
    """Gallery flank groups a query may be compared with (a known flank never meets the other)."""
    g = _group(query_viewpoint)
    return FLANK_GROUPS if g == "other" else (g, "other")


@dataclass
class _Part:
    """One flank group's descriptors and who owns each row."""

    descriptors: list[np.ndarray]
    image_ids: list[np.ndarray]
    individual_ids: list[np.ndarray]
    packed: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def pack(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.packed is None:
            if self.descriptors:
                self.packed = (np.ascontiguousarray(np.concatenate(self.descriptors), dtype=np.float32),
                               np.concatenate(self.image_ids), np.concatenate(self.individual_ids))
            else:
                self.packed = (np.zeros((0, local.DESC_DIM), np.float32), np.zeros(0, np.int64),
                               np.zeros(0, np.int64))
        return self.packed


class KeypointIndex:
    """All enrolled keypoint descriptors, searchable per flank group; thread-safe to add and vote.

    `vote` returns, per individual, the LNBNN vote mass of the query's descriptors and the
    gallery images that collected most of it: a cheap, geometry-free ranking used only to
    choose which individuals get verified.
    """

    def __init__(self, *, k: int = 4, extra: int = 8, exact_limit: int = 1_500_000, nprobe: int = 24) -> None:
        self.k, self.extra = k, extra
        self.exact_limit, self.nprobe = exact_limit, nprobe
        self._parts = {g: _Part([], [], []) for g in FLANK_GROUPS}
        self._images: set[int] = set()
        self._lock = threading.Lock()
        self._ivf: dict[tuple[str, ...], object] = {}

    def __len__(self) -> int:
        return len(self._images)

    def __contains__(self, image_id: int) -> bool:
        return int(image_id) in self._images

    @property
    def descriptor_count(self) -> int:
        return sum(int(sum(len(d) for d in p.descriptors)) for p in self._parts.values())

    def add(self, image_id: int, individual_id: int, viewpoint: str | None, features: local.Features) -> None:
        """Add one gallery image's keypoints (a no-op for an image already in the index)."""
        with self._lock:
            if int(image_id) in self._images:
                return
            self._images.add(int(image_id))
            n = len(features)
            if n == 0:
                return
            part = self._parts[_group(viewpoint)]
            part.descriptors.append(np.asarray(features.descriptors, np.float16))  # half the memory
            part.image_ids.append(np.full(n, int(image_id), np.int64))
            part.individual_ids.append(np.full(n, int(individual_id), np.int64))
            part.packed = None
            self._ivf = {key: ix for key, ix in self._ivf.items() if _group(viewpoint) not in key}

    def add_many(self, items: Iterable[tuple[int, int, str | None, local.Features]]) -> None:
        for item in items:
            self.add(*item)

    def _base(self, groups: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        packs = [self._parts[g].pack() for g in groups]
        if len(packs) == 1:
            return packs[0]
        return tuple(np.concatenate(a) for a in zip(*packs, strict=True))  # type: ignore[return-value]

    def _search(self, groups: tuple[str, ...], base: np.ndarray, query: np.ndarray,
                kk: int) -> tuple[np.ndarray, np.ndarray]:
        if len(base) <= self.exact_limit:
            return local._knn(query, base, kk, "auto")
        import faiss

        ivf = self._ivf.get(groups)
        if ivf is None:
            # sqrt(N)-ish lists; train on a sample (k-means cost grows with it, accuracy barely)
            nlist = int(min(16384, max(256, 4 * np.sqrt(len(base)))))
            rng = np.random.default_rng(0)
            sample = base[rng.choice(len(base), min(len(base), 40 * nlist), replace=False)]
            quantizer = faiss.IndexFlatL2(base.shape[1])
            ivf = faiss.IndexIVFFlat(quantizer, base.shape[1], nlist)
            ivf.train(sample)
            ivf.add(base)
            ivf.nprobe = self.nprobe
            self._ivf[groups] = ivf
        dist, idx = ivf.search(query, kk)  # type: ignore[attr-defined]
        return dist.astype(np.float32), idx.astype(np.int64)

    def vote(self, query: local.Features, viewpoint: str | None,
             ) -> dict[int, tuple[float, list[int]]]:
        """{individual_id: (vote mass, its gallery image ids, most-voted first)} for one query."""
        if len(query) == 0:
            return {}
        groups = searchable_groups(viewpoint)
        with self._lock:
            base, img, ind = self._base(groups)
            if len(base) == 0:
                return {}
            kk = min(len(base), self.k + 1 + self.extra)
            dist, nn = self._search(groups, base, np.ascontiguousarray(query.descriptors, np.float32), kk)
        valid = nn >= 0
        nn_c = np.where(valid, nn, 0)
        n_ids = len(np.unique(ind))
        k_eff = max(1, min(self.k, n_ids - 1))
        rows, cols, w = local._lnbnn_votes(np.sqrt(np.maximum(dist, 0)), img[nn_c], ind[nn_c], valid, k_eff)
        if len(w) == 0:
            return {}
        v_img, v_ind = img[nn_c[rows, cols]], ind[nn_c[rows, cols]]
        # An individual's mass counts each query spot once (its best image), so an animal with
        # many gallery photos is not favoured over one with a single good photo.
        u_ind, ind_pos = np.unique(v_ind, return_inverse=True)
        best = np.zeros((len(query), len(u_ind)), np.float32)
        np.maximum.at(best, (rows, ind_pos), w)
        mass = best.sum(0)
        per_image: dict[int, float] = {}
        for i, x in zip(v_img.tolist(), w.tolist(), strict=True):
            per_image[i] = per_image.get(i, 0.0) + x
        images: dict[int, list[int]] = {}
        for i, d in sorted(zip(v_img.tolist(), v_ind.tolist(), strict=True), key=lambda t: -per_image[t[0]]):
            lst = images.setdefault(d, [])
            if i not in lst:
                lst.append(i)
        return {int(d): (float(m), images[int(d)]) for d, m in zip(u_ind.tolist(), mass.tolist(), strict=True)}
