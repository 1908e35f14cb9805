#!/usr/bin/env python
"""How well does the season's flank classifier (reid.season.flanks) tell left from right?

    python benchmarks/flank_nyala.py [--model M.pt] [--labels /work/shared/data/nyala-dev/labels.csv]

Fits the classifier exactly as `reid season run` does (synthetic renders + mirrors, nothing
from nyala), then scores every nyala-dev photo against its viewpoint label: accuracy of the
raw left/right call, and at the shipped confidence cut (MIN_CONFIDENCE) the coverage (share
not "unknown") and the accuracy of the calls made. A second line adds "confirmed photos":
the classifier refit with half of nyala's individuals (their labelled photos, as a catalogue
would hold them) and scored on the other half only.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from reid import imageio
from reid.embed import Embedder
from reid.labels import read_labels
from reid.model import load_checkpoint
from reid.season import flanks
from reid.settings import default_model_path


def report(name: str, clf: flanks.FlankClassifier, feats: np.ndarray, truth: np.ndarray) -> None:
    p = clf.p_left(feats)
    raw = np.where(p >= 0.5, "left", "right")
    calls = np.array([f for f, _ in clf.estimate(feats)])
    made = calls != "unknown"
    acc_made = float((calls[made] == truth[made]).mean()) if made.any() else float("nan")
    print(f"{name}: n={len(truth)}  raw accuracy {float((raw == truth).mean()):.3f}  |  at P>={clf.min_confidence}: "
          f"coverage {float(made.mean()):.3f}, accuracy of calls {acc_made:.3f}, "
          f"wrong calls {int((calls[made] != truth[made]).sum())}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(default_model_path()))
    ap.add_argument("--labels", default="/work/shared/data/nyala-dev/labels.csv")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N photos (0: all)")
    args = ap.parse_args()
    checkpoint = load_checkpoint(Path(args.model))
    emb = Embedder(checkpoint, backend="onnx")
    t0 = time.perf_counter()
    clf = flanks.load_or_fit(emb.embed, checkpoint.model_id, Path("/tmp/reid-flank-bench"))
    print(f"fitted on synthetic renders in {time.perf_counter() - t0:.1f} s: {clf.fitted_on}")
    rows = [r for r in read_labels(args.labels) if r.viewpoint in ("left", "right")]
    if args.limit:
        rows = rows[: args.limit]
    crops = [imageio.load(r.file).rgb for r in rows]
    feats = flanks.flank_features(emb.embed, crops)
    truth = np.array([r.viewpoint for r in rows])
    report("synthetic only, all nyala photos", clf, feats, truth)
    ids = sorted({r.identity for r in rows})
    rng = np.random.default_rng(0)
    half = set(rng.permutation(ids)[: len(ids) // 2].tolist())
    fit_mask = np.array([r.identity in half for r in rows])
    s_crops, s_labels = flanks.synthetic_crops()
    s_feats = flanks.flank_features(emb.embed, s_crops)
    both = flanks.FlankClassifier.fit(np.concatenate([s_feats, feats[fit_mask]]),
                                      [*s_labels, *truth[fit_mask].tolist()], model_id=checkpoint.model_id,
                                      fitted_on="synthetic + half of nyala's individuals")
    report("synthetic only, held-out half", clf, feats[~fit_mask], truth[~fit_mask])
    report("synthetic + confirmed photos of the other half, held-out half", both, feats[~fit_mask], truth[~fit_mask])


if __name__ == "__main__":
    main()
