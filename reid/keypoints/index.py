"""Whole-gallery keypoint voting: which individuals do the query's spots point at?

The embedding shortlist alone misses many true individuals on real photos (nyala-dev: the
embedding's top-5 holds the right animal for 28% of known queries), and keypoint
verification can only rescue what is shortlisted. HotSpotter's answer is to send every
query descriptor to ONE index over all gallery descriptors and let each one vote, with
LNBNN weights, for the few individuals it matches distinctly better than the others.
This module is that index. The same votes are then verified geometrically for the
candidates (the embedding's best individuals and the votes' best): per gallery image, its
voted pairs go through reid.keypoints.verify's RANSAC, and a query spot verified for two different
animals keeps only its margin (`reid.exclusive_weights`). One neighbour search per query
serves both ranking and verification.

Flanks are kept apart: one sub-index per viewpoint group, and a query searches only the
groups its flank is compatible with (left never votes for right).

Search is exact (a torch GEMM, `reid.knn_search`) up to `exact_limit` descriptors per flank
group (~100 gallery images) and a FAISS IVF index with 8-bit codes above it, trained on
first use and extended as images are enrolled: exact search over a 10,000-image gallery
(5-12 M descriptors) would cost seconds per query on 2 cores; see benchmarks/bench_identify.py.
`save` / `load` keep the whole index (with its trained lists) in one .npz in the data dir,
so a restart reads it instead of rebuilding it (reid.keypoints.store.KeypointStore.index).
"""

from __future__ import annotations

import threading
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reid.fileio import atomic_writer
from reid.keypoints.extract import Features
from reid.keypoints.verify import LocalMatch, as_match, exclusive_weights, verify_pairs
from reid.keypoints.vote import knn_search, lnbnn_votes

