#!/usr/bin/env python
"""Can the evidence tell a known animal from a newcomer? (the new-individual AUROC's ceiling)

    python benchmarks/open_set_evidence.py --data-dir D --queries Q.csv

D: a data dir whose catalogue holds the gallery (e.g. the --data-dir of a `reid eval` run);
Q.csv: that split's queries. Each query is identified (50 candidates); then, for several
query-level scores, the AUROC of

- known vs new: what EVAL.md's new-individual AUROC measures (all known queries);
- right vs new: known queries whose rank 1 is right, against newcomers (can the score
  separate when the answer is right?);
- right vs wrong: among known queries, rank 1 right against rank 1 wrong;

and the "ceiling" top1 + (1 - top1) / 2: the AUROC of a perfect score for right answers when
wrong answers look like newcomers (a known query whose rank 1 is another animal has no
right candidate to be confident about).
"""

from __future__ import annotations

import argparse

import numpy as np

from reid.batch import BatchItem, iter_identified
from reid.evaluate import auroc
from reid.identify import open_pipeline
from reid.labels import read_labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--queries", required=True)
    args = ap.parse_args()
    pipe = open_pipeline(data_dir=args.data_dir)
    known = {i.name for i in pipe.catalog.list_individuals()}
    rows = read_labels(args.queries)
    items = [BatchItem(path=r.path, file=r.file, row=r) for r in rows]
    scores: dict[str, list[float]] = {"P (calibrated, rank 1)": [], "keypoint score (best)": [],
                                      "keypoint score / runner-up's": [], "cosine (best)": []}
    is_known, is_right = [], []
    for o in iter_identified(pipe, items, top_k=50, progress=False, audit=False):
        res, truth = o.identification, o.item.row.identity if o.item and o.item.row else None
        if res.decision == "error" or not res.candidates:
            continue
        local = sorted((c.local_score for c in res.candidates), reverse=True) + [0.0, 0.0]
        scores["P (calibrated, rank 1)"].append(res.candidates[0].score)
        scores["keypoint score (best)"].append(local[0])
        scores["keypoint score / runner-up's"].append(local[0] / (local[1] + 1e-3))
        scores["cosine (best)"].append(max(c.cosine for c in res.candidates))
        is_known.append(truth in known)
        is_right.append(truth in known and res.candidates[0].identity == truth)
    kn, ri = np.asarray(is_known), np.asarray(is_right)
    top1 = ri[kn].mean() if kn.any() else 0.0
    print(f"{len(kn)} queries: {kn.sum()} known ({ri.sum()} right at rank 1: top-1 {top1:.3f}), {(~kn).sum()} new")
    print(f"ceiling when wrong answers look new: {top1 + (1 - top1) / 2:.3f}")
    print(f"{'score':32s} {'known vs new':>13s} {'right vs new':>13s} {'right vs wrong':>15s}")
    def auc(v: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> str:
        a = auroc(v[pos].tolist(), v[neg].tolist())
        return "-" if a is None else f"{a:.3f}"

    for name, values in scores.items():
        v = np.asarray(values)
        print(f"{name:32s} {auc(v, kn, ~kn):>13s} {auc(v, ri, ~kn):>13s} {auc(v, ri, kn & ~ri):>15s}")
    pipe.close()


if __name__ == "__main__":
    main()
