"""Stage 3, shortlist: the FAISS neighbours of each query, grouped by individual, same flank only.

Each shortlisted individual starts with its global evidence (the best cosine of one of its
compatible gallery images); the keypoint stage adds verified spots to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from reid.catalog import Catalog, GalleryEntry
from reid.settings import Settings

FLANKS = ("left", "right")


def flank_compatible(query_viewpoint: str, gallery_viewpoint: str) -> bool:
    """Left and right flanks carry different patterns: compare them only when a side is unknown."""
    if query_viewpoint in FLANKS and gallery_viewpoint in FLANKS:
        return query_viewpoint == gallery_viewpoint
    return True


@dataclass
class Evidence:
    """What speaks for one individual: global similarity and verified keypoints."""

    individual_id: int
    identity: str
    cosine: float
    image_id: int  # best image by the strongest evidence available
    viewpoint: str
    local_score: float = 0.0
    inliers: int = 0
    match: Any = None

    def features(self, names: Sequence[str]) -> list[float]:
        values = {"cosine": self.cosine, "local": float(np.log1p(self.local_score)), "inliers": float(self.inliers)}
        return [values[n] for n in names]

    def merge(self, other: Evidence) -> Evidence:
        """Pool two images of one sighting: the stronger evidence of each kind wins."""
        best = self if (self.local_score, self.cosine) >= (other.local_score, other.cosine) else other
        return Evidence(self.individual_id, self.identity, max(self.cosine, other.cosine), best.image_id,
                        best.viewpoint, max(self.local_score, other.local_score),
                        max(self.inliers, other.inliers), best.match)


Groups = dict[int, list[tuple[GalleryEntry, float]]]


def group_by_individual(sims: np.ndarray, ids: np.ndarray, entries: dict[int, GalleryEntry],
                        viewpoint: str) -> Groups:
    """Compatible shortlisted gallery images per individual, each list best cosine first."""
    groups: Groups = {}
    for sim, image_id in zip(sims.tolist(), ids.tolist(), strict=True):
        entry = entries.get(int(image_id))
        if entry is None or not flank_compatible(viewpoint, entry.viewpoint):
            continue
        groups.setdefault(entry.individual_id, []).append((entry, float(sim)))
    return groups  # FAISS returns neighbours sorted, so each list is already best first


def global_evidence(groups: Groups) -> dict[int, Evidence]:
    """Each shortlisted individual's evidence from the embedding alone: its best image's cosine."""
    return {ind: Evidence(ind, imgs[0][0].individual, imgs[0][1], imgs[0][0].image_id, imgs[0][0].viewpoint)
            for ind, imgs in groups.items()}


class Shortlist:
    """The gallery images nearest to each query vector (reid.gallery's FAISS index)."""

    def __init__(self, settings: Settings, gallery: Any, catalog: Catalog) -> None:
        self.settings, self.gallery, self.catalog = settings, gallery, catalog

    def __call__(self, vectors: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray, dict[int, GalleryEntry]]:
        """(similarities, image ids) per query, best first, and the catalogue entries of those images."""
        depth = min(len(self.gallery), max(self.settings.shortlist_images, top_k * 20))
        sims, ids = self.gallery.search(vectors, depth)
        entries = self.catalog.gallery_entries(sorted({int(i) for i in ids.ravel() if i >= 0}))
        return sims, ids, entries
