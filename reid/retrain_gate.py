"""The promotion gate: does a retrained model recognise individuals it never trained on better?

Held-out individuals (never in training) are split by sighting with a fifth of them held
out as new (EVAL.md), their gallery enrolled into a scratch catalogue, and their queries
identified by each model twice: global embedding alone and fused with keypoints (the
service's answer). Both models get the same treatment: each query is scored by a
calibration fitted on the *other* individuals' queries (2-fold cross-fit, as `reid eval
--cross-fit`), so neither model's numbers lean on a calibration fitted on its own labels
or on another model's. The keypoint caches are shared (they do not depend on the model).

Promote only when the candidate's fused top-1 is higher AND its new-individual AUROC is not
lower: a model that names known animals better but can no longer tell a newcomer would
file next season's new leopards under old names.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from reid.calibrate import Calibrator
from reid.errors import ReidError
from reid.evaluate import (
    FETCH_FOR_CALIBRATION,
    compute_metrics,
    cross_fitted,
    fit_calibrator,
    identify_split,
    split_by_sighting,
)
from reid.labels import LabelRow
from reid.settings import Settings

log = logging.getLogger(__name__)

RANKINGS = {"global": ["cosine"], "fused": ["cosine", "local"]}
METRIC_KEYS = ("top1", "top5", "mrr", "new_auroc", "ece", "n_known", "n_unknown")


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
                if ranking == "fused":
                    ev = ModelEvaluation(pipeline.model_id, metrics, how, run.results, run.truth, run.known)
            assert ev is not None
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

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "reasons": self.reasons}


def gate(candidate: dict[str, dict[str, Any]], current: dict[str, dict[str, Any]]) -> GateDecision:
    """Promote when fused top-1 is higher and new-individual AUROC is not lower (fused)."""
    c, k = candidate["fused"], current["fused"]
    reasons, ok = [], True
    top_c, top_k = c.get("top1") or 0.0, k.get("top1") or 0.0
    if top_c > top_k:
        reasons.append(f"fused top-1 higher: {top_c:.3f} vs {top_k:.3f}")
    else:
        ok = False
        reasons.append(f"fused top-1 not higher: {top_c:.3f} vs {top_k:.3f}")
    au_c, au_k = c.get("new_auroc"), k.get("new_auroc")
    if au_c is None or au_k is None:
        reasons.append("new-individual AUROC not measurable (no newcomer or no known query held out)")
    elif au_c >= au_k:
        reasons.append(f"new-individual AUROC not lower: {au_c:.3f} vs {au_k:.3f}")
    else:
        ok = False
        reasons.append(f"new-individual AUROC lower: {au_c:.3f} vs {au_k:.3f}")
    return GateDecision(ok, reasons)


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
