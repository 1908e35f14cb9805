#!/usr/bin/env python
"""Where identify's time goes, stage by stage, on an existing catalogue and real query photos.

    python benchmarks/bench_identify_stages.py --data-dir DIR --queries Q.csv [--n 60]

e.g. after `reid eval --data-dir /tmp/dd --gallery G.csv --queries Q.csv` on a nyala-dev split.
Times one query at a time: embedding, FAISS search, the saliency map (reid.keypoints.saliency; part of
the extraction for whole frames), RootSIFT extraction, the whole-gallery
keypoint vote, verification of the top 60 voted individuals x 3 images, RootSIFT on the
query's surroundings (what the scene check adds, besides reading up to REID_SCENE_CHECK
cached gallery surroundings), and a full `Pipeline.identify` call (which does all of these
plus grouping, calibration and verdicts). The queries keep their CSV's station and box; the
scene check only runs for same-station pairs by default: run with REID_SCENE_CHECK_SCOPE=all
on data without station ids to include it, REID_SCENE_CHECK=0 to leave it out.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from reid.identify import open_pipeline
from reid.labels import read_labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--queries", type=Path, required=True)
    ap.add_argument("--n", type=int, default=60)
    args = ap.parse_args()
    pipe = open_pipeline(data_dir=args.data_dir)
    rows = read_labels(args.queries)[: args.n]
    queries = [pipe.load_query(r.file, viewpoint=r.viewpoint, station=r.station, box=r.box) for r in rows]
    t = time.perf_counter()
    index = pipe.keypoint_index()
    print(f"gallery {len(pipe.gallery)} images, {index.descriptor_count} keypoints "
          f"(index ready in {time.perf_counter() - t:.1f} s); {len(queries)} queries")
    print(f"scene check: {pipe.settings.scene_check_candidates or 'off'} (scope {pipe.settings.scene_check_scope})")
    times: dict[str, list[float]] = {k: [] for k in ("embed", "search", "saliency", "extract", "vote", "verify",
                                                     "scene", "identify")}

    def timed(name: str, fn, *a):
        t0 = time.perf_counter()
        out = fn(*a)
        times[name].append(time.perf_counter() - t0)
        return out

    n_kp = []
    for q in queries:
        vec = timed("embed", pipe.embedder.embed, [q.rgb])
        timed("search", pipe.gallery.search, vec, pipe.settings.shortlist_images)
        timed("saliency", pipe.saliency, q.rgb)  # also inside extract, for whole frames (no box)
        feats = timed("extract", lambda x, boxed: pipe.extract_keypoints(x, boxed=boxed), q.rgb, q.box is not None)
        n_kp.append(len(feats))
        votes = timed("vote", index.vote, feats, q.viewpoint)
        images = [i for d in votes.ranked()[:60] for i in votes.images[d][:3]]
        timed("verify", index.verify, feats, votes, images)
        timed("scene", lambda x: pipe.extract_keypoints(x, scene=True), q.rgb)
        timed("identify", lambda x: pipe.identify([x], audit=False), q)
    print(f"query keypoints: mean {np.mean(n_kp):.0f}")
    for name, v in times.items():
        print(f"  {name:9s} p50 {1000 * np.median(v):6.1f} ms   p95 {1000 * np.percentile(v, 95):6.1f} ms")


if __name__ == "__main__":
    main()
