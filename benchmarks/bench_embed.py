#!/usr/bin/env python
"""Embedding throughput (crops/s at batch 32) per backend, and agreement with fp32.

    python benchmarks/bench_embed.py [--model models/X.pt] [--images 256]

Prints one row per backend: crops/s and the minimum cosine to the fp32 embedding.
Crops are random-sized real-looking inputs (synthetic renders when reid.training.synth is present).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import numpy as np
import torch

from reid.embed import BACKENDS, Embedder
from reid.model import load_checkpoint
from reid.settings import default_model_path


def crops(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    try:
        from reid.training import synth

        return [synth.render(i % 50, "left", rng) for i in range(n)]
    except (ImportError, AttributeError):
        return [rng.integers(0, 255, (int(rng.integers(200, 500)), int(rng.integers(200, 500)), 3), dtype=np.uint8)
                for _ in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(default_model_path()))
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    ck = load_checkpoint(args.model)
    images = crops(args.images)
    print(f"model {ck.model_id}  input {ck.config.input_size}  cpu {platform.processor() or platform.machine()}"
          f"  cores {os.cpu_count()}  torch threads {torch.get_num_threads()}")
    print(f"{'backend':8} {'crops/s':>8} {'min cos vs fp32':>16}")
    ref = None
    with tempfile.TemporaryDirectory() as onnx_dir:
        for backend in BACKENDS:
            emb = Embedder(ck, backend=backend, batch_size=args.batch, onnx_dir=onnx_dir)
            emb.embed(images[: args.batch])  # warm-up (and ONNX export)
            t0 = time.perf_counter()
            out = emb.embed(images)
            rate = len(images) / (time.perf_counter() - t0)
            ref = out if ref is None else ref
            print(f"{backend:8} {rate:8.1f} {float((out * ref).sum(1).min()):16.5f}")


if __name__ == "__main__":
    main()
