#!/usr/bin/env python
"""Season throughput in one table (issue 17, item 3): `reid batch` photos/s before and after the
batched chain, MiewID's forward-pass rate on the same machine in the same run, peak memory,
and identify p95 at a 10,000-image gallery.

    python benchmarks/throughput.py [--queries N] [--before REV] [--work DIR] [--skip-gallery-p95] [--scan N ...]
                                    [--json OUT]

- nyala-dev split as EVAL.md says (`reid split`), the gallery enrolled once (not timed);
- `reid batch QUERIES --format ranks` run as a user runs it (a subprocess: start-up, model and
  keypoint-index load included), with the code of REV (default: the branch point, one photo
  at a time; a `git worktree` of it) and with this checkout; same data dir, same queries.
  Photos/s = queries / the command's wall time; peak RSS = the command's (os.wait4);
  the two results CSVs are compared byte for byte;
- MiewID's backbone: timm `efficientnetv2_rw_m`, random init (nothing is downloaded), 440 px,
  batch 4, 2 torch threads, eval, no grad; images/s over timed batches after a warm-up;
- benchmarks/bench_identify.py --sizes 10000 --no-http --no-restart for the 10k p95.

The machine is shared: the load average is printed before and after, and only the ratios
measured in this one run mean much.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LABELS = Path("/work/shared/data/nyala-dev/labels.csv")
BEFORE = "591f36d"  # the branch point: Pipeline.identify ran the keypoint stage one photo at a time

FORWARD = """
import time, torch
import reid  # noqa: F401 (reid._compat: lets timm import torchvision on a CPU-only torch)
import timm
torch.set_num_threads(2)
m = timm.create_model("efficientnetv2_rw_m", pretrained=False, num_classes=0).eval()
x = torch.randn(4, 3, 440, 440)
with torch.inference_mode():
    m(x)
    n, t = 0, time.perf_counter()
    while n < {batches}:
        m(x); n += 1
