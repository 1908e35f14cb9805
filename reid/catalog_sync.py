"""Keep a long-lived pipeline's indexes in step with a catalogue that other processes change.

The service loads the FAISS index and the keypoint index once; a `reid enroll` in another
terminal, a review decision in another worker or a merge changes the SQLite catalogue under
it. Every such change bumps the catalogue's generation in the same transaction (triggers in
reid.catalog), so one `SELECT` per identify tells whether anything changed. When it did, the
difference is applied incrementally: new images' vectors go into FAISS, removed ones come out,
images moved to another individual are relabelled in the keypoint index, and images whose
flank changed are re-added there. A search sees the FAISS index before or after the change,
never half of it (the gallery's lock is held for the whole change).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from reid.catalog import Catalog

if TYPE_CHECKING:
    from reid.identify import Pipeline

log = logging.getLogger(__name__)

#: Rebuild the keypoint index when more than this share of its rows belong to removed images.
MAX_REMOVED_SHARE = 0.25


@dataclass
class SyncReport:
    """What one sync changed (all zero: nothing to do)."""

    added: int = 0
    removed: int = 0
    relabelled: int = 0
    reflanked: int = 0

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.relabelled or self.reflanked)


class CatalogWatch:
    """The catalogue generation and gallery owners a pipeline's indexes were last brought to."""

    def __init__(self, catalog: Catalog, model_id: str) -> None:
        self.catalog, self.model_id = catalog, model_id
        # generation first, then the owners: a change in between is seen again, never missed
        self.generation = catalog.generation()
        self.owners = catalog.gallery_owners(model_id)
        self._lock = threading.Lock()

    def changed(self) -> bool:
        return self.catalog.generation() != self.generation

    def sync(self, pipeline: Pipeline) -> SyncReport:
        """Bring `pipeline`'s FAISS and keypoint indexes to the catalogue as it is now."""
        if not self.changed():
            return SyncReport()
        with self._lock:
            if not self.changed():  # another thread did it while this one waited
                return SyncReport()
            pipeline._backfill_embeddings()  # images enrolled by a process with another model
            generation = self.catalog.generation()
            want = self.catalog.gallery_owners(self.model_id)
            report = self._apply(pipeline, want)
            self.owners, self.generation = want, generation
        if report:
            log.info("catalogue changed: %d images added, %d removed, %d moved, %d re-flanked",
                     report.added, report.removed, report.relabelled, report.reflanked)
        return report

    def _apply(self, pipeline: Pipeline, want: dict[int, tuple[int, str]]) -> SyncReport:
        gallery = pipeline.gallery
        with pipeline._write_lock, gallery._lock:  # no in-process enroll, no search in between
            have = set(gallery.ids().tolist())
            removed = sorted(have - set(want))
            added = sorted(set(want) - have)
            if removed:
                gallery.remove(removed, save=False)
            if added:
                ids, vectors = self.catalog.embeddings(self.model_id, added)
                if ids:
                    gallery.add(ids, vectors, save=False)
        moved = {i: want[i][0] for i in want if i in self.owners and want[i][0] != self.owners[i][0]}
        reflanked = [i for i in want if i in self.owners and want[i][1] != self.owners[i][1]]
        # re-flanked images are re-added by the next keypoint_index()
        pipeline.keypoints.apply_catalog_changes(removed + reflanked,
                                                 {i: d for i, d in moved.items() if i not in set(reflanked)},
                                                 MAX_REMOVED_SHARE)
        return SyncReport(added=len(added), removed=len(removed), relabelled=len(moved), reflanked=len(reflanked))
