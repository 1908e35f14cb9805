#!/usr/bin/env python
"""Does the embedding confuse an individual's two flanks? (synthetic, no flank filter)

    python benchmarks/flank_confusion.py [--model M.pt] [--individuals 40]

Gallery: 2 mild renders of each flank of N unseen individuals (seeds 0..N-1), each flank its
own identity. Queries: 1 more render of each left flank. Without the pipeline's flank filter,
counts how often rank 1 is the query's own left flank (right), its own RIGHT flank (the
confusion the issue asks about) or another individual.
"""

from __future__ import annotations

import argparse

import numpy as np

from reid.embed import Embedder
from reid.model import load_checkpoint
from reid.settings import default_model_path
from reid.training import synth


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(default_model_path()))
    ap.add_argument("--individuals", type=int, default=40)
    args = ap.parse_args()
    cfg = synth.RenderConfig(size=(224, 224), hard=False, night_prob=0.0)
    gallery, owner, side, queries = [], [], [], []
    for seed in range(args.individuals):
        rng = np.random.default_rng(seed)
        for s in ("left", "right"):
            for _ in range(2):
                gallery.append(synth.render(seed, s, rng, cfg))
                owner.append(seed)
                side.append(s)
        queries.append(synth.render(seed, "left", rng, cfg))
    checkpoint = load_checkpoint(args.model)
    emb = Embedder(checkpoint, backend="onnx")
    g, q = emb.embed(gallery), emb.embed(queries)
    top = (q @ g.T).argmax(1)
    owner_a, side_a = np.asarray(owner), np.asarray(side)
    own_left = np.mean((owner_a[top] == np.arange(len(q))) & (side_a[top] == "left"))
    own_right = np.mean((owner_a[top] == np.arange(len(q))) & (side_a[top] == "right"))
    print(f"model {checkpoint.model_id}; "
          f"{len(q)} left-flank queries, {len(g)} gallery images (both flanks)")
    print(f"  rank 1 = own left flank {own_left:.3f}, own RIGHT flank {own_right:.3f}, "
          f"another individual {1 - own_left - own_right:.3f}")


if __name__ == "__main__":
    main()
