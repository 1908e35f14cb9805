"""Choose REID_CROP_DETECT (the salient share above which a photo is a crop) on one split, report on the other.

    python benchmarks/crop_detect.py [--boxes benchmarks/data/nyala_crop_boxes.csv]
                                     [--synth LABELS.csv ...]

nyala-dev split by sighting (EVAL.md, reid.evaluate.split_by_sighting): on the gallery photos
the threshold that best separates the crops (share_crop, benchmarks/crop_set.py) from the
same photos whole (share_frame) is chosen (highest balanced accuracy; the lowest such threshold
on a tie); on the query photos it is reported. `--synth` labels CSVs (reid synth ...) are
scored with the chosen threshold too: all their photos are computed here (saliency map of
each), and a CSV whose name or folder contains "closeup" counts as crops, any other as frames.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reid.evaluate import split_by_sighting  # noqa: E402
from reid.labels import read_labels  # noqa: E402

NYALA = Path("/work/shared/data/nyala-dev/labels.csv")
BOXES = Path(__file__).resolve().parent / "data" / "nyala_crop_boxes.csv"


SIGNALS = {"edge_reach": ("edge_crop", "edge_frame"), "salient_share": ("share_crop", "share_frame")}


def shares(boxes: Path, paths: set[str], signal: str) -> tuple[np.ndarray, np.ndarray]:
    """(the signal on the crops, on the same photos whole) for these photos."""
    crop_col, frame_col = SIGNALS[signal]
    with boxes.open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["path"] in paths]
    return np.array([float(r[crop_col]) for r in rows]), np.array([float(r[frame_col]) for r in rows])


def rates(crops: np.ndarray, frames: np.ndarray, t: float) -> tuple[float, float]:
    """(share of crops detected, share of frames taken for crops)."""
    return float((crops >= t).mean()), float((frames >= t).mean())


def auroc(crops: np.ndarray, frames: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    y = np.r_[np.ones(len(crops)), np.zeros(len(frames))]
    return float(roc_auc_score(y, np.r_[crops, frames]))


def choose(crops: np.ndarray, frames: np.ndarray) -> float:
    """The threshold with the highest balanced accuracy (the lowest one on a tie)."""
    grid = np.round(np.arange(0.05, 1.0001, 0.01), 2)
    scored = [(0.5 * (rates(crops, frames, t)[0] + 1 - rates(crops, frames, t)[1]), -t) for t in grid]
    return float(-max(scored)[1])


def synth_signals(labels: Path) -> dict[str, np.ndarray]:
    import cv2

    from reid.keypoints.crops import edge_reach, salient_share
    from reid.keypoints.saliency import SALIENCY_CHECKPOINT, SaliencyMap
    from reid.settings import REPO_MODELS

    smap = SaliencyMap(REPO_MODELS / SALIENCY_CHECKPOINT, Path("/tmp/reid-crops-onnx"))
    maps = [smap(cv2.cvtColor(cv2.imread(str(row.file)), cv2.COLOR_BGR2RGB)) for row in read_labels(labels)]
    return {"edge_reach": np.array([edge_reach(m) for m in maps]),
            "salient_share": np.array([salient_share(m) for m in maps])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--labels", type=Path, default=NYALA)
    ap.add_argument("--boxes", type=Path, default=BOXES)
    ap.add_argument("--synth", type=Path, nargs="*", default=[])
    args = ap.parse_args()
    gallery, queries = split_by_sighting(read_labels(args.labels, require_identity=True))
    g_paths, q_paths = {r.path for r in gallery}, {r.path for r in queries}
    synth = {labels: synth_signals(labels) for labels in args.synth}
    # the signal: the better AUROC on the gallery split; its threshold: chosen there too
    chosen = max(SIGNALS, key=lambda sig: auroc(*shares(args.boxes, g_paths, sig)))
    print(f"nyala-dev split by sighting: gallery {len(g_paths)} photos (choose), queries {len(q_paths)} (report); "
          f"each photo as its saliency-box crop and whole. Chosen on the gallery: {chosen}")
    print("\n| signal | threshold (gallery) | set | crops detected | whole frames taken for crops | AUROC |")
    print("|---|---|---|---|---|---|")
    for sig in SIGNALS:
        t = choose(*shares(args.boxes, g_paths, sig))
        for name, paths in (("nyala-dev gallery (chosen here)", g_paths), ("nyala-dev queries", q_paths)):
            c, f = shares(args.boxes, paths, sig)
            dc, df = rates(c, f, t)
            print(f"| {sig} | {t:.2f} | {name} | {dc:.3f} | {df:.3f} | {auroc(c, f):.3f} |")
        for labels, values in synth.items():
            hit = float((values[sig] >= t).mean())
            closeup = "closeup" in str(labels)
            print(f"| {sig} | {t:.2f} | synthetic {'close-ups' if closeup else 'whole frames'} "
                  f"({labels.parent.name}, {len(values[sig])}) | {f'{hit:.3f}' if closeup else '-'} | "
                  f"{f'{hit:.3f}' if not closeup else '-'} | - |")
    # either signal: edge reach >= te OR salient share >= ts (both chosen on the gallery)
    g = {sig: shares(args.boxes, g_paths, sig) for sig in SIGNALS}
    best = None
    for ts in np.round(np.arange(0.60, 1.0001, 0.05), 2):
        for te in np.round(np.arange(0.05, 1.0001, 0.01), 2):
            dc = float(((g["edge_reach"][0] >= te) | (g["salient_share"][0] >= ts)).mean())
            df = float(((g["edge_reach"][1] >= te) | (g["salient_share"][1] >= ts)).mean())
            key = (0.5 * (dc + 1 - df), -te, -ts)
            best = max(best or key, key)
    te, ts = -best[1], -best[2]
    for name, paths in (("nyala-dev gallery (chosen here)", g_paths), ("nyala-dev queries", q_paths)):
        (ec, ef), (sc, sf) = (shares(args.boxes, paths, sig) for sig in ("edge_reach", "salient_share"))
        print(f"| edge_reach >= {te:.2f} or salient_share >= {ts:.2f} | - | {name} | "
              f"{((ec >= te) | (sc >= ts)).mean():.3f} | {((ef >= te) | (sf >= ts)).mean():.3f} | - |")
    for labels, values in synth.items():
        hit = float(((values["edge_reach"] >= te) | (values["salient_share"] >= ts)).mean())
        closeup = "closeup" in str(labels)
        print(f"| edge_reach >= {te:.2f} or salient_share >= {ts:.2f} | - | synthetic "
              f"{'close-ups' if closeup else 'whole frames'} ({labels.parent.name}, {len(values['edge_reach'])}) | "
              f"{f'{hit:.3f}' if closeup else '-'} | {f'{hit:.3f}' if not closeup else '-'} | - |")


if __name__ == "__main__":
    main()
