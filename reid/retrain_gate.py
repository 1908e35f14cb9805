"""The promotion gate: does a retrained model recognise individuals it never trained on better?

Held-out individuals (never in training) are split by sighting with a fifth of them held
out as new (EVAL.md), their gallery enrolled into a scratch catalogue, and their queries
identified by each model twice: global embedding alone and fused with keypoints (the
service's answer). Both models get the same treatment: each query is scored by a
calibration fitted on the *other* individuals' queries (2-fold cross-fit, as `reid eval
--cross-fit`), so neither model's numbers lean on a calibration fitted on its own labels
or on another model's. The keypoint caches are shared (they do not depend on the model).

Promote only when the candidate's fused top-1 is higher beyond the noise of the held-out
queries AND its new-individual AUROC is not lower beyond that noise: a model that names
known animals better but can no longer tell a newcomer would file next season's new
leopards under old names. The noise is a paired bootstrap over the held-out queries (the
same resampled queries for both models; known and new queries resampled separately, so
every resample has both): promote only when the lower end of the 95% interval of the
fused top-1 gain is above 0, and refuse when the upper end of the AUROC change's interval
is below 0. On 57 queries one query is 1.8 points: a gain of one or two queries is noise.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from reid.calibrate import Calibrator
from reid.errors import ReidError
from reid.evaluate import (
    FETCH_FOR_CALIBRATION,
    compute_metrics,
    cross_fitted,
    fit_calibrator,
    identify_split,
    known_identity,
    split_by_sighting,
)
from reid.labels import LabelRow
from reid.settings import Settings

log = logging.getLogger(__name__)

RANKINGS = {"global": ["cosine"], "fused": ["cosine", "local"]}
METRIC_KEYS = ("top1", "top5", "mrr", "new_auroc", "ece", "n_known", "n_unknown")
RESAMPLES, LEVEL, NOISE_SEED = 1000, 0.95, 0
BOOTSTRAP_BLOCK = 200  # resamples ranked at once by the AUROC bootstrap


@dataclass(frozen=True)
class QueryOutcomes:
    """Per held-out query, as compute_metrics counts it: its name, whether its individual is
    in the gallery (known), whether that individual is ranked first, and the rank-1 score
    (what tells a known query from a newcomer's, the AUROC's input)."""

    names: tuple[str, ...]
    known: np.ndarray  # bool
    hit1: np.ndarray  # bool; False for new queries
    top_score: np.ndarray  # float

    @classmethod
    def of(cls, results: list, truth: list, gallery_identities: set) -> QueryOutcomes:
        known, hit1, top = [], [], []
        for res, identity in zip(results, truth, strict=True):
            identity = known_identity(identity, gallery_identities)
            ok = res.decision != "error" and bool(res.candidates)
            ranked = sorted(res.candidates, key=lambda c: c.rank) if ok else []
            known.append(identity is not None)
            hit1.append(identity is not None and bool(ranked) and ranked[0].identity == identity)
            top.append(res.candidates[0].score if ok else 0.0)
        return cls(tuple(r.name for r in results), np.asarray(known, bool), np.asarray(hit1, bool),
                   np.asarray(top, np.float64))

    def to_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "known": self.known.tolist(), "hit1": self.hit1.tolist(),
                "top_score": self.top_score.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> QueryOutcomes:
        return cls(tuple(d["names"]), np.asarray(d["known"], bool), np.asarray(d["hit1"], bool),
                   np.asarray(d["top_score"], np.float64))


def _auroc(known: np.ndarray, top: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(known, top))  # ties count half, as reid.evaluate.auroc


def _auroc_rows(top: np.ndarray, n_known: int) -> np.ndarray:
    """The AUROC of each row of scores whose first `n_known` columns are known queries: the
    Mann-Whitney U from average ranks (ties count half, as `_auroc`), all rows at once; a loop
    of roc_auc_score calls made the bootstrap seconds long."""
    from scipy.stats import rankdata

    n_new = top.shape[1] - n_known
    u = rankdata(top, axis=1)[:, :n_known].sum(axis=1) - n_known * (n_known + 1) / 2
    return u / (n_known * n_new)


def _interval(point: float, samples: np.ndarray, level: float) -> dict[str, float]:
    lo, hi = np.percentile(samples, [50 * (1 - level), 50 * (1 + level)])
    return {"change": round(float(point), 6), "low": round(float(lo), 6), "high": round(float(hi), 6)}


def paired_bootstrap(candidate: QueryOutcomes, current: QueryOutcomes, *, resamples: int = RESAMPLES,
                     level: float = LEVEL, seed: int = NOISE_SEED) -> dict[str, Any]:
    """Intervals of the candidate-minus-current top-1 and new-individual AUROC changes over the
    same held-out queries, resampled with replacement (known and new queries separately, so
    that each resample keeps their numbers and both classes; paired: one draw serves both
    models). Percentile intervals at `level`; seeded, so a gate decision is reproducible."""
    if candidate.names != current.names or not np.array_equal(candidate.known, current.known):
        raise ValueError("the two models were not evaluated on the same queries")
    known_idx, new_idx = np.flatnonzero(current.known), np.flatnonzero(~current.known)
    out: dict[str, Any] = {"resamples": resamples, "level": level, "seed": seed, "unit": "query",
                           "n_known": int(len(known_idx)), "n_unknown": int(len(new_idx)),
                           "top1": None, "new_auroc": None}
    rng = np.random.default_rng(seed)
    if len(known_idx):
        gain = candidate.hit1.astype(float) - current.hit1.astype(float)
        draws = rng.choice(known_idx, (resamples, len(known_idx)), replace=True)
        out["top1"] = _interval(gain[known_idx].mean(), gain[draws].mean(axis=1), level)
    if len(known_idx) and len(new_idx):
        point = _auroc(candidate.known, candidate.top_score) - _auroc(current.known, current.top_score)
        samples = np.empty(resamples)
        for start in range(0, resamples, BOOTSTRAP_BLOCK):  # blocks: memory stays bounded on big sets
            n = min(BOOTSTRAP_BLOCK, resamples - start)
            # known queries first in every row: what _auroc_rows counts as the positives
            idx = np.concatenate([rng.choice(known_idx, (n, len(known_idx))), rng.choice(new_idx, (n, len(new_idx)))],
                                 axis=1)
            samples[start:start + n] = (_auroc_rows(candidate.top_score[idx], len(known_idx))
                                        - _auroc_rows(current.top_score[idx], len(known_idx)))
        out["new_auroc"] = _interval(point, samples, level)
    return out


@dataclass
class ModelEvaluation:
    """One model on the held-out individuals: metrics per ranking, and its fused results
    (what a calibration for it is fitted on)."""

    model_id: str
    metrics: dict[str, dict[str, Any]]
    calibration: str  # how the scores were calibrated
    fused_results: list = field(default_factory=list, repr=False)
    fused_truth: list = field(default_factory=list, repr=False)
    known: set = field(default_factory=set, repr=False)
    outcomes: dict[str, QueryOutcomes] = field(default_factory=dict, repr=False)  # per ranking, scored

    def noise_against(self, other: ModelEvaluation, **kwargs: Any) -> dict[str, Any]:
        """Paired-bootstrap intervals of this model's changes against `other`, per ranking."""
        return {ranking: paired_bootstrap(self.outcomes[ranking], other.outcomes[ranking], **kwargs)
                for ranking in self.outcomes if ranking in other.outcomes}


