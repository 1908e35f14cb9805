#!/usr/bin/env python
"""Train a rosette re-ID model (thin command line over reid.training.train).

Shipped recipe (CPU, 2 cores, see models/README.md for the exact command and timings):

    python scripts/train.py --out runs/rosette-lite0 --version rosette-lite0-v1

Every TrainConfig field is a flag (--epochs, --steps-per-epoch, --p, --k, --input-size, ...).
Re-running with the same --out resumes from runs/<name>/last.pt (use --fresh to restart).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

from reid.training.train import TrainConfig, train


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, run.json)")
    parser.add_argument("--version", required=True, help="model version name, e.g. rosette-lite0-v1")
    parser.add_argument("--fresh", action="store_true", help="ignore last.pt in --out and start over")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.name == "extra_labels":
            parser.add_argument(flag, action="append", default=[], metavar="CSV",
                                help="extra labelled real data (licensed only, for shipped weights)")
            continue
        kind = type(f.default) if f.default is not dataclasses.MISSING else str
        parser.add_argument(flag, type=kind, default=f.default, help=f"default {f.default}")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cfg = TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})
    for csv_path in cfg.extra_labels:
        if not Path(csv_path).is_file():
            print(f"train.py: error: extra labels {csv_path} not found", file=sys.stderr)
            return 2
    run = train(cfg, args.out, version=args.version, resume=not args.fresh, progress=not args.quiet)
    print(f"best validation top-1 {run['best_val_top1']:.3f}; checkpoint {args.out / 'model.pt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
