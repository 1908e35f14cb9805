"""The nyala-dev crop set: every photo cropped to the animal by the ImageNet saliency map's box.

    python benchmarks/crop_set.py boxes          # writes benchmarks/data/nyala_crop_boxes.csv
    python benchmarks/crop_set.py make OUT_DIR   # OUT_DIR/crops/labels.csv (the crops, no box),
                                                 # OUT_DIR/frames/labels.csv (the same photos whole)

`boxes` runs the saliency map (reid.keypoints.saliency, the pipeline's own) on each whole
photo and keeps the box of the cells at least half its maximum (reid.keypoints.crops.salient_box,
no margin): what a person cropping to the animal, or a detector, would send. The CSV also
holds two signals of the whole photo and of its crop (reid.keypoints.crops: salient_share,
edge_reach) from which benchmarks/crop_detect.py chooses the pipeline's crop detection.
`make` cuts the crops out (files written under OUT_DIR, never committed: nyala-dev is
evaluation-only data) and writes both labels CSVs with the same rows, so a benchmark can run
the same photos as crops and as whole frames.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reid.keypoints.crops import edge_reach, salient_box, salient_share  # noqa: E402
from reid.keypoints.saliency import SALIENCY_CHECKPOINT, SaliencyMap  # noqa: E402
from reid.labels import read_labels  # noqa: E402
from reid.settings import REPO_MODELS  # noqa: E402

NYALA = Path("/work/shared/data/nyala-dev/labels.csv")
BOXES = Path(__file__).resolve().parent / "data" / "nyala_crop_boxes.csv"
COLUMNS = ("path", "bbox_x", "bbox_y", "bbox_w", "bbox_h", "share_frame", "share_crop", "edge_frame", "edge_crop")


def _rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise OSError(f"unreadable image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def write_boxes(labels: Path, out: Path, onnx_dir: Path) -> None:
    cv2.setNumThreads(1)
    saliency = SaliencyMap(REPO_MODELS / SALIENCY_CHECKPOINT, onnx_dir)
    rows = read_labels(labels, require_identity=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as fh:
        wr = csv.writer(fh)
        wr.writerow(COLUMNS)
        for n, row in enumerate(rows, 1):
            rgb = _rgb(row.file)
            smap = saliency(rgb)
            x, y, w, h = salient_box(smap, (rgb.shape[1], rgb.shape[0]))
            crop = rgb[y:y + h, x:x + w]
            cmap = saliency(crop)
            wr.writerow([row.path, x, y, w, h, f"{salient_share(smap):.4f}", f"{salient_share(cmap):.4f}",
                         f"{edge_reach(smap):.4f}", f"{edge_reach(cmap):.4f}"])
            if n % 100 == 0:
                print(f"{n}/{len(rows)}", file=sys.stderr, flush=True)


def make(labels: Path, boxes: Path, out_dir: Path) -> None:
    with boxes.open(newline="", encoding="utf-8") as fh:
        box_of = {r["path"]: tuple(int(r[c]) for c in COLUMNS[1:5]) for r in csv.DictReader(fh)}
    with labels.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header, rows = list(reader.fieldnames or []), list(reader)
    crops, frames = out_dir / "crops", out_dir / "frames"
    for row in rows:
        x, y, w, h = box_of[row["path"]]
        dest = crops / row["path"]
        dest.parent.mkdir(parents=True, exist_ok=True)
        bgr = cv2.imread(str(labels.parent / row["path"]), cv2.IMREAD_COLOR)
        cv2.imwrite(str(dest), bgr[y:y + h, x:x + w], [cv2.IMWRITE_JPEG_QUALITY, 95])
    for folder, root in ((crops, "."), (frames, str(labels.parent.resolve()))):
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / "labels.csv").open("w", newline="", encoding="utf-8") as fh:
            wr = csv.DictWriter(fh, fieldnames=header)
            wr.writeheader()
            for row in rows:
                wr.writerow({**row, "path": row["path"] if root == "." else f"{root}/{row['path']}"})
    print(f"{len(rows)} crops -> {crops / 'labels.csv'}; whole frames -> {frames / 'labels.csv'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("boxes")
    b.add_argument("--labels", type=Path, default=NYALA)
    b.add_argument("--out", type=Path, default=BOXES)
    b.add_argument("--onnx-dir", type=Path, default=Path("/tmp/reid-crops-onnx"))
    m = sub.add_parser("make")
    m.add_argument("out_dir", type=Path)
    m.add_argument("--labels", type=Path, default=NYALA)
    m.add_argument("--boxes", type=Path, default=BOXES)
    args = ap.parse_args()
    if args.cmd == "boxes":
        write_boxes(args.labels, args.out, args.onnx_dir)
    else:
        make(args.labels, args.boxes, args.out_dir)


if __name__ == "__main__":
    main()
