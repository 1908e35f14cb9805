"""Speed of reid.keypoints on this machine: extraction per image and match_shortlist per query.

    python benchmarks/bench_local.py [--repeats 15] [--threads 2]

Images are procedural coats (no data needed) at camera-trap size (1920x1080), so extraction
includes the resize to max_side. Gallery features are as extract() makes them (<= 1500
points each). Prints median and p95 wall time in ms.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from baselines import match_shortlist  # noqa: E402

from reid.keypoints import extract as kx  # noqa: E402
from reid.keypoints import vote  # noqa: E402
from reid.keypoints.verify import match_pair  # noqa: E402


def coat(seed: int, size: tuple[int, int] = (1080, 1920), n: int = 900) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h, w = size
    shade = cv2.GaussianBlur(rng.normal(0, 1, (h // 4, w // 4)).astype(np.float32), (0, 0), 10)
    shade = cv2.resize(shade, (w, h))
    img = np.clip(np.array([205, 160, 95], np.float32) * (1 + 2 * shade[..., None]), 0, 255).astype(np.uint8)
    img = np.ascontiguousarray(img)
    for _ in range(n):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        r = int(rng.integers(10, 30))
        c = tuple(int(v) for v in rng.integers(20, 70, 3))
        if rng.random() < 0.6:
            cv2.ellipse(img, (x, y), (r, int(r * 0.7)), int(rng.integers(0, 180)), 0, 300, c, 5, cv2.LINE_AA)
        else:
            cv2.circle(img, (x, y), r // 2, c, -1, cv2.LINE_AA)
    noise = rng.normal(0, 6, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def timeit(fn, repeats: int) -> tuple[float, float]:
    fn()  # warm-up
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(1000 * (time.perf_counter() - t))
    return float(np.median(ts)), float(np.percentile(ts, 95))


def real_images(labels: Path, n: int) -> list[np.ndarray]:
    """The first n photos of a labels CSV (e.g. nyala-dev, 512 px field photos), or []."""
    import csv

    from reid import imageio

    if not labels.exists():
        return []
    with open(labels, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))[:n]
    return [imageio.load(labels.parent / r["path"]).rgb for r in rows]


def bench_set(title: str, imgs: list[np.ndarray], repeats: int) -> None:
    print(f"\n== {title}")
    q_img = imgs[0]
    for side in (640, 320):
        med, p95 = timeit(lambda m=side: kx.extract(q_img, max_side=m), repeats)
        n = len(kx.extract(q_img, max_side=side))
        print(f"extract max_side={side}: {med:6.1f} ms median, {p95:6.1f} ms p95 ({n} keypoints)")
    q = kx.extract(q_img)
    gallery = [kx.extract(im) for im in imgs[1:]]
    print(f"gallery: {np.mean([len(g) for g in gallery]):.0f} keypoints per image (defaults)")
    for n in (20, 60):
        gal = gallery[:n]
        ids = [i // 3 for i in range(n)]  # ~3 photos per individual
        for index in ("auto", "flat", "bf16", "kdtree"):
            med, p95 = timeit(lambda g=gal, ix=index, i=ids: match_shortlist(q, g, identities=i, index=ix),
                              repeats)
            print(f"match_shortlist {n:2d} images, index={index:6s}: {med:6.1f} ms median, {p95:6.1f} ms p95")
    med, p95 = timeit(lambda: match_pair(q, gallery[0]), repeats)
    print(f"match_pair (one pair, baseline): {med:6.1f} ms median, {p95:6.1f} ms p95")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--labels", type=Path, default=Path("/work/shared/data/nyala-dev/labels.csv"),
                    help="real photos to time on (skipped when absent)")
    args = ap.parse_args()
    cv2.setNumThreads(args.threads)
    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        pass
    print(f"cv2 {cv2.__version__}, threads {args.threads}, bf16 units: {vote._BF16}")
    sets = [("synthetic 1920x1080", [coat(s) for s in range(61)])]
    real = real_images(args.labels, 61)
    if real:
        sets.append((f"real {args.labels.parent.name} (<=512 px)", real))
    for title, imgs in sets:
        bench_set(title, imgs, args.repeats)


if __name__ == "__main__":
    main()
