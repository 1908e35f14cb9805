#!/usr/bin/env python
"""Decision accuracy of the verdict thresholds over a grid, on a labelled gallery/queries split.

    python benchmarks/tune_verdicts.py --gallery G.csv --queries Q.csv [--model M.pt]

Enrolls the gallery into a temporary catalogue, identifies the queries once, then re-applies
the verdict rule (match: P1 >= t and P1 - P2 >= margin; new: P1 < n; else review) for every
grid point. Prints the best points, the current defaults and how many wrong matches each
makes. Decision accuracy counts a `review` as wrong, as EVAL.md does, so it favours forcing
answers; wrong matches are the costlier error for a ranger, so both are printed.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from reid.batch import BatchItem, enroll_labels, iter_identified
from reid.identify import open_pipeline
from reid.labels import read_labels
from reid.settings import Settings

Row = tuple[bool, list[str], list[float], str | None]


def collect(gallery: Path, queries: Path, model: Path | None) -> list[Row]:
    pipe = open_pipeline(data_dir=Path(tempfile.mkdtemp(prefix="tune-")), **({"model_path": model} if model else {}))
    enroll_labels(pipe, gallery, progress=False)
    known = {i.name for i in pipe.catalog.list_individuals()}
    items = [BatchItem(path=r.path, file=r.file, row=r) for r in read_labels(queries)]
    out = []
    for o in iter_identified(pipe, items, top_k=5, progress=False, audit=False):
        c = o.identification.candidates
        out.append((o.item.row.identity in known, [x.identity for x in c], [x.score for x in c], o.item.row.identity))
    return out


def verdict(scores: list[float], match_t: float, margin: float, new_t: float) -> str:
    s1 = scores[0] if scores else 0.0
    s2 = scores[1] if len(scores) > 1 else 0.0
    if s1 >= match_t and s1 - s2 >= margin:
        return "match"
    return "new" if s1 < new_t else "review"


def score(rows: list[Row], *point: float) -> tuple[float, int]:
    right = wrong_matches = 0
    for known, ids, scores, truth in rows:
        d = verdict(scores, *point)
        right += (d == "new" and not known) or (d == "match" and known and ids[0] == truth)
        wrong_matches += d == "match" and (not known or ids[0] != truth)
    return right / max(1, len(rows)), wrong_matches


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gallery", type=Path, required=True)
    ap.add_argument("--queries", type=Path, required=True)
    ap.add_argument("--model", type=Path, default=None)
    args = ap.parse_args()
    rows = collect(args.gallery, args.queries, args.model)
    grid = [(t, m, n) for t in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9) for m in (0.0, 0.1, 0.15, 0.2, 0.3)
            for n in (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5) if n <= t]
    ranked = sorted(((score(rows, *p), p) for p in grid), key=lambda r: (-r[0][0], r[0][1]))
    print(f"{len(rows)} queries ({sum(not r[0] for r in rows)} of individuals not in the gallery)")
    for (acc, wrong), (t, m, n) in ranked[:5]:
        print(f"  match >= {t:.2f}, margin {m:.2f}, new < {n:.2f}: decision accuracy {acc:.3f}, wrong matches {wrong}")
    s = Settings()
    acc, wrong = score(rows, s.match_threshold, s.match_margin, s.new_threshold)
    print(f"  defaults ({s.match_threshold}, {s.match_margin}, {s.new_threshold}): decision accuracy {acc:.3f}, "
          f"wrong matches {wrong}")


if __name__ == "__main__":
    main()
