"""Stage 4, keypoint evidence: extract the query's keypoints, let them vote over the whole gallery,
verify the votes geometrically for the best candidates, then the scene check.

The query's keypoints vote over the whole gallery once (reid.keypoints.index); the votes are
verified for the `rerank_individuals` best by cosine and the `vote_individuals` best by votes
(`rerank_images` images each), so an animal the embedding ranks low can still win on its
spots. The scene check (reid.keypoints.scene.SceneCheck) then discounts spots that are the
place, not the animal.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from reid.catalog import Catalog, GalleryEntry
from reid.keypoints.extract import Features
from reid.keypoints.index import KeypointIndex, Votes
from reid.keypoints.parallel import resolved_threads, thread_map
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
        self.many([q], [vector], [groups], entries, [evidence])

    def many(self, queries: Sequence[QueryImage], vectors: Sequence[np.ndarray], groups: Sequence[Groups],
             entries: dict[int, GalleryEntry], evidence: Sequence[dict[int, Evidence]]) -> None:
        """The evidence of a chunk's queries, stage by stage for all of them: saliency maps in one
        batched pass, keypoints and verification on REID_KEYPOINT_THREADS threads, one search of
        the keypoint index for all the chunk's keypoints. The same evidence as one query at a
        time: each query's work depends only on that query (tests/test_throughput.py)."""
        if not queries or not self.settings.local_matching or not len(self.gallery):
            return
        map_ = thread_map(resolved_threads(self.settings.keypoint_threads))
        for q in queries:  # a crop of the animal (declared, or detected: reid.keypoints.crops) keeps all its keypoints
            q.crop = self.store.is_crop(q.rgb, boxed=q.box is not None, declared=q.crop,  # resolved
                                        at_station=bool(q.station))
        features = self.store.extract_many([q.rgb for q in queries], [q.box is not None for q in queries],
                                           [bool(q.crop) for q in queries], map_)
        index = self.store.index(self.gallery)
        votes = index.vote_many(features, [q.viewpoint for q in queries])
        map_(lambda j: self._verified(queries[j], vectors[j], groups[j], entries, evidence[j], features[j],
                                      votes[j], index), range(len(queries)))

    def _verified(self, q: QueryImage, vector: np.ndarray, groups: Groups, entries: dict[int, GalleryEntry],
                  evidence: dict[int, Evidence], query_features: Features, votes: Votes,
                  index: KeypointIndex) -> None:
        """Verify one query's votes for its candidates, then its scene check (in place)."""
        s = self.settings
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
        if not q.crop:  # a crop has no surroundings: what lies outside its ellipse is coat, not the place
            self.scene_check(q, evidence.values(), index.min_inliers)

    def _cosine(self, vector: np.ndarray, image_id: int) -> float:
        """Cosine between a query and one gallery image (for candidates found by keypoints)."""
        stored = self.gallery.vector(image_id)
        return float(np.dot(vector, stored)) if stored is not None else 0.0
