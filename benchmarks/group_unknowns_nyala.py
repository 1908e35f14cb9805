#!/usr/bin/env python
"""Grouping of unknown animals (reid.season.grouping) measured on nyala-dev.

    python benchmarks/group_unknowns_nyala.py [--seed 0] [--new-fraction 0.2] [--distractors 200]

A fifth of nyala's individuals (by --seed) play the season's newcomers: all their photos are
"new" detections to group. Each nyala sighting (a left and a right photo of one visit) is one
encounter, i.e. must-link, as paired cameras give; flanks are the labelled viewpoints (the
flank classifier is measured separately: benchmarks/flank_nyala.py). Photos of the other
individuals play the catalogue: --distractors of them join the keypoint index as other
animals (as `reid season run` adds catalogue photos). Pair evidence and P(same) are the
pipeline's (embedding cosine + verified keypoints, the model's shipped calibration).

Prints pairwise precision / recall and the adjusted Rand index of the groups against the
truth for several P thresholds and both pair rules (support 2: the second-best detection pair
of two animals, the default; 1: the best pair), so a threshold chosen on one seed can be reported on another.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from reid import imageio
from reid.identify import open_pipeline
from reid.labels import read_labels
from reid.season import grouping

THRESHOLDS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--labels", default="/work/shared/data/nyala-dev/labels.csv")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--new-fraction", type=float, default=0.2)
    ap.add_argument("--distractors", type=int, default=200)
    args = ap.parse_args()
    rows = read_labels(args.labels)
    ids = sorted({r.identity for r in rows})
    rng = np.random.default_rng(args.seed)
    held = set(rng.permutation(ids)[: max(1, round(len(ids) * args.new_fraction))].tolist())
    new = [r for r in rows if r.identity in held]
    others = [r for r in rows if r.identity not in held]
    pick = others[:: max(1, len(others) // args.distractors)][: args.distractors]
    with tempfile.TemporaryDirectory() as tmp:
        pipe = open_pipeline(data_dir=Path(tmp))
        t0 = time.perf_counter()
        crops = [imageio.load(r.file).rgb for r in new]
        vectors = pipe.embedder.embed(crops)
        keypoints = [pipe.extract_keypoints(c) for c in crops]
        names = {n: i for i, n in enumerate(sorted({r.identity for r in pick}))}
        distractors = [(names[r.identity], r.viewpoint or "unknown", pipe.extract_keypoints(imageio.load(r.file).rgb))
                       for r in pick]
        flanks = [r.viewpoint or "unknown" for r in new]
        animal = [f"{r.identity}/{r.sighting}" for r in new]  # one sighting = one encounter = one animal
        pairs = grouping.pair_evidence(vectors, flanks, animal, keypoints, pipe.calibrator.predict,
                                       pipe.calibrator.features, distractors=distractors)
        seconds = time.perf_counter() - t0
        pipe.close()
    animals = list(dict.fromkeys(animal))
    truth = [r.identity for r in new]
    print(f"seed {args.seed}: {len(held)} held-out individuals, {len(new)} photos in {len(animals)} encounters, "
          f"{len(pick)} catalogue distractors, {len(pairs)} scored pairs; {seconds:.0f} s")
    print("| P threshold | groups | pairwise precision | pairwise recall | ARI |")
    print("|---|---|---|---|---|")
    only_encounters = grouping.pairwise_scores(truth, animal)
    print(f"| encounters only (no grouping) | {only_encounters['groups']} | {only_encounters['pairwise_precision']} | "
          f"{only_encounters['pairwise_recall']} | {only_encounters['adjusted_rand_index']} |")
    for support in (2, 1):
        for thr in THRESHOLDS:
            groups = grouping.cluster(animals, pairs, animal, set(), threshold=thr, support=support)
            s = grouping.pairwise_scores(truth, [groups[a] for a in animal])
            print(f"| {thr} (support {support}) | {s['groups']} (truth {s['individuals']}) | "
                  f"{s['pairwise_precision']} | {s['pairwise_recall']} | {s['adjusted_rand_index']} |")


if __name__ == "__main__":
    main()