FLANK_GROUPS = ("left", "right", "other")
SAVE_VERSION = 1  # KeypointIndex.save format
# Exact search up to this many descriptors per flank group, the IVF index above. Measured on
# nyala-dev (2 cores, ~480 query keypoints, two groups of ~124k, ~1,400 lists each): a vote
# takes 202 ms exact; with the IVF 11 ms probing 16 lists, 45 ms probing 128. Fused top-1:
# exact 0.368, 128 lists 0.364, 16 lists 0.341 (README "Accuracy").
EXACT_LIMIT = 50_000
NPROBE = 128  # IVF lists probed per search, at most
IVF_SCAN = 12_000  # descriptors scanned per query keypoint: nyala's 128 lists; 10,000 images ~28


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
        self.points: list[np.ndarray] = []  # (n, 2) keypoint x, y in original image pixels
        self.size = 0
        self._owners: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._exact: np.ndarray | None = None  # float32 copy for the exact search
        self._ivf = None  # faiss IVF index over rows [0, _ivf_rows)
        self._ivf_rows = 0
        self._ivf_trained_at = 0

    def add(self, features: Features, image_id: int, individual_id: int) -> None:
        n = len(features)
        self.descriptors.append(np.asarray(features.descriptors, np.float16))  # half the memory of float32
        self.image_ids.append(np.full(n, image_id, np.int64))
        self.individual_ids.append(np.full(n, individual_id, np.int64))
        self.points.append(np.asarray(features.keypoints, np.float32).reshape(n, 2))
        self.size += n
        self._owners = None
        self._exact = None

    def drop(self, image_ids: set[int]) -> None:
        """These images' rows stop voting: their owners become -1 (a tombstone, so the IVF's row
        numbers stay valid). New arrays, not in-place writes: a snapshot being saved keeps its own."""
        if not self.size or not image_ids:
            return
        self.compact()
        im = self.image_ids[0]
        gone = np.isin(im, np.fromiter(image_ids, np.int64))
        if gone.any():
            self.image_ids = [np.where(gone, -1, im)]
            self.individual_ids = [np.where(gone, -1, self.individual_ids[0])]
            self._owners = None

    def relabel(self, owners: dict[int, int]) -> None:
        """Move images to other individuals (a merge or a correction in the catalogue)."""
        if not self.size or not owners:
            return
        self.compact()
        im, ind = self.image_ids[0], self.individual_ids[0].copy()
        for image_id, individual_id in owners.items():
            ind[im == image_id] = individual_id
        self.individual_ids = [ind]
        self._owners = None

    def owners(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(image id, individual id, keypoint x y) of every row (-1: a removed image's row)."""
        if self._owners is None:
            self._owners = ((np.concatenate(self.image_ids), np.concatenate(self.individual_ids),
                             np.concatenate(self.points))
                            if self.size else (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 2))))
        return self._owners

    def _rows(self, start: int) -> np.ndarray:
        """float32 descriptors of rows [start, size)."""
        out, seen = [], 0
        for chunk in self.descriptors:
            if seen + len(chunk) > start:
                out.append(chunk[max(0, start - seen):])
            seen += len(chunk)
        return np.ascontiguousarray(np.concatenate(out), dtype=np.float32)

    def compact(self) -> None:
        """One array per column instead of one per image (faster to save and to search)."""
        if len(self.descriptors) > 1:
            for name in ("descriptors", "image_ids", "individual_ids", "points"):
                setattr(self, name, [np.concatenate(getattr(self, name))])

    def prepare(self, exact_limit: int) -> None:
        """Build (or extend) the IVF index when the group is too big for exact search."""
        if self.size <= exact_limit:
            return
        import faiss

        if self._ivf is None or self.size > 4 * self._ivf_trained_at:
            # ~4 sqrt(N) inverted lists trained on a sample (k-means cost grows with the sample,
            # accuracy barely); 8-bit scalar codes: a quarter of float32's memory.
            nlist = int(min(4096, max(64, 4 * np.sqrt(self.size))))
            base = self._rows(0)
            rng = np.random.default_rng(0)
            sample = base[rng.choice(len(base), min(len(base), 40 * nlist), replace=False)]
            ivf = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatL2(base.shape[1]), base.shape[1], nlist,
                                                faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_L2)
            ivf.cp.niter = 10
            ivf.train(sample)
            ivf.add(base)
            self._ivf, self._ivf_rows, self._ivf_trained_at = ivf, self.size, self.size
        elif self._ivf_rows < self.size:  # images enrolled since: add them, keep the trained lists
            self._ivf.add(self._rows(self._ivf_rows))
            self._ivf_rows = self.size

    def search(self, query: np.ndarray, kk: int, exact_limit: int, nprobe: int,
               scan: int = IVF_SCAN) -> tuple[np.ndarray, np.ndarray]:
        """Squared-L2 neighbours (distances, row indices; -1 = none), rows sorted ascending."""
        kk = min(kk, self.size)
        if self.size <= exact_limit:
            if self._exact is None:
                self._exact = self._rows(0)
            return knn_search(query, self._exact, kk, "auto")
        self.prepare(exact_limit)
        # probe lists until ~`scan` descriptors are scanned (at most nprobe lists, at least 16):
        # a fixed work budget, so a 10,000-image gallery's long lists do not multiply the cost
        per_list = max(1.0, self._ivf_rows / self._ivf.nlist)
        self._ivf.nprobe = int(np.clip(round(scan / per_list), min(16, nprobe), nprobe))
        dist, idx = self._ivf.search(query, kk)
        return dist.astype(np.float32), idx.astype(np.int64)

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """This group as named arrays (for KeypointIndex.save)."""
        if self.size == 0:
            return {}
        self.compact()
        out = {f"{prefix}descriptors": self.descriptors[0], f"{prefix}image_ids": self.image_ids[0],
               f"{prefix}individual_ids": self.individual_ids[0], f"{prefix}points": self.points[0]}
        if self._ivf is not None:
            import faiss

            out[f"{prefix}ivf"] = faiss.serialize_index(self._ivf)
            out[f"{prefix}ivf_rows"] = np.array([self._ivf_rows, self._ivf_trained_at], np.int64)
        return out

    @classmethod
    def from_arrays(cls, z: Any, prefix: str) -> _Group:
        g = cls()
        if f"{prefix}descriptors" not in z:
            return g
        g.descriptors = [np.asarray(z[f"{prefix}descriptors"], np.float16)]
        g.image_ids = [np.asarray(z[f"{prefix}image_ids"], np.int64)]
        g.individual_ids = [np.asarray(z[f"{prefix}individual_ids"], np.int64)]
        g.points = [np.asarray(z[f"{prefix}points"], np.float32)]
        g.size = len(g.descriptors[0])
        if not (len(g.image_ids[0]) == len(g.individual_ids[0]) == len(g.points[0]) == g.size):
            raise ValueError(f"group {prefix!r}: columns of different lengths")
        if f"{prefix}ivf" in z:
            import faiss

            g._ivf = faiss.deserialize_index(np.asarray(z[f"{prefix}ivf"], np.uint8))
            g._ivf_rows, g._ivf_trained_at = (int(v) for v in z[f"{prefix}ivf_rows"])
            if g._ivf.ntotal != g._ivf_rows or g._ivf_rows > g.size:
                raise ValueError(f"group {prefix!r}: IVF index does not match its rows")
        return g


