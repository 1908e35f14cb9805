"""Speed of reid.training.synth: coat generation and renders per second (prints numbers, no pass/fail).

    python benchmarks/bench_synth.py [--size 256 256] [--renders 300] [--threads 1]

`--threads 1` (the default) pins OpenCV to one thread, so renders/s is per core; a training
data loader runs one such process per core. Timings are the best of three rounds, because the
dev machine is shared.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from reid.training import synth
from reid.training.synth import coat


def _best(fn, rounds: int = 3) -> float:
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, nargs=2, default=(256, 256), metavar=("W", "H"))
    ap.add_argument("--renders", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1, help="OpenCV threads (default 1 = per core)")
    args = ap.parse_args()
    cv2.setNumThreads(args.threads)
    size = (args.size[0], args.size[1])
    seeds = list(range(1000, 1008))

    def coats(base: int) -> None:
        for s in seeds:
            coat._body.cache_clear()
            coat._body(s + base, "left")

    coats(500)  # warm-up (imports, first-call allocations)
    t_coat = _best(lambda: coats(0)) / len(seeds)
    t_face = _best(lambda: [coat._coat_front(s) for s in seeds]) / len(seeds)
    coat._body.cache_clear()
    for s in seeds:
        for side in synth.SIDES:
            synth.flank_texture(s, side)

    def renders(cfg: synth.RenderConfig, night: bool | None, n: int) -> None:
        for i in range(n):
            synth.render(seeds[i % len(seeds)], synth.SIDES[i % 2], np.random.default_rng(i), cfg, night=night)

    n = args.renders
    print(f"reid.training.synth speed, OpenCV threads={args.threads}, output {size[0]}x{size[1]}")
    print(f"  new coat (one flank, 1024x512 + mip levels): {t_coat * 1e3:6.1f} ms")
    print(f"  new face map (512x640):                       {t_face * 1e3:6.1f} ms")
    for name, cfg, night in (("hard, mixed day/night (training)", synth.RenderConfig(size=size), None),
                             ("hard, day only", synth.RenderConfig(size=size), False),
                             ("hard, night only", synth.RenderConfig(size=size), True),
                             ("mild (hard=False)", synth.RenderConfig(size=size, hard=False), None)):
        t = _best(lambda cfg=cfg, night=night: renders(cfg, night, n))
        print(f"  renders/s, coat cached, {name:34s} {n / t:6.1f}  ({t / n * 1e3:.1f} ms each)")
    t = _best(lambda: [synth.render_burst(seeds[i % 8], "left", np.random.default_rng(i), 3, synth.RenderConfig(size=size))
                       for i in range(n // 3)])
    print(f"  frames/s in bursts of 3:                               {3 * (n // 3) / t:6.1f}")


if __name__ == "__main__":
    main()
