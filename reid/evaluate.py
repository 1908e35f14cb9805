"""EVAL.md metrics (reid-eval v1): split by sighting, score identifications, run a whole evaluation.

`evaluate()` uses the same pipeline and batch code as the CLI and the service, so the numbers
it reports are the numbers users get (flank filtering, calibration and verdicts included).
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from reid.batch import BatchItem, EnrollSummary, enroll_labels, iter_identified
from reid.calibrate import KINDS, Calibrator, expected_calibration_error
from reid.errors import ReidError
from reid.identify import Evidence, Identification, Pipeline, decide, flank_compatible, rank_order
from reid.labels import LabelRow, read_labels
from reid.settings import Settings

log = logging.getLogger(__name__)

PROTOCOL = "reid-eval v1"
ENCOUNTER_GAP = timedelta(minutes=30)  # with_encounters: the usual camera-trap independence interval
FETCH_FOR_CALIBRATION = 50  # candidates per query kept for (re)calibration: its negatives
MIN_CALIBRATION_QUERIES = 10  # known queries whose animal is among the candidates, to fit on


def natural_key(text: str) -> list[Any]:
    """'s2' < 's10': digit runs compare as numbers (sighting ids are often counters)."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text) if part]


def _sighting(row: LabelRow) -> str:
    # An image without a sighting id is its own encounter.
    return row.sighting or f"path:{row.path}"


def _time(text: str | None) -> datetime | None:
    """An ISO 8601 time as naive UTC-or-local (an offset, if given, is applied), else None."""
    try:
        t = datetime.fromisoformat(text) if text else None
    except ValueError:
        return None
    return t.astimezone(UTC).replace(tzinfo=None) if t is not None and t.tzinfo is not None else t


def with_encounters(rows: Sequence[LabelRow], *, gap: timedelta = ENCOUNTER_GAP) -> list[LabelRow]:
    """Rows without a sighting id get one: photos of one individual at one station taken less
    than `gap` apart (chained) are one encounter, as camera-trap studies count independent
    events. Without it a burst's frames could land on both sides of a split, and a match
    between two frames of one burst is far easier than a real re-sighting. Rows without a
    timestamp stay their own encounter; rows with a sighting id are kept as they are."""
    out = list(rows)
    timed = sorted(((t, n) for n, r in enumerate(rows) if not r.sighting and r.identity and (t := _time(r.timestamp))),
                   key=lambda item: (rows[item[1]].identity, rows[item[1]].station or "", item[0]))
    last: dict[tuple[str, str], tuple[datetime, str]] = {}
    for t, n in timed:
        row = rows[n]
        key = (row.identity or "", row.station or "")
        previous = last.get(key)
        encounter = previous[1] if previous and t - previous[0] < gap else f"auto:{key[0]}:{key[1]}:{t.isoformat()}"
        last[key] = (t, encounter)
        out[n] = replace(row, sighting=encounter)
    return out


