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

Search is exact (a torch GEMM, `reid.local._knn`) up to `exact_limit` descriptors per flank
group (~150-300 gallery images) and a FAISS IVF index with 8-bit codes above it, trained on
first use and extended as images are enrolled: exact search over a 10,000-image gallery
(5-12 M descriptors) would cost seconds per query on 2 cores; see benchmarks/bench_identify.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import numpy as np

from reid import local

FLANK_GROUPS = ("left", "right", "other")


def _group(viewpoint: str | None) -> str:
    return viewpoint if viewpoint in ("left", "right") else "other"


def searchable_groups(query_viewpoint: str | None) -> tuple[str, ...]:
    """Gallery flank groups a query may be compared with (a known flank never meets the other)."""
    g = _group(query_viewpoint)
    return FLANK_GROUPS if g == "other" else (g, "other")


class _Group:
    """One flank group's descriptors (float16), who owns each row, and its search structure."""

    def __init__(self) -> None:
        self.descriptors: list[np.ndarray] = []
        self.image_ids: list[np.ndarray] = []
        self.individual_ids: list[np.ndarray] = []
        self.size = 0
        self._owners: tuple[np.ndarray, np.ndarray] | None = None
        self._exact: np.ndarray | None = None  # float32 copy for the exact search
        self._ivf = None  # faiss IVF index over rows [0, _ivf_rows)
        self._ivf_rows = 0
        self._ivf_trained_at = 0

    def add(self, descriptors: np.ndarray, image_id: int, individual_id: int) -> None:
        n = len(descriptors)
        self.descriptors.append(np.asarray(descriptors, np.float16))  # half the memory of float32
        self.image_ids.append(np.full(n, image_id, np.int64))
        self.individual_ids.append(np.full(n, individual_id, np.int64))
        self.size += n
        self._owners = None
        self._exact = None

    def owners(self) -> tuple[np.ndarray, np.ndarray]:
        if self._owners is None:
            self._owners = ((np.concatenate(self.image_ids), np.concatenate(self.individual_ids))
                            if self.size else (np.zeros(0, np.int64), np.zeros(0, np.int64)))
        return self._owners

    def _rows(self, start: int) -> np.ndarray:
        """float32 descriptors of rows [start, size)."""
        out, seen = [], 0
        for chunk in self.descriptors:
            if seen + len(chunk) > start:
                out.append(chunk[max(0, start - seen):])
            seen += len(chunk)
        return np.ascontiguousarray(np.concatenate(out), dtype=np.float32)

    def search(self, query: np.ndarray, kk: int, exact_limit: int, nprobe: int) -> tuple[np.ndarray, np.ndarray]:
        """Squared-L2 neighbours (distances, row indices; -1 = none), rows sorted ascending."""
        kk = min(kk, self.size)
        if self.size <= exact_limit:
            if self._exact is None:
                self._exact = self._rows(0)
            return local._knn(query, self._exact, kk, "auto")
        import faiss

        if self._ivf is None or self.size > 4 * self._ivf_trained_at:
            # ~4 sqrt(N) inverted lists trained on a sample (k-means cost grows with the sample,
            # accuracy barely); 8-bit scalar codes: a quarter of float32's memory.
            nlist = int(min(8192, max(64, 4 * np.sqrt(self.size))))
            base = self._rows(0)
            rng = np.random.default_rng(0)
            sample = base[rng.choice(len(base), min(len(base), 50 * nlist), replace=False)]
            ivf = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatL2(base.shape[1]), base.shape[1], nlist,
                                                faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_L2)
            ivf.cp.niter = 10
            ivf.train(sample)
            ivf.add(base)
            self._ivf, self._ivf_rows, self._ivf_trained_at = ivf, self.size, self.size
        elif self._ivf_rows < self.size:  # images enrolled since: add them, keep the trained lists
            self._ivf.add(self._rows(self._ivf_rows))
            self._ivf_rows = self.size
        self._ivf.nprobe = nprobe
        dist, idx = self._ivf.search(query, kk)
        return dist.astype(np.float32), idx.astype(np.int64)


class KeypointIndex:
    """All enrolled keypoint descriptors, searchable per flank group; thread-safe to add and vote.

    `vote` returns, per individual, the LNBNN vote mass of the query's descriptors and the
    gallery images that collected most of it: a cheap, geometry-free ranking used only to
    choose which individuals get verified.

    Memory: 256 bytes per descriptor (float16), plus 128 per descriptor in IVF mode; a
    10,000-image gallery at ~500 keypoints per image is ~1.9 GB.
    """

    def __init__(self, *, k: int = 4, extra: int = 8, exact_limit: int = 150_000, nprobe: int = 16) -> None:
        self.k, self.extra = k, extra
        self.exact_limit, self.nprobe = exact_limit, nprobe
        self._groups = {g: _Group() for g in FLANK_GROUPS}
        self._images: set[int] = set()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._images)

    def __contains__(self, image_id: int) -> bool:
        return int(image_id) in self._images

    @property
    def descriptor_count(self) -> int:
        return sum(g.size for g in self._groups.values())

    def add(self, image_id: int, individual_id: int, viewpoint: str | None, features: local.Features) -> None:
        """Add one gallery image's keypoints (a no-op for an image already in the index)."""
        with self._lock:
            if int(image_id) in self._images:
                return
            self._images.add(int(image_id))
            if len(features):
                self._groups[_group(viewpoint)].add(features.descriptors, int(image_id), int(individual_id))

    def add_many(self, items: Iterable[tuple[int, int, str | None, local.Features]]) -> None:
        for item in items:
            self.add(*item)

    def _neighbours(self, query: np.ndarray, groups: tuple[str, ...],
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(distances, owning image, owning individual) of each query row's neighbours, sorted."""
        kk = self.k + 1 + self.extra
        dists, imgs, inds = [], [], []
        for name in groups:
            g = self._groups[name]
            if g.size == 0:
                continue
            d, i = g.search(query, kk, self.exact_limit, self.nprobe)
            im, ind = g.owners()
            ok = i >= 0
            i = np.where(ok, i, 0)
            dists.append(np.where(ok, d, np.inf))
            imgs.append(np.where(ok, im[i], -1))
            inds.append(np.where(ok, ind[i], -1))
        if not dists:
            return None
        d, im, ind = np.concatenate(dists, 1), np.concatenate(imgs, 1), np.concatenate(inds, 1)
        order = np.argsort(d, axis=1, kind="stable")[:, :kk]
        return (np.take_along_axis(d, order, 1), np.take_along_axis(im, order, 1),
                np.take_along_axis(ind, order, 1))

    def vote(self, query: local.Features, viewpoint: str | None,
             ) -> dict[int, tuple[float, list[int]]]:
        """{individual_id: (vote mass, its gallery image ids, most-voted first)} for one query."""
        if len(query) == 0:
            return {}
        with self._lock:
            found = self._neighbours(np.ascontiguousarray(query.descriptors, np.float32),
                                     searchable_groups(viewpoint))
        if found is None:
            return {}
        dist, img, ind = found
        valid = np.isfinite(dist) & (img >= 0)
        n_ids = len(np.unique(ind[valid]))
        k_eff = max(1, min(self.k, n_ids - 1))
        rows, cols, w = local._lnbnn_votes(np.sqrt(np.maximum(np.where(valid, dist, 0), 0)), img, ind, valid, k_eff)
        if len(w) == 0:
            return {}
        v_img, v_ind = img[rows, cols], ind[rows, cols]
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
