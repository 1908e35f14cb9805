#!/usr/bin/env python
"""Identify latency (p50/p95, in process and over HTTP) and enrollment throughput.

    python benchmarks/bench_identify.py [--sizes 1000 10000] [--queries 40] [--no-http] [--no-restart] [--json F]

For each gallery size: a fresh data dir gets 60 really enrolled synthetic leopards'
images (enrollment images/s is measured on those), then is padded to the target size
with extra catalogue rows carrying random unit vectors and keypoint files (a real
image's keypoints with jittered descriptors, so whole-gallery keypoint votes search a
realistic number of descriptors). Search and grouping cost depend only on the number of
vectors and descriptors, so padding keeps the benchmark quick without changing what it
measures; verification runs on whatever images the votes and the embedding shortlist.
The first identify builds the keypoint index and saves it (timed separately: "index build");
"restart" opens the data dir again and answers one identify from the saved index.
Queries are single-image identify calls, as a person at the web page would make them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from reid import imageio
from reid.catalog import now_iso
from reid.identify import open_pipeline
from reid.keypoints.extract import Features, save_features
from reid.training import synth

REAL_INDIVIDUALS = 60


def pad_gallery(pipeline, target: int) -> None:
    """Insert rows with random unit vectors until the gallery holds `target` images."""
    cat = pipeline.catalog
    have = cat.counts()["images"]
    if have >= target:
        return
    rng = np.random.default_rng(1)
    dim = pipeline.embedder.dim
    any_image = cat.images_of(cat.list_individuals()[0].id)[0]
    with cat.transaction() as con:
        ids = []
        for n in range(target - have):
            if n % 5 == 0:
                cur = con.execute("INSERT INTO individuals(name, created_at) VALUES(?, ?)", (f"pad-{n:06d}", now_iso()))
                ind = cur.lastrowid
            cur = con.execute(
                "INSERT INTO images(sha256, individual_id, viewpoint, stored_path, created_at) VALUES(?,?,?,?,?)",
                (f"pad{n:061d}", ind, ("left", "right")[n % 2], any_image.stored_path, now_iso()))
            ids.append(cur.lastrowid)
        vecs = rng.normal(size=(len(ids), dim)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        con.executemany("INSERT INTO embeddings(image_id, model_id, vector) VALUES(?,?,?)",
                        [(i, pipeline.model_id, v.tobytes()) for i, v in zip(ids, vecs, strict=True)])
    pipeline.gallery.rebuild(cat, pipeline.model_id)
    real = [pipeline.local_features(i) for i in sorted(set(pipeline.gallery.ids().tolist()) - set(ids))]
    for n, image_id in enumerate(ids):
        f = real[n % len(real)]
        desc = np.maximum(f.descriptors + rng.normal(0, 0.04, f.descriptors.shape).astype(np.float32), 0)
        desc /= np.linalg.norm(desc, axis=1, keepdims=True) + 1e-7
        kp = f.keypoints + rng.normal(0, 2, f.keypoints.shape).astype(np.float32)
        save_features(pipeline.features_path(cat.get_image(image_id)),
                            Features(kp, desc, f.image_size, f.scales, f.angles))


def percentiles(ms: list[float]) -> str:
    return f"p50 {np.percentile(ms, 50):7.1f} ms   p95 {np.percentile(ms, 95):7.1f} ms"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_latency(data_dir: Path, queries: list[bytes]) -> list[float]:
    import httpx

    port = free_port()
    env = {**os.environ, "REID_DATA_DIR": str(data_dir)}
    proc = subprocess.Popen([sys.executable, "-m", "reid.cli", "serve", "--port", str(port), "-q"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        times = []
        with httpx.Client(base_url=url, timeout=60) as client:
            client.post("/v1/identify", files={"image": ("q.jpg", queries[0], "image/jpeg")},
                        timeout=900)  # warm-up: the server builds its keypoint index
            for data in queries:
                t0 = time.perf_counter()
                r = client.post("/v1/identify", files={"image": ("q.jpg", data, "image/jpeg")},
                                data={"viewpoint": "left"})
                times.append((time.perf_counter() - t0) * 1000)
                r.raise_for_status()
        return times
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--queries", type=int, default=40)
    ap.add_argument("--no-http", action="store_true")
    ap.add_argument("--no-restart", action="store_true", help="skip the restart (and HTTP) measurements")
    ap.add_argument("--json", type=Path, help="also write the numbers here (benchmarks/throughput.py reads them)")
    args = ap.parse_args()
    numbers: dict[str, dict[str, float]] = {}
    rng = np.random.default_rng(0)
    cfg = synth.RenderConfig(size=(384, 288))
    gallery_imgs = [(f"synth-{i:05d}", imageio.encode_jpeg(synth.render(i, "left", rng, cfg)))
                    for i in range(REAL_INDIVIDUALS) for _ in range(2)]
    query_bytes = [imageio.encode_jpeg(synth.render(int(i), "left", rng, cfg))
                   for i in rng.integers(0, REAL_INDIVIDUALS, args.queries)]
    print(f"cores {os.cpu_count()}; {len(gallery_imgs)} real gallery images of {REAL_INDIVIDUALS} individuals; "
          f"{args.queries} queries of 384x288")
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            pipe = open_pipeline(data_dir=Path(tmp))
            t0 = time.perf_counter()
            for k in range(0, len(gallery_imgs), 16):
                chunk = gallery_imgs[k:k + 16]
                for name, data in chunk:
                    pipe.enroll(name, [pipe.load_query(data, name=f"{name}.jpg", viewpoint="left", keep_bytes=True)],
                                save_index=False)
            pipe.save_index()
            enroll_rate = len(gallery_imgs) / (time.perf_counter() - t0)
            pad_gallery(pipe, size)
            queries = [pipe.load_query(q, name="q.jpg", viewpoint="left") for q in query_bytes]
            t0 = time.perf_counter()
            pipe.identify(queries[:1], audit=False)  # warm-up: loads keypoints, builds the index
            pipe.flush()  # and writes it (in the background; timed here, not in the latencies)
            build_s = time.perf_counter() - t0
            kp = pipe.keypoint_index()
            times = []
            for q in queries:
                t0 = time.perf_counter()
                pipe.identify([q], audit=False)
                times.append((time.perf_counter() - t0) * 1000)
            print(f"gallery {len(pipe.gallery):6d}  model {pipe.model_id}")
            print(f"  enrollment          {enroll_rate:6.1f} images/s (one image per call, decode+embed+store)")
            print(f"  index build         {build_s:6.1f} s for {kp.descriptor_count} keypoints (first identify); "
                  f"peak RSS so far {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GiB")
            print(f"  identify in process {percentiles(times)}")
            numbers[str(size)] = {"p50_ms": float(np.percentile(times, 50)), "p95_ms": float(np.percentile(times, 95)),
                                  "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
                                  "keypoints": kp.descriptor_count}
            pipe.close()
            if args.no_restart:
                continue
            # a restart (or a one-off `reid identify`): the saved keypoint index is read back
            t0 = time.perf_counter()
            again = open_pipeline(data_dir=Path(tmp))
            again.identify(queries[:1], audit=False)
            print(f"  restart             {time.perf_counter() - t0:6.1f} s to open and answer the first identify "
                  f"(saved index: {again.keypoint_index_path().stat().st_size / 2**30:.2f} GiB)")
            again.close()
            if not args.no_http:
                print(f"  identify over HTTP  {percentiles(http_latency(Path(tmp), query_bytes))}")
    if args.json:
        args.json.write_text(json.dumps(numbers, indent=1))


if __name__ == "__main__":
    main()
