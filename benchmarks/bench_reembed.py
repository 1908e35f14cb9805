#!/usr/bin/env python
"""Re-embedding the catalogue after a retrain: in this process vs on Ray workers.

    python benchmarks/bench_reembed.py [--individuals 16 --per-individual 12]

`reid synth` renders a labelled set, all of it is enrolled (keypoints off: only the vectors
matter here) with the shipped model, and the shipped weights are saved again as a version
`bench-v2` of the data dir: a new model id, so every catalogue image needs a new vector (the
cost of a retrained model of the same architecture). Then, on a fresh copy of the data dir
each, `reid models prepare bench-v2` runs locally, with `--ray local --workers 1` and with
`--workers 2`. Each command is run a second time on its own copy, when nothing is left to
embed: the difference is the re-embedding itself (for Ray: starting Ray and the workers'
model load included). Prints images/s of that and of the whole command, and checks every
engine stored the local path's vectors (allclose).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
VERSION = "bench-v2"


def _reid(*args: object, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "reid.cli", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "REID_MODEL": "", **(env or {})})
    if proc.returncode != 0:
        sys.exit(f"reid {' '.join(map(str, args))} failed:\n{proc.stderr[-2000:]}")
    return proc, time.perf_counter() - start


def _vectors(data: Path) -> tuple[list[int], np.ndarray]:
    from reid import model_versions as mv
    from reid.catalog import Catalog
    from reid.model import load_checkpoint

    model_id = load_checkpoint(mv.checkpoint_path(data, VERSION)).model_id
    catalog = Catalog(data)
    try:
        return catalog.embeddings(model_id, catalog.embedding_ids(model_id))
    finally:
        catalog.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--individuals", type=int, default=16)
    ap.add_argument("--per-individual", type=int, default=12)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    from reid import model_versions as mv
    from reid.model import load_checkpoint, save_checkpoint
    from reid.settings import default_model_path

    with tempfile.TemporaryDirectory(prefix="bench-reembed-") as tmp:
        tmp = Path(tmp)
        _reid("synth", "--individuals", args.individuals, "--per-individual", args.per_individual,
              "--out", tmp / "synth", "--seed", 3)
        labels = next((tmp / "synth").rglob("labels.csv"))
        base = tmp / "base"
        _reid("enroll", labels, "--data-dir", base, "-q", env={"REID_LOCAL_MATCHING": "0"})
        ck = load_checkpoint(default_model_path())
        save_checkpoint(mv.checkpoint_path(base, VERSION), ck.model, version=VERSION)
        images = len(_vectors(base)[0]) or sum(1 for _ in labels.open()) - 1
        runs = [("local", [])] + [(f"ray, {n} worker{'s' * (n > 1)}", ["--ray", "local", "--workers", str(n)])
                                  for n in args.workers]
        load = os.getloadavg()
        print(f"re-embedding {images} catalogue images ({args.individuals} individuals), model {ck.version} "
              f"at {ck.config.input_size[0]} px, {os.cpu_count()} CPUs, load average {load[0]:.1f} "
              f"(shared with other jobs: noisy)")
        print(f"{'engine':<16}{'re-embed images/s':>18}{'command images/s':>18}{'command s':>11}{'overhead s':>12}")
        reference = None
        for name, extra in runs:
            data = tmp / name.replace(" ", "").replace(",", "_")
            shutil.copytree(base, data)
            _, wall = _reid("models", "prepare", VERSION, "--data-dir", data, "-q", *extra)
            _, overhead = _reid("models", "prepare", VERSION, "--data-dir", data, "-q", *extra)
            ids, vecs = _vectors(data)
            note = ""
            if reference is None:
                reference = (ids, vecs)
            else:
                same = ids == reference[0] and np.allclose(vecs, reference[1], atol=1e-5)
                note = "  (vectors = local)" if same else "  VECTORS DIFFER"
            embed_s = max(wall - overhead, 1e-9)
            print(f"{name:<16}{len(ids) / embed_s:>18.2f}{len(ids) / wall:>18.2f}{wall:>11.1f}{overhead:>12.1f}{note}")
        print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