def _scored(results: list, truth: list, known: set, features: list[str], settings: Settings) -> tuple[list, str]:
    """Cross-fitted scores; on data too small for that (a fold without a right candidate),
    one calibration fitted on all of it, for every model alike, and said so."""
    try:
        return cross_fitted(results, truth, features=features, settings=settings, top_k=FETCH_FOR_CALIBRATION,
                            gallery_identities=known), "2-fold cross-fit by individual"
    except ReidError as exc:
        log.info("cross-fit not possible on the held-out individuals (%s): in-sample calibration", exc)
    from reid.evaluate import rescore

    try:
        cal = fit_calibrator(results, truth, features=features, gallery_identities=known, fitted_on="held-out")
    except ReidError:
        return results, "none (too few held-out queries to fit one): raw cosine order"
    return [rescore(r, cal, settings, FETCH_FOR_CALIBRATION) for r in results], "in-sample (too few to cross-fit)"


def evaluate_models(models: dict[str, Path], rows: list[LabelRow], settings: Settings, *,
                    new_fraction: float = 0.2, seed: int = 0, progress: bool = False,
                    scratch: Path | None = None) -> dict[str, ModelEvaluation]:
    """Each model (name -> checkpoint) on `rows` (held-out individuals), global and fused."""
    from reid.identify import Pipeline

    gallery, queries = split_by_sighting(rows, new_fraction=new_fraction, seed=seed)
    if not gallery or not queries:
        raise ReidError("the held-out individuals have too few sightings to evaluate on")
    own_scratch = scratch is None
    scratch = Path(scratch or tempfile.mkdtemp(prefix="reid-gate-"))
    out: dict[str, ModelEvaluation] = {}
    try:
        for name, path in models.items():
            metrics: dict[str, dict[str, Any]] = {}
            outcomes: dict[str, QueryOutcomes] = {}
            how = ""
            ev = None
            for ranking, features in RANKINGS.items():
                s = settings.replace(data_dir=scratch, model_path=Path(path), calibration=None,
                                    local_matching=ranking == "fused")
                pipeline = Pipeline(s)
                try:
                    run = identify_split(pipeline, "held-out individuals", gallery, queries,
                                         fetch=FETCH_FOR_CALIBRATION, progress=progress)
                finally:
                    pipeline.close()
                scored, how = _scored(run.results, run.truth, run.known, features, s)
                shown = [replace(r, candidates=r.candidates[:5]) for r in scored]
                m = compute_metrics(shown, run.truth, gallery_identities=run.known)
                metrics[ranking] = {k: m[k] for k in METRIC_KEYS}
                outcomes[ranking] = QueryOutcomes.of(shown, run.truth, run.known)
                if ranking == "fused":
                    ev = ModelEvaluation(pipeline.model_id, metrics, how, run.results, run.truth, run.known)
            assert ev is not None
            ev.outcomes = outcomes
            ev.calibration = how
            out[name] = ev
    finally:
        if own_scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    return out


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reasons: list[str]
    noise: dict[str, Any] | None = None  # paired-bootstrap intervals per ranking (None: not measured)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "reasons": self.reasons, "intervals": self.noise}


