#!/usr/bin/env python
"""Open-set scores and the error-budget verdict policy (reid.open_set) on a dumped split.

    python benchmarks/open_set_dump.py --gallery G.csv --queries Q.csv --data-dir D --out dump.json
    python benchmarks/open_set_eval.py dump.json [--target 0.95]

Impostor statistics come from the gallery photos identified against the gallery (no query
label). The queries' individuals (known and new alike) are cut into two folds by a hash of
their name; the policy (logistic + thresholds) is fitted on one fold and applied to the
other, and the other way round (EVAL.md: thresholds chosen on one split, reported on
another). Printed: new-individual AUROC of each score, and for today's rule (P thresholds
0.5 / 0.15, margin 0.15) and the policy: decision accuracy, `match` precision, coverage
(share of all queries called `match`), wrong matches; plus the precision and coverage the
fitting fold itself saw.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

from reid.evaluate import auroc
from reid.open_set import FEATURES, ImpostorStats, fit_policy, impostor_scores, open_set_features


def fold_of(identity: str) -> int:
    return int(hashlib.sha256(identity.encode()).hexdigest(), 16) % 2


def today(candidates: list, match_t: float = 0.5, margin: float = 0.15, new_t: float = 0.15) -> str:
    if not candidates:
        return "new"
    p1 = candidates[0][1]
    p2 = candidates[1][1] if len(candidates) > 1 else 0.0
    return "match" if p1 >= match_t and p1 - p2 >= margin else "new" if p1 < new_t else "review"


def outcome(decisions: list[str], correct: np.ndarray, known: np.ndarray) -> dict:
    """Decision accuracy, `match` precision (None without a match), coverage and the counts."""
    d = np.asarray(decisions)
    matched = d == "match"
    right = (matched & correct) | ((d == "new") & ~known)
    return {"decision_accuracy": float(right.mean()),
            "match_precision": float(correct[matched].mean()) if matched.any() else None,
            "right_match": int((matched & correct).sum()), "match": int(matched.sum()),
            "coverage": float(matched.mean()), "wrong_match": int((matched & ~correct).sum()),
            "new": int((d == "new").sum()), "new_known": int(((d == "new") & known).sum()),
            "review": int((d == "review").sum())}


def summary(o: dict) -> str:
    prec = "-" if o["match_precision"] is None else f"{o['match_precision']:.3f}"
    return (f"decision acc. {o['decision_accuracy']:.3f}, match precision {prec} ({o['right_match']} of "
            f"{o['match']}), coverage {o['coverage']:.3f}, wrong match {o['wrong_match']}, "
            f"new {o['new']} ({o['new_known']} of them known), review {o['review']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dump", type=Path)
    ap.add_argument("--target", type=float, default=0.95, help="target precision of `match`")
    ap.add_argument("--known-miss", type=float, default=0.05, help="share of known photos allowed below `new`")
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = ap.parse_args()
    data = json.loads(args.dump.read_text())
    gallery_ids = set(data["gallery_identities"])
    stats = ImpostorStats.from_scores(impostor_scores(
        (g["identity"], [(c[0], c[3], c[2]) for c in g["candidates"]]) for g in data["gallery_self"]))
    queries = data["queries"]
    known = np.array([q["identity"] in gallery_ids for q in queries])
    correct = np.array([bool(q["candidates"]) and q["candidates"][0][0] == q["identity"] for q in queries]) & known
    cands = [[(c[0], c[1], c[3], c[2]) for c in q["candidates"]] for q in queries]
    x = np.array([open_set_features(c, stats) for c in cands])
    fold = np.array([fold_of(q["identity"] or q["path"]) for q in queries])
    print(f"{args.dump}: {len(queries)} queries ({int(known.sum())} known, {int((~known).sum())} new), "
          f"top-1 {correct[known].mean():.3f}; impostor stats for {len(stats.mean)} individuals")
    out: dict = {"queries": len(queries), "known": int(known.sum()), "new": int((~known).sum()),
                 "top1": float(correct[known].mean()), "target_precision": args.target, "auroc": {}, "policy": {}}
    print("new-individual AUROC (known vs new) and right-vs-new AUROC of each score:")
    for n, name in enumerate(FEATURES):
        out["auroc"][name] = auroc(x[known, n].tolist(), x[~known, n].tolist())
        print(f"  {name:7s} known/new {out['auroc'][name]:.3f}   "
              f"right/new {auroc(x[correct, n].tolist(), x[~known, n].tolist()):.3f}")
    out["today"] = outcome([today(c) for c in cands], correct, known)
    print(f"today's rule (shipped calibration): {summary(out['today'])}")
    for known_miss in dict.fromkeys((args.known_miss, 0.2, 0.4)):
        conf = np.zeros(len(queries))
        decisions = [""] * len(queries)
        print(f"policy, target precision {args.target}, known photos allowed under `new`: {known_miss}")
        for f in (0, 1):
            fit, apply = fold != f, fold == f
            policy = fit_policy(x[fit], correct[fit], known[fit], target_precision=args.target,
                                known_miss=known_miss, stats=stats, fitted_on=f"fold {1 - f}")
            conf[apply] = policy.confidence(x[apply])
            for i in np.nonzero(apply)[0]:
                decisions[i] = ("match" if conf[i] >= policy.match_threshold else
                                "new" if conf[i] < policy.new_threshold else "review")
            m = policy.measured
            prec = "-" if m["match_precision"] is None else f"{m['match_precision']:.3f}"
            print(f"  fitted on fold {1 - f} ({int(fit.sum())} queries): coef {np.round(policy.coef, 3).tolist()}, "
                  f"match >= {policy.match_threshold:.3f} (there: precision {prec}, coverage {m['coverage']:.3f}), "
                  f"new < {policy.new_threshold:.3f}")
        o = outcome(decisions, correct, known)
        o["auroc"] = auroc(conf[known].tolist(), conf[~known].tolist())
        out["policy"][str(known_miss)] = o
        print(f"  cross-fitted: AUROC {o['auroc']:.3f}; {summary(o)}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))

if __name__ == "__main__":
    main()
