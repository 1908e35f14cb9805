#!/usr/bin/env python
"""How long do the exports and the report take on a large catalogue and season?

    python benchmarks/bench_exports.py [--individuals 60] [--images 6000] [--season-rows 20000]

Builds a catalogue in a temp folder without the model (random unit vectors stand in for
embeddings: exports never read them): `--images` confirmed photos (tiny JPEG files, so the
report has thumbnails to make) of `--individuals` leopards over 20 stations with paired
cameras and a year of timestamps, plus a results.csv of `--season-rows` machine rows in the
season contract. Prints the wall time of loading, each exporter and the report.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

from reid.catalog import Catalog
from reid.exports import create_exporter, list_exporters
from reid.exports.records import load_export_data
from reid.exports.report import render_report

COLUMNS = ["path", "station", "camera", "timestamp", "encounter", "box", "flank", "decision", "identity",
           "probability", "runner_up", "runner_up_probability", "travel_flag", "group", "image_width",
           "image_height", "sha256", "detection_conf", "matched_spots", "travel_note"]


def build(root: Path, individuals: int, images: int, season_rows: int, rng: np.random.Generator) -> None:
    cat = Catalog(root / "data")
    stations = {f"ST{k:02d}": (43.5 + rng.uniform(0, 1.5), 55.5 + rng.uniform(0, 2.5)) for k in range(20)}
    names = [f"Leopard {k}" for k in range(individuals)]
    ids = [cat.create_individual(n, sex="male" if k % 2 else "female").id for k, n in enumerate(names)]
    start = datetime(2025, 1, 1)
    for k in range(images):
        who = int(rng.integers(individuals))
        station = f"ST{int(rng.integers(20)):02d}"
        ok, jpg = cv2.imencode(".jpg", rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
        sha, rel = cat.store_file(jpg.tobytes(), ".jpg")
        vec = rng.normal(size=8).astype(np.float32)
        cat.add_image(individual_id=ids[who], sha256=sha, stored_path=rel, box=None,
                      viewpoint="left" if (who + k) % 2 else "right", sighting=f"s{k // 2}", station=station,
                      camera="AB"[k % 2], timestamp=(start + timedelta(minutes=int(rng.integers(525_600)))).isoformat(),
                      lat=stations[station][0], lon=stations[station][1], width=64, height=48,
                      model_id="bench", vector=vec / np.linalg.norm(vec))
    (root / "results").mkdir()
    with open(root / "results" / "results.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS)
        w.writeheader()
        for k in range(season_rows):
            decision = ["match", "match", "match", "new", "review", "empty"][k % 6]
            w.writerow({**dict.fromkeys(COLUMNS, ""), "path": f"ST{k % 20:02d}/A/{k}.jpg", "station": f"ST{k % 20:02d}",
                        "camera": "A", "timestamp": (start + timedelta(minutes=k * 26)).isoformat(),
                        "encounter": f"e{k // 2}", "box": "10,10,40,30", "flank": "left", "decision": decision,
                        "identity": names[k % individuals] if decision in ("match", "review") else "",
                        "probability": "0.9", "travel_flag": "false", "group": str(k % 40) if decision == "new" else "",
                        "image_width": 64, "image_height": 48, "sha256": f"{k:064x}"})
    cat.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--individuals", type=int, default=60)
    ap.add_argument("--images", type=int, default=6000)
    ap.add_argument("--season-rows", type=int, default=20000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="reid-bench-exports-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        build(root, args.individuals, args.images, args.season_rows, np.random.default_rng(0))
        print(f"built: {args.images} catalogue images, {args.season_rows} season rows in {time.perf_counter() - t0:.1f} s")
        cat = Catalog(root / "data")
        t0 = time.perf_counter()
        data = load_export_data(cat, season_dir=root / "results")
        print(f"load: {len(data.detections)} detections, {len(data.individuals)} individuals in "
              f"{time.perf_counter() - t0:.2f} s")
        for name in list_exporters():
            out = root / "out" / name
            out.mkdir(parents=True)
            t0 = time.perf_counter()
            create_exporter(name).write(data, out)
            size = sum(p.stat().st_size for p in out.iterdir())
            print(f"{name}: {time.perf_counter() - t0:.2f} s, {size / 1e6:.1f} MB")
        t0 = time.perf_counter()
        html = render_report(data)
        print(f"report: {time.perf_counter() - t0:.2f} s, {len(html) / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
