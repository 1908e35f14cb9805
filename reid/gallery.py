"""FAISS index over gallery embeddings, one index file per model, rebuilt from the catalogue.

The catalogue is the source of truth; the index is a cache of it. A sidecar JSON
records which image ids the index holds, so a stale or missing index (crash between
the SQLite commit and the index save, a copied data dir) is detected and rebuilt.

Up to `IVF_SWITCH` images the search is exact (IndexFlatIP under an IndexIDMap2). Above, the
index becomes a trained IVF-Flat (4 sqrt(N) lists, `NPROBE` probed: recall >= 0.99 of the exact
neighbours at 100,000 synthetic vectors, docs/scaling.md) holding the image ids itself: an
IndexIDMap2 over an IVF would break on removal (IDMap compacts its id map as a flat index
renumbers; an IVF does not renumber), so the IVF keeps a hashtable direct map for lookups by
id. It is retrained when the gallery has grown 4x since its lists were trained.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from reid.catalog import Catalog
from reid.fileio import atomic_write_bytes, atomic_write_text

log = logging.getLogger(__name__)

#: Above this many gallery images the exact index is replaced by a trained IVF: the size at which
#: its recall was measured (>= 0.99), where exact search costs ~24 ms a query against 1.7 ms:
#: benchmarks/bench_scaling.py search, docs/scaling.md.
IVF_SWITCH = 100_000
#: Lists probed per query: recall of the exact nearest neighbours of one individual 1.000 at
#: 100,000 vectors (16 probes: 0.998; 64 for margin, 1.7 ms a query; bench_scaling.py search).
NPROBE = 64
TRAIN_PER_LIST = 40  # training vectors per list (faiss warns below 39)


def _digest(ids: np.ndarray) -> str:
    return hashlib.sha256(np.sort(np.asarray(ids, np.int64)).tobytes()).hexdigest()


@dataclass(frozen=True)
class IndexCheck:
    ok: bool
    index_count: int
    catalog_count: int
    message: str


class Gallery:
    """Inner-product search over L2-normalised vectors (= cosine), keyed by catalogue image id."""

    def __init__(self, dim: int, path: Path | None = None, *, ivf_switch: int | None = None,
                 nprobe: int | None = None) -> None:
        self.dim = dim
        self.path = path
        self.ivf_switch = IVF_SWITCH if ivf_switch is None else ivf_switch
        self.nprobe = NPROBE if nprobe is None else nprobe
        self.index: faiss.Index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._lock = threading.RLock()

    @property
    def kind(self) -> str:
        """"exact" or "ivf"."""
        return "ivf" if isinstance(self.index, faiss.IndexIVF) else "exact"

    def _build(self, vectors: np.ndarray, ids: np.ndarray) -> faiss.Index:
        """The index for these vectors: exact up to `ivf_switch`, else a freshly trained IVF."""
        n = len(ids)
        if n <= self.ivf_switch:
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
            if n:
                index.add_with_ids(np.ascontiguousarray(vectors, np.float32), ids)
            return index
        nlist = max(1, int(4 * np.sqrt(n)))
        quantizer = faiss.IndexFlatIP(self.dim)
        ivf = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        ivf.own_fields = True  # the IVF frees its quantizer (and keeps it alive) ...
        quantizer.this.disown()  # ... not Python
        ivf.cp.niter = 10
        ivf.cp.seed = 1234  # the same catalogue always gives the same lists
        sample = np.random.default_rng(0).choice(n, min(n, TRAIN_PER_LIST * nlist), replace=False)
        log.info("search index: training an IVF of %d lists on %d of %d vectors", nlist, len(sample), n)
        ivf.train(np.ascontiguousarray(vectors[np.sort(sample)], np.float32))
        ivf.set_direct_map_type(faiss.DirectMap.Hashtable)  # vector(id) and removal by id
        ivf.add_with_ids(np.ascontiguousarray(vectors, np.float32), ids)
        ivf.nprobe = self.nprobe
        return ivf

    def _all(self) -> tuple[np.ndarray, np.ndarray]:
        """Every (vector, id) the index holds."""
        ids = self.ids()
        if self.kind == "exact":
            return self.index.index.reconstruct_n(0, len(ids)), ids
        return np.vstack([self.index.reconstruct(int(i)) for i in ids]) if len(ids) else np.zeros((0, self.dim)), ids

    def _reshape(self) -> None:
        """Exact past the switch size -> IVF; an IVF trained on a quarter of today's vectors or
        fewer -> retrained; an IVF shrunk below the switch -> exact again."""
        n = len(self)
        if self.kind == "exact":
            stale = n > self.ivf_switch
        else:
            trained_for = (self.index.nlist / 4) ** 2
            stale = n <= self.ivf_switch or n > 4 * trained_for
        if stale:
            vectors, ids = self._all()
            self.index = self._build(vectors, ids)

    # -- persistence -----------------------------------------------------------------------------
    @staticmethod
    def index_path(data_dir: Path, model_id: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9_.@-]", "_", model_id)
        return Path(data_dir) / "index" / f"{safe}.faiss"

    @classmethod
    def open(cls, catalog: Catalog, model_id: str, dim: int) -> Gallery:
        """Load the index for `model_id`, or rebuild it when missing, unreadable or stale."""
        path = cls.index_path(catalog.data_dir, model_id)
        gallery = cls(dim, path)
        loaded = gallery.load()
        check = gallery.check(catalog, model_id) if loaded else None
        if check is not None and check.ok:
            return gallery
        gallery.rebuild(catalog, model_id)
        why = "missing or unreadable" if check is None else check.message
        # A new data dir has no index yet: nothing to tell. Anything else is worth a line.
        level = logging.DEBUG if not path.exists() and len(gallery) == 0 else logging.INFO
        log.log(level, "search index %s %s: rebuilt from the catalogue (%d images)", path, why, len(gallery))
        return gallery

    def load(self) -> bool:
        """Read the index file as it is on disk (no rebuild); False if missing or unreadable."""
        if self.path is None or not self.path.exists():
            return False
        try:
            index = faiss.read_index(str(self.path))
        except RuntimeError:
            return False
        if index.d != self.dim:
            return False
        if not isinstance(index, (faiss.IndexIDMap2, faiss.IndexIVF)):
            # a new proxy of the same object: it must own it, or the C++ index dies with `index`
            cast = faiss.downcast_index(index)
            index.this.disown()
            cast.this.own(True)
            index = cast
        self.index = index
        if isinstance(self.index, faiss.IndexIVF):
            self.index.nprobe = self.nprobe
            return self.index.direct_map.type == faiss.DirectMap.Hashtable
        return isinstance(self.index, faiss.IndexIDMap2)

    def save(self) -> None:
        """Atomic: write a temp file, then rename over the old one."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            atomic_write_bytes(self.path, faiss.serialize_index(self.index).tobytes())
            meta = {"count": int(self.index.ntotal), "ids_sha256": _digest(self.ids())}
            atomic_write_text(self.path.with_suffix(".json"), json.dumps(meta))

    def rebuild(self, catalog: Catalog, model_id: str) -> None:
        entries, vectors = catalog.gallery(model_id)
        with self._lock:
            ids = np.asarray([e.image_id for e in entries], np.int64)
            self.index = self._build(vectors if entries else np.zeros((0, self.dim), np.float32), ids)
            self.save()

    # -- content -----------------------------------------------------------------------------------
    def ids(self) -> np.ndarray:
        if isinstance(self.index, faiss.IndexIVF):
            lists = self.index.invlists
            parts = [faiss.rev_swig_ptr(lists.get_ids(n), lists.list_size(n)).copy()
                     for n in range(self.index.nlist) if lists.list_size(n)]
            return np.sort(np.concatenate(parts)).astype(np.int64) if parts else np.zeros(0, np.int64)
        return faiss.vector_to_array(self.index.id_map).astype(np.int64)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def add(self, image_ids: np.ndarray | list[int], vectors: np.ndarray, *, save: bool = True) -> None:
        ids = np.asarray(image_ids, np.int64)
        with self._lock:
            seen = set(self.ids().tolist())
            keep = np.zeros(len(ids), bool)
            for n, i in enumerate(ids.tolist()):  # skip ids already indexed, and repeats within this call
                keep[n] = i not in seen
                seen.add(i)
            if keep.any():
                self.index.add_with_ids(np.ascontiguousarray(vectors[keep], np.float32), ids[keep])
                self._reshape()
            if save:
                self.save()

    def remove(self, image_ids: list[int], *, save: bool = True) -> None:
        with self._lock:
            gone = np.ascontiguousarray(image_ids, np.int64)
            # an IVF's hashtable direct map removes by an explicit array only
            selector = (faiss.IDSelectorArray(len(gone), faiss.swig_ptr(gone)) if self.kind == "ivf"
                        else faiss.IDSelectorBatch(gone))
            self.index.remove_ids(selector)
            self._reshape()
            if save:
                self.save()

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(similarities, image ids), each (n_queries, k'); k' <= k; id -1 = no result."""
        q = np.ascontiguousarray(queries, np.float32)
        with self._lock:
            k = max(1, min(k, len(self)))
            if len(self) == 0:
                return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
            sims, ids = self.index.search(q, k)
        return sims, ids

    def vector(self, image_id: int) -> np.ndarray | None:
        """The stored embedding of one gallery image (None if it is not in the index)."""
        with self._lock:
            try:
                return self.index.reconstruct(int(image_id))
            except RuntimeError:
                return None

    def check(self, catalog: Catalog, model_id: str) -> IndexCheck:
        """Do the index and the catalogue hold the same gallery images?"""
        want = catalog.embedding_ids(model_id)
        have = self.ids()
        ok = len(want) == len(have) and _digest(want) == _digest(have)
        msg = "index matches catalogue" if ok else (
            f"index holds {len(have)} images, catalogue {len(want)}; "
            f"{len(np.setdiff1d(want, have))} missing, {len(np.setdiff1d(have, want))} extra")
        return IndexCheck(ok, len(have), len(want), msg)
