"""Fit the error-budget verdict policy (reid.open_set) on a labelled gallery/queries split,
and the `reid fit-verdicts` command.

The split's gallery is enrolled into a scratch catalogue (never the project's own); its
photos are identified against it for the impostor statistics, the queries for the policy.
Report what it does on OTHER individuals before trusting its thresholds
(benchmarks/open_set_eval.py; docs/verdicts.md).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from reid.labels import LabelRow
from reid.open_set import VerdictPolicy

TOP_K = 50  # candidates kept per photo: the impostor statistics want more than the top 5


def _rankings(pipeline: Any, rows: Sequence[LabelRow]) -> list[tuple[str | None, list[tuple[str, float, float, float]]]]:
    """(row identity, candidates as (identity, P, local_score, cosine)) per readable photo."""
    from reid.batch import BatchItem, iter_identified

    items = [BatchItem(path=r.path, file=r.file, row=r) for r in rows]
    out = []
    for outcome in iter_identified(pipeline, items, top_k=TOP_K, progress=False, audit=False):
        res = outcome.identification
        if res.decision == "error" or outcome.item is None or outcome.item.row is None:
            continue
        out.append((outcome.item.row.identity,
                    [(c.identity, c.score, c.local_score, c.cosine) for c in res.candidates]))
    return out


def fit_on_split(pipeline: Any, gallery_csv: str | Path, gallery_rows: Sequence[LabelRow],
                 query_rows: Sequence[LabelRow], *, target_precision: float, known_miss: float,
                 z: float = 1.645) -> VerdictPolicy:
    """Enroll the gallery rows into `pipeline` (a scratch data dir), measure each gallery
    individual's impostor scores, identify the queries and fit the policy on them."""
    from reid.batch import enroll_labels
    from reid.open_set import ImpostorStats, fit_policy, impostor_scores, open_set_features

    enroll_labels(pipeline, gallery_csv, rows=gallery_rows, progress=False)
    gallery_ids = {r.identity for r in gallery_rows}
    stats = ImpostorStats.from_scores(impostor_scores(
        (own or "", [(c[0], c[2], c[3]) for c in cands]) for own, cands in _rankings(pipeline, gallery_rows)))
    ranked = _rankings(pipeline, query_rows)
    x = np.array([open_set_features(cands, stats) for _, cands in ranked])
    known = np.array([ident in gallery_ids for ident, _ in ranked], bool)
    right = np.array([bool(c) and c[0][0] == ident for ident, c in ranked], bool) & known
    return fit_policy(x, right, known, target_precision=target_precision, known_miss=known_miss, stats=stats, z=z,
                      fitted_on=f"gallery {gallery_csv} ({len(gallery_rows)} photos), {len(ranked)} queries, "
                                f"model {pipeline.model_id}")


def cmd_fit_verdicts(args: argparse.Namespace) -> int:
    from reid.cli import _pipeline
    from reid.errors import ReidError
    from reid.labels import read_labels

    gallery = read_labels(args.gallery, require_identity=True)
    queries = read_labels(args.queries)
    if not 0.5 <= args.target_precision < 1.0:
        raise ReidError(f"--target-precision must be in [0.5, 1), not {args.target_precision}")
    if not 0.0 <= args.known_miss < 0.5:
        raise ReidError(f"--known-miss must be in [0, 0.5), not {args.known_miss}")
    tmp = Path(tempfile.mkdtemp(prefix="reid-fit-verdicts-"))
    try:
        scratch = _pipeline(args, data_dir=tmp)
        try:
            policy = fit_on_split(scratch, args.gallery, gallery, queries, target_precision=args.target_precision,
                                  known_miss=args.known_miss, z=args.z)
        except ValueError as exc:
            raise ReidError(str(exc)) from None
        finally:
            scratch.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    policy.save(args.out)
    m = policy.measured
    prec = "none called match" if m["match_precision"] is None else f"precision {m['match_precision']:.3f}"
    print(f"wrote {args.out}: match at confidence >= {policy.match_threshold:.3f} ({prec}, coverage "
          f"{m['coverage']:.3f} on these {m['photos']} queries), new below {policy.new_threshold:.3f}; "
          f"use it with REID_VERDICT_POLICY={args.out}")
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("fit-verdicts", parents=[common],
                       help="fit the error-budget verdict policy (match precision target) on a labelled split",
                       description="Enroll a split's gallery into a scratch catalogue, identify its photos and the "
                       "queries, and fit open-set verdicts: `match` where the queries' match precision reaches "
                       "the target, `new` below the score of all but --known-miss of known photos. "
                       "Check it on other individuals (docs/verdicts.md).")
    p.add_argument("--gallery", type=Path, required=True, help="labels CSV of the gallery")
    p.add_argument("--queries", type=Path, required=True, help="labels CSV of the queries (some individuals new)")
    p.add_argument("--out", type=Path, required=True, help="policy file to write (JSON)")
    p.add_argument("--target-precision", type=float, default=0.95, help="held-out precision of `match` (0.95)")
    p.add_argument("--known-miss", type=float, default=0.05, help="share of known photos allowed under `new` (0.05)")
    p.add_argument("--z", type=float, default=1.645,
                   help="match precision must reach the target at this many standard errors below the share "
                   "seen (Wilson bound; 1.645: one-sided 95%%; 0: the share itself)")
    p.set_defaults(func=cmd_fit_verdicts)
