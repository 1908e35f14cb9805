"""Group the season's unknown animals into putative new individuals.

Input: detections whose verdict is `new`, each belonging to an animal of an encounter
(reid.season.encounters: the detections of one animal are must-link, which also joins its
two flanks when paired cameras saw both). Evidence between two detections is the same as
identification uses: embedding cosine plus verified keypoints (reid.keypoints.index over the
unknown detections themselves), fused into P(same individual) by the pipeline's calibrator.
Detections of opposite flanks carry no comparable pattern: P is not computed for them.

Clustering: animals are merged best pair first (single linkage; two animals' P is their
second-best detection pair when both have several detections, see animal_pair_scores) while
P >= threshold, and never when any two of the merged animals are cannot-link (seen
together in one frame, or two boxes of one camera at one moment).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

NEIGHBOURS = 10  # per detection: this many other detections (best cosine) plus the best by keypoint votes


@dataclass
class PairEvidence:
    a: int
    b: int
    cosine: float
    local_score: float = 0.0
    inliers: int = 0
    probability: float = 0.0


def _compatible(f1: str, f2: str) -> bool:
    return not (f1 in ("left", "right") and f2 in ("left", "right") and f1 != f2)


def pair_evidence(vectors: np.ndarray, flanks: Sequence[str], animal: Sequence[str],
                  keypoints: Sequence | None, predict: Callable[[np.ndarray], np.ndarray],
                  feature_names: Sequence[str], *, neighbours: int = NEIGHBOURS,
                  distractors: Sequence[tuple[int, str, object]] = ()) -> list[PairEvidence]:
    """Evidence for the candidate pairs of detections of different animals (both directions
    folded: the stronger one is kept). `keypoints`: reid.keypoints.extract.Features per detection or None.

    `distractors`: (individual id, flank, Features) of catalogue photos, added to the keypoint
    index but never matched: with only a handful of unknowns the vote weights (LNBNN: how much
    closer a spot is than the k-th other animal's) would be measured against too few animals
    and common patterns would pass for distinctive ones; the catalogue's animals are, by the
    verdict, other individuals."""
    n = len(vectors)
    if n < 2:
        return []
    sims = np.asarray(vectors, np.float32) @ np.asarray(vectors, np.float32).T
    index = None
    if keypoints is not None:
        from reid.keypoints.index import KeypointIndex

        index = KeypointIndex()
        for i, feats in enumerate(keypoints):
            index.add(i, i, flanks[i], feats)  # each detection its own "individual"
        for k, (individual, flank, feats) in enumerate(distractors):
            index.add(n + k, n + int(individual), flank, feats)
    best: dict[tuple[int, int], PairEvidence] = {}
    for i in range(n):
        others = [j for j in np.argsort(-sims[i], kind="stable").tolist()
                  if j != i and animal[j] != animal[i] and _compatible(flanks[i], flanks[j])]
        shortlist = others[:neighbours]
        votes = None
        if index is not None:
            votes = index.vote(keypoints[i], flanks[i])
            by_votes = [j for j in votes.ranked() if j < n and j != i and animal[j] != animal[i]
                        and _compatible(flanks[i], flanks[j])][:neighbours]
            shortlist = list(dict.fromkeys(shortlist + by_votes))
        matches = index.verify(keypoints[i], votes, shortlist) if index is not None else {}
        for j in shortlist:
            m = matches.get(j)
            ev = PairEvidence(min(i, j), max(i, j), float(sims[i, j]),
                              float(m.score) if m is not None else 0.0, int(m.inliers) if m is not None else 0)
            key = (ev.a, ev.b)
            if key not in best or (ev.local_score, ev.inliers) > (best[key].local_score, best[key].inliers):
                best[key] = ev
    pairs = [best[k] for k in sorted(best)]
    if pairs:
        values = {"cosine": lambda e: e.cosine, "local": lambda e: float(np.log1p(e.local_score)),
                  "inliers": lambda e: float(e.inliers)}
        x = np.array([[values[f](e) for f in feature_names] for e in pairs])
        for e, p in zip(pairs, predict(x).tolist(), strict=True):
            e.probability = float(p)
    return pairs


def animal_pair_scores(pairs: Sequence[PairEvidence], animal_of: Sequence[str], *,
                       support: int = 2) -> dict[tuple[str, str], float]:
    """P(same individual) of two animals from their detections' pairs: the `support`-th best
    pair, or fewer when one animal has fewer detections in those pairs. A burst's frames
    repeat a true match; a chance match between two coats shows in one frame pair only."""
    found: dict[tuple[str, str], list[PairEvidence]] = {}
    for e in pairs:
        a, b = animal_of[e.a], animal_of[e.b]
        if a != b:
            found.setdefault(tuple(sorted((a, b))), []).append(e)  # type: ignore[arg-type]
    out = {}
    for key, evs in found.items():
        side_a = {e.a if animal_of[e.a] == key[0] else e.b for e in evs}
        side_b = {e.b if animal_of[e.b] == key[1] else e.a for e in evs}
        k = max(1, min(support, len(side_a), len(side_b)))
        probs = sorted((e.probability for e in evs), reverse=True)
        out[key] = probs[k - 1] if len(probs) >= k else 0.0
    return out


def cluster(animals: Sequence[str], pairs: Sequence[PairEvidence], animal_of: Sequence[str],
            cannot: set[tuple[str, str]], *, threshold: float, support: int = 2) -> dict[str, str]:
    """Group ids ("U001", ... in order of `animals`) for every animal."""
    parent = {a: a for a in animals}
    members = {a: {a} for a in animals}

    def root(a: str) -> str:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    edges = {k: p for k, p in animal_pair_scores(pairs, animal_of, support=support).items() if p >= threshold}
    for (a, b), _ in sorted(edges.items(), key=lambda kv: (-kv[1], kv[0])):
        ra, rb = root(a), root(b)
        if ra == rb:
            continue
        if any(tuple(sorted((x, y))) in cannot for x in members[ra] for y in members[rb]):
            continue  # never two animals seen together as one
        keep, gone = sorted((ra, rb))
        parent[gone] = keep
        members[keep] |= members.pop(gone)
    names: dict[str, str] = {}
    out = {}
    for a in animals:
        r = root(a)
        if r not in names:
            names[r] = f"U{len(names) + 1:03d}"
        out[a] = names[r]
    return out


def pairwise_scores(truth: Sequence[str], predicted: Sequence[str]) -> dict[str, float]:
    """Pairwise precision / recall of a grouping against the truth, and the adjusted Rand index."""
    from sklearn.metrics import adjusted_rand_score

    t, p = np.asarray(truth), np.asarray(predicted)
    same_t = t[:, None] == t[None, :]
    same_p = p[:, None] == p[None, :]
    upper = np.triu(np.ones_like(same_t, bool), 1)
    tp = int((same_t & same_p & upper).sum())
    pred_pos = int((same_p & upper).sum())
    true_pos = int((same_t & upper).sum())
    return {"pairwise_precision": round(tp / pred_pos, 4) if pred_pos else 1.0,
            "pairwise_recall": round(tp / true_pos, 4) if true_pos else 1.0,
            "adjusted_rand_index": round(float(adjusted_rand_score(t, p)), 4),
            "groups": int(len(set(p.tolist()))), "individuals": int(len(set(t.tolist()))), "detections": int(len(t))}


__all__ = ["PairEvidence", "animal_pair_scores", "cluster", "pair_evidence", "pairwise_scores"]
