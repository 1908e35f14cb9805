#!/usr/bin/env python
"""Which saliency map, which threshold? Keypoints-only top-1 on a nyala-dev split.

    python benchmarks/saliency_nyala.py --split /tmp/nyala-split-new [--model imagenet-lite0] \
        [--thresholds 0 0.2 0.25 0.3]

A lighter harness than `reid eval` (no sighting pooling, no exclusivity between candidates,
no calibration): whole-gallery LNBNN votes, the 40 most voted individuals' 3 best images
verified, rank 1 = the best verified score. Keypoints of the whole frame inside the 0.9
ellipse; with a threshold > 0, only those where the model's feature-norm map (reid.keypoints.saliency,
here computed with --model's backbone) is at least that share of its maximum. Per-image
features and maps are cached under --cache. Measured (README "Accuracy"): no mask 0.219;
imagenet-lite0's map at 0.2 / 0.25 / 0.3: 0.262 / 0.274 / 0.254; rosette-lite0-v1's map
0.223 / 0.215 / 0.196 (it does not help).
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np

from reid.imageio import load
from reid.keypoints.extract import Features, extract
from reid.keypoints.index import KeypointIndex
from reid.keypoints.saliency import SaliencyMap, keep_salient
from reid.labels import read_labels
from reid.settings import REPO_MODELS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", type=Path, required=True, help="folder with gallery.csv and queries.csv")
    ap.add_argument("--model", default="imagenet-lite0", help="checkpoint in models/ whose backbone makes the map")
    ap.add_argument("--thresholds", type=float, nargs="+", default=[0.0, 0.2, 0.25, 0.3])
    ap.add_argument("--cache", type=Path, default=Path("/tmp/reid_saliency_eval"))
    args = ap.parse_args()
    gallery = read_labels(args.split / "gallery.csv", require_identity=True)
    queries = read_labels(args.split / "queries.csv")
    saliency = SaliencyMap(REPO_MODELS / f"{args.model}.pt")
    cache = args.cache / args.model
    cache.mkdir(parents=True, exist_ok=True)

    def prepared(row) -> tuple[Features, np.ndarray]:
        f = cache / (hashlib.sha256(str(row.file).encode()).hexdigest()[:20] + ".npz")
        if f.exists():
            z = np.load(f)
            return Features(z["kp"], z["desc"], tuple(z["size"])), z["sal"]
        rgb = load(row.file).rgb
        feats, sal = extract(rgb, ellipse=0.9), saliency(rgb)
        np.savez(f, kp=feats.keypoints, desc=feats.descriptors, size=np.array(feats.image_size), sal=sal)
        return feats, sal

    g_feats = [prepared(r) for r in gallery]
    q_feats = [prepared(r) for r in queries]
    owner = {n: i for i, n in enumerate(sorted({r.identity for r in gallery}))}
    for threshold in args.thresholds:
        index = KeypointIndex()
        for n, (row, (feats, sal)) in enumerate(zip(gallery, g_feats, strict=True)):
            index.add(n, owner[row.identity], row.viewpoint, keep_salient(feats, sal, threshold))
        hits = known = 0
        for row, (feats, sal) in zip(queries, q_feats, strict=True):
            if row.identity not in owner:
                continue
            known += 1
            q = keep_salient(feats, sal, threshold)
            votes = index.vote(q, row.viewpoint)
            images = [i for d in votes.ranked()[:40] for i in votes.images.get(d, [])[:3]]
            best: dict[int, float] = {}
            for image_id, m in index.verify(q, votes, images).items():
                d = owner[gallery[image_id].identity]
                best[d] = max(best.get(d, 0.0), m.score)
            hits += bool(best) and max(best, key=best.get) == owner[row.identity] and best[owner[row.identity]] > 0
        print(f"map {args.model}, threshold {threshold:g}: keypoints-only top-1 {hits / known:.3f} ({hits}/{known})")


if __name__ == "__main__":
    main()
