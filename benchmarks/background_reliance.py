#!/usr/bin/env python
"""How much does the embedding identify by background? (nyala-dev or any labelled split)

    python benchmarks/background_reliance.py --gallery G.csv --queries Q.csv [--model M.pt]

Ranks gallery individuals (same flank) by cosine for each known query three times: the whole
query crop, the crop with everything outside its inscribed ellipse (radius 0.9, where the
animal usually is) painted grey ("animal"), and with the inside painted grey ("background").
An embedding that ignores the background scores near chance on "background" queries; one
that identifies by the place a photo was taken keeps much of its top-1 there.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from reid import imageio
from reid.embed import Embedder
from reid.labels import read_labels
from reid.model import load_checkpoint
from reid.settings import default_model_path


def inside_ellipse(h: int, w: int, radius: float = 0.9) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return ((xx - (w - 1) / 2) / (w / 2)) ** 2 + ((yy - (h - 1) / 2) / (h / 2)) ** 2 <= radius**2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gallery", type=Path, required=True)
    ap.add_argument("--queries", type=Path, required=True)
    ap.add_argument("--model", default=str(default_model_path()))
    args = ap.parse_args()
    gallery = read_labels(args.gallery, require_identity=True)
    known = {r.identity for r in gallery}
    queries = [r for r in read_labels(args.queries) if r.identity in known]
    checkpoint = load_checkpoint(args.model)
    emb = Embedder(checkpoint, backend="onnx")
    g_vec = emb.embed([imageio.crop(imageio.load(r.file).rgb, r.box) for r in gallery])
    g_id = np.array([r.identity for r in gallery])
    g_side = np.array([r.viewpoint for r in gallery])
    variants: dict[str, list[np.ndarray]] = {"whole": [], "animal": [], "background": []}
    for r in queries:
        rgb = imageio.crop(imageio.load(r.file).rgb, r.box)
        inside = inside_ellipse(*rgb.shape[:2])
        variants["whole"].append(rgb)
        variants["animal"].append(np.where(inside[..., None], rgb, 128).astype(np.uint8))
        variants["background"].append(np.where(inside[..., None], 128, rgb).astype(np.uint8))
    print(f"model {checkpoint.model_id}; {len(queries)} known queries, {len(gallery)} gallery images, "
          f"{len(known)} individuals")
    for name, images in variants.items():
        sims = emb.embed(images) @ g_vec.T
        hits = 0
        for n, r in enumerate(queries):
            ok = (g_side == r.viewpoint) | (g_side == "unknown") | (r.viewpoint == "unknown")
            s = np.where(ok, sims[n], -np.inf)
            hits += g_id[int(np.argmax(s))] == r.identity
        print(f"  {name:10s} query: top-1 {hits / len(queries):.3f}")


if __name__ == "__main__":
    main()
