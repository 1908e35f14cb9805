#!/usr/bin/env python
"""How much of the animal's ellipse changes between two photos whose places line up?

    python benchmarks/scene_changed_share.py LABELS.csv [--pairs 1500]

The scene check (reid.keypoints.scene) drops spots that move with the place, unless nothing inside
the ellipse changed (reid.keypoints.scene.changed_share below SCENE_UNCHANGED_SHARE): then the photos
show the same thing. This prints the changed share for random pairs of the labels CSV whose
surroundings line up (the same station when the CSV has stations), split into same and
different individuals, and for re-crops of single photos (copies), and how many pairs of each
fall below a few thresholds. Data: e.g. `reid synth --easy --same-place --out /tmp/spe`
(fixed cameras: one background per station).
"""

from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

import numpy as np

from reid.imageio import crop, load
from reid.keypoints import scene
from reid.keypoints.extract import Features, extract
from reid.settings import Settings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("labels", type=Path)
    ap.add_argument("--pairs", type=int, default=1500, help="random pairs tried")
    args = ap.parse_args()
    ellipse = Settings().keypoint_ellipse
    rows = list(csv.DictReader(args.labels.open(encoding="utf-8")))
    cache: dict[int, tuple[np.ndarray, Features]] = {}

    def photo(i: int) -> tuple[np.ndarray, Features]:
        if i not in cache:
            r = rows[i]
            rgb = load(args.labels.parent / r["path"]).rgb
            if r.get("bbox_w"):
                rgb = crop(rgb, tuple(float(r[k]) for k in ("bbox_x", "bbox_y", "bbox_w", "bbox_h")))
            cache[i] = (rgb, extract(rgb, ellipse=ellipse, outside=True))
        return cache[i]

    def share(a: tuple[np.ndarray, Features], b: tuple[np.ndarray, Features]) -> float | None:
        h = scene.scene_homography(a[1], b[1])
        return None if h is None else scene.changed_share(a[0], b[0], h, ellipse=ellipse)

    stations = bool(rows and rows[0].get("station"))
    pairs = [(i, j) for i in range(len(rows)) for j in range(i + 1, len(rows))
             if not stations or rows[i]["station"] == rows[j]["station"]]
    random.Random(0).shuffle(pairs)
    same: list[float] = []
    different: list[float] = []
    for i, j in pairs[: args.pairs]:
        s = share(photo(i), photo(j))
        if s is not None:
            (same if rows[i]["identity"] == rows[j]["identity"] else different).append(s)
    copies: list[float] = []
    for i in list(cache)[:30]:
        rgb = cache[i][0]
        h, w = rgb.shape[:2]
        recrop = np.ascontiguousarray(rgb[h // 20:, w // 25:])
        s = share(cache[i], (recrop, extract(recrop, ellipse=ellipse, outside=True)))
        if s is not None:
            copies.append(s)
    print(f"pairs tried {min(len(pairs), args.pairs)}; places line up: {len(same)} same individual, "
          f"{len(different)} different; {len(copies)} re-crops")
    for name, values in (("same individual", same), ("different", different), ("re-crop", copies)):
        if values:
            q = np.percentile(values, [0, 5, 25, 50, 75, 95, 100]).round(3).tolist()
            print(f"  {name:16s} changed share min, p5, p25, median, p75, p95, max: {q}")
    for t in (0.05, 0.1, 0.15, 0.2, 0.25):
        below = [f"{name} {np.mean(np.asarray(v) < t):.4f}" for name, v in
                 (("same", same), ("different", different), ("re-crop", copies)) if v]
        mark = "  <- SCENE_UNCHANGED_SHARE" if t == scene.SCENE_UNCHANGED_SHARE else ""
        print(f"  share below {t:.2f}: " + ", ".join(below) + mark)


if __name__ == "__main__":
    main()
