"""Stage 4, keypoint evidence: extract the query's keypoints, let them vote over the whole gallery,
verify the votes geometrically for the best candidates, then the scene check.

The query's keypoints vote over the whole gallery once (reid.keypoints.index); the votes are
verified for the `rerank_individuals` best by cosine and the `vote_individuals` best by votes
(`rerank_images` images each), so an animal the embedding ranks low can still win on its
spots. The scene check (reid.keypoints.scene.SceneCheck) then discounts spots that are the
place, not the animal.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from reid.catalog import Catalog, GalleryEntry
from reid.keypoints.scene import SceneCheck
from reid.keypoints.store import KeypointStore
from reid.settings import Settings
from reid.stages.decode import QueryImage
from reid.stages.shortlist import Evidence, Groups


class KeypointEvidence:
    """Adds verified keypoint evidence to a query's shortlisted individuals (in place)."""

    def __init__(self, settings: Settings, catalog: Catalog, gallery: Any, store: KeypointStore) -> None:
        self.settings, self.catalog, self.gallery, self.store = settings, catalog, gallery, store
        self.scene_check = SceneCheck(settings, store)

    def __call__(self, q: QueryImage, vector: np.ndarray, groups: Groups, entries: dict[int, GalleryEntry],
                 evidence: dict[int, Evidence]) -> None:
        if not self.settings.local_matching or not len(self.gallery):
            return
        s = self.settings
        # a crop of the animal (declared, or detected: reid.keypoints.crops) keeps all its keypoints
        crop = q.crop = self.store.is_crop(q.rgb, boxed=q.box is not None, declared=q.crop,  # resolved
                                           at_station=bool(q.station))
        query_features = self.store.extract(q.rgb, boxed=q.box is not None, crop=crop)
        index = self.store.index(self.gallery)
        votes = index.vote(query_features, q.viewpoint)
        n_img = s.rerank_images
        by_cosine = sorted(groups, key=lambda ind: -groups[ind][0][1])[: s.rerank_individuals]
        by_votes = votes.ranked()[: s.vote_individuals]
        # per candidate: its images with the most votes first, then its best-cosine images
        shortlist = {ind: list(dict.fromkeys(votes.images.get(ind, [])[:n_img]
                                             + [e.image_id for e, _ in groups.get(ind, [])[:n_img]]))
                     for ind in dict.fromkeys(by_cosine + by_votes)}
        image_ids = [i for imgs in shortlist.values() for i in imgs]
        matches = index.verify(query_features, votes, image_ids)
        missing = [i for i in image_ids if i not in entries and matches[i].inliers]
        if missing:
            entries = {**entries, **self.catalog.gallery_entries(missing)}
        for ind, imgs in shortlist.items():
            for image_id in imgs:
                m = matches[image_id]
                if not m.inliers:
                    continue
                entry = entries[image_id]
                ev = evidence.get(ind)
                if ev is None:  # found by its spots only: its cosine is not in the FAISS shortlist
                    ev = evidence[ind] = Evidence(ind, entry.individual, self._cosine(vector, image_id), image_id,
                                                  entry.viewpoint)
                if m.score > ev.local_score:
                    ev.local_score, ev.inliers, ev.match = float(m.score), int(m.inliers), m
                    ev.image_id, ev.viewpoint = image_id, entry.viewpoint
        if not crop:  # a crop has no surroundings: what lies outside its ellipse is coat, not the place
            self.scene_check(q, evidence.values(), index.min_inliers)

    def _cosine(self, vector: np.ndarray, image_id: int) -> float:
        """Cosine between a query and one gallery image (for candidates found by keypoints)."""
        stored = self.gallery.vector(image_id)
        return float(np.dot(vector, stored)) if stored is not None else 0.0