def gate(candidate: dict[str, dict[str, Any]], current: dict[str, dict[str, Any]],
         noise: dict[str, Any] | None = None) -> GateDecision:
    """Promote when fused top-1 is higher and new-individual AUROC is not lower (fused).

    With `noise` (ModelEvaluation.noise_against: paired-bootstrap intervals per ranking), a
    higher top-1 must also be higher beyond the noise (the interval's lower end above 0), and
    a lower AUROC refuses only when it is lower beyond the noise (the upper end below 0)."""
    c, k = candidate["fused"], current["fused"]
    fused_noise = (noise or {}).get("fused") or {}
    pct = f"{100 * fused_noise.get('level', LEVEL):g}%"
    n = f"{fused_noise.get('resamples', RESAMPLES)} paired resamples of {fused_noise.get('n_known')} known"
    reasons, ok = [], True
    top_c, top_k = c.get("top1") or 0.0, k.get("top1") or 0.0
    top_iv = fused_noise.get("top1")
    if top_c <= top_k:
        ok = False
        reasons.append(f"fused top-1 not higher: {top_c:.3f} vs {top_k:.3f}")
    elif noise is not None and (top_iv is None or top_iv["low"] <= 0):
        ok = False
        span = "not measurable" if top_iv is None else f"{pct} interval {top_iv['low']:+.3f} .. {top_iv['high']:+.3f}"
        reasons.append(f"fused top-1 gain within noise: {top_c:.3f} vs {top_k:.3f} ({span}, {n} queries)")
    elif noise is not None:
        reasons.append(f"fused top-1 higher beyond noise: {top_c:.3f} vs {top_k:.3f} "
                       f"({pct} interval of the gain {top_iv['low']:+.3f} .. {top_iv['high']:+.3f})")
    else:
        reasons.append(f"fused top-1 higher: {top_c:.3f} vs {top_k:.3f}")
    au_c, au_k = c.get("new_auroc"), k.get("new_auroc")
    au_iv = fused_noise.get("new_auroc")
    if au_c is None or au_k is None:
        reasons.append("new-individual AUROC not measurable (no newcomer or no known query held out)")
    elif au_c >= au_k:
        reasons.append(f"new-individual AUROC not lower: {au_c:.3f} vs {au_k:.3f}")
    elif au_iv is not None and au_iv["high"] >= 0:
        reasons.append(f"new-individual AUROC lower only within noise: {au_c:.3f} vs {au_k:.3f} "
                       f"({pct} interval of the change {au_iv['low']:+.3f} .. {au_iv['high']:+.3f})")
    else:
        ok = False
        span = f" ({pct} interval of the change {au_iv['low']:+.3f} .. {au_iv['high']:+.3f})" if au_iv else ""
        reasons.append(f"new-individual AUROC lower: {au_c:.3f} vs {au_k:.3f}{span}")
    return GateDecision(ok, reasons, noise)


