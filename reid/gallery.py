"""FAISS index over gallery embeddings, one index file per model, rebuilt from the catalogue.

The catalogue is the source of truth; the index is a cache of it. A sidecar JSON
records which image ids the index holds, so a stale or missing index (crash between
the SQLite commit and the index save, a copied data dir) is detected and rebuilt.
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

    def __init__(self, dim: int, path: Path | None = None) -> None:
        self.dim = dim
        self.path = path
        self.index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._lock = threading.RLock()

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
        self.index = faiss.downcast_index(index) if not isinstance(index, faiss.IndexIDMap2) else index
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
            self.index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
            if entries:
                self.index.add_with_ids(vectors.astype(np.float32), np.asarray([e.image_id for e in entries], np.int64))
            self.save()

    # -- content -----------------------------------------------------------------------------------
    def ids(self) -> np.ndarray:
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
            if save:
                self.save()

    def remove(self, image_ids: list[int], *, save: bool = True) -> None:
        with self._lock:
            self.index.remove_ids(faiss.IDSelectorBatch(np.asarray(image_ids, np.int64)))
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
