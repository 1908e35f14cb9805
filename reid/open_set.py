"""Open-set scores and a verdict policy stated as an error budget.

A calibrated P(same individual) of the rank-1 candidate is a poor known-vs-new score on real
photos: some individuals collect strong keypoint evidence against every query (a coat with
many high-contrast marks, a gallery photo full of textured ground), others never do. So each
candidate's evidence is normalised against what that gallery individual scores against OTHER
animals (its impostor distribution, measured on the gallery itself: every gallery photo
identified against the gallery, its own individual left out; Z-norm in verification terms),
and the rank-1 candidate's normalised evidence is combined with its lead over the runner-up.

The policy turns that into verdicts with the error rates stated up front:

- `match` when the open-set score is above the threshold at which held-out `match`
  precision reached the target (default 0.95): the threshold follows from the data;
- `new` when it is below the threshold under which at most `known_miss` (default 0.05) of
  held-out known photos fell;
- `review` otherwise.

`fit_policy` learns the combination (a logistic regression, scikit-learn) and both
thresholds from labelled identifications; evaluate it on other individuals (EVAL.md).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

FEATURES = ("z1", "margin", "t1", "p1")
DEPTH = 5  # candidates a ranking's features look at: what identify returns by default (top_k)
SHRINK = 5.0  # impostor samples' worth of prior: an individual with few impostor scores leans on everyone's


def evidence(local_score: float, cosine: float) -> float:
    """One number per candidate: the keypoint evidence (log), the cosine breaking ties."""
    return float(np.log1p(max(local_score, 0.0)) + 0.5 * cosine)


@dataclass
class ImpostorStats:
    """Per gallery individual: mean and spread of its evidence against other animals' photos."""

    mean: dict[str, float] = field(default_factory=dict)
    std: dict[str, float] = field(default_factory=dict)
    global_mean: float = 0.0
    global_std: float = 1.0

    @classmethod
    def from_scores(cls, scores: dict[str, list[float]]) -> ImpostorStats:
        """`scores`: identity -> its evidence as a candidate for photos of other individuals.
        Shrunk toward the pooled distribution (SHRINK samples' worth): a rarely seen individual
        is judged like the average one, not by two lucky numbers."""
        pooled = np.asarray([s for v in scores.values() for s in v], np.float64)
        g_mean = float(pooled.mean()) if len(pooled) else 0.0
        g_std = float(pooled.std()) if len(pooled) > 1 else 1.0
        g_std = max(g_std, 1e-3)
        out = cls(global_mean=g_mean, global_std=g_std)
        for identity, values in scores.items():
            v = np.asarray(values, np.float64)
            n = len(v)
            m = (v.sum() + SHRINK * g_mean) / (n + SHRINK)
            var = (((v - m) ** 2).sum() + SHRINK * g_std**2) / (n + SHRINK)
            out.mean[identity], out.std[identity] = float(m), float(max(math.sqrt(var), 1e-3))
        return out

    def z(self, identity: str, value: float) -> float:
        return (value - self.mean.get(identity, self.global_mean)) / self.std.get(identity, self.global_std)


def impostor_scores(self_identified: Iterable[tuple[str, Sequence[tuple[str, float, float]]]]) -> dict[str, list[float]]:
    """From gallery photos identified against the gallery: (photo's identity, candidates as
    (identity, local_score, cosine)) -> each candidate identity's evidence against photos of
    OTHER individuals (its own photos are left out)."""
    scores: dict[str, list[float]] = {}
    for own, candidates in self_identified:
        for identity, local_score, cosine in candidates:
            if identity != own:
                scores.setdefault(identity, []).append(evidence(local_score, cosine))
    return scores


def open_set_features(candidates: Sequence[tuple[str, float, float, float]], stats: ImpostorStats) -> list[float]:
    """Features of one ranking, candidates as (identity, P, local_score, cosine) best first:
    z1 (rank 1's evidence against its own impostors), margin (z1 - best other z), t1 (rank 1's
    evidence against this photo's other candidates: a query-side normalisation), p1 (its P)."""
    candidates = list(candidates)[:DEPTH]  # the same depth when fitted (50 kept) and in use (top_k)
    if not candidates:
        return [-10.0, 0.0, 0.0, 0.0]
    ev = [evidence(c[2], c[3]) for c in candidates]
    z = [stats.z(c[0], e) for c, e in zip(candidates, ev, strict=True)]
    others = np.asarray(ev[1:], np.float64)
    t1 = (ev[0] - others.mean()) / max(float(others.std()), 0.05) if len(others) >= 2 else 0.0
    margin = z[0] - max(z[1:]) if len(z) > 1 else z[0]
    return [float(z[0]), float(margin), float(t1), float(candidates[0][1])]


