"""argparse types for every `reid` verb: a bad value is a one-line usage error naming the rule."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def number(kind: type[int] | type[float] = float, *, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False, what: str | None = None) -> Callable[[str], float]:
    """A converter for a number within [low, high] (either end open or absent)."""
    noun = what or ("a whole number" if kind is int else "a number")

    def convert(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if low is not None and (value <= low if low_open else value < low):
            raise argparse.ArgumentTypeError(f"must be {'more than' if low_open else 'at least'} {low:g}")
        if high is not None and (value >= high if high_open else value > high):
            raise argparse.ArgumentTypeError(f"must be {'less than' if high_open else 'at most'} {high:g}")
        return value

    return convert


positive_int = number(int, low=1)
positive_float = number(float, low=0, low_open=True)
unit_interval = number(float, low=0.0, high=1.0)
fraction = number(float, low=0.0, high=1.0, high_open=True)


def add_ray_arguments(parser: argparse.ArgumentParser, work: str) -> None:
    """`--ray` and `--workers`, one declaration for every verb that can run on Ray (reid.cluster);
    `work` says what the workers do, e.g. "identify chunks"."""
    parser.add_argument("--ray", default=None, metavar="local|auto|ADDRESS",
                        help=f"{work} on Ray worker processes: local = start Ray on this machine, auto = the "
                             "cluster this machine belongs to, HOST:PORT = that cluster (pip install "
                             "'.[cluster]'; docs/scaling.md)")
    parser.add_argument("--workers", type=positive_int, default=None, metavar="N",
                        help="with --ray: worker processes (default: the cluster's CPUs)")


def ray_address(args: argparse.Namespace) -> str | None:
    """The parsed `--ray` (None: run in this process); `--workers` alone is a user error."""
    from reid.errors import ReidError

    if args.workers is not None and args.ray is None:
        raise ReidError("--workers needs --ray (a local run is one process)")
    return args.ray


def add_crop_arguments(parser: argparse.ArgumentParser, where: str = "") -> None:
    """--crop / --no-crop: the photos are (not) already crops of the animal; neither: detected
    from the saliency map (reid.keypoints.crops)."""
    group = parser.add_mutually_exclusive_group()
    extra = f"; {where}" if where else ""
    group.add_argument("--crop", dest="crop", action="store_const", const=True, default=None,
                       help="the photos are already crops of the animal: keep all their keypoints, no scene "
                            f"check (default: detected{extra})")
    group.add_argument("--no-crop", dest="crop", action="store_const", const=False,
                       help=f"the photos are whole frames, never treated as crops{extra}")
