#!/usr/bin/env python
"""Throughput of `reid season run` on the synthetic season, with and without MegaDetector boxes.

    python benchmarks/bench_season.py [--model M.pt] [--threads N] [--ray-workers 1 2]

Renders `reid synth --season` into a temp folder, enrolls its known.csv, fits the flank
classifier once (cached, as a user's second run finds it), then runs the season twice in
process: with megadetector.json (each box a crop) and without (whole frames). Prints photos/s
and detections/s of the whole run and where the time goes: decoding and cropping, embedding
(each crop and its mirror: the flank classifier), identification (FAISS, keypoints,
verification, calibration), and the season steps after the journal (verdicts, travel,
grouping of unknowns with their keypoints, writing files). With --ray-workers, the boxed run
again on a local Ray runtime with that many worker processes (`reid season run --ray local
--workers N`; each run starts Ray and its workers load the model and indexes: included).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from reid.batch import enroll_labels
from reid.identify import open_pipeline
from reid.season import outputs
from reid.season.run import SeasonOptions, run_season
from reid.settings import default_model_path
from reid.training.synth.season import write_season


class Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def wrap(self, name: str, fn):
        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t
        return timed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=default_model_path())
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--ray-workers", type=int, nargs="*", default=[])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_season(tmp / "synth")
        pipe = open_pipeline(data_dir=tmp / "data", model_path=args.model, threads=args.threads or None)
        enroll_labels(pipe, tmp / "synth" / "known.csv", progress=False)
        run_season(pipe, tmp / "synth" / "images", tmp / "warm", options=SeasonOptions(), progress=False)  # warm-up
        print(f"model {pipe.model_id}, backend {pipe.embedder.backend}, synthetic season (23 photos, 21 animals)")
        print("| run | photos/s | detections/s | photos | detections | decode+crop | embed (+mirror) | identify | "
              "after journal |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name, det in (("with MegaDetector boxes", tmp / "synth" / "megadetector.json"), ("whole frames", None)):
            timer = Timer()
            embed, identify, write = pipe.embedder.embed, pipe.identify, outputs.write_outputs
            pipe.embedder.embed = timer.wrap("embed", embed)
            pipe.identify = timer.wrap("identify", identify)
            outputs.write_outputs = timer.wrap("after", write)
            try:
                s = run_season(pipe, tmp / "synth" / "images", tmp / name.replace(" ", "-"),
                               deployments_csv=tmp / "synth" / "deployments.csv", detections_json=det,
                               progress=False)
            finally:
                pipe.embedder.embed, pipe.identify, outputs.write_outputs = embed, identify, write
            t = s["timing"]
            crops_embed = timer.seconds.get("embed", 0.0)
            ident = timer.seconds.get("identify", 0.0)
            after = timer.seconds.get("after", 0.0)
            other = t["identify_seconds"] - crops_embed - ident
            print(f"| {name} | {t['images_per_s']:.2f} | {t['detections_per_s']:.2f} | {s['photos']} | "
                  f"{s['detections']} | {other:.1f} s | {crops_embed:.1f} s | {ident:.1f} s | {after:.1f} s |")
        for n in args.ray_workers:
            from reid.cluster import RayExecutor

            ray = RayExecutor(pipe, "local", workers=n)
            s = run_season(pipe, tmp / "synth" / "images", tmp / f"ray-{n}", deployments_csv=tmp / "synth" /
                           "deployments.csv", detections_json=tmp / "synth" / "megadetector.json", progress=False,
                           executor=ray)
            same = ((tmp / f"ray-{n}" / "results.csv").read_bytes()
                    == (tmp / "with-MegaDetector-boxes" / "results.csv").read_bytes())
            t = s["timing"]
            print(f"| Ray, {n} worker process{'es' if n > 1 else ''} (boxes) | {t['images_per_s']:.2f} | "
                  f"{t['detections_per_s']:.2f} | {s['photos']} | {s['detections']} | results.csv "
                  f"{'identical' if same else 'DIFFERENT'} | | | |")
        pipe.close()


if __name__ == "__main__":
    main()
