"""Small drawing helpers of the renderer: seeded generators, noise, smooth curves, filled shapes."""

from __future__ import annotations

import colorsys
import functools
import math

import cv2
import numpy as np

from reid.training.synth.config import F32


def _rng(*keys: int) -> np.random.Generator:
    # SeedSequence wants non-negative ints; masking keeps any int (even negative) usable.
    return np.random.default_rng([int(k) % (1 << 64) for k in keys])


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _fbm(rng: np.random.Generator, h: int, w: int, cells: float, octaves: int = 3,
         gain: float = 0.5, aspect: float = 1.0) -> np.ndarray:
    """Fractal value noise, ~unit variance, float32 (h, w): cheap (cv2.resize of tiny grids)."""
    out = np.zeros((h, w), F32)
    amp, tot = 1.0, 0.0
    for o in range(octaves):
        cy = max(2, round(cells * 2**o))
        cx = max(2, round(cells * 2**o * w / h / aspect))
        g = rng.standard_normal((cy + 1, cx + 1), dtype=F32)
        out += amp * cv2.resize(g, (w, h), interpolation=cv2.INTER_CUBIC)
        tot += amp * amp
        amp *= gain
    return out * F32(1.6 / math.sqrt(tot))  # bicubic upsampling shrinks variance; rescale


def _chaikin(pts: np.ndarray, iters: int = 3) -> np.ndarray:
    """Corner-cutting smoothing of an open polyline (keeps the end points)."""
    for _ in range(iters):
        q = 0.75 * pts[:-1] + 0.25 * pts[1:]
        r = 0.25 * pts[:-1] + 0.75 * pts[1:]
        mid = np.empty((2 * len(q), 2))
        mid[0::2], mid[1::2] = q, r
        pts = np.vstack([pts[:1], mid, pts[-1:]])
    return pts


def _stroke(ctrl: list[tuple[float, float]], widths: list[float], iters: int = 3) -> np.ndarray:
    """Polygon of a smooth tapered stroke through control points (a limb, a tail, a neck)."""
    c = np.asarray(ctrl, float)
    seg = np.r_[0.0, np.cumsum(np.hypot(*np.diff(c, axis=0).T))]
    pts = _chaikin(c, iters)
    s = np.r_[0.0, np.cumsum(np.hypot(*np.diff(pts, axis=0).T))]
    wid = np.interp(s / s[-1], seg / seg[-1], widths)
    d = np.gradient(pts, axis=0)
    d /= np.linalg.norm(d, axis=1, keepdims=True) + 1e-9
    nrm = np.stack([-d[:, 1], d[:, 0]], 1)
    left = pts + nrm * wid[:, None] / 2
    right = pts - nrm * wid[:, None] / 2
    return np.vstack([left, right[::-1]])


def _fill(img: np.ndarray, polys: list[np.ndarray] | np.ndarray, value: float | tuple) -> None:
    """Anti-aliased polygon fill with 1/16 px precision.

    One cv2.fillPoly call per polygon: given several at once, OpenCV fills with the even-odd
    rule, so where two spots overlapped they would cancel into a hole.
    """
    for p in polys:
        cv2.fillPoly(img, [np.round(np.asarray(p) * 16).astype(np.int32)], value, lineType=cv2.LINE_AA, shift=4)


def _ellipse(img: np.ndarray, c: tuple[float, float], ax: tuple[float, float], ang: float,
             value: float | tuple) -> None:
    cv2.ellipse(img, (round(c[0] * 16), round(c[1] * 16)), (round(ax[0] * 16), round(ax[1] * 16)),
                ang, 0, 360, value, -1, cv2.LINE_AA, 4)


def _hsv(h_deg: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb((h_deg % 360) / 360, min(max(s, 0), 1), min(max(v, 0), 1)), F32)


@functools.lru_cache(maxsize=8)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(F32)
    yy.flags.writeable = False
    xx.flags.writeable = False
    return yy, xx