@dataclass
class Votes:
    """One query's LNBNN votes over the whole gallery (one row per vote)."""

    query_rows: np.ndarray  # which query keypoint voted
    image_ids: np.ndarray  # for which gallery image
    individual_ids: np.ndarray  # owned by which individual
    gallery_xy: np.ndarray  # (n, 2) the matched gallery keypoint
    weights: np.ndarray  # LNBNN weight: how much closer than the (k+1)-th nearest individual
    mass: dict[int, float] = field(default_factory=dict)  # individual -> each query spot counted once
    images: dict[int, list[int]] = field(default_factory=dict)  # individual -> its images, most voted first

    def ranked(self) -> list[int]:
        """Individuals by vote mass, largest first."""
        return sorted(self.mass, key=lambda d: -self.mass[d])


class KeypointIndex:
    """All enrolled keypoint descriptors, searchable per flank group; thread-safe to add and search.

    `vote` sends a query's descriptors through the index once; `Votes.ranked` is a cheap,
    geometry-free ranking of individuals and `verify` checks the geometry of the votes for
    chosen individuals.

    Memory: ~270 bytes per keypoint (float16 descriptor, position, owners), plus 128 in IVF
    mode: a 10,000-image gallery at ~500 keypoints per image is ~2 GB.
    """

    def __init__(self, *, k: int = 4, extra: int = 8, exact_limit: int = EXACT_LIMIT, nprobe: int = NPROBE,
                 scan: int = IVF_SCAN, thresh_frac: float = 0.03, min_inliers: int = 6) -> None:
        self.k, self.extra = k, extra
        self.exact_limit, self.nprobe, self.scan = exact_limit, nprobe, scan  # scan: REID_VOTE_SCAN
        self.thresh_frac, self.min_inliers = thresh_frac, min_inliers
        self._groups = {g: _Group() for g in FLANK_GROUPS}
        self._sizes: dict[int, tuple[int, int]] = {}  # image id -> (width, height) it was enrolled at
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sizes)

    def __contains__(self, image_id: int) -> bool:
        return int(image_id) in self._sizes

    @property
    def descriptor_count(self) -> int:
        return sum(g.size for g in self._groups.values())

    def add(self, image_id: int, individual_id: int, viewpoint: str | None, features: Features) -> None:
        """Add one gallery image's keypoints (a no-op for an image already in the index)."""
        with self._lock:
            if int(image_id) in self._sizes:
                return
            self._sizes[int(image_id)] = features.image_size
            if len(features):
                self._groups[_group(viewpoint)].add(features, int(image_id), int(individual_id))

    def remove(self, image_ids: Iterable[int]) -> None:
        """Forget these images (removed from the catalogue, or to be re-added with another flank)."""
        with self._lock:
            gone = {int(i) for i in image_ids if int(i) in self._sizes}
            for image_id in gone:
                del self._sizes[image_id]
            for g in self._groups.values():
                g.drop(gone)

    def relabel(self, owners: dict[int, int]) -> None:
        """image id -> its new individual id, for images whose individual changed."""
        with self._lock:
            for g in self._groups.values():
                g.relabel({int(i): int(d) for i, d in owners.items() if int(i) in self._sizes})

    @property
    def removed_rows(self) -> int:
        """Rows of removed images still held (tombstones): a rebuild drops them."""
        return sum(int((g.owners()[0] < 0).sum()) for g in self._groups.values())

    def prepare(self) -> None:
        """Build the search structures now (first use would otherwise pay for it)."""
        with self._lock:
            for g in self._groups.values():
                g.prepare(self.exact_limit)

    def image_ids(self) -> list[int]:
        """Every gallery image added (with or without keypoints)."""
        return list(self._sizes)

    def owners(self) -> dict[int, int]:
        """image id -> individual id of every image with keypoints."""
        out: dict[int, int] = {}
        for g in self._groups.values():
            im, ind, _ = g.owners()
            live = im >= 0
            im, ind = im[live], ind[live]
            if len(im):
                u, first = np.unique(im, return_index=True)
                out.update(zip(u.tolist(), ind[first].tolist(), strict=True))
        return out

    def snapshot(self) -> dict[str, np.ndarray]:
        """The whole index (keypoints, owners, trained IVF lists) as named arrays, for `write`.

        Cheap apart from copying the IVF lists: the keypoint arrays are shared, not copied
        (images added later go into new arrays), so the write can run without the lock."""
        with self._lock:
            arrays: dict[str, np.ndarray] = {
                "version": np.array([SAVE_VERSION], np.int64),
                "sizes": np.array([[i, w, h] for i, (w, h) in self._sizes.items()], np.int64).reshape(-1, 3)}
            for name, g in self._groups.items():
                arrays.update(g.arrays(f"{name}/"))
            return arrays

    @staticmethod
    def write(path: Path, arrays: dict[str, np.ndarray]) -> None:
        """Write a snapshot to one .npz, atomically (a temp file renamed over the old one)."""
        with atomic_writer(path, "wb") as fh:
            np.savez(fh, **arrays)

    def save(self, path: Path) -> None:
        """Write the whole index to one .npz (`load` reads it back)."""
        self.write(path, self.snapshot())

    @classmethod
    def load(cls, path: Path, **kwargs: Any) -> KeypointIndex:
        """An index written by `save` (ValueError / OSError when unreadable or inconsistent)."""
        index = cls(**kwargs)
        try:
            with np.load(Path(path), allow_pickle=False) as z:
                if int(z["version"][0]) != SAVE_VERSION:
                    raise ValueError(f"format version {int(z['version'][0])}, expected {SAVE_VERSION}")
                index._sizes = {int(i): (int(w), int(h)) for i, w, h in z["sizes"].tolist()}
                index._groups = {name: _Group.from_arrays(z, f"{name}/") for name in FLANK_GROUPS}
        except (KeyError, EOFError, ValueError, zipfile.BadZipFile) as exc:
            raise ValueError(f"{path} is not a keypoint index: {exc}") from None
        if not set(index.owners()) <= set(index._sizes):
            raise ValueError(f"{path}: keypoints of images it does not list")
        return index

    def _search(self, name: str, query: np.ndarray) -> tuple[np.ndarray, ...]:
        """(distance, image, individual, gallery x, gallery y) of query rows' neighbours in one group."""
        g = self._groups[name]
        d, i = g.search(query, self.k + 1 + self.extra, self.exact_limit, self.nprobe, self.scan)
        im, ind, xy = g.owners()
        ok = i >= 0
        i = np.where(ok, i, 0)
        return np.where(ok, d, np.inf), np.where(ok, im[i], -1), np.where(ok, ind[i], -1), xy[i, 0], xy[i, 1]

    def _merge(self, found: list[tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...] | None:
        """One query's neighbours from several groups, sorted, the nearest k + 1 + extra kept."""
        if not found:
            return None
        merged = [np.concatenate(c, 1) for c in zip(*found, strict=True)]
        order = np.argsort(merged[0], axis=1, kind="stable")[:, : self.k + 1 + self.extra]
        return tuple(np.take_along_axis(m, order, 1) for m in merged)

    def vote(self, query: Features, viewpoint: str | None) -> Votes:
        """LNBNN votes of one query's keypoints over the compatible flank groups."""
        return self.vote_many([query], [viewpoint])[0]

    def vote_many(self, queries: Sequence[Features], viewpoints: Sequence[str | None]) -> list[Votes]:
        """`vote` for each of many queries (a chunk of a batch), the same votes as one call each.

        A group searched by an IVF index is searched once for all the queries' keypoints (one
        FAISS call: each row's neighbours do not depend on the other rows). An exact group is
        searched per query: its GEMM is blocked by rows, and other block boundaries could move
        a distance by a rounding step."""
        descs = [np.ascontiguousarray(q.descriptors, np.float32) for q in queries]
        wanted = [searchable_groups(v) if len(q) else () for q, v in zip(queries, viewpoints, strict=True)]
        found: list[list[tuple[np.ndarray, ...]]] = [[] for _ in queries]
        with self._lock:
            for name in FLANK_GROUPS:
                g = self._groups[name]
                who = [j for j, groups in enumerate(wanted) if name in groups]
                if not who or g.size == 0:
                    continue
                if g.size <= self.exact_limit:
                    for j in who:
                        found[j].append(self._search(name, descs[j]))
                    continue
                cols = self._search(name, np.concatenate([descs[j] for j in who]))
                start = 0
                for j in who:
                    stop = start + len(descs[j])
                    found[j].append(tuple(c[start:stop] for c in cols))
                    start = stop
        return [self._votes(q, self._merge(f)) for q, f in zip(queries, found, strict=True)]

    def _votes(self, query: Features, found: tuple[np.ndarray, ...] | None) -> Votes:
        """LNBNN votes of one query from its sorted neighbours."""
        empty = Votes(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64),
                      np.zeros((0, 2), np.float32), np.zeros(0, np.float32))
        if len(query) == 0 or found is None:
            return empty
        dist, img, ind, gx, gy = found
        valid = np.isfinite(dist) & (img >= 0)
        n_ids = len(np.unique(ind[valid]))
        k_eff = max(1, min(self.k, n_ids - 1))
        rows, cols, w = lnbnn_votes(np.sqrt(np.where(valid, np.maximum(dist, 0), 0)), img, ind, valid, k_eff)
        votes = Votes(rows, img[rows, cols], ind[rows, cols],
                      np.stack([gx[rows, cols], gy[rows, cols]], 1).astype(np.float32), w)
        if len(w) == 0:
            return votes
        # An individual's mass counts each query spot once (its best image), so an animal with
        # many gallery photos is not favoured over one with a single good photo.
        u_ind, ind_pos = np.unique(votes.individual_ids, return_inverse=True)
        best = np.zeros((len(query), len(u_ind)), np.float32)
        np.maximum.at(best, (rows, ind_pos), w)
        votes.mass = {int(d): float(m) for d, m in zip(u_ind.tolist(), best.sum(0).tolist(), strict=True)}
        images, first, which = np.unique(votes.image_ids, return_index=True, return_inverse=True)
        image_mass = np.bincount(which, weights=w)
        for j in np.argsort(-image_mass, kind="stable"):
            votes.images.setdefault(int(votes.individual_ids[first[j]]), []).append(int(images[j]))
        return votes

    def verify(self, query: Features, votes: Votes, image_ids: Iterable[int]) -> dict[int, LocalMatch]:
        """Geometric verification of the votes for these gallery images (reid.keypoints.verify's RANSAC).

        A query spot that verifies for two different individuals keeps only its margin over
        the other one (background both photos share); images with fewer than `min_inliers`
        surviving matches get no match.
        """
        wanted = [int(i) for i in dict.fromkeys(image_ids)]
        picked: list[np.ndarray] = []
        for image_id in wanted:
            sel = np.nonzero(votes.image_ids == image_id)[0]
            if len(sel) < self.min_inliers or image_id not in self._sizes:
                continue
            keep = verify_pairs(query.keypoints[votes.query_rows[sel]], votes.gallery_xy[sel],
                                     votes.weights[sel], self._sizes[image_id], thresh_frac=self.thresh_frac,
                                     min_inliers=self.min_inliers)
            picked.append(sel[keep])
        out = {i: LocalMatch(0, 0.0) for i in wanted}
        if not picked:
            return out
        sel = np.concatenate(picked)
        w = exclusive_weights(votes.query_rows[sel], votes.individual_ids[sel], votes.weights[sel])
        for image_id in wanted:
            mine = (votes.image_ids[sel] == image_id) & (w > 0)
            if mine.sum() >= self.min_inliers:
                out[image_id] = as_match(query.keypoints[votes.query_rows[sel[mine]]],
                                                votes.gallery_xy[sel[mine]], w[mine])
        return out
