"""Stage 6, decide: calibrated candidates in rank order and the verdict match / new / review.

The verdict is `decide` (thresholds on rank-1 and its margin) unless an error-budget policy
is named (REID_VERDICT_POLICY, reid.open_set).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from reid.errors import ReidError
from reid.settings import Settings
from reid.stages.decode import QueryImage
from reid.stages.shortlist import Evidence

DECISIONS = ("match", "new", "review", "error")


@dataclass
class Candidate:
    rank: int
    individual_id: int
    identity: str
    score: float  # calibrated P(query shows this individual)
    cosine: float  # best global-embedding similarity to one of its gallery images
    image_id: int  # the gallery image with the strongest evidence: the one to look at
    viewpoint: str  # flank of that gallery image
    inliers: int = 0  # geometrically verified keypoint matches with that image
    local_score: float = 0.0  # their one-vs-many distinctiveness (0: not verified)
    match: Any = field(default=None, repr=False, compare=False)  # reid.keypoints.verify.LocalMatch, for evidence

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "match"}


@dataclass
class Identification:
    name: str
    decision: str
    candidates: list[Candidate]
    viewpoint: str = "unknown"
    error: str | None = None
    sighting: str | None = None
    flank_note: str | None = None  # reid.explain.flank_note: a flank of some animals is not enrolled
    crop: bool | None = None  # matched as a crop of the animal (reid.keypoints.crops); None: no keypoints ran

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "candidates"}
        out["candidates"] = [c.to_dict() for c in self.candidates]
        return out


def decide(scores: Sequence[float], settings: Settings) -> str:
    """match: rank-1 high and clearly ahead; new: nothing plausible; review: in between."""
    if not scores:
        return "new"
    p1 = scores[0]
    p2 = scores[1] if len(scores) > 1 else 0.0
    if p1 >= settings.match_threshold and p1 - p2 >= settings.match_margin:
        return "match"
    if p1 < settings.new_threshold:
        return "new"
    return "review"


def rank_order(probs: np.ndarray, local_scores: Sequence[float], cosines: Sequence[float]) -> np.ndarray:
    """Candidate order: probability (as reported, to 6 decimals), ties by keypoint score, then cosine.

    A calibration can be flat over a range of scores (a table beyond its knots, or P ~0 for
    every unverified candidate); the raw evidence then orders them, not float noise."""
    return np.lexsort((-np.asarray(cosines, np.float64), -np.asarray(local_scores, np.float64),
                       -np.round(np.asarray(probs, np.float64), 6)))


def load_verdict_policy(settings: Settings):
    """The error-budget verdict policy named by REID_VERDICT_POLICY (reid.open_set), or None."""
    if settings.verdict_policy is None:
        return None
    from reid.open_set import VerdictPolicy

    try:
        return VerdictPolicy.load(settings.verdict_policy)
    except (OSError, ValueError, TypeError) as exc:
        raise ReidError(f"verdict policy {settings.verdict_policy} cannot be read: {exc}") from None


class Decider:
    """Calibrated evidence -> the query's Identification: top-k candidates and a verdict."""

    def __init__(self, settings: Settings, verdict_policy: Any = None) -> None:
        self.settings, self.verdict_policy = settings, verdict_policy

    def __call__(self, q: QueryImage, ranked: Sequence[Evidence], probs: np.ndarray, top_k: int) -> Identification:
        order = rank_order(probs, [e.local_score for e in ranked], [e.cosine for e in ranked])[:top_k]
        candidates = [
            Candidate(rank=r + 1, individual_id=ranked[i].individual_id, identity=ranked[i].identity,
                      score=round(float(probs[i]), 6), cosine=round(ranked[i].cosine, 6),
                      image_id=ranked[i].image_id, viewpoint=ranked[i].viewpoint, inliers=ranked[i].inliers,
                      local_score=round(ranked[i].local_score, 4), match=ranked[i].match)
            for r, i in enumerate(order)
        ]
        if self.verdict_policy is not None:  # open-set score against an error budget (reid.open_set)
            decision = self.verdict_policy.decide([(c.identity, c.score, c.local_score, c.cosine)
                                                   for c in candidates])[0]
        else:
            decision = decide([c.score for c in candidates], self.settings)
        return Identification(name=q.name, decision=decision,
                              candidates=candidates, viewpoint=q.viewpoint, sighting=q.sighting)
