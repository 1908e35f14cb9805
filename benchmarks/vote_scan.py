#!/usr/bin/env python
"""How many gallery descriptors each query keypoint's vote scans (REID_VOTE_SCAN): speed
against accuracy, the value chosen on one half of the individuals and reported on the other.

    python benchmarks/vote_scan.py [--work DIR] [--scans 12000 6000 3000 1500] [--tolerance 0.01]

Reuses benchmarks/throughput.py's split and enrolled data dir (run that first, or this
enrolls the gallery itself: not timed). Every scan value runs `reid batch QUERIES --format
ranks` as a user runs it (photos/s = queries / the command's wall time). The queries' individuals
are cut in two by a hash of the name: on the tuning half the smallest scan whose top-1 and
top-5 are within `--tolerance` of the largest scan's is chosen; on the reporting half that
choice is compared with the largest scan, query by query (paired bootstrap, 95% interval).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import LABELS, REPO, code_env, load, run_measured  # noqa: E402


def ranks(results: Path) -> dict[str, list[str]]:
    """path -> individuals in rank order (a `--format ranks` results CSV)."""
    out: dict[str, list[tuple[int, str]]] = {}
    with open(results, newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            out.setdefault(r["path"], []).append((int(r["rank"]), r["identity"]))
    return {p: [i for _, i in sorted(v)] for p, v in out.items()}


def hits(results: Path, rows: list[dict[str, str]], k: int) -> np.ndarray:
    ranked = ranks(results)
    return np.array([r["identity"] in ranked.get(r["path"], [])[:k] for r in rows])


def interval(diff: np.ndarray, seed: int = 0, resamples: int = 2000) -> tuple[float, float, float]:
    """Mean of a per-query difference and its 95% paired-bootstrap interval."""
    rng = np.random.default_rng(seed)
    draws = diff[rng.integers(0, len(diff), (resamples, len(diff)))].mean(1)
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return float(diff.mean()), float(lo), float(hi)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--labels", type=Path, default=LABELS)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "reid-throughput")
    ap.add_argument("--scans", type=int, nargs="+", default=[12000, 6000, 3000, 1500])
    ap.add_argument("--tolerance", type=float, default=0.01, help="top-1 / top-5 a smaller scan may lose on tuning")
    args = ap.parse_args()
    py, work = sys.executable, args.work
    split, data_dir = work / "split", work / "dd"
    if not (split / "queries.csv").is_file():
        subprocess.run([py, "-m", "reid.cli", "split", str(args.labels), "--out-dir", str(split), "-q"],
                       env=code_env(REPO, data_dir), check=True, capture_output=True)
    if not (data_dir / "catalog.sqlite").exists():
        subprocess.run([py, "-m", "reid.cli", "enroll", str(split / "gallery.csv"), "-q"],
                       env=code_env(REPO, data_dir), check=True, capture_output=True)
    with open(split / "queries.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        row["path"] = str((split / row["path"]).resolve())
    queries = work / "vote-scan-queries.csv"
    with open(queries, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    tune = np.array([int(hashlib.sha1(r["identity"].encode()).hexdigest(), 16) % 2 == 0 for r in rows])
    loads = [load()]
    measured: dict[int, dict] = {}
    for scan in sorted(args.scans, reverse=True):
        out = work / f"vote-scan-{scan}.csv"
        wall, rss, _ = run_measured([py, "-m", "reid.cli", "batch", str(queries), "--out", str(out),
                                     "--format", "ranks", "-q"],
                                    code_env(REPO, data_dir, {"REID_VOTE_SCAN": str(scan)}))
        measured[scan] = {"rate": len(rows) / wall, "rss": rss, "h1": hits(out, rows, 1), "h5": hits(out, rows, 5)}
        loads.append(load())
    full = max(measured)
    ref = measured[full]
    ok = [s for s, m in measured.items()
          if m["h1"][tune].mean() >= ref["h1"][tune].mean() - args.tolerance
          and m["h5"][tune].mean() >= ref["h5"][tune].mean() - args.tolerance]
    chosen = min(ok)
    print(f"nyala-dev: {len(rows)} queries ({int(tune.sum())} tuning, {int((~tune).sum())} reporting, split by "
          f"individual); load average at start and after each run: {' | '.join(loads)}")
    print()
    print("| REID_VOTE_SCAN | photos/s | peak RSS | top-1 tuning | top-5 tuning | top-1 reporting | top-5 reporting |")
    print("|---|---|---|---|---|---|---|")
    for scan, m in sorted(measured.items(), reverse=True):
        mark = " (chosen on tuning)" if scan == chosen else ""
        print(f"| {scan}{mark} | {m['rate']:.2f} ({m['rate'] / ref['rate']:.2f}x) | {m['rss']:.2f} GiB | "
              f"{m['h1'][tune].mean():.3f} | {m['h5'][tune].mean():.3f} | {m['h1'][~tune].mean():.3f} | "
              f"{m['h5'][~tune].mean():.3f} |")
    for k in ("h1", "h5"):
        d, lo, hi = interval(measured[chosen][k][~tune].astype(float) - ref[k][~tune].astype(float))
        print(f"reporting half, {chosen} minus {full}, top-{k[1]}: {d:+.3f} (95% interval {lo:+.3f} .. {hi:+.3f})")


if __name__ == "__main__":
    main()
