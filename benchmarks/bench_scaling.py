#!/usr/bin/env python
"""Scaling numbers: batch throughput local vs Ray workers, gallery search exact vs IVF.

    python benchmarks/bench_scaling.py throughput [--individuals 8 --per-individual 8]
    python benchmarks/bench_scaling.py search [--sizes 10000 100000]
    python benchmarks/bench_scaling.py keypoints [--images 100 400]

throughput: `reid synth` renders a labelled set; half of each individual's photos are
enrolled, the other half go through `reid batch` locally, then with `--ray local --workers 1`
and `--workers 2`. Prints photos/s of the identify loop (the summary's images_per_s) and of
the whole command (model load and Ray start-up included), and checks the CSVs are equal.

search: N synthetic unit vectors in the embedder's dimension, drawn as individuals (a centre
each) with several photos (centre + noise), so neighbours are meaningful. Exact inner product
(IndexFlatIP, what reid.gallery uses) vs IVF-Flat (4 sqrt(N) lists) at several nprobe:
latency per query of a 32-query batch (k = 200, the identify shortlist depth), recall@10
(share of the exact top-10 found: the query's own individual's photos are there) and
recall@1, and index memory (serialized size). Recall of the whole top-200 is not shown: past
an individual's own photos the synthetic neighbours are equidistant noise.

keypoints: reid.keypoints.index's own _Group (IVF with 8-bit codes above 50,000 descriptors,
its probe budget) on synthetic 128-d RootSIFT-like descriptors, ~500 per image. Recall =
share of the exact k nearest neighbours (k = 13, what a vote asks for) the IVF finds; bytes
per keypoint as the index holds them. Random descriptors are harder for IVF than real ones
(they do not cluster), so the recall here is a lower bound.
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _reid(*args: object, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "reid.cli", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        sys.exit(f"reid {' '.join(map(str, args))} failed:\n{proc.stderr[-2000:]}")
    return proc, time.perf_counter() - start


def throughput(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as tmp:
        tmp = Path(tmp)
        _reid("synth", "--individuals", args.individuals, "--per-individual", args.per_individual,
              "--out", tmp / "synth", "--seed", 3)
        labels = next((tmp / "synth").rglob("labels.csv"))
        rows = list(csv.DictReader(labels.open(newline="", encoding="utf-8")))
        seen: dict[str, int] = {}
        gallery, queries = [], []
        for r in rows:
            seen[r["identity"]] = seen.get(r["identity"], 0) + 1
            (gallery if seen[r["identity"]] <= args.per_individual // 2 else queries).append(r)
        for name, part in (("gallery.csv", gallery), ("queries.csv", queries)):
            with open(labels.parent / name, "w", newline="", encoding="utf-8") as fh:
                w = csv.DictWriter(fh, fieldnames=list(rows[0]))
                w.writeheader()
                w.writerows(part)
        data = tmp / "data"
        _reid("enroll", labels.parent / "gallery.csv", "--data-dir", data, "-q")
        runs = [("local", []), ("ray, 1 worker", ["--ray", "local", "--workers", "1"]),
                ("ray, 2 workers", ["--ray", "local", "--workers", "2"])]
        print(f"batch of {len(queries)} photos against {len(gallery)} enrolled ({args.individuals} individuals), "
              f"chunk {args.chunk}, {os.cpu_count()} CPUs (shared with other jobs: noisy)")
        print(f"{'engine':<16}{'identify photos/s':>18}{'command photos/s':>18}{'command s':>11}")
        first = None
        for name, extra in runs:
            out = tmp / name.replace(" ", "").replace(",", "_") / "r.csv"
            _, wall = _reid("batch", labels.parent / "queries.csv", "--out", out, "--data-dir", data, "-q",
                            "--chunk", args.chunk, *extra)
            summary = json.loads(out.with_suffix(".summary.json").read_text())
            same = "" if first is None else ("  (CSV identical)" if out.read_bytes() == first else "  CSV DIFFERS")
            first = first or out.read_bytes()
            print(f"{name:<16}{summary['images_per_s']:>18.2f}{summary['queries'] / wall:>18.2f}{wall:>11.1f}{same}")


def _clustered(n: int, dim: int, rng: np.random.Generator, per: int = 8, noise: float = 0.35) -> np.ndarray:
    centres = rng.standard_normal((n // per + 1, dim)).astype(np.float32)
    x = centres[np.arange(n) // per] + noise * rng.standard_normal((n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def _index_bytes(index) -> int:
    import faiss

    return int(faiss.serialize_index(index).nbytes)


def _timed_search(index, q: np.ndarray, k: int, reps: int = 3) -> tuple[float, np.ndarray]:
    best, ids = float("inf"), None
    for _ in range(reps):
        t = time.perf_counter()
        _, ids = index.search(q, k)
        best = min(best, time.perf_counter() - t)
    return 1000 * best / len(q), ids


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)]))


def search(args: argparse.Namespace) -> None:
    import faiss

    from reid.gallery import Gallery

    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(0)
    k = 200
    print(f"embedding search, dim {args.dim}, {args.queries} queries, k={k}, 1 thread "
          "(machine shared with other jobs: latencies are noisy)")
    print("IVF = reid.gallery's own (Gallery._build past its switch size: 4 sqrt(N) lists); recall@8 = share "
          "of the exact top 8 (one synthetic individual's photos) found")
    print(f"{'N':>8} {'index':<18}{'ms/query':>9}{'recall@1':>9}{'recall@8':>9}{'recall@10':>10}{'MB':>8}"
          f"{'train s':>8}")
    for n in args.sizes:
        x = _clustered(n, args.dim, rng)
        q = _clustered(args.queries, args.dim, rng)
        q = (x[rng.choice(n, args.queries)] + 0.3 * q)  # near enrolled individuals, as real queries are
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        flat = faiss.IndexFlatIP(args.dim)
        flat.add(x)
        ms, truth = _timed_search(flat, q, k)
        print(f"{n:>8} {'exact (flat)':<18}{ms:>9.2f}{1.0:>9.3f}{1.0:>9.3f}{1.0:>10.3f}"
              f"{_index_bytes(flat) / 1e6:>8.1f}{0:>8}")
        t = time.perf_counter()
        ivf = Gallery(args.dim, ivf_switch=0)._build(x, np.arange(n, dtype=np.int64))
        train_s = time.perf_counter() - t
        for nprobe in args.nprobe:
            ivf.nprobe = nprobe
            ms, ids = _timed_search(ivf, q, k)
            print(f"{n:>8} {f'IVF{ivf.nlist} p{nprobe}':<18}{ms:>9.2f}{_recall(ids[:, :1], truth[:, :1]):>9.3f}"
                  f"{_recall(ids[:, :8], truth[:, :8]):>9.3f}{_recall(ids[:, :10], truth[:, :10]):>10.3f}"
                  f"{_index_bytes(ivf) / 1e6:>8.1f}{train_s:>8.1f}")


def keypoints(args: argparse.Namespace) -> None:
    import faiss

    from reid.keypoints.index import EXACT_LIMIT, NPROBE, _Group

    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(1)
    kk = 13  # k + 1 + extra neighbours per query keypoint (KeypointIndex defaults)
    print(f"keypoint index (one flank group), {args.per_image} keypoints/image, {args.qkp} query keypoints, "
          f"k={kk}, 1 thread (machine shared: noisy); at most {args.nprobe or NPROBE} lists probed")
    print(f"{'images':>8}{'descriptors':>12}{'mode':>7}{'ms/query img':>13}{'recall@13':>10}{'B/keypoint':>11}"
          f"{'MB':>8}{'build s':>8}")
    for images in args.images:
        n = images * args.per_image
        # RootSIFT-like: non-negative, L2-normalised, correlated within an image (a shared bias)
        bias = rng.gamma(1.0, 1.0, (images, 128)).astype(np.float32)
        d = np.repeat(bias, args.per_image, 0) + rng.gamma(0.5, 1.0, (n, 128)).astype(np.float32)
        d = np.sqrt(d / d.sum(1, keepdims=True))
        g = _Group()
        g.descriptors = [d.astype(np.float16)]
        g.image_ids = [np.repeat(np.arange(images, dtype=np.int64), args.per_image)]
        g.individual_ids = [g.image_ids[0] // 4]
        g.points = [rng.uniform(0, 500, (n, 2)).astype(np.float32)]
        g.size = n
        q = d[rng.choice(n, args.qkp)] + 0.05 * rng.standard_normal((args.qkp, 128)).astype(np.float32)
        q = np.ascontiguousarray(np.abs(q) / np.linalg.norm(q, axis=1, keepdims=True), np.float32)
        exact = faiss.IndexFlatL2(128)
        exact.add(d.astype(np.float32))
        t = time.perf_counter()
        _, truth = exact.search(q, kk)
        exact_ms = 1000 * (time.perf_counter() - t)
        base = 2 * 128 + 8 + 8 + 8  # float16 descriptor, image id, individual id, x y float32
        row = f"{images:>8}{n:>12}"
        print(f"{row}{'exact':>7}{exact_ms:>13.1f}{1.0:>10.3f}{base:>11}{n * base / 1e6:>8.1f}{0:>8}")
        t = time.perf_counter()
        g.prepare(0 if n <= EXACT_LIMIT else EXACT_LIMIT)  # IVF even below the limit, to see its recall
        build = time.perf_counter() - t
        t = time.perf_counter()
        _, ids = g.search(q, kk, 0, args.nprobe or NPROBE)
        ivf_ms = 1000 * (time.perf_counter() - t)
        per_kp = base + _index_bytes(g._ivf) / n
        print(f"{row}{'IVF':>7}{ivf_ms:>13.1f}{_recall(ids, truth):>10.3f}{per_kp:>11.0f}"
              f"{n * per_kp / 1e6:>8.1f}{build:>8.1f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--individuals", type=int, default=8)
    t.add_argument("--per-individual", type=int, default=8)
    t.add_argument("--chunk", type=int, default=8)
    s = sub.add_parser("search")
    s.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    s.add_argument("--nprobe", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    s.add_argument("--dim", type=int, default=512)
    s.add_argument("--queries", type=int, default=32)
    k = sub.add_parser("keypoints")
    k.add_argument("--images", type=int, nargs="+", default=[100, 400])
    k.add_argument("--per-image", type=int, default=500)
    k.add_argument("--qkp", type=int, default=480, help="query keypoints (one query image)")
    k.add_argument("--nprobe", type=int, default=0,
                   help="lists probed at most (default: the index's NPROBE); 16 = what a 100,000-image group probes")
    args = p.parse_args()
    {"throughput": throughput, "search": search, "keypoints": keypoints}[args.what](args)


if __name__ == "__main__":
    main()