def split_by_sighting(rows: Sequence[LabelRow], *, new_fraction: float = 0.0,
                      seed: int = 0) -> tuple[list[LabelRow], list[LabelRow]]:
    """Split labelled rows into (gallery, queries) per EVAL.md / shared data README.

    Per identity, its distinct sightings sorted in natural order: the first floor(n/2) (at
    least 1) go to the gallery, the rest to queries; an identity with one sighting is gallery
    only. With new_fraction > 0, that share of identities (chosen deterministically by seed)
    goes entirely to queries: individuals the gallery has never seen. Rows without an identity
    are queries (unknown). Input order is kept within each side.
    """
    if not 0.0 <= new_fraction < 1.0:
        raise ValueError("new_fraction must be in [0, 1)")
    sightings: dict[str, set[str]] = {}
    for row in rows:
        if row.identity:
            sightings.setdefault(row.identity, set()).add(_sighting(row))
    identities = sorted(sightings, key=natural_key)
    n_new = int(round(new_fraction * len(identities)))
    new = set(random.Random(seed).sample(identities, n_new)) if n_new else set()
    to_gallery: dict[str, set[str]] = {}
    for identity in identities:
        if identity in new:
            to_gallery[identity] = set()
            continue
        ordered = sorted(sightings[identity], key=natural_key)
        to_gallery[identity] = set(ordered[:max(1, len(ordered) // 2)])
    gallery, queries = [], []
    for row in rows:
        if row.identity and _sighting(row) in to_gallery[row.identity]:
            gallery.append(row)
        else:
            queries.append(row)
    return gallery, queries


def auroc(positives: Sequence[float], negatives: Sequence[float]) -> float | None:
    """P(score of a random positive > a random negative), ties counted half; None if a class is empty."""
    if not positives or not negatives:
        return None
    # Rank-sum (Mann-Whitney U) with average ranks for ties: O(n log n), exact.
    scored = sorted([(s, 1) for s in positives] + [(s, 0) for s in negatives])
    rank_sum, i = 0.0, 0
    while i < len(scored):
        j = i
        while j < len(scored) and scored[j][0] == scored[i][0]:
            j += 1
        avg_rank = (i + 1 + j) / 2.0  # ranks i+1 .. j
        rank_sum += avg_rank * sum(label for _, label in scored[i:j])
        i = j
    n_pos, n_neg = len(positives), len(negatives)
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def known_identity(identity: str | None, gallery_identities: Collection[str] | None) -> str | None:
    """The query's identity if the gallery knows it (None = a new individual)."""
    if identity is not None and gallery_identities is not None and identity not in gallery_identities:
        return None
    return identity


def compute_metrics(results: Sequence[Identification], truth: Mapping[str, str | None] | Sequence[str | None], *,
                    gallery_identities: Collection[str] | None = None) -> dict[str, Any]:
    """EVAL.md metrics of identifications against the truth.

    `truth` gives each query's identity, or None for an individual absent from the gallery:
    either a mapping from the query's name (Identification.name; queries not in it are
    ignored) or a sequence aligned with `results`. With `gallery_identities`, truth
    identities not in it count as unknown too. An `error` result counts as a miss with
    rank-1 score 0 (and a wrong decision).
    """
    if isinstance(truth, Mapping):
        pairs = [(res, truth[res.name]) for res in results if res.name in truth]
    else:
        if len(truth) != len(results):
            raise ValueError(f"{len(results)} results but {len(truth)} truth labels")
        pairs = list(zip(results, truth, strict=True))
    hits1 = hits5 = 0
    rr_sum = 0.0
    correct = 0
    known_scores: list[float] = []
    unknown_scores: list[float] = []
    decisions = {"match": 0, "new": 0, "review": 0, "error": 0}
    wrong_matches = 0  # `match` naming the wrong animal (or any animal, for a newcomer): the costly error
    for res, identity in pairs:
        decisions[res.decision] = decisions.get(res.decision, 0) + 1
        identity = known_identity(identity, gallery_identities)
        if res.decision == "match":
            wrong_matches += not res.candidates or identity is None or res.candidates[0].identity != identity
        top_score = res.candidates[0].score if res.candidates and res.decision != "error" else 0.0
        if identity is None:
            unknown_scores.append(top_score)
            correct += res.decision == "new"
            continue
        known_scores.append(top_score)
        ranked = [c.identity for c in sorted(res.candidates, key=lambda c: c.rank)] if res.decision != "error" else []
        rank = ranked.index(identity) + 1 if identity in ranked else None
        if rank is not None:
            hits1 += rank <= 1
            hits5 += rank <= 5
            rr_sum += 1.0 / rank
            correct += rank == 1 and res.decision == "match"
    n_known, n_unknown = len(known_scores), len(unknown_scores)
    new_auc = auroc(known_scores, unknown_scores)
    probs, labels = candidate_pairs(pairs, gallery_identities)

    def share(x: float, d: int) -> float | None:
        return round(x / d, 6) if d else None

    return {
        "top1": share(hits1, n_known),
        "top5": share(hits5, n_known),
        "mrr": share(rr_sum, n_known),
        "new_auroc": None if new_auc is None else round(new_auc, 6),
        "decision_accuracy": share(correct, len(pairs)),
        "ece": round(expected_calibration_error(probs, labels), 6) if len(probs) else None,
        "n_queries": len(pairs),
        "n_known": n_known,
        "n_unknown": n_unknown,
        "decisions": decisions,
        "wrong_matches": wrong_matches,
    }


def candidate_pairs(pairs: Sequence[tuple[Identification, str | None]],
                    gallery_identities: Collection[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Every (query, candidate) score and whether that candidate is the query's individual."""
    probs, labels = [], []
    for res, identity in pairs:
        if res.decision == "error":
            continue
        identity = known_identity(identity, gallery_identities)
        for c in res.candidates:
            probs.append(c.score)
            labels.append(int(c.identity == identity))
    return np.asarray(probs, np.float64), np.asarray(labels, np.int64)


def candidate_features(res: Identification, names: Sequence[str]) -> np.ndarray:
    """Calibrator inputs of each candidate (same definitions as reid.stages.shortlist.Evidence)."""
    return np.asarray([Evidence(c.individual_id, c.identity, c.cosine, c.image_id, c.viewpoint, c.local_score,
                                c.inliers).features(names) for c in res.candidates], np.float64).reshape(-1, len(names))


def rescore(res: Identification, calibrator: Calibrator, settings: Settings, top_k: int) -> Identification:
    """Re-score a result's candidates with another calibrator: new probabilities, order, verdict."""
    if res.decision == "error" or not res.candidates:
        return res
    probs = calibrator.predict(candidate_features(res, calibrator.features))
    order = rank_order(probs, [c.local_score for c in res.candidates], [c.cosine for c in res.candidates])[:top_k]
    cands = [replace(res.candidates[i], rank=r + 1, score=round(float(probs[i]), 6)) for r, i in enumerate(order)]
    return replace(res, candidates=cands, decision=decide([c.score for c in cands], settings))


def fit_calibrator(results: Sequence[Identification], truth: Sequence[str | None], *, features: Sequence[str],
                   fitted_on: str, gallery_identities: Collection[str] | None = None,
                   kind: str = "auto") -> Calibrator:
    """A calibration (reid.calibrate kind) fitted on every (query, candidate) pair of labelled results."""
    xs, ys, groups = [], [], []
    for res, identity in zip(results, truth, strict=True):
        if res.decision == "error" or not res.candidates:
            continue
        identity = known_identity(identity, gallery_identities)
        xs.append(candidate_features(res, features))
        ys.extend(int(c.identity == identity) for c in res.candidates)
        groups.extend([len(xs)] * len(res.candidates))
    if not xs:
        raise ReidError("no labelled candidates to calibrate on")
    return Calibrator.fit(np.concatenate(xs), np.asarray(ys), list(features), fitted_on=fitted_on, kind=kind,
                          groups=np.asarray(groups))


def cross_fitted(results: Sequence[Identification], truth: Sequence[str | None], *, features: Sequence[str],
                 settings: Settings, top_k: int, folds: int = 2, seed: int = 0,
                 gallery_identities: Collection[str] | None = None, kind: str = "auto",
                 chosen: list[str] | None = None) -> list[Identification]:
    """Each query re-scored by a calibrator fitted on the *other* folds (folds split by individual),
    so that a reported ECE or decision accuracy never uses its own labels. `chosen`, if
    given, receives each fold's calibration kind."""
    names = sorted({t or f"unknown:{r.name}" for r, t in zip(results, truth, strict=True)})
    rng = np.random.default_rng(seed)
    fold_of = dict(zip(names, rng.permutation(len(names)) % folds, strict=True))
    keys = [fold_of[t or f"unknown:{r.name}"] for r, t in zip(results, truth, strict=True)]
    out = list(results)
    for f in range(folds):
        train = [n for n, k in enumerate(keys) if k != f]
        cal = fit_calibrator([results[n] for n in train], [truth[n] for n in train], features=features,
                             fitted_on=f"cross-fit fold {f}", gallery_identities=gallery_identities, kind=kind)
        if chosen is not None:
            chosen.append(cal.kind)
        for n, k in enumerate(keys):
            if k == f:
                out[n] = rescore(results[n], cal, settings, top_k)
    return out


def _by_keypoints_only(res: Identification, settings: Settings) -> Identification:
    """Keep only candidates with verified spots, ordered by their keypoint score."""
    if res.decision == "error":
        return res
    kept = sorted((c for c in res.candidates if c.local_score > 0), key=lambda c: -c.local_score)
    cands = [replace(c, rank=r + 1) for r, c in enumerate(kept)]
    return replace(res, candidates=cands, decision=decide([c.score for c in cands], settings))


def _flank_in_gallery(results: Sequence[Identification], truth: Sequence[str | None], flanks: Sequence[str | None],
                      gallery_rows: Sequence[LabelRow], known: Collection[str]) -> dict[str, Any]:
    """Metrics over the known queries whose flank the gallery CSV has a photo of (plus every new one).

    Left and right flanks are different patterns, so a known animal seen only on its other
    flank cannot be named by any method: these numbers separate that ceiling from the errors."""
    sides: dict[str, set[str]] = {}
    for row in gallery_rows:
        sides.setdefault(row.identity or "", set()).add(row.viewpoint or "")
    keep = [n for n, (t, v) in enumerate(zip(truth, flanks, strict=True))
            if known_identity(t, known) is None
            or any(flank_compatible(v or "", g) for g in sides.get(t or "", ()))]
    sub = compute_metrics([results[n] for n in keep], [truth[n] for n in keep], gallery_identities=known)
    return {k: sub[k] for k in ("n_known", "top1", "top5", "mrr", "new_auroc")}


@dataclass
class SplitRun:
    """A gallery enrolled and its queries identified: what metrics and calibrations start from."""

    results: list[Identification]
    truth: list[str | None]  # aligned with results: paths may repeat, a video gives many
    flanks: list[str | None]  # the query's viewpoint, aligned likewise
    known: set[str]  # identities in the gallery
    enrolled: EnrollSummary
    enroll_seconds: float
    identify_seconds: float


def identify_split(pipeline: Pipeline, gallery_csv: str | Path, gallery_rows: Sequence[LabelRow],
                   query_rows: Sequence[LabelRow], *, fetch: int, progress: bool = True) -> SplitRun:
    """Enroll the gallery rows into the pipeline's data dir and identify the queries (`fetch`
    candidates each, through the batch code the CLI and the service use)."""
    t0 = time.perf_counter()
    enrolled = enroll_labels(pipeline, gallery_csv, rows=gallery_rows, progress=progress)
    t1 = time.perf_counter()
    items = [BatchItem(path=r.path, file=r.file, row=r) for r in query_rows]
    run = SplitRun([], [], [], set(), enrolled, t1 - t0, 0.0)
    for outcome in iter_identified(pipeline, items, top_k=fetch, progress=progress, audit=False):
        row = outcome.item.row if outcome.item else None
        run.results.append(outcome.identification)
        run.truth.append(row.identity if row else None)
        run.flanks.append(row.viewpoint if row else None)
    run.identify_seconds = time.perf_counter() - t1
    run.known = {ind.name for ind in pipeline.catalog.list_individuals()}
    return run


def _features(pipeline: Pipeline, ranking: str) -> list[str]:
    return {"fused": ["cosine", "local"], "global": ["cosine"], "local": ["local"]}[
        ranking if pipeline.settings.local_matching else "global"]


def evaluate(pipeline: Pipeline, gallery_csv: str | Path, queries_csv: str | Path, *, top_k: int = 5,
             progress: bool = True, cross_fit: bool = False, fit_out: Path | None = None,
             ranking: str = "fused", calibration_kind: str = "auto") -> dict[str, Any]:
    """Enroll the gallery CSV into the pipeline's data dir, identify the queries, score them.

    Use a pipeline on a fresh data dir: individuals already in its catalogue count as known.
    Throughput is query images per second over the identify phase (decode + embed + search +
    verdicts, everything after the model is loaded); enrollment time is reported separately.
    ranking "local" scores candidates by verified keypoints alone (run the pipeline with
    rerank_individuals=0 so that the embedding picks none): candidates without verified
    spots are dropped, so the embedding cannot break ties. calibration_kind: what --cross-fit
    and fit_out fit (reid.calibrate.KINDS).
    """
    gallery_rows = read_labels(gallery_csv, require_identity=True)
    query_rows = read_labels(queries_csv)
    # Re-scoring needs every candidate the new calibration might put first, not only the top
    # of the shipped calibration's order (which may ignore the cosine, or weigh it).
    fetch = max(5, top_k) if not (cross_fit or fit_out or ranking == "local") else max(FETCH_FOR_CALIBRATION, top_k)
    run = identify_split(pipeline, gallery_csv, gallery_rows, query_rows, fetch=fetch, progress=progress)
    results, truth, known = run.results, run.truth, run.known
    features = _features(pipeline, ranking)
    calibration = pipeline.calibrator.fitted_on
    if fit_out is not None:
        cal = fit_calibrator(results, truth, features=features, gallery_identities=known, kind=calibration_kind,
                             fitted_on=f"gallery {gallery_csv}, queries {queries_csv}")
        in_sample = [rescore(r, cal, pipeline.settings, max(5, top_k)) for r in results]
        cal.ece = round(expected_calibration_error(*candidate_pairs(list(zip(in_sample, truth, strict=True)),
                                                                    known)), 6)
        cal.model_id = pipeline.model_id
        cal.save(fit_out)
        calibration = f"{cal.kind}, written to {fit_out}; without --cross-fit the metrics use it in-sample"
        if not cross_fit:
            # report what the new calibration does, not the one it replaces
            results = in_sample
    if cross_fit:
        kinds: list[str] = []
        results = cross_fitted(results, truth, features=features, settings=pipeline.settings, top_k=max(5, top_k),
                               gallery_identities=known, kind=calibration_kind, chosen=kinds)
        calibration = f"2-fold cross-fitted by individual on these queries ({calibration_kind}: {', '.join(kinds)})"
    else:
        results = [replace(r, candidates=r.candidates[:max(5, top_k)]) for r in results]
    if features == ["local"]:  # after calibration, which needs the unverified (negative) candidates too
        results = [_by_keypoints_only(r, pipeline.settings) for r in results]
    metrics = compute_metrics(results, truth, gallery_identities=known)
    metrics["flank_in_gallery"] = _flank_in_gallery(results, truth, run.flanks, gallery_rows, known)
    n_images = sum(r.decision != "error" for r in results)
    metrics.update({
        "throughput_images_per_s": round(n_images / run.identify_seconds, 2) if run.identify_seconds > 0 else None,
        "identify_seconds": round(run.identify_seconds, 2),
        "enroll_seconds": round(run.enroll_seconds, 2),
        "gallery_images": run.enrolled.enrolled + run.enrolled.already,
        "gallery_individuals": len(known),
        "gallery_errors": len(run.enrolled.errors),
        "query_errors": len(results) - n_images,
        "model_id": pipeline.model_id,
        "local_matching": pipeline.settings.local_matching,
        "ranking": ranking if pipeline.settings.local_matching else "global",
        "calibration": calibration,
        "protocol": PROTOCOL,
    })
    return metrics


# -- a project's own calibration ----------------------------------------------------------------------
def log_loss(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the labels (a proper score: rewards calibrated AND sharp P)."""
    p = np.clip(np.asarray(probs, np.float64), 1e-6, 1 - 1e-6)
    y = np.asarray(labels, np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))) if len(p) else float("nan")


def _judge(results: Sequence[Identification], run: SplitRun, top_k: int, settings: Settings) -> dict[str, Any]:
    """Log-loss over every fetched candidate, EVAL.md metrics over the top `top_k`."""
    pairs = list(zip(results, run.truth, strict=True))
    out = {"log_loss": round(log_loss(*candidate_pairs(pairs, run.known)), 6)}
    shown = [replace(r, candidates=r.candidates[:top_k]) for r in results]
    m = compute_metrics(shown, run.truth, gallery_identities=run.known)
    out.update({k: m[k] for k in ("top1", "new_auroc", "ece", "decision_accuracy", "decisions", "wrong_matches",
                                  "n_known", "n_unknown")})
    return out


def recalibrate(pipeline: Pipeline, current: Calibrator, gallery_csv: str | Path, gallery_rows: Sequence[LabelRow],
                query_rows: Sequence[LabelRow], *, kind: str = "auto", top_k: int = 5,
                progress: bool = True) -> tuple[Calibrator, dict[str, Any]]:
    """Fit a calibration on labelled photos and say whether it measures better than `current`.

    The pipeline (on a fresh data dir) enrolls the gallery rows and identifies the queries.
    `current` and each refit kind (both for "auto") are judged on the same candidates, the
    refits cross-fitted (each query scored by a calibration fitted on other individuals, as
    `reid eval --cross-fit`), so their numbers are held out like the current one's. Better
    means a lower log-loss over all candidates AND a top-1 no lower than the current one's:
    on nyala-dev a grid had the lowest log-loss but ranked 5 points worse than the logistic.
    The calibration returned is the best kind, fitted on all the queries.
    """
    fetch = max(FETCH_FOR_CALIBRATION, top_k)
    run = identify_split(pipeline, gallery_csv, gallery_rows, query_rows, fetch=fetch, progress=progress)
    positives = sum(1 for r, t in zip(run.results, run.truth, strict=True)
                    if t in run.known and any(c.identity == t for c in r.candidates))
    if positives < MIN_CALIBRATION_QUERIES:
        raise ReidError(f"only {positives} queries of known individuals to calibrate on (at least "
                        f"{MIN_CALIBRATION_QUERIES} needed): confirm more individuals seen on two or more occasions")
    features = _features(pipeline, "fused")
    settings = pipeline.settings
    if list(current.features) != features:
        raise ReidError(f"the current calibration uses {current.features}, this pipeline {features}")
    as_is = _judge([rescore(r, current, settings, fetch) for r in run.results], run, top_k, settings)
    tried: dict[str, dict[str, Any]] = {}
    for k in ([k for k in KINDS if k != "auto"] if kind == "auto" else [kind]):
        used: list[str] = []
        held_out = cross_fitted(run.results, run.truth, features=features, settings=settings, top_k=fetch,
                                gallery_identities=run.known, kind=k, chosen=used)
        tried[k] = {"folds": used, **_judge(held_out, run, top_k, settings)}
    better = [k for k, t in tried.items()
              if t["log_loss"] < as_is["log_loss"] and (t["top1"] or 0.0) >= (as_is["top1"] or 0.0)]
    best = min(better or tried, key=lambda k: tried[k]["log_loss"])
    new = fit_calibrator(run.results, run.truth, features=features, gallery_identities=run.known, kind=best,
                         fitted_on="")
    new.model_id = pipeline.model_id
    report = {"current": {"fitted_on": current.fitted_on, **as_is},
              "refit_held_out": {"kind": best, **tried[best]},
              "tried": tried,
              "better": best in better,
              "gallery_images": run.enrolled.enrolled + run.enrolled.already,
              "queries": len(run.results), "known_queries_ranked": positives}
    return new, report