@dataclass
class VerdictPolicy:
    """A logistic over FEATURES giving P(rank 1 is right), and the two thresholds on it."""

    coef: list[float]
    intercept: float
    match_threshold: float
    new_threshold: float
    target_precision: float
    known_miss: float
    fitted_on: str = ""
    stats: dict = field(default_factory=dict)  # ImpostorStats as a dict
    measured: dict = field(default_factory=dict)  # what the fit saw: precision, coverage, counts

    def impostors(self) -> ImpostorStats:
        return ImpostorStats(**self.stats) if self.stats else ImpostorStats()

    def confidence(self, features: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(np.asarray(features, np.float64))
        return 1.0 / (1.0 + np.exp(-(x @ np.asarray(self.coef) + self.intercept)))

    def decide(self, candidates: Sequence[tuple[str, float, float, float]]) -> tuple[str, float]:
        """(verdict, confidence) for one ranking."""
        if not candidates:
            return "new", 0.0
        c = float(self.confidence(open_set_features(candidates, self.impostors()))[0])
        if c >= self.match_threshold:
            return "match", c
        if c < self.new_threshold:
            return "new", c
        return "review", c

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(asdict(self), indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> VerdictPolicy:
        return cls(**json.loads(Path(path).read_text()))


def threshold_for_precision(confidence: np.ndarray, correct: np.ndarray, target: float, z: float = 1.645) -> float:
    """The lowest threshold t such that the photos with confidence >= t are right at a rate
    whose Wilson lower bound (z standard errors; 1.645: one-sided 95%) is at least `target`.

    Why a bound and not the share itself: two right answers out of two is "precision 1.0"
    and says nothing; at the default z, with no error at all, 52 photos are needed before
    `match` is allowed for 0.95. z=0 uses the share itself. No such t: 1.01 (no `match`)."""
    order = np.argsort(-np.asarray(confidence, np.float64), kind="stable")
    c, ok = np.asarray(confidence, np.float64)[order], np.asarray(correct, bool)[order]
    n = np.arange(1, len(ok) + 1, dtype=np.float64)
    p = np.cumsum(ok) / n
    z2 = z * z
    bound = (p + z2 / (2 * n) - z * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n))) / (1 + z2 / n)
    best = 1.01
    for i in range(len(c)):
        if i + 1 < len(c) and c[i + 1] == c[i]:
            continue  # a threshold cannot split tied scores
        if bound[i] >= target - 1e-12:
            best = float(c[i])
    return best


def fit_policy(features: np.ndarray, correct: np.ndarray, known: np.ndarray, *, target_precision: float = 0.95,
               known_miss: float = 0.05, stats: ImpostorStats | None = None, fitted_on: str = "",
               z: float = 1.645) -> VerdictPolicy:
    """Fit P(rank 1 is right) on labelled rankings and derive both thresholds from them.

    features: (n, len(FEATURES)); correct: rank 1 is the photo's individual; known: the
    photo's individual is in the gallery. Fit on one set of individuals and report on another
    (EVAL.md): the thresholds are only as good as the photos they were chosen on."""
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(features, np.float64)
    y = np.asarray(correct, bool)
    known = np.asarray(known, bool)
    if y.all() or not y.any():
        raise ValueError("fitting a verdict policy needs photos whose rank 1 is right and photos where it is not")
    model = LogisticRegression(C=1.0, max_iter=1000).fit(x, y)
    policy = VerdictPolicy(coef=[float(v) for v in model.coef_[0]], intercept=float(model.intercept_[0]),
                           match_threshold=1.01, new_threshold=0.0, target_precision=target_precision,
                           known_miss=known_miss, fitted_on=fitted_on,
                           stats=asdict(stats) if stats is not None else {})
    conf = policy.confidence(x)
    policy.match_threshold = threshold_for_precision(conf, y, target_precision, z)
    known_conf = np.sort(conf[known])
    policy.new_threshold = float(known_conf[int(math.floor(known_miss * len(known_conf)))]) if len(known_conf) else 0.0
    policy.new_threshold = min(policy.new_threshold, policy.match_threshold)
    matched = conf >= policy.match_threshold
    policy.measured = {"photos": int(len(y)), "match": int(matched.sum()),
                       "match_precision": float(y[matched].mean()) if matched.any() else None,
                       "coverage": float(matched.mean())}
    return policy