def fit_candidate_calibration(ev: ModelEvaluation, fitted_on: str) -> Calibrator | None:
    """The candidate's calibration, fitted (kind chosen by held-out log-loss, as `reid calibrate`)
    on its fused results for the held-out individuals: photos it never trained on, so its
    cosines there are what a newcomer's will be. None when there is too little to fit."""
    try:
        cal = fit_calibrator(ev.fused_results, ev.fused_truth, features=RANKINGS["fused"],
                             gallery_identities=ev.known, fitted_on=fitted_on)
    except ReidError as exc:
        log.warning("no calibration fitted for the candidate: %s", exc)
        return None
    cal.model_id = ev.model_id
    return cal


def table(evaluations: dict[str, ModelEvaluation]) -> list[dict[str, Any]]:
    """Rows of (model, ranking, metrics) for reports and the job API."""
    return [{"model": name, "model_id": ev.model_id, "ranking": ranking, **m, "calibration": ev.calibration}
            for name, ev in evaluations.items() for ranking, m in ev.metrics.items()]


def format_table(rows: list[dict[str, Any]]) -> str:
    def f(v: Any) -> str:
        return "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)

    head = ["model", "ranking", "top-1", "top-5", "MRR", "new AUROC", "known", "new"]
    body = [[r["model"], r["ranking"], f(r["top1"]), f(r["top5"]), f(r["mrr"]), f(r["new_auroc"]),
             f(r["n_known"]), f(r["n_unknown"])] for r in rows]
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
                     for line in [head, *body])


def format_intervals(noise: dict[str, Any] | None) -> str:
    """The gate's bootstrap intervals as lines for the CLI and the benchmarks."""
    if not noise:
        return "noise: not measured"
    lines = []
    for ranking, d in noise.items():
        parts = []
        for key, label in (("top1", "top-1"), ("new_auroc", "new AUROC")):
            iv = d.get(key)
            parts.append(f"{label} {iv['change']:+.3f} [{iv['low']:+.3f}, {iv['high']:+.3f}]" if iv
                         else f"{label} not measurable")
        lines.append(f"{ranking}: " + "; ".join(parts))
    first = next(iter(noise.values()))
    head = (f"candidate minus model in force, {100 * first['level']:g}% intervals from {first['resamples']} "
            f"paired resamples of the held-out queries ({first['n_known']} known, {first['n_unknown']} new):")
    return "\n".join([head, *("  " + line for line in lines)])