print(4 * n / (time.perf_counter() - t))
"""


def load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def run_measured(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall s, peak RSS GiB, stdout) of a command, which must succeed."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{err.read()[-3000:]}")
        return wall, usage.ru_maxrss / 2**20, out.read()


def rank1_share(results: Path, rows: list[dict[str, str]]) -> float:
    """Share of the queries whose rank-1 individual is their own (EVAL.md top-1; all are known here)."""
    with open(results, newline="", encoding="utf-8") as fh:
        first = {r["path"]: r["identity"] for r in csv.DictReader(fh) if r["rank"] == "1"}
    return sum(first.get(r["path"]) == r["identity"] for r in rows) / len(rows)


def code_env(root: Path, data_dir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(root), "REID_DATA_DIR": str(data_dir), **(extra or {})}


def before_tree(rev: str, where: Path) -> Path:
    """A git worktree of `rev` (removed again at the end of the run: `remove_tree`)."""
    if not (where / "reid").is_dir():
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(where), rev], check=True,
                       capture_output=True)
    return where


def remove_tree(where: Path) -> None:
    subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(where)], capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--labels", type=Path, default=LABELS)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "reid-throughput")
    ap.add_argument("--queries", type=int, default=0, help="the first N queries of the split (0: all)")
    ap.add_argument("--before", default=BEFORE, help="git revision timed as 'before' (default: %(default)s)")
    ap.add_argument("--chunk", type=int, default=32)
    ap.add_argument("--forward-batches", type=int, default=6)
    ap.add_argument("--skip-gallery-p95", action="store_true")
    ap.add_argument("--scan", type=int, nargs="*", default=[],
                    help="also time the batched chain with these REID_VOTE_SCAN values (changes results: top-1 shown)")
    ap.add_argument("--json", type=Path, default=None, help="also write the table's numbers here")
    args = ap.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    loads = [load()]
    split = work / "split"
    if not (split / "queries.csv").is_file():
        subprocess.run([py, "-m", "reid.cli", "split", str(args.labels), "--out-dir", str(split), "-q"],
                       env=code_env(REPO, work / "dd"), check=True, capture_output=True)
    with open(split / "queries.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    with open(split / "gallery.csv", newline="", encoding="utf-8") as fh:
        gallery = sum(1 for _ in csv.DictReader(fh))
    rows = rows[: args.queries] if args.queries else rows
    for row in rows:  # absolute: the CSVs below may be read from elsewhere
        row["path"] = str((split / row["path"]).resolve())
    queries, warm = split / f"queries-{len(rows)}.csv", split / "queries-warm-up.csv"
    for path, some in ((queries, rows), (warm, rows[:8])):
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(some)
    data_dir = work / "dd"
    if not (data_dir / "catalog.sqlite").exists():
        print(f"enrolling {split / 'gallery.csv'} (not timed)", file=sys.stderr)
        subprocess.run([py, "-m", "reid.cli", "enroll", str(split / "gallery.csv"), "-q"],
                       env=code_env(REPO, data_dir), check=True, capture_output=True)
    old = before_tree(args.before, work / "before-code")
    try:
        measure(args, work, py, queries, warm, rows, gallery, data_dir, old, loads)
    finally:
        remove_tree(old)


def measure(args: argparse.Namespace, work: Path, py: str, queries: Path, warm: Path, rows: list[dict[str, str]],
            gallery: int, data_dir: Path, old: Path, loads: list[str]) -> None:
    """Time everything and print the table."""
    rate: dict[str, tuple[float, float, float]] = {}
    outputs = {}
    for name, root in (("before", old), ("after", REPO)):
        env = code_env(root, data_dir)
        # warm-up, not timed: ONNX exports into the cache, the keypoint index built and saved once
        run_measured([py, "-m", "reid.cli", "batch", str(warm), "--out", str(work / f"warm-{name}.csv"), "-q"], env)
    runs = [("before", old, {}), ("after", REPO, {})]
    runs += [(f"after, REID_VOTE_SCAN={n}", REPO, {"REID_VOTE_SCAN": str(n)}) for n in args.scan]
    top1: dict[str, float] = {}
    for name, root, extra in runs:
        out = work / f"results-{name.replace(', ', '-').replace('=', '')}.csv"
        wall, rss, _ = run_measured([py, "-m", "reid.cli", "batch", str(queries), "--out", str(out),
                                     "--format", "ranks", "--chunk", str(args.chunk), "-q"],
                                    code_env(root, data_dir, extra))
        summary = json.loads(out.with_suffix(".summary.json").read_text())
        if summary["decisions"].get("error") or summary["queries"] != len(rows):
            sys.exit(f"{name}: {summary['decisions']} for {len(rows)} queries: {summary.get('errors', [])[:2]}")
        rate[name] = (len(rows) / wall, wall, rss)
        top1[name] = rank1_share(out, rows)
        outputs[name] = out.read_bytes()
        loads.append(load())
    forward = float(run_measured([py, "-c", FORWARD.format(batches=args.forward_batches)], code_env(REPO, data_dir))[2])
    loads.append(load())
    p95 = None
    if not args.skip_gallery_p95:
        js = work / "bench_identify.json"
        wall, rss10k, _ = run_measured([py, str(REPO / "benchmarks" / "bench_identify.py"), "--sizes", "10000",
                                        "--queries", "40", "--no-http", "--no-restart", "--json", str(js)],
                                       code_env(REPO, data_dir))
        p95 = json.loads(js.read_text())["10000"]
        loads.append(load())
    same = outputs["before"] == outputs["after"]
    if args.json:
        args.json.write_text(json.dumps({
            "queries": len(rows), "gallery": gallery, "chunk": args.chunk, "cores": os.cpu_count(), "loads": loads,
            "runs": {name: {"photos_per_s": r[0], "wall_s": r[1], "peak_rss_gib": r[2], "top1": top1[name]}
                     for name, r in rate.items()},
            "identical": same, "forward_images_per_s": forward, "identify_10k": p95}, indent=1))
    print(f"nyala-dev: {len(rows)} queries against {gallery} enrolled "
          f"photos; chunk {args.chunk}; {os.cpu_count()} cores; load average (1, 5, 15 min) at start and after "
          f"each step: {' | '.join(loads)}")
    print()
    print("| what | number |")
    print("|---|---|")
    b, a = rate["before"], rate["after"]
    print(f"| `reid batch` before ({args.before}, one photo at a time) | {b[0]:.2f} photos/s "
          f"({b[1]:.0f} s), peak RSS {b[2]:.2f} GiB |")
    print(f"| `reid batch` after (batched chain) | {a[0]:.2f} photos/s ({a[1]:.0f} s), peak RSS {a[2]:.2f} GiB |")
    print(f"| after / before | {a[0] / b[0]:.2f}x |")
    print(f"| results CSV (ranks, scores to 6 decimals) after == before | {'identical' if same else 'DIFFERENT'} |")
    print(f"| top-1 (rank 1 is the query's individual), before / after | {top1['before']:.3f} / {top1['after']:.3f} |")
    for name, *_ in runs[2:]:
        r = rate[name]
        print(f"| `reid batch` {name} | {r[0]:.2f} photos/s ({r[1]:.0f} s, {r[0] / b[0]:.2f}x before), "
              f"peak RSS {r[2]:.2f} GiB; top-1 {top1[name]:.3f} |")
    print(f"| MiewID architecture forward pass (efficientnetv2_rw_m, 440 px, batch 4, 2 threads) | "
          f"{forward:.2f} images/s |")
    print(f"| `reid batch` after / MiewID forward | {a[0] / forward:.2f}x (target >= 10x; "
          f"before {b[0] / forward:.2f}x) |")
    if p95 is not None:
        print(f"| identify one photo, 10,000-image gallery ({p95['keypoints']:,} keypoints) | "
              f"p50 {p95['p50_ms']:.0f} ms, p95 {p95['p95_ms']:.0f} ms, peak RSS {p95['peak_rss_gib']:.2f} GiB |")


if __name__ == "__main__":
    main()
