"""Procedural leopard coats and camera-trap renders (training data, test images, demos).

Every individual is an integer seed. Its coat is generated once per (seed, side) as a texture
in *body coordinates*: a 1024x512 lateral map of the whole animal, head at the image side it
faces (left flank: head on the left; right flank: mirrored), torso in the middle, legs below,
tail hanging at the rear. Left and right flanks carry different rosette layouts (as on real
leopards) but share the individual's ground colour and body proportions; the head and legs
carry small solid spots, the belly is pale with blotches, the tail is ringed toward a dark tip.
``side="front"`` gives a 512x640 frontal head map (viewpoint "front") for head views.

A photo is a render of that map through a camera (scale from near to far, roll, perspective
from yaw/pitch), a smooth non-rigid body warp (random sinusoidal displacement, spine bend, leg
swing, head nod, tail swing), shading from a height field, a procedural background (sand,
gravel, steppe, chalk cliffs, boulders, scrub), cast and contact shadows, grass and branch
occluders, day colour casts or night infrared (grey, flash fall-off, vignette, overexposed
centre, noise), motion and focus blur, camera-trap info banners and JPEG artefacts.

Determinism: all randomness comes from ``numpy.random.Generator`` objects (never the global
state); the same (seed, side, rng state, config) gives identical pixels with the same NumPy and
OpenCV builds. Nothing depends on the magnitude of a seed: seeds only feed
``numpy.random.SeedSequence``, so training (e.g. seeds >= 100000) and evaluation (0..9999)
ranges are simply disjoint individuals.

Command line: ``python -m reid.synth --individuals 20 --per-individual 8 --out DIR`` (also
``reid synth ...``) writes DIR/images/*.jpg, DIR/labels.csv (EVAL.md columns) and
DIR/contact_sheet.png.

Speed (``python benchmarks/bench_synth.py`` on this project's 2-core dev machine, one OpenCV
thread, i.e. per core, 256x256 output, best of 3 rounds): about 80 renders/s per core with the
coat cached (~12.5 ms a render, day or night; bursts the same per frame), against the target
of 30/s. Building a new coat costs ~80 ms per flank (~85 ms for a face map), so a fresh
individual with both flanks is ~0.16 s. The cache keeps the 32 most recent (seed, side) maps
(~6 MB each with mip levels): a trainer should draw several renders of an individual in a row
(P x K batches do), or the coat cost dominates.

Training note: never mirror renders as augmentation; a mirrored left flank is not the right
flank of that individual, it is a pattern no leopard has.
"""

from __future__ import annotations

import argparse
import colorsys
import csv
import functools
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "RenderConfig",
    "contact_sheet",
    "flank_texture",
    "identity_name",
    "main",
    "render",
    "render_burst",
    "write_dataset",
]

MAP_W, MAP_H = 1024, 512  # lateral body map (w, h)
FACE_W, FACE_H = 512, 640  # frontal head map (w, h): face in the top 512 rows, chest below
SIDES = ("left", "right")
VIEWS = ("left", "right", "front")
_LEVELS = 4  # mip levels of each cached map, so far-away renders do not alias
_TAG_TRAITS, _TAG_LEFT, _TAG_RIGHT, _TAG_FRONT = 11, 12, 13, 14

F32 = np.float32


@dataclass(frozen=True)
class RenderConfig:
    """How renders look. ``size`` is (width, height) of the output in pixels.

    ``hard=False`` gives mild conditions (whole animal, daylight-ish, little blur, no
    occluders, good JPEG) for easy tests; ``hard=True`` is the full training distribution.
    """

    size: tuple[int, int] = (256, 256)
    night_prob: float = 0.3
    hard: bool = True


def identity_name(seed: int) -> str:
    """The identity label of an individual seed, e.g. ``synth-00042``."""
    return f"synth-{seed:05d}"


# ----------------------------------------------------------------------------- small helpers


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


# ----------------------------------------------------------------------------- body geometry


@dataclass(frozen=True)
class _Traits:
    """Per-individual traits shared by both flanks (colour, proportions, rosette style)."""

    ground: np.ndarray  # flank ground RGB
    back: np.ndarray  # darker dorsal colour
    belly: np.ndarray  # cream belly
    centre: np.ndarray  # rosette interior tint (multiplier)
    ink: np.ndarray  # spot colour
    ring: float  # mid-flank rosette ring radius (map px)
    spacing: float  # exclusion distance / rosette diameter
    thick: float  # blob thickness / ring radius
    depth: float  # torso depth factor
    leg: float  # leg length factor
    head: float  # head size factor
    tail_curl: float


def _traits(seed: int) -> _Traits:
    r = _rng(seed, _TAG_TRAITS)
    # Ground from pale greyish cream (Persian) to golden tawny; low saturation is more common.
    hue = r.uniform(26, 41)
    sat = 0.2 + 0.42 * r.beta(1.6, 2.4)
    val = r.uniform(0.66, 0.86)
    ground = _hsv(hue, sat, val)
    back = _hsv(hue - 3, sat * 1.18 + 0.04, val * 0.8)
    belly = (0.25 * ground + 0.75 * np.array([0.95, 0.93, 0.86], F32)).astype(F32)
    centre = np.array([0.9, 0.8, 0.68], F32) * r.uniform(0.93, 1.02)
    ink = np.array([0.085, 0.07, 0.06], F32) * r.uniform(0.75, 1.5)
    return _Traits(ground, back, belly, centre, ink,
                   ring=r.uniform(17, 25), spacing=r.uniform(1.25, 1.55), thick=r.uniform(0.36, 0.52),
                   depth=r.uniform(0.93, 1.07), leg=r.uniform(0.95, 1.05), head=r.uniform(0.92, 1.08),
                   tail_curl=r.uniform(-1, 1))


@dataclass
class _Geometry:
    """Canonical lateral geometry (head on the left) in map pixels."""

    top_x: np.ndarray
    top_y: np.ndarray
    bot_x: np.ndarray
    bot_y: np.ndarray
    torso: np.ndarray  # polygon
    neck: np.ndarray
    legs_near: list[np.ndarray]
    legs_far: list[np.ndarray]
    paws_near: list[tuple]
    paws_far: list[tuple]
    tail_ctrl: np.ndarray
    tail: np.ndarray
    head: list[tuple]  # ellipses (centre, axes, angle)
    ear: np.ndarray
    eye: tuple[float, float]
    nose: tuple[float, float]
    fore_pivot: tuple[float, float]
    hind_pivot: tuple[float, float]
    neck_pivot: tuple[float, float]
    tail_pivot: tuple[float, float]


TORSO_X = (240.0, 826.0)  # chest front .. rump, canonical map px
GROUND_Y = 500.0


def _geometry(t: _Traits) -> _Geometry:
    d, lg, hs = t.depth, t.leg, t.head
    # Back and belly lines: withers and rump high points, a slight dip between, deep chest,
    # belly rising to the groin, the thigh below the rump. Proportions of a leopard standing.
    top_x = np.array([240, 285, 345, 440, 560, 680, 760, 805, 826], float)
    top_y = np.array([165, 128, 106, 116, 123, 117, 110, 120, 150], float)
    bot_x = np.array([240, 285, 360, 470, 580, 650, 715, 785, 826], float)
    bot_y = np.array([280, 306, 316, 311, 304, 286, 298, 282, 206], float)
    mid = np.interp(bot_x, top_x, top_y)
    bot_y = mid + (bot_y - mid) * d  # deeper or slimmer torso
    xs = np.linspace(TORSO_X[0], TORSO_X[1], 60)
    top_s = np.interp(xs, top_x, top_y)
    bot_s = np.interp(xs, bot_x, bot_y)
    torso = np.vstack([np.c_[xs, top_s], np.c_[xs[::-1], bot_s[::-1]]])
    torso = _chaikin(np.vstack([torso, torso[:1]]), 2)
    fl = (GROUND_Y - 262) * lg

    def leg(x0: float, y0: float, dx: float, w0: float, hind: bool) -> tuple[np.ndarray, tuple]:
        if hind:  # thigh -> knee (forward) -> hock (back) -> paw
            ctrl = [(x0, y0), (x0 - 34 + dx * 0.3, y0 + 0.36 * fl), (x0 + 30 + dx * 0.7, y0 + 0.72 * fl),
                    (x0 + 10 + dx, y0 + fl - 14)]
            wid = [w0, 0.55 * w0, 0.3 * w0, 0.32 * w0]
        else:  # elbow -> forearm -> wrist -> paw
            ctrl = [(x0, y0), (x0 - 4 + dx * 0.4, y0 + 0.42 * fl), (x0 - 6 + dx * 0.85, y0 + 0.8 * fl),
                    (x0 - 10 + dx, y0 + fl - 14)]
            wid = [w0, 0.62 * w0, 0.4 * w0, 0.44 * w0]
        paw = ((ctrl[-1][0] - 12, ctrl[-1][1] + 5), (w0 * 0.36, w0 * 0.15), 0.0)
        return _stroke(ctrl, wid, 2), paw

    ln_f, pn_f = leg(352, 262, -34, 74, False)
    lf_f, pf_f = leg(380, 266, 52, 66, False)
    ln_h, pn_h = leg(752, 256, 18, 96, True)
    lf_h, pf_h = leg(722, 260, -50, 86, True)
    neck = _stroke([(340, 205), (265, 176), (190, 150)], [195 * d, 168, 132], 2)
    hx, hy = 160.0, 136.0
    head = [((hx, hy), (78 * hs, 63 * hs), 8.0),  # cranium and cheek
            ((hx - 63 * hs, hy + 25 * hs), (48 * hs, 35 * hs), 12.0),  # muzzle
            ((hx - 28 * hs, hy + 50 * hs), (52 * hs, 25 * hs), 6.0)]  # jaw and chin
    ear = np.array([(hx + 6, hy - 44), (hx + 16, hy - 84), (hx + 38, hy - 86), (hx + 56, hy - 42)], float)
    ear = _chaikin(np.vstack([ear, ear[:1]]), 2)
    ear = (ear - (hx, hy)) * hs + (hx, hy)
    tc = t.tail_curl
    tail_ctrl = np.array([(808, 140), (858, 176), (898, 252), (916, 344), (930, 432),
                          (968 + 8 * tc, 468), (1000 + 4 * tc, 440 - 22 * tc)], float)
    tail = _stroke([tuple(p) for p in tail_ctrl], [54, 45, 39, 36, 34, 31, 28], 3)
    return _Geometry(top_x, top_y, bot_x, bot_y, torso, neck, [ln_f, ln_h], [lf_f, lf_h],
                     [pn_f, pn_h], [pf_f, pf_h], tail_ctrl, tail, head, ear,
                     eye=(hx - 34 * hs, hy - 13 * hs), nose=(hx - 109 * hs, hy + 15 * hs),
                     fore_pivot=(357, 280), hind_pivot=(750, 268), neck_pivot=(252, 185),
                     tail_pivot=(815, 155))


# ----------------------------------------------------------------------------- pattern


def _poisson(rng: np.random.Generator, dist: np.ndarray, allowed: np.ndarray, q: int,
             passes: int = 6) -> np.ndarray:
    """Poisson-disk points with a spatially varying minimum distance, fully vectorised.

    ``dist`` (full-res px) and ``allowed`` live on a grid downsampled by ``q``. Each pass keeps
    the pixels whose noise is the maximum within their own radius (Matern type II hard-core
    process, via cv2.dilate per radius level) among pixels not yet covered by earlier points;
    later passes fill the gaps, approaching a maximal Poisson-disk packing.
    """
    h, w = dist.shape
    levels = np.geomspace(max(dist.min(), 4.0), dist.max() + 1e-3, 10)
    lvl = np.clip(np.searchsorted(levels, dist), 0, len(levels) - 1)
    covered = np.zeros((h, w), np.uint8)
    pts: list[np.ndarray] = []
    for _ in range(passes):
        noise = rng.random((h, w), dtype=F32)
        noise[(covered > 0) | ~allowed] = -1.0
        new = np.zeros((h, w), bool)
        for i in np.unique(lvl[allowed]):
            r = levels[i] / q
            k = max(1, round(r))
            ker = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))
            new |= (noise >= cv2.dilate(noise, ker)) & (lvl == i) & (noise >= 0)
        ys, xs = np.nonzero(new)
        if len(xs) == 0:
            break
        p = np.c_[xs, ys].astype(float)
        pts.append(p)
        for (x, y) in p.astype(int):
            cv2.circle(covered, (int(x), int(y)), max(1, round(dist[y, x] / q * 0.95)), 1, -1)
    if not pts:
        return np.zeros((0, 2))
    p = np.vstack(pts)
    # Jitter within the cell and go to full resolution.
    p = (p + rng.uniform(-0.5, 0.5, p.shape)) * q + (q - 1) / 2
    return p


def _rosette(rng: np.random.Generator, cx: float, cy: float, R: float, aspect: float,
             ang: float, thick: float) -> tuple[list[np.ndarray], np.ndarray]:
    """A broken ring of 3-7 crescent blobs and the polygon of its (darker) centre (vectorised)."""
    k = int(np.clip(round(2.6 + (R - 8) / 5.0 + rng.normal(0, 0.9)), 3, 7))
    gap = rng.uniform(0.14, 0.42) * 2 * np.pi
    arcs = rng.dirichlet(np.full(k, 2.5)) * (2 * np.pi - gap)
    gaps = rng.dirichlet(np.full(k, 1.5)) * gap
    start = rng.uniform(0, 2 * np.pi) + np.concatenate([[0.0], np.cumsum(arcs + gaps)[:-1]])
    ca, sa = math.cos(ang), math.sin(ang)
    shape = rng.uniform([0, 0, 0, 0], [0.12, 6.3, 0.08, 6.3])  # egg and kidney-shaped rings
    s = np.linspace(0, 1, 9)
    th = start[:, None] + arcs[:, None] * s  # (k, 9) angles along each blob
    prof = np.sin(np.pi * s) ** 0.55  # crescents: thick in the middle, thin ends
    wid = R * thick * rng.uniform(0.7, 1.12, (k, 1)) * (0.3 + 0.7 * prof)
    rr = (R * (1 + rng.normal(0, 0.1, (k, 1)))
          * (1 + shape[0] * np.sin(th * 2 + shape[1]) + shape[2] * np.sin(th * 3 + shape[3])))
    radii = np.concatenate([rr + 0.55 * wid, (rr - 0.45 * wid)[:, ::-1]], axis=1)
    tt = np.concatenate([th, th[:, ::-1]], axis=1)
    x, y = radii * np.cos(tt) * aspect, radii * np.sin(tt)
    blobs = np.stack([cx + ca * x - sa * y, cy + sa * x + ca * y], -1)
    th = np.linspace(0, 2 * np.pi, 14, endpoint=False)
    rc = R * (0.78 + 0.06 * rng.standard_normal(14))
    x, y = rc * np.cos(th) * aspect, rc * np.sin(th)
    centre = np.c_[cx + ca * x - sa * y, cy + sa * x + ca * y]
    return list(blobs), centre


def _spots(rng: np.random.Generator, p: np.ndarray, r: np.ndarray, aspect: np.ndarray,
           ang: np.ndarray) -> np.ndarray:
    """Irregular solid spots, vectorised: (N, 12, 2) polygons."""
    n = len(p)
    th = np.linspace(0, 2 * np.pi, 12, endpoint=False)[None, :] + rng.uniform(-0.15, 0.15, (n, 12))
    harm = (1 + 0.22 * rng.standard_normal((n, 1)) * np.cos(2 * th + rng.uniform(0, 6, (n, 1)))
            + 0.14 * rng.standard_normal((n, 1)) * np.cos(3 * th + rng.uniform(0, 6, (n, 1)))
            + 0.07 * rng.standard_normal((n, 12)))
    rad = r[:, None] * np.clip(harm, 0.4, 1.6)
    x = rad * np.cos(th) * aspect[:, None]
    y = rad * np.sin(th)
    ca, sa = np.cos(ang)[:, None], np.sin(ang)[:, None]
    return np.stack([p[:, :1] + ca * x - sa * y, p[:, 1:] + sa * x + ca * y], -1)


@dataclass(frozen=True)
class _Body:
    """A cached map: coat RGB, silhouette, shading inputs, mip levels and pose pivots."""

    rgb: np.ndarray  # (H, W, 3) uint8, read-only: the public texture
    rgba: tuple[np.ndarray, ...]  # mip levels of coat + alpha, uint8
    ha: tuple[np.ndarray, ...]  # mip levels of (height, ambient occlusion), uint8
    hmax: float  # height (map px) that 255 in the height channel stands for
    box: tuple[float, float, float, float]  # animal bbox in map px (x0, y0, x1, y1)
    focus: tuple[float, float, float, float]  # region near views look at (the flank / the face)
    facing: int  # -1 head on the left, +1 head on the right, 0 frontal
    pivots: dict


def _height_ao(mask: np.ndarray, far: np.ndarray) -> tuple[np.ndarray, float]:
    """Pseudo height from the silhouette (cylinder profile over the distance transform)."""
    q = 4
    small = cv2.resize(mask, (mask.shape[1] // q, mask.shape[0] // q), interpolation=cv2.INTER_AREA)
    d = cv2.distanceTransform((small > 127).astype(np.uint8), cv2.DIST_L2, 5) * q
    rad = cv2.dilate(d, cv2.getStructuringElement(cv2.MORPH_RECT, (31, 31)))
    rad = np.maximum(cv2.GaussianBlur(rad, (0, 0), 4), d + 1)
    h = np.sqrt(np.maximum(rad**2 - (rad - d) ** 2, 0))
    h = cv2.resize(h, (mask.shape[1], mask.shape[0]), interpolation=cv2.INTER_CUBIC)
    h = cv2.GaussianBlur(h, (0, 0), 3) * (mask.astype(F32) / 255)
    hmax = float(h.max()) + 1e-6
    ao = 255 - (far.astype(F32) * 0.4).astype(np.uint8)
    return np.dstack([np.clip(h / hmax * 255, 0, 255).astype(np.uint8), ao]), hmax


def _coat_lateral(seed: int, side: str) -> _Body:
    t = _traits(seed)
    g = _geometry(t)
    rng = _rng(seed, _TAG_LEFT if side == "left" else _TAG_RIGHT)
    W, H, q = MAP_W, MAP_H, 4

    # --- silhouette parts at full resolution
    parts = {k: np.zeros((H, W), np.uint8) for k in ("torso", "neck", "head", "legs", "far", "tail")}
    _fill(parts["torso"], [g.torso], 255)
    _fill(parts["neck"], [g.neck], 255)
    for c, ax, a in g.head:
        _ellipse(parts["head"], c, ax, a, 255)
    _fill(parts["head"], [g.ear], 255)
    _fill(parts["legs"], g.legs_near, 255)
    for c, ax, a in g.paws_near:
        _ellipse(parts["legs"], c, ax, a, 255)
    _fill(parts["far"], g.legs_far, 255)
    for c, ax, a in g.paws_far:
        _ellipse(parts["far"], c, ax, a, 255)
    _fill(parts["tail"], [g.tail], 255)
    union = np.maximum.reduce(list(parts.values()))
    fuzz = cv2.resize(_fbm(rng, H // 2, W // 2, 60, 1), (W, H)) * 0.07
    mask = cv2.GaussianBlur(union.astype(F32) / 255, (0, 0), 2.5)
    mask = (_smoothstep(0.38, 0.62, mask + fuzz) * 255).astype(np.uint8)
    # The far legs are only visible where the near body does not cover them.
    near = np.maximum.reduce([parts[k] for k in ("torso", "neck", "head", "legs", "tail")])
    far_vis = cv2.GaussianBlur(np.where(near > 127, 0, parts["far"]), (0, 0), 2)

    # --- zone fields on a quarter-resolution grid
    hq, wq = H // q, W // q
    yy, xx = np.mgrid[0:hq, 0:wq].astype(F32) * q + (q - 1) / 2
    small = {k: cv2.resize(v, (wq, hq), interpolation=cv2.INTER_AREA).astype(F32) / 255 for k, v in parts.items()}
    top = np.interp(xx, g.top_x, g.top_y).astype(F32)
    bot = np.interp(xx, g.bot_x, g.bot_y).astype(F32)
    tv = (yy - top) / np.maximum(bot - top, 1)  # 0 = spine, 1 = belly line
    u = (xx - TORSO_X[0]) / (TORSO_X[1] - TORSO_X[0])  # 0 = chest, 1 = rump
    torso = small["torso"] > 0.5
    R0 = t.ring
    # Ring radius peaks mid-flank, shrinks toward shoulder, haunch, spine and belly.
    ring = R0 * (1 - 0.45 * np.abs(u - 0.52) ** 1.5 * 2.2) * (1 - 0.55 * np.clip(np.abs(tv - 0.48) * 2, 0, 1) ** 2)
    ring = np.clip(ring, 6, None) * (1 + 0.12 * _fbm(rng, hq, wq, 3, 2))
    p_ros = (_smoothstep(-0.02, 0.1, u) * _smoothstep(1.02, 0.9, u) * _smoothstep(0.04, 0.16, tv)
             * _smoothstep(0.9, 0.74, tv))
    # Outside the rosette zone: solid spots whose size depends on the part.
    leg_any = (small["legs"] + small["far"]) > 0.5
    spot = np.full((hq, wq), 7.0, F32)
    spot = np.where(small["neck"] > 0.5, 6.5, spot)
    spot = np.where(small["head"] > 0.5, 3.4 * t.head, spot)
    spot = np.where(leg_any & ~torso, 6.5 - 3.8 * np.clip((yy - 300) / 180, 0, 1), spot)
    spot = np.where(small["tail"] > 0.5, 8.5, spot)
    spot = np.where(torso & (tv > 0.8), 10.0, spot)  # belly blotches
    spot = np.where(torso & (tv < 0.15), 6.0, spot)  # spine
    spot = np.where(torso & (u < 0.08), 7.0, spot)  # chest front
    spot *= 1 + 0.1 * _fbm(rng, hq, wq, 4, 2)
    size = np.where(p_ros > 0.5, ring, spot)
    dist = np.where(p_ros > 0.5, 2 * ring * t.spacing, 2 * spot * np.where(torso & (tv > 0.8), 2.3, 1.75))
    dist = np.where(small["head"] > 0.5, spot * 3.3, dist)
    paws = (yy > GROUND_Y - 32) & ~torso
    allowed = (np.maximum.reduce(list(small.values())) > 0.15) & ~paws
    pts = _poisson(rng, dist.astype(F32), allowed, q)

    # --- draw ink (spots, rosette blobs) and rosette centres at full resolution
    ink = np.zeros((H, W), np.uint8)
    cen = np.zeros((H, W), np.uint8)
    pi = np.clip((pts / q).astype(int), 0, [wq - 1, hq - 1])
    pr = p_ros[pi[:, 1], pi[:, 0]]
    sz = size[pi[:, 1], pi[:, 0]]
    tvp = tv[pi[:, 1], pi[:, 0]]
    is_ros = rng.random(len(pts)) < pr
    blobs: list[np.ndarray] = []
    cents: list[np.ndarray] = []
    for (x, y), R, tvv in zip(pts[is_ros], sz[is_ros], tvp[is_ros], strict=True):
        R *= rng.uniform(0.85, 1.05)
        asp = rng.uniform(1.0, 1.35)
        ang = rng.normal(0, 0.35) + (0.25 if tvv > 0.55 else 0.0) * rng.choice([-1, 1])
        b, c = _rosette(rng, x, y, R, asp, ang, t.thick)
        blobs += b
        cents.append(c)
        if rng.random() < 0.07:  # an occasional spot inside the ring
            blobs.append(_spots(rng, np.array([[x, y]]), np.array([R * 0.22]), np.ones(1), np.zeros(1))[0])
    sp = pts[~is_ros]
    if len(sp):
        s_r = sz[~is_ros] * rng.uniform(0.75, 1.2, len(sp))
        s_t = tvp[~is_ros]
        elong = np.where((s_t < 0.15) & (sp[:, 0] > 240), rng.uniform(1.4, 2.2, len(sp)), rng.uniform(1.0, 1.4, len(sp)))
        in_leg = parts["legs"][np.clip(sp[:, 1].astype(int), 0, H - 1), np.clip(sp[:, 0].astype(int), 0, W - 1)] > 0
        ang = np.where(in_leg & (s_t > 1), np.pi / 2, 0) + rng.normal(0, 0.4, len(sp))
        blobs += list(_spots(rng, sp, s_r, elong, ang))
    # Tail: dark bands toward the tip and a black tip.
    tl = _chaikin(g.tail_ctrl, 3)
    arc = np.r_[0, np.cumsum(np.hypot(*np.diff(tl, axis=0).T))]
    arc /= arc[-1]
    tan = np.gradient(tl, axis=0)
    tan /= np.linalg.norm(tan, axis=1, keepdims=True) + 1e-9
    for a0 in np.r_[np.linspace(0.6, 0.9, 4) + rng.uniform(-0.02, 0.02, 4), 0.96, 0.985, 1.0]:
        i = int(np.searchsorted(arc, min(a0, 1.0)) - 1)
        c, n = tl[i], np.array([-tan[i, 1], tan[i, 0]]) * 22
        cv2.line(ink, tuple(np.round((c - n) * 16).astype(int)), tuple(np.round((c + n) * 16).astype(int)),
                 255, 9 if a0 < 0.95 else 14, cv2.LINE_AA, 4)
    _fill(cen, cents, 255)
    _fill(ink, blobs, 255)

    # Organic edges: domain-warp the crisp polygons, then fray them with fur noise.
    # (displacements are smooth: made at half resolution, upsampled)
    disp = [cv2.resize(_fbm(rng, H // 2, W // 2, 22, 2) * 2.2 + _fbm(rng, H // 2, W // 2, 70, 1) * 0.8, (W, H))
            for _ in range(2)]
    gy, gx = _grid(H, W)
    ink_c = cv2.remap(np.dstack([ink, cen]), gx + disp[0], gy + disp[1], cv2.INTER_LINEAR)
    fur = rng.standard_normal((H, W), dtype=F32)
    streak = cv2.filter2D(fur, -1, _line_kernel(5, 0.15))  # hair runs head to tail
    streak = streak / (streak.std() + 1e-6)
    ink_f = cv2.GaussianBlur(ink_c[..., 0].astype(F32) / 255, (0, 0), 1.1)
    ink_f = _smoothstep(0.36, 0.66, ink_f + 0.12 * streak)
    cen_f = cv2.GaussianBlur(ink_c[..., 1].astype(F32) / 255, (0, 0), 2.0)

    # --- ground colour fields (quarter res, then upsampled)
    back_w = np.where(small["tail"] > 0.5, 0.35, _smoothstep(0.34, 0.02, tv) * (1 - small["head"] * 0.6))
    back_w = back_w * (yy < bot)
    belly_w = (_smoothstep(0.74, 0.98, tv) * small["torso"]
               + (small["neck"] > 0.5) * _smoothstep(0.5, 1.0, (yy - 150) / 140) * (xx < 340) * 0.8
               + leg_any * ~torso * 0.3 * _smoothstep(400, GROUND_Y, yy))
    belly_w = np.clip(belly_w, 0, 1)
    col = (t.ground[None, None] * (1 - back_w - belly_w)[..., None] * 1.0
           + t.back[None, None] * back_w[..., None] + t.belly[None, None] * belly_w[..., None])
    col *= (1 + 0.035 * _fbm(rng, hq, wq, 5, 2))[..., None]
    col = cv2.resize(col.astype(F32), (W, H), interpolation=cv2.INTER_LINEAR)
    soft = cv2.GaussianBlur(fur, (0, 0), sigmaX=1.8, sigmaY=0.8)  # short soft strands, not scratches
    soft *= 1 / (soft.std() + 1e-6)
    col *= (1 + 0.025 * soft + 0.02 * cv2.resize(_fbm(rng, H // 2, W // 2, 40, 2), (W, H)))[..., None]
    col = col * (1 - 0.8 * cen_f[..., None] * (1 - t.centre[None, None]))
    inkcol = t.ink[None, None] * (1 + 0.6 * np.clip(cv2.resize(_fbm(rng, hq, wq, 8, 1), (W, H)), -1, 1))[..., None]
    col = col * (1 - ink_f[..., None] * 0.95) + inkcol * ink_f[..., None] * 0.95

    _head_details(col, g, t, rng)
    rgb = np.clip(col * 255 + 0.5, 0, 255).astype(np.uint8)
    ha, hmax = _height_ao(mask, far_vis)
    box = (40.0, 48.0, 1010.0, 508.0)
    focus = (290.0, 110.0, 800.0, 300.0)
    piv = {"fore": g.fore_pivot, "hind": g.hind_pivot, "neck": g.neck_pivot, "tail": g.tail_pivot}
    facing = -1
    if side == "right":  # view orientation: the right flank seen from the right has the head on the right
        rgb, mask, ha = rgb[:, ::-1], mask[:, ::-1], ha[:, ::-1]
        box = (W - box[2], box[1], W - box[0], box[3])
        focus = (W - focus[2], focus[1], W - focus[0], focus[3])
        piv = {k: (W - 1 - x, y) for k, (x, y) in piv.items()}
        facing = 1
    return _finish(rgb, mask, ha, hmax, box, focus, facing, piv)


def _finish(rgb: np.ndarray, mask: np.ndarray, ha: np.ndarray, hmax: float, box: tuple, focus: tuple,
            facing: int, piv: dict) -> _Body:
    rgba = [np.ascontiguousarray(np.dstack([rgb, mask]))]
    has = [np.ascontiguousarray(ha)]
    for _ in range(_LEVELS - 1):
        rgba.append(cv2.pyrDown(rgba[-1]))
        has.append(cv2.pyrDown(has[-1]))
    rgb = np.ascontiguousarray(rgba[0][..., :3])  # contiguous, so callers can hand it to OpenCV
    for a in [rgb, *rgba, *has]:
        a.flags.writeable = False  # shared by every render of this individual
    return _Body(rgb, tuple(rgba), tuple(has), hmax, box, focus, facing, piv)


def _line_kernel(n: int, angle: float) -> np.ndarray:
    k = np.zeros((n, n), F32)
    c = (n - 1) / 2
    cv2.line(k, (round(c - c * math.cos(angle)), round(c - c * math.sin(angle))),
             (round(c + c * math.cos(angle)), round(c + c * math.sin(angle))), 1.0, 1, cv2.LINE_AA)
    return k / k.sum()


def _head_details(full: np.ndarray, g: _Geometry, t: _Traits, rng: np.random.Generator) -> None:
    """Eye, ear, nose, mouth, white muzzle and whisker-spot rows of the side-view head."""
    col = full[:320, :320].copy()  # the head's corner of the map: drawing there is much cheaper
    ex, ey = g.eye
    nx, ny = g.nose
    hs = t.head
    white = tuple(float(v) for v in (0.25 * t.belly + 0.75 * np.array([0.96, 0.95, 0.92])))
    _ellipse(col, (nx + 34 * hs, ny + 30 * hs), (38 * hs, 16 * hs), 10, white)  # muzzle / chin
    _ellipse(col, (ex + 4, ey + 13 * hs), (13 * hs, 5 * hs), 0, tuple(float(v) for v in t.belly))  # pale under the eye
    # Whisker spots: three rows of small dots on the muzzle.
    for r_i in range(3):
        for c_i in range(4):
            cx = nx + 18 * hs + c_i * 8 * hs + rng.normal(0, 1.2)
            cy = ny + 14 * hs + r_i * 6 * hs + rng.normal(0, 1)
            _ellipse(col, (cx, cy), (1.6 * hs, 1.4 * hs), 0, tuple(float(v) for v in t.ink))
    iris = _hsv(rng.uniform(35, 62), rng.uniform(0.6, 0.85), rng.uniform(0.5, 0.7))
    eye_poly = np.array([(ex - 14, ey + 2), (ex - 4, ey - 7), (ex + 10, ey - 6), (ex + 15, ey + 1),
                         (ex + 2, ey + 6)]) * 1.0
    eye_poly = (eye_poly - (ex, ey)) * hs + (ex, ey)
    _fill(col, [eye_poly * 1.25 - np.array([ex, ey]) * 0.25], tuple(float(v) for v in t.ink))
    _fill(col, [eye_poly], tuple(float(v) for v in iris))
    _ellipse(col, (ex - 3 * hs, ey), (3.2 * hs, 4.4 * hs), 0, (0.03, 0.03, 0.03))
    # Tear line from the eye's front corner toward the mouth.
    tear = np.array([(ex - 16 * hs, ey + 3 * hs), (ex - 24 * hs, ey + 20 * hs), (ex - 26 * hs, ey + 34 * hs)])
    cv2.polylines(col, [np.round(tear * 16).astype(np.int32)], False, tuple(float(v) for v in t.ink * 1.5),
                  max(2, round(3 * hs)), cv2.LINE_AA, 4)
    nose = np.array([(nx - 4, ny - 8), (nx + 12, ny - 9), (nx + 14, ny + 2), (nx + 2, ny + 7), (nx - 5, ny + 1)])
    _fill(col, [nose], (0.45, 0.28, 0.25))
    mouth = np.array([(nx + 2, ny + 8), (nx + 10, ny + 24 * hs), (nx + 40 * hs, ny + 33 * hs)])
    cv2.polylines(col, [np.round(mouth * 16).astype(np.int32)], False, (0.12, 0.08, 0.07), 2, cv2.LINE_AA, 4)
    # Ear: dark back, pale rim inside.
    ear = g.ear
    _fill(col, [ear], tuple(float(v) for v in t.ink * 1.6))
    inner = ear.mean(0) + (ear - ear.mean(0)) * 0.5 + np.array([4, 6])
    _fill(col, [inner], tuple(float(v) for v in t.belly * 0.9))
    full[:320, :320] = col


# ----------------------------------------------------------------------------- face (front view)


def _coat_front(seed: int) -> _Body:
    """A frontal head map: spotted crown and cheeks, plain nose bridge, almond eyes with tear
    lines, nose pad, white whisker pads with rows of whisker spots, small rounded ears, chest."""
    t = _traits(seed)
    rng = _rng(seed, _TAG_FRONT)
    W, H = FACE_W, FACE_H
    cx = W / 2
    hs = t.head
    ey, ex = 238.0, 64.0 * hs
    mask = np.zeros((H, W), np.uint8)
    _ellipse(mask, (cx, 215), (150 * hs, 128), 0, 255)  # cranium
    _ellipse(mask, (cx, 285), (172 * hs, 108), 0, 255)  # cheek ruffs
    _ellipse(mask, (cx, 368), (88, 60), 0, 255)  # muzzle and chin
    ears = []
    for sgn in (-1, 1):
        th = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        a = math.radians(sgn * 28)
        x, y = 44 * np.cos(th) * hs, 54 * np.sin(th) * hs
        ears.append(np.c_[cx + sgn * 122 * hs + x * math.cos(a) - y * math.sin(a), 108 + x * math.sin(a) + y * math.cos(a)])
    _fill(mask, ears, 255)
    _fill(mask, [np.array([(cx - 135, 350), (cx + 135, 350), (cx + 215, H + 20), (cx - 215, H + 20)])], 255)  # neck, chest
    fuzz = _fbm(rng, H, W, 30, 1) * 0.07
    mask = (_smoothstep(0.4, 0.6, cv2.GaussianBlur(mask.astype(F32) / 255, (0, 0), 4) + fuzz) * 255).astype(np.uint8)

    yy, xx = np.mgrid[0:H, 0:W].astype(F32)
    col = np.broadcast_to(t.ground, (H, W, 3)).astype(F32).copy()
    crown = _smoothstep(250, 90, yy)[..., None] * 0.5
    col = col * (1 - crown) + t.back * crown
    fur = rng.standard_normal((H, W), dtype=F32)
    streak = cv2.filter2D(fur, -1, _line_kernel(5, np.pi / 2))
    streak *= 1 / (streak.std() + 1e-6)
    soft = cv2.GaussianBlur(fur, (0, 0), sigmaX=0.8, sigmaY=1.8)
    col *= (1 + 0.025 * soft / (soft.std() + 1e-6) + 0.04 * _fbm(rng, H, W, 6, 2))[..., None]
    white = tuple(float(v) for v in (0.2 * t.belly + 0.8 * np.array([0.96, 0.95, 0.92])))
    pale = np.zeros((H, W), F32)  # pale fur patches, blended softly
    _ellipse(pale, (cx, 540), (150, 140), 0, 0.8)  # chest
    for sgn in (-1, 1):
        _ellipse(pale, (cx + sgn * ex, ey - 24), (26 * hs, 9), sgn * -8, 0.55)  # "eyebrow"
        _ellipse(pale, (cx + sgn * (ex + 2), ey + 22), (26 * hs, 10), 0, 0.7)  # below the eye
        _ellipse(pale, (cx + sgn * 46, 352), (52, 34), sgn * -12, 1.0)  # whisker pads
    _ellipse(pale, (cx, 392), (58, 30), 0, 1.0)  # chin
    pale = cv2.GaussianBlur(pale, (0, 0), 4)[..., None]
    col = col * (1 - pale) + np.array(white, F32) * pale
    bridge = (np.abs(xx - cx) < 22 + np.clip(yy - 200, 0, 120) * 0.18) & (yy > 205) & (yy < 335)
    # Spots: Poisson over crown, cheeks and chest; tiny on the forehead, none on bridge, eyes, muzzle.
    q = 2
    yq, xq = yy[::q, ::q], xx[::q, ::q]
    dist = np.where(yq < 250, 12.0, np.where(yq > 400, 26.0, 17.0)) * (1 + 0.15 * _fbm(rng, H // q, W // q, 3, 1))
    keep = (mask[::q, ::q] > 128) & ~bridge[::q, ::q]
    for sgn in (-1, 1):
        keep &= (xq - cx - sgn * ex) ** 2 / 40**2 + (yq - ey) ** 2 / 30**2 > 1
    keep &= ((xq - cx) ** 2 / 112**2 + (yq - 368) ** 2 / 62**2) > 1  # muzzle
    ear_m = np.zeros((H, W), np.uint8)
    _fill(ear_m, ears, 1)
    keep &= ear_m[::q, ::q] == 0
    pts = _poisson(rng, dist.astype(F32), keep, q)
    r = np.where(pts[:, 1] < 250, 3.6, np.where(pts[:, 1] > 400, 8.5, 5.0)) * rng.uniform(0.7, 1.25, len(pts))
    ink = np.zeros((H, W), np.uint8)
    _fill(ink, list(_spots(rng, pts, r, rng.uniform(1, 1.5, len(pts)), rng.uniform(0, np.pi, len(pts)))), 255)
    for sgn in (-1, 1):  # whisker-spot rows on the pads
        for row in range(4):
            for k in range(4 + row % 2):
                x = cx + sgn * (24 + k * 13 + row * 4) + rng.normal(0, 1.5)
                y = 334 + row * 11 + rng.normal(0, 1.2)
                cv2.circle(ink, (round(x * 16), round(y * 16)), 30, 255, -1, cv2.LINE_AA, 4)
        tear = np.array([(cx + sgn * (ex - 26 * hs), ey + 6), (cx + sgn * (ex - 32 * hs), ey + 36),
                         (cx + sgn * (ex - 30 * hs), ey + 70)])
        cv2.polylines(ink, [np.round(tear * 16).astype(np.int32)], False, 255, 5, cv2.LINE_AA, 4)
    ink_f = _smoothstep(0.3, 0.7, cv2.GaussianBlur(ink.astype(F32) / 255, (0, 0), 1.0) + 0.1 * streak)
    col = col * (1 - 0.93 * ink_f[..., None]) + t.ink * 0.93 * ink_f[..., None]
    inkc = tuple(float(v) for v in t.ink)
    for e in ears:  # dark rim, pale fur inside
        _fill(col, [e], inkc)
        _fill(col, [e.mean(0) + (e - e.mean(0)) * 0.74 + [0, 6]], tuple(float(v) for v in t.belly * 0.92))
    iris = tuple(float(v) for v in _hsv(rng.uniform(38, 65), rng.uniform(0.6, 0.85), rng.uniform(0.55, 0.75)))
    for sgn in (-1, 1):
        c = (cx + sgn * ex, ey)
        _ellipse(col, c, (25 * hs, 15 * hs), sgn * -10, inkc)  # dark rim
        _ellipse(col, c, (20 * hs, 11.5 * hs), sgn * -10, iris)
        _ellipse(col, c, (5.5 * hs, 8 * hs), 0, (0.02, 0.02, 0.02))  # pupil
        _ellipse(col, (c[0] + 4, c[1] - 4), (2, 2), 0, (0.95, 0.95, 0.95))  # catch light
    nose = np.array([(cx - 28, 308), (cx + 28, 308), (cx + 12, 334), (cx, 340), (cx - 12, 334)])
    _fill(col, [_chaikin(np.vstack([nose, nose[:1]]), 2)], (0.58, 0.38, 0.34))
    for sgn in (-1, 1):
        _ellipse(col, (cx + sgn * 9, 331), (5, 3), sgn * 30, (0.12, 0.07, 0.06))  # nostrils
    cv2.polylines(col, [np.round(np.array([(cx, 340), (cx, 360), (cx - 26, 374)]) * 16).astype(np.int32),
                        np.round(np.array([(cx, 360), (cx + 26, 374)]) * 16).astype(np.int32)], False,
                  (0.15, 0.1, 0.08), 3, cv2.LINE_AA, 4)
    rgb = np.clip(col * 255 + 0.5, 0, 255).astype(np.uint8)
    ha, hmax = _height_ao(mask, np.zeros_like(mask))
    return _finish(rgb, mask, ha, hmax, (70.0, 40.0, 442.0, float(H)), (110.0, 120.0, 400.0, 420.0), 0,
                   {"eyes": [(cx - ex, ey), (cx + ex, ey)]})


@functools.lru_cache(maxsize=32)
def _body(seed: int, view: str) -> _Body:
    if view == "front":
        return _coat_front(seed)
    return _coat_lateral(seed, view)


def flank_texture(seed: int, side: str) -> np.ndarray:
    """The coat map of one flank (``"left"``/``"right"``) as RGB uint8 (512, 1024, 3).

    The map is in body coordinates: the whole lateral view of the animal with the head on the
    side it faces in a photo of that flank. ``"front"`` gives the (512, 512, 3) face map.
    Cached (LRU); the array is read-only because it is shared by all renders.
    """
    if side not in VIEWS:
        raise ValueError(f"side must be one of {VIEWS}, not {side!r}")
    return _body(int(seed), side).rgb


# ----------------------------------------------------------------------------- camera and scene


@dataclass
class _Scene:
    """Everything random about one sighting; burst frames copy it and move the animal a little."""

    w: int
    h: int
    night: bool
    hard: bool
    anchor: tuple[float, float]  # map point placed at `out`
    out: tuple[float, float]
    scale: float
    roll: float
    yaw: float
    pitch: float
    focal: float
    warp: np.ndarray  # (2, K, 4): amplitude, kx, ky, phase of the smooth displacement
    bend: float
    stretch: float
    swing: dict
    velocity: tuple[float, float]
    swing_rate: float
    bg_seed: int
    params: dict  # light, colour, blur, occluders, noise, jpeg, banner


def _sample_scene(rng: np.random.Generator, body: _Body, cfg: RenderConfig, night: bool) -> _Scene:
    w, h = cfg.size
    hard = cfg.hard
    x0, y0, x1, y1 = body.box
    bw, bh = x1 - x0, y1 - y0
    fit = min(w / bw, h / bh)
    centre = ((x0 + x1) / 2, (y0 + y1) / 2)
    front = body.facing == 0
    # Framing: whole animal (a detector crop), near (flank close-up), far (small in the frame),
    # edge (entering / leaving, cut by the frame border).
    mode = rng.choice(4, p=[0.42, 0.28, 0.15, 0.15] if hard else [0.75, 0.25, 0.0, 0.0])
    if front:  # head views: ears in the frame, the chest running out of its bottom
        s = min(w, h) / (x1 - x0) * rng.uniform(0.6, 1.05)
        anchor = (centre[0] + rng.normal(0, 10), 290 + rng.normal(0, 15))
        out = (w / 2 + rng.normal(0, 0.06) * w, h * (0.5 + rng.normal(0, 0.04)))
    elif mode == 0:
        s = fit * (rng.uniform(0.78, 1.08) if hard else rng.uniform(0.85, 0.98))
        anchor = (centre[0] + rng.normal(0, 0.04) * bw, centre[1] + rng.normal(0, 0.04) * bh)
        out = (w / 2 + rng.normal(0, 0.05) * w, h / 2 + rng.normal(0, 0.05) * h)
    elif mode == 1:
        fx0, fy0, fx1, fy1 = body.focus
        anchor = (rng.uniform(fx0, fx1), fy0 + (fy1 - fy0) * rng.uniform(0.3, 0.8))
        vis = (fx1 - fx0) * (rng.uniform(0.35, 0.85) if hard else rng.uniform(0.55, 0.9))
        if front:  # a face close-up still shows both eyes
            vis = (fx1 - fx0) * rng.uniform(0.8, 1.15)
        s = w / vis
        out = (w / 2 + rng.normal(0, 0.08) * w, h / 2 + rng.normal(0, 0.08) * h)
    elif mode == 2:
        s = fit * rng.uniform(0.3, 0.62)
        anchor = centre
        mx, my = max(0.0, w - bw * s) / 2, max(0.0, h - bh * s) / 2
        out = (w / 2 + rng.uniform(-mx, mx), h / 2 + rng.uniform(-my, my))
    else:
        s = fit * rng.uniform(0.7, 1.5)
        anchor = centre
        side = rng.choice([-1, 1])
        out = (w / 2 + side * w * rng.uniform(0.3, 0.62), h * rng.uniform(0.3, 0.7))
    k = 1.0 if hard else 0.4
    roll = math.radians(rng.normal(0, 7 * k) if rng.random() > 0.1 * k else rng.normal(0, 22 * k))
    yaw = math.radians(float(np.clip(rng.normal(0, 20 * k), -50, 50)))
    pitch = math.radians(rng.uniform(-8, 26) * k)
    focal = bw * rng.uniform(1.1, 4.0)
    amp = (11.0 if hard else 4.0) * (0.5 if front else 1.0)
    kk = 3
    lam = rng.uniform(220, 900, (2, kk))
    th = rng.uniform(0, 2 * np.pi, (2, kk))
    warp = np.stack([rng.uniform(0, amp, (2, kk)), 2 * np.pi / lam * np.cos(th), 2 * np.pi / lam * np.sin(th),
                     rng.uniform(0, 2 * np.pi, (2, kk))], -1)
    # Pose (radians): leg pairs swing, the head nods, the tail swings; clipped to what looks natural.
    # (The tail swings back freely but only a little toward the legs: a flat map cannot fold.)
    swing = {} if front else {n: float(np.clip(rng.normal(0, sd * k), lo, hi)) for n, sd, lo, hi in
                              (("fore", 0.22, -0.45, 0.45), ("hind", 0.18, -0.4, 0.4), ("neck", 0.12, -0.3, 0.3),
                               ("tail", 0.2, -0.4, 0.12))}
    speed = rng.uniform(0.0, 0.035) * w
    vel = (body.facing * speed, rng.normal(0, 0.003) * h) if not front else (rng.normal(0, 0.01) * w, 0.0)
    scene = _Scene(w, h, night, hard, anchor, out, s, roll, yaw, pitch, focal, warp,
                   bend=rng.normal(0, 14 * k), stretch=rng.uniform(0.94, 1.06) if hard else 1.0, swing=swing,
                   velocity=vel, swing_rate=rng.uniform(-0.12, 0.12), bg_seed=int(rng.integers(1 << 62)),
                   params={})
    scene.params = _sample_look(rng, cfg, night)
    return scene


def _sample_look(rng: np.random.Generator, cfg: RenderConfig, night: bool) -> dict:
    """Lighting, colour, blur, occluder, noise, banner and JPEG settings of one sighting."""
    hard = cfg.hard
    p: dict = {}
    if night:
        p["ir_contrast"] = rng.uniform(0.6, 0.95)  # rosettes have lower contrast under IR
        p["ir_weights"] = rng.dirichlet([6, 4, 1.5])
        p["bg_dim"] = rng.uniform(0.2, 0.7)
        p["vignette"] = rng.uniform(0.35, 0.9) if hard else rng.uniform(0.2, 0.5)
        p["vcentre"] = rng.normal(0, 0.12, 2)
        p["gain"] = rng.uniform(0.9, 2.4) if hard else rng.uniform(1.0, 1.6)
        p["noise"] = rng.uniform(0.015, 0.07) if hard else rng.uniform(0.01, 0.025)
        p["specks"] = int(rng.random() < 0.15 * hard) * int(rng.integers(1, 8))
    else:
        ly = -rng.uniform(0.15, 1.0)
        p["light"] = np.array([rng.uniform(-0.8, 0.8), ly, rng.uniform(0.35, 1.0)])
        overcast = rng.random() < 0.3
        p["ambient"] = rng.uniform(0.6, 0.85) if overcast else rng.uniform(0.3, 0.55)
        p["sun"] = 1 - p["ambient"]
        # A cast shadow (tree, rock, cliff) with a soft, ragged edge across part of the scene.
        p["cast"] = rng.random() < (0.25 if hard else 0.0)
        p["cast_k"] = rng.uniform(0.25, 0.55) * (1 - p["ambient"] + 0.3)
        p["cast_line"] = (rng.uniform(0, 2 * np.pi), rng.uniform(-0.35, 0.35), rng.uniform(0.02, 0.1))
        temp = float(np.clip(rng.normal(0, 0.05 if hard else 0.03), -0.1, 0.1))
        p["wb"] = np.exp(rng.normal(0, 0.05 if hard else 0.02, 3)) * np.array([1 + temp, 1, 1 - temp])
        p["exposure"] = math.exp(rng.normal(0, 0.25 if hard else 0.1))
        p["gamma"] = rng.uniform(0.8, 1.25) if hard else rng.uniform(0.9, 1.1)
        p["contrast"] = rng.uniform(0.75, 1.15)
        p["saturation"] = rng.uniform(0.5, 1.15)
        p["haze"] = rng.uniform(0, 0.3) if (hard and rng.random() < 0.3) else 0.0
        p["dusk"] = hard and rng.random() < 0.07
        p["noise"] = rng.uniform(0.003, 0.02) if hard else 0.004
    p["contact"] = rng.uniform(0.2, 0.55)
    # Blur: the animal moves (more at night: long exposures), the lens is not focused on it.
    motion_p = (0.45 if night else 0.25) if hard else 0.03
    p["motion"] = rng.uniform(2, (14 if night else 8) if hard else 4) if rng.random() < motion_p else 0.0
    p["motion_ang"] = rng.normal(0, 0.2)
    p["focus"] = rng.uniform(0.3, 1.4) if rng.random() < (0.4 if hard else 0.1) else 0.0
    p["shake"] = rng.uniform(2, 7) if (hard and rng.random() < 0.08) else 0.0
    p["shake_ang"] = rng.uniform(0, np.pi)
    p["grass"] = int(rng.integers(8, 70)) if (hard and rng.random() < 0.35) else 0
    p["branches"] = int(rng.integers(1, 3)) if (hard and rng.random() < 0.18) else 0
    p["occ_blur"] = rng.uniform(0, 3)
    p["occ_seed"] = int(rng.integers(1 << 62))
    p["jpeg"] = int(30 + 64 * rng.beta(2.2, 1.1)) if hard else int(rng.integers(80, 96))
    p["banner"] = (hard and rng.random() < 0.45)
    p["banner_seed"] = int(rng.integers(1 << 62))
    return p


def _homography(sc: _Scene, dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
    """Map (view) px -> output px: plane at yaw/pitch seen through a pinhole, then roll and scale."""
    cy, sy = math.cos(sc.yaw), math.sin(sc.yaw)
    cp, sp = math.cos(sc.pitch), math.sin(sc.pitch)
    rot = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]]) @ np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    hp = np.array([[rot[0, 0], rot[0, 1], 0], [rot[1, 0], rot[1, 1], 0],
                   [rot[2, 0] / sc.focal, rot[2, 1] / sc.focal, 1]])
    cr, sr = math.cos(sc.roll), math.sin(sc.roll)
    a = np.array([[cr * sc.scale, -sr * sc.scale, sc.out[0] + dx], [sr * sc.scale, cr * sc.scale, sc.out[1] + dy],
                  [0, 0, 1]])
    t = np.array([[1, 0, -sc.anchor[0]], [0, 1, -sc.anchor[1]], [0, 0, 1]])
    return a @ hp @ t


def _rotate_about(u: np.ndarray, v: np.ndarray, piv: tuple, ang: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c, s = np.cos(ang), np.sin(ang)
    du, dv = u - piv[0], v - piv[1]
    return piv[0] + c * du - s * dv, piv[1] + s * du + c * dv


def _mapping(sc: _Scene, body: _Body, frame: int) -> tuple[np.ndarray, np.ndarray, int, float]:
    """Per-pixel sampling coordinates into the mip level of the body map.

    Computed on a coarse grid (every 8 px) and upsampled: the camera and body warps are
    smooth, so this is exact enough and costs almost nothing.
    """
    w, h, g = sc.w, sc.h, 8
    gw, gh = -(-w // g) + 2, -(-h // g) + 2
    minv = np.linalg.inv(_homography(sc, sc.velocity[0] * frame, sc.velocity[1] * frame))
    xs = (np.arange(gw) - 0.5) * g - 0.5
    ys = (np.arange(gh) - 0.5) * g - 0.5
    X, Y = np.meshgrid(xs, ys)
    q = minv @ np.stack([X.ravel(), Y.ravel(), np.ones(X.size)])
    z = q[2]
    z = np.where(np.abs(z) < 1e-6, 1e-6, z)
    u, v = (q[0] / z).reshape(gh, gw), (q[1] / z).reshape(gh, gw)
    # Map px per output px at the anchor decides the mip level (no aliasing far away).
    j = np.linalg.inv(_homography(sc))
    p0 = j @ np.array([sc.out[0], sc.out[1], 1.0])
    p1 = j @ np.array([sc.out[0] + 1, sc.out[1], 1.0])
    p2 = j @ np.array([sc.out[0], sc.out[1] + 1, 1.0])
    a0, a1, a2 = p0[:2] / p0[2], p1[:2] / p1[2], p2[:2] / p2[2]
    e1, e2 = a1 - a0, a2 - a0
    m = math.sqrt(abs(float(e1[0] * e2[1] - e1[1] * e2[0]))) + 1e-9
    # Smooth non-rigid body warp in map space.
    phase = frame * 0.15
    disp = [sum(amp * np.sin(kx * u + ky * v + ph + phase) for amp, kx, ky, ph in sc.warp[c]) for c in (0, 1)]
    u, v = u + disp[0], v + disp[1]
    x0, y0, x1, y1 = body.box
    uc, half = (x0 + x1) / 2, (x1 - x0) / 2
    v -= sc.bend * (((u - uc) / half) ** 2 - 0.33)
    u[:] = uc + (u - uc) * sc.stretch
    f = body.facing
    if f:
        # Legs swing (a shear below the shoulder / hip, confined to each leg pair's band and
        # bounded, so no other body part is pulled into view).
        for name, (lo, hi) in (("fore", (-80, 90)), ("hind", (-95, 60))):
            px, py = body.pivots[name]
            rel = (u - px) * -f  # canonical (head-left) offset from the pivot
            wx = _smoothstep(lo - 25, lo, rel) * _smoothstep(hi + 25, hi, rel)
            ang = sc.swing[name] + sc.swing_rate * frame * (1 if name == "fore" else -1)
            shift = np.clip((v - py) * math.tan(ang), -60, 60)
            u += shift * wx * _smoothstep(0, 45, v - py) * f
        # Head nod and tail swing: rotations about the neck and tail base, limited so that a
        # point ahead of the neck (behind the tail base) never samples the body behind (ahead).
        for name, sign, ramp in (("neck", -1, (0, -70)), ("tail", 1, (0, 60))):
            px, py = body.pivots[name]
            rel = (u - px) * -f
            ru, rv = _rotate_about(u, v, (px, py), sc.swing[name] * _smoothstep(*ramp, rel) * (f if sign > 0 else 1))
            # Keep sign * rel >= half its unrotated value: move back toward the pivot side at most that far.
            den = sign * (rel - (ru - px) * -f)
            k = np.where(den > 1e-6, np.clip(0.5 * sign * rel / np.maximum(den, 1e-6), 0, 1), 1.0)
            u, v = u + (ru - u) * k, v + (rv - v) * k
    lvl = int(np.clip(math.floor(math.log2(max(m, 1e-3)) + 0.5), 0, _LEVELS - 1))
    sc_l = 2.0**lvl
    u = (u + 0.5) / sc_l - 0.5
    v = (v + 0.5) / sc_l - 0.5
    size = (gw * g, gh * g)
    mx = cv2.resize(u.astype(F32), size, interpolation=cv2.INTER_LINEAR)[g:g + h, g:g + w]
    my = cv2.resize(v.astype(F32), size, interpolation=cv2.INTER_LINEAR)[g:g + h, g:g + w]
    return mx, my, lvl, 1.0 / m


# ----------------------------------------------------------------------------- background

_GROUND = np.array([[0.80, 0.72, 0.58], [0.86, 0.84, 0.78], [0.62, 0.48, 0.38], [0.55, 0.53, 0.50],
                    [0.36, 0.30, 0.24], [0.74, 0.68, 0.50], [0.68, 0.62, 0.52], [0.92, 0.93, 0.95]], F32)
_GROUND_P = np.array([0.2, 0.14, 0.1, 0.14, 0.1, 0.18, 0.12, 0.02])
_ROCK = np.array([[0.62, 0.60, 0.56], [0.76, 0.73, 0.67], [0.50, 0.45, 0.40], [0.82, 0.78, 0.70],
                  [0.58, 0.42, 0.32], [0.42, 0.41, 0.40]], F32)
_VEG = np.array([[0.42, 0.42, 0.25], [0.18, 0.22, 0.14], [0.68, 0.60, 0.40], [0.55, 0.58, 0.48],
                 [0.40, 0.32, 0.22], [0.30, 0.34, 0.20]], F32)
_GRASS = np.array([[0.78, 0.70, 0.48], [0.62, 0.56, 0.36], [0.45, 0.50, 0.28], [0.55, 0.45, 0.30],
                   [0.85, 0.80, 0.62]], F32)


def _pick(rng: np.random.Generator, pal: np.ndarray, p: np.ndarray | None = None, jitter: float = 0.03) -> np.ndarray:
    c = pal[rng.choice(len(pal), p=p)]
    return np.clip(c * np.exp(rng.normal(0, jitter, 3)) * rng.uniform(0.85, 1.12), 0, 1).astype(F32)


def _blades(rng: np.random.Generator, n: int, w: int, h: int, base_y: tuple[float, float],
            height: tuple[float, float]) -> list[np.ndarray]:
    """Grass blades as polylines (quadratic curves leaning and bending)."""
    bx = rng.uniform(-0.05 * w, 1.05 * w, n)
    by = rng.uniform(*base_y, n)
    ln = rng.uniform(*height, n)
    lean = rng.normal(0, 0.35, n)
    bend = rng.normal(0, 0.25, n)
    t = np.linspace(0, 1, 6)[None, :]
    x = bx[:, None] + ln[:, None] * (lean[:, None] * t + bend[:, None] * t * t)
    y = by[:, None] - ln[:, None] * t
    return [np.round(np.stack([x[i], y[i]], -1) * 16).astype(np.int32) for i in range(n)]


def _rock_poly(rng: np.random.Generator, cx: float, cy: float, r: float) -> np.ndarray:
    th = np.sort(rng.uniform(0, 2 * np.pi, 9))
    asp = rng.uniform(1.1, 2.0)
    rad = r * rng.uniform(0.75, 1.0, 9)
    pts = np.c_[cx + rad * np.cos(th) * asp, cy + rad * np.sin(th) * np.where(np.sin(th) > 0, 0.6, 1.0)]
    hull = cv2.convexHull(pts.astype(np.float32))[:, 0, :].astype(float)
    return _chaikin(np.vstack([hull, hull[:1]]), 2)  # rounded, weathered outline


def _paste(img: np.ndarray, poly: np.ndarray, colour: np.ndarray, tex: np.ndarray, light: float,
           soft: float = 0.0) -> None:
    """Fill a polygon with a shaded, textured colour (top lit, bottom dark), in a local window."""
    h, w = img.shape[:2]
    pad = 2 + int(3 * soft)
    x0, y0 = np.floor(poly.min(0)).astype(int) - pad
    x1, y1 = np.ceil(poly.max(0)).astype(int) + pad + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return
    m = np.zeros((y1 - y0, x1 - x0), F32)
    _fill(m, [poly - [x0, y0]], 1.0)
    if soft > 0:
        m = cv2.GaussianBlur(m, (0, 0), soft)
    ys = np.linspace(-1, 1, y1 - y0, dtype=F32)[:, None]
    ramp = np.clip((y1 - y0) / max(np.ptp(poly[:, 1]), 1) * ys, -1, 1)
    shade = (1 - light * 0.45 * ramp) * (1 + tex[y0:y1, x0:x1])
    region = img[y0:y1, x0:x1]
    region[:] = region * (1 - m[..., None]) + (colour * shade[..., None]) * m[..., None]


def _background(rng: np.random.Generator, w: int, h: int) -> tuple[np.ndarray, int]:
    """A procedural habitat: ground (sand, gravel, steppe, snow) below a horizon and sky, hills,
    chalk cliff or scrub above it, with boulders, bushes, pebbles and grass. Varied on purpose,
    so a model learns that identity lives on the animal only. Returns (RGB, first row of the
    near ground): the rows above it are open sky or distant hills (no shadows there, and out of
    the IR flash's reach); 0 where a cliff or scrub closes the view."""
    img = np.empty((h, w, 3), F32)
    scale = w / 256
    hz = int(np.clip(rng.uniform(-0.3, 0.6) * h, 0, h))
    kind = 0
    yy = np.arange(h, dtype=F32)[:, None]
    gcol = _pick(rng, _GROUND, _GROUND_P)
    # Ground: broad tonal variation, then fine grain (sand, soil) compressed toward the horizon.
    tex = (0.09 * _fbm(rng, h, w, rng.uniform(1.5, 4), 2, aspect=2.5)
           + 0.07 * _fbm(rng, h, w, rng.uniform(10, 20), 2, aspect=2.0)
           + 0.05 * cv2.GaussianBlur(rng.standard_normal((h, w), dtype=F32), (0, 0), 0.7 * scale))
    img[:] = gcol * (1 + tex)[..., None]
    rtex = 0.12 * _fbm(rng, h, w, 12, 2) + 0.05 * rng.standard_normal((h, w), dtype=F32)  # rock grain
    if hz > 0:
        kind = int(rng.choice(4, p=[0.3, 0.25, 0.3, 0.15]))
        top = img[:hz]
        ty = yy[:hz] / max(hz, 1)
        sky = (np.array([0.62, 0.74, 0.9], F32) * rng.uniform(0.9, 1.2)) if rng.random() < 0.6 else \
            np.full(3, rng.uniform(0.85, 1.0), F32)  # blue, or overcast / blown out
        top[:] = np.clip(sky + (np.array([0.9, 0.91, 0.92], F32) - sky) * ty[..., None] ** 0.7, 0, 1)
        if kind == 1:  # distant hills, bluish by aerial perspective
            prof = sum(0.5**o * cv2.resize(rng.standard_normal((1, 3 * 2**o), dtype=F32), (w, 1),
                                           interpolation=cv2.INTER_CUBIC)[0] for o in range(4))
            ridge = hz * (0.25 + 0.5 * np.clip(0.5 + 0.3 * prof, 0, 1))
            hill = _smoothstep(-1, 1, yy[:hz] - ridge[None, :])
            hcol = (_pick(rng, _ROCK) * 0.5 + np.array([0.55, 0.6, 0.68], F32) * 0.5) * 0.85
            ht = hcol * (1 + 0.06 * _fbm(rng, hz, w, 6, 3))[..., None]
            top[:] = top * (1 - hill[..., None]) + ht * hill[..., None]
        elif kind == 2:  # layered cliff (the chalk escarpments of Ustyurt, limestone walls)
            rcol = _pick(rng, _ROCK)
            period = rng.uniform(6, 30) * scale
            band = np.sin(yy[:hz] * 2 * np.pi / period + 1.2 * _fbm(rng, hz, w, 1.5, 2))
            ledge = _smoothstep(0.85, 1.0, band)  # dark overhang lines between strata
            top[:] = rcol * (1 + 0.07 * band - 0.3 * ledge + rtex[:hz])[..., None]
        elif kind == 3:  # a wall of scrub
            vcol = _pick(rng, _VEG)
            m = _fbm(rng, hz, w, 10, 4, gain=0.6)
            top[:] = vcol * (0.6 + 0.4 * _smoothstep(-1.2, 1.2, m) + 0.15 * rng.standard_normal((hz, w), dtype=F32))[..., None]
        edge = min(h - hz, max(2, h // 50))
        if edge > 0 and hz < h:  # soften the horizon
            img[max(0, hz - edge):hz + edge] = cv2.GaussianBlur(img[max(0, hz - edge):hz + edge], (0, 0), 1.2)
    depth = lambda y: 0.35 + 0.65 * np.clip((y - hz) / max(h - hz, 1), 0, 1.2)  # noqa: E731  perspective size
    # Pebbles / gravel on the ground, bigger toward the camera, with a dark underside.
    n = int(rng.choice([0, 30, 80, 200]))
    if n and hz < h:
        py = hz + (h - hz) * rng.random(n) ** 0.8
        pr = 3.0 * depth(py) * scale * rng.uniform(0.3, 1.4, n)
        pc = _pick(rng, _ROCK)
        tone = rng.uniform(0.6, 1.25, (n, 1)) * np.exp(rng.normal(0, 0.06, (n, 3)))
        cols = np.clip(pc[None] * tone, 0, 1).tolist()
        dark = (gcol * 0.6).tolist()
        asp = rng.uniform(0.45, 0.8, n).tolist()
        ang = rng.normal(0, 15, n).tolist()
        for x, y, r, c, a, an in zip(rng.uniform(0, w, n).tolist(), py.tolist(), (pr * 0.8).tolist(), cols, asp, ang,
                                     strict=True):
            _ellipse(img, (x + r * 0.1, y + r * a * 0.45), (r * 1.1, r * a * 0.8), an, tuple(dark))
            _ellipse(img, (x, y), (r, r * a), an, tuple(c))
    # Boulders: contact shadow, then a shaded textured body.
    light = rng.uniform(0.4, 1.0)
    for _ in range(int(rng.choice([0, 0, 1, 2, 3, 5]))):
        cy = rng.uniform(hz, h * 1.1)
        r = (0.05 + 0.22 * rng.random() ** 2) * w * depth(cy)
        poly = _rock_poly(rng, rng.uniform(-0.1, 1.1) * w, cy, max(r, 2))
        rc = _pick(rng, _ROCK)
        cen = poly.mean(0)
        shadow = (poly - cen) * [1.08, 0.45] + cen + [0.06 * r, 0.4 * r]  # contact shadow under it
        _paste(img, shadow, img[min(h - 1, max(0, int(cen[1])))].mean(0) * 0.45, np.zeros_like(rtex), 0.0,
               soft=0.12 * r)
        _paste(img, poly, rc, rtex, light)
    # Bushes: leafy domes (noise-edged, shaded) or dry twiggy shrubs (saxaul, wormwood).
    for _ in range(int(rng.choice([0, 0, 1, 2, 3]))):
        bx, by = rng.uniform(-0.1, 1.1) * w, rng.uniform(hz, h * 1.05)
        br = rng.uniform(0.06, 0.25) * w * depth(by)
        vc = _pick(rng, _VEG)
        if rng.random() < 0.6:
            th = np.linspace(0, np.pi, 24)
            rr = br * (1 + 0.25 * _fbm(rng, 1, 24, 3, 2)[0])
            dome = np.c_[bx + rr * np.cos(th) * rng.uniform(1.0, 1.6), by - rr * np.sin(th) * rng.uniform(0.6, 1.0)]
            _paste(img, dome, vc, rtex * 1.8, 0.8, soft=1.0)  # leaf texture: the shared grain, stronger
        else:
            k = int(rng.integers(15, 45))
            ang = rng.uniform(0.15, np.pi - 0.15, k)
            ln = br * rng.uniform(0.4, 1.1, k)
            segs = [np.round(np.array([[bx, by], [bx + ln[i] * math.cos(ang[i]) * 1.4, by - ln[i] * math.sin(ang[i])],
                                        [bx + ln[i] * math.cos(ang[i]) * 1.6 + rng.normal(0, br * 0.15),
                                         by - ln[i] * math.sin(ang[i]) * 1.2]]) * 16).astype(np.int32) for i in range(k)]
            cv2.polylines(img, segs, False, tuple(float(c) for c in vc * 0.6), max(1, round(scale)), cv2.LINE_AA, 4)
    # Grass tufts behind the animal (taller toward the camera).
    if rng.random() < 0.45 and hz < h:
        nb = int(rng.integers(20, 150))
        gc = _pick(rng, _GRASS)
        base = hz + (h * 1.05 - hz) * rng.random(nb) ** 0.6
        blades = _blades(rng, nb, w, h, (0, 0), (0, 0))
        for i in range(nb):  # re-base and re-scale each blade for perspective
            b = blades[i].astype(float) / 16
            b = (b - b[0]) * (0.15 * h * depth(base[i]) / max(1, np.ptp(b[:, 1]))) * rng.uniform(0.3, 1.0)
            blades[i] = np.round((b + [b[0, 0] + rng.uniform(0, w), base[i]]) * 16).astype(np.int32)
        for part in np.array_split(np.arange(nb), 3):
            cv2.polylines(img, [blades[i] for i in part], False, tuple(float(c) for c in gc * rng.uniform(0.6, 1.1)),
                          max(1, round(scale)), cv2.LINE_AA, 4)
    if rng.random() < 0.5:  # depth of field: the background is behind the focus plane
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 2.0) * scale)
    return np.clip(img, 0, 1), (hz if kind in (0, 1) else 0)


def _occluders(rng: np.random.Generator, w: int, h: int, p: dict, night: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """Grass and branches between the camera and the animal: (premultiplied RGB, alpha)."""
    if not p["grass"] and not p["branches"]:
        return None
    col = np.zeros((h, w, 3), F32)
    alpha = np.zeros((h, w), F32)
    scale = w / 256
    if p["grass"]:
        n = p["grass"]
        blades = _blades(rng, n, w, h, (h * 0.8, h * 1.1), (0.12 * h, 0.7 * h))
        for part in np.array_split(np.arange(n), 3):
            # Under the IR flash, grass near the lens is blown out white.
            c = (np.full(3, rng.uniform(0.8, 1.0), F32) if night else _pick(rng, _GRASS) * rng.uniform(0.6, 1.1))
            th = max(1, round(rng.uniform(1, 3.5) * scale))
            pl = [blades[i] for i in part]
            cv2.polylines(col, pl, False, tuple(float(v) for v in c), th, cv2.LINE_AA, 4)
            cv2.polylines(alpha, pl, False, 1.0, th, cv2.LINE_AA, 4)
    for _ in range(p["branches"]):
        edge = rng.integers(4)
        start = np.array([[rng.uniform(0, w), 0], [rng.uniform(0, w), h], [0, rng.uniform(0, h)], [w, rng.uniform(0, h)]][edge])
        ang = math.atan2(h / 2 - start[1], w / 2 - start[0]) + rng.normal(0, 0.5)
        c = np.full(3, rng.uniform(0.7, 0.95), F32) if night else _pick(rng, _VEG[[1, 4]]) * 0.6
        c = tuple(float(v) for v in c)
        th = rng.uniform(4, 11) * scale
        pts = [start]
        for _ in range(int(rng.integers(4, 9))):
            ang += rng.normal(0, 0.35)
            pts.append(pts[-1] + rng.uniform(0.08, 0.2) * w * np.array([math.cos(ang), math.sin(ang)]))
            a, b = pts[-2], pts[-1]
            for img, v in ((col, c), (alpha, 1.0)):
                cv2.line(img, tuple(np.round(a * 16).astype(int)), tuple(np.round(b * 16).astype(int)), v,
                         max(1, round(th)), cv2.LINE_AA, 4)
            if rng.random() < 0.4:  # a twig with a few leaves
                ta = ang + rng.choice([-1, 1]) * rng.uniform(0.5, 1.2)
                tip = b + rng.uniform(0.05, 0.15) * w * np.array([math.cos(ta), math.sin(ta)])
                for img, v in ((col, c), (alpha, 1.0)):
                    cv2.line(img, tuple(np.round(b * 16).astype(int)), tuple(np.round(tip * 16).astype(int)), v,
                             max(1, round(th * 0.4)), cv2.LINE_AA, 4)
                    for _ in range(3):
                        lc = tip + rng.normal(0, 4 * scale, 2)
                        _ellipse(img, tuple(lc), (5 * scale, 2.5 * scale), rng.uniform(0, 180), v)
            th *= 0.85
    if p["occ_blur"] > 0.3:
        col = cv2.GaussianBlur(col, (0, 0), p["occ_blur"] * scale)
        alpha = cv2.GaussianBlur(alpha, (0, 0), p["occ_blur"] * scale)
    return col, np.clip(alpha, 0, 1)


# ----------------------------------------------------------------------------- rendering


@functools.lru_cache(maxsize=8)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(F32)
    yy.flags.writeable = False
    xx.flags.writeable = False
    return yy, xx


def _motion_kernel(length: float, angle: float) -> np.ndarray:
    n = max(3, int(math.ceil(length)) | 1)
    return _line_kernel(n, angle)


_BRANDS = ("TRAILCAM", "CAM-03", "IR CAM", "SCOUT", "CT-12", "STATION 7", "WILDVIEW", "CAM2")


def _banner(img: np.ndarray, rng: np.random.Generator, night: bool) -> None:
    """Camera-trap info strip (brand, temperature, date, time): a model must learn to ignore it."""
    h, w = img.shape[:2]
    hb = max(9, round(0.07 * h))
    top = rng.random() < 0.25
    ys = slice(0, hb) if top else slice(h - hb, h)
    img[ys] = int(rng.integers(0, 30))
    hour = int(rng.integers(20, 30)) % 24 if night else int(rng.integers(6, 20))
    text = (f"{_BRANDS[rng.integers(len(_BRANDS))]}  {int(rng.integers(-15, 38))}C  "
            f"{int(rng.integers(1, 13)):02d}/{int(rng.integers(1, 29)):02d}/{int(rng.integers(2016, 2026))}  "
            f"{hour:02d}:{int(rng.integers(60)):02d}:{int(rng.integers(60)):02d}")
    fs = hb / 30
    (tw, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, fs, 1)
    x = int(rng.uniform(2, max(3, w - tw - 2)))
    y = (0 if top else h - hb) + int(hb * 0.75)
    cv2.putText(img, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, fs, (242, 242, 242), 1, cv2.LINE_AA)


def _draw(body: _Body, sc: _Scene, frame: int, rng: np.random.Generator) -> np.ndarray:
    """Render one frame of a scene. `rng` only drives per-frame noise (sensor noise, specks)."""
    w, h, p = sc.w, sc.h, sc.params
    mx, my, lvl, s_out = _mapping(sc, body, frame)
    rgba = cv2.remap(body.rgba[lvl], mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    ha = cv2.remap(body.ha[lvl], mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    coat = rgba[..., :3].astype(F32) * F32(1 / 255)
    alpha = rgba[..., 3].astype(F32) * F32(1 / 255)
    # Shading: normals from the height field (height in output px), Lambert + ambient.
    hgt = cv2.GaussianBlur(ha[..., 0].astype(F32), (0, 0), 1.2) * F32(body.hmax / 255 * s_out)
    gx = cv2.Sobel(hgt, cv2.CV_32F, 1, 0, ksize=3) * F32(0.125)
    gy = cv2.Sobel(hgt, cv2.CV_32F, 0, 1, ksize=3) * F32(0.125)
    inv = 1 / np.sqrt(gx * gx + gy * gy + 1)
    ao = ha[..., 1].astype(F32) * F32(1 / 255)
    if sc.night:
        shade = (0.45 + 0.55 * inv) * ao
        keep = p["ir_contrast"]
        mean = (alpha.reshape(1, -1) @ coat.reshape(-1, 3))[0] / max(float(alpha.sum()), 1.0)
        coat = mean + (coat - mean) * keep
    else:
        lx, ly, lz = (float(c) for c in p["light"] / np.linalg.norm(p["light"]))
        diff = np.clip((-gx * lx - gy * ly + lz) * inv, 0, 1)
        shade = (p["ambient"] + p["sun"] * diff) / (p["ambient"] + p["sun"] * lz) * ao
    coat = coat * shade[..., None]
    bg, hz = _background(np.random.default_rng(sc.bg_seed), w, h)
    if sc.night:
        # Flash fall-off: the background is farther than the animal, the ground nearer below.
        # Nothing beyond the flash range: sky and distance are black, the ground fades upward.
        fall = np.clip((np.arange(h, dtype=F32) - hz) / max(h - hz, 1), 0, 1) * F32(0.9) + F32(0.1)
        bg = bg * (p["bg_dim"] * fall * np.linspace(0.7, 1.3, h, dtype=F32))[:, None, None]
    # Contact shadow of the animal on the ground.
    sh = alpha[: max(1, h - max(1, h // 40))]
    shadow = np.zeros((h, w), F32)
    shadow[h - sh.shape[0]:] = sh
    shadow = cv2.GaussianBlur(shadow, (0, 0), max(1.0, 0.02 * w))
    bg = bg * (1 - p["contact"] * shadow)[..., None]
    if not sc.night and p["cast"]:
        th, c, b = p["cast_line"]
        yy, xx = _grid(h, w)
        d = (xx * F32(1 / w) - 0.5) * F32(math.cos(th)) + (yy * F32(1 / h) - 0.5) * F32(math.sin(th)) - F32(c)
        d += 0.06 * _fbm(np.random.default_rng(p["occ_seed"] + 1), h, w, 3, 3)
        shd = 1 - p["cast_k"] * _smoothstep(-b, b, d)[..., None] * np.array([1.0, 0.97, 0.92], F32)
        coat = coat * shd
        bg[hz:] = bg[hz:] * shd[hz:]  # the sky is not shadowed
    prem = coat * alpha[..., None]
    if p["motion"] > 0:  # the animal moves, the camera does not
        k = _motion_kernel(p["motion"] * w / 256, p["motion_ang"])
        prem = cv2.filter2D(prem, -1, k)
        alpha = cv2.filter2D(alpha, -1, k)
    img = bg * (1 - alpha[..., None]) + prem
    occ = _occluders(np.random.default_rng(p["occ_seed"]), w, h, p, sc.night)
    if occ is not None:
        img = img * (1 - occ[1][..., None]) + occ[0]
    if sc.night:
        lum = img @ p["ir_weights"].astype(F32)
        yy, xx = _grid(h, w)
        cx, cy = (float(c) for c in p["vcentre"])
        r2 = ((xx * F32(1 / w) - F32(0.5 + cx)) ** 2 + (yy * F32(1 / h) - F32(0.5 + cy)) ** 2) * 2
        lum = lum * np.clip(1 - p["vignette"] * r2, 0.05, 1)
        lum = (1 - np.exp(-lum * p["gain"] * 1.6)) / (1 - math.exp(-1.6))  # soft clipping, hot centre
        if "eyes" in body.pivots:  # eyeshine: the tapetum returns the flash, the brightest thing there is
            fwd = _homography(sc, sc.velocity[0] * frame, sc.velocity[1] * frame)
            for u, v in body.pivots["eyes"]:
                q = fwd @ np.array([u, v, 1.0])
                cv2.circle(lum, (round(q[0] / q[2] * 16), round(q[1] / q[2] * 16)), max(8, round(12 * s_out * 16)),
                           1.0, -1, cv2.LINE_AA, 4)
        for _ in range(p["specks"]):  # backscatter: dust or insects lit by the flash
            cv2.circle(lum, (int(rng.uniform(0, w)), int(rng.uniform(0, h))), int(rng.uniform(2, 9) * w / 256),
                       float(rng.uniform(0.6, 1.0)), -1, cv2.LINE_AA)
        img = lum
    else:
        img = img * (p["wb"] * p["exposure"] * (0.35 if p["dusk"] else 1.0)).astype(F32)
        gray = (img @ np.full(3, 1 / 3, F32))[..., None]
        img = gray + (img - gray) * p["saturation"]
        img = (img - 0.5) * p["contrast"] + 0.5
        if p["haze"]:
            img = img * (1 - p["haze"]) + p["haze"] * 0.85
        img = cv2.pow(np.clip(img, 0, 1), p["gamma"])
    if p["focus"] > 0:
        img = cv2.GaussianBlur(img, (0, 0), p["focus"] * w / 256)
    if p["shake"] > 0:
        img = cv2.filter2D(img, -1, _motion_kernel(p["shake"] * w / 256, p["shake_ang"]))
    noise = p["noise"] * (3.0 if (not sc.night and p["dusk"]) else 1.0)
    if sc.night:
        # IR sensor noise: blotchy (half-res) plus fine grain, grey.
        n2 = cv2.resize(rng.standard_normal((h // 2 + 1, w // 2 + 1), dtype=F32), (w, h))
        img = img + noise * (0.6 * n2 + 0.6 * rng.standard_normal((h, w), dtype=F32))
        img = np.repeat(img[..., None], 3, axis=2)
    else:
        img = img + noise * rng.standard_normal((h, w, 3), dtype=F32)
    out = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    if p["banner"]:
        _banner(out, np.random.default_rng(p["banner_seed"]), sc.night)
    # JPEG round trip (quality is part of the scene: one camera, one setting).
    ok, buf = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, p["jpeg"]])
    out = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    if sc.night:  # keep night frames exactly grey after chroma subsampling
        out = np.repeat(out[..., 1:2], 3, axis=2)
    return np.ascontiguousarray(out)


def _check(seed: int, side: str, config: RenderConfig) -> None:
    if side not in VIEWS:
        raise ValueError(f"side must be one of {VIEWS}, not {side!r}")
    w, h = config.size
    if not (16 <= int(w) <= 4096 and 16 <= int(h) <= 4096):
        raise ValueError(f"size must be (w, h) between 16 and 4096 pixels, not {config.size}")
    if not 0.0 <= config.night_prob <= 1.0:
        raise ValueError(f"night_prob must be in [0, 1], not {config.night_prob}")


def _frames(seed: int, side: str, rng: np.random.Generator, n: int, config: RenderConfig,
            night: bool | None, bg_seed: int | None = None, trail_seed: int | None = None) -> list[np.ndarray]:
    _check(seed, side, config)
    body = _body(int(seed), side)
    is_night = bool(rng.random() < config.night_prob) if night is None else bool(night)
    sc = _sample_scene(rng, body, config, is_night)
    if bg_seed is not None:  # a fixed camera: its place, whoever walks past
        sc.bg_seed = int(bg_seed)
    if trail_seed is not None:
        # ... and its trail: animals pass the camera where they passed before, framed alike
        # (position and scale within a few percent); pose, light and blur are this sighting's.
        trail = _sample_scene(_rng(trail_seed), body, config, is_night)
        w = config.size[0]
        sc.anchor, sc.roll, sc.yaw, sc.pitch, sc.focal = trail.anchor, trail.roll, trail.yaw, trail.pitch, trail.focal
        sc.out = (trail.out[0] + rng.normal(0, 0.01) * w, trail.out[1] + rng.normal(0, 0.01) * w)
        sc.scale = trail.scale * float(np.exp(rng.normal(0, 0.02)))
    frame_seed = int(rng.integers(1 << 62))
    return [_draw(body, sc, i, _rng(frame_seed, i)) for i in range(n)]


def render(seed: int, side: str, rng: np.random.Generator, config: RenderConfig = RenderConfig(), *,
           night: bool | None = None) -> np.ndarray:
    """One camera-trap photo of individual ``seed``: uint8 RGB (h, w, 3) with (w, h) = config.size.

    ``side`` is ``"left"`` or ``"right"`` (flanks) or ``"front"`` (head). ``night`` forces
    infrared (True) or daylight (False); None draws it with ``config.night_prob``.
    """
    return _frames(seed, side, rng, 1, config, night)[0]


def render_burst(seed: int, side: str, rng: np.random.Generator, n: int,
                 config: RenderConfig = RenderConfig(), *, night: bool | None = None,
                 bg_seed: int | None = None, trail_seed: int | None = None) -> list[np.ndarray]:
    """One sighting: ``n`` near-identical frames (same camera, light and background; the animal
    walks a little and its legs move; sensor noise differs). ``bg_seed`` fixes the background
    (a camera site's); None draws one for this sighting. ``trail_seed`` fixes where the animal
    passes in the frame (a camera on a trail), up to a few percent."""
    if n < 1:
        raise ValueError(f"a burst needs n >= 1 frames, not {n}")
    return _frames(seed, side, rng, n, config, night, bg_seed, trail_seed)


# ----------------------------------------------------------------------------- datasets and CLI

LABEL_COLUMNS = ("path", "identity", "viewpoint", "sighting", "station", "timestamp", "lat", "lon")


def contact_sheet(images: list[np.ndarray], cols: int, labels: list[str] | None = None) -> np.ndarray:
    """Tile images (RGB uint8; all resized to the first one's size) into one RGB uint8 sheet,
    with an optional caption under each tile."""
    if not images:
        raise ValueError("contact_sheet needs at least one image")
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"{len(labels)} labels for {len(images)} images")
    cols = max(1, min(int(cols), len(images)))
    ch, cw = images[0].shape[:2]
    pad = 4
    lab_h = max(12, ch // 14) if labels is not None else 0
    rows = -(-len(images) // cols)
    sheet = np.full((pad + rows * (ch + lab_h + pad), pad + cols * (cw + pad), 3), 24, np.uint8)
    for i, im in enumerate(images):
        im = np.asarray(im)
        if im.ndim == 2:
            im = np.repeat(im[..., None], 3, axis=2)
        if im.shape[:2] != (ch, cw):
            im = cv2.resize(im, (cw, ch), interpolation=cv2.INTER_AREA)
        r, c = divmod(i, cols)
        y, x = pad + r * (ch + lab_h + pad), pad + c * (cw + pad)
        sheet[y:y + ch, x:x + cw] = im[..., :3]
        if labels is not None:
            fs = lab_h / 32
            text = str(labels[i])
            while len(text) > 1 and cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, fs, 1)[0][0] > cw:
                text = text[:-1]
            cv2.putText(sheet, text, (x + 1, y + ch + int(lab_h * 0.8)), cv2.FONT_HERSHEY_SIMPLEX, fs,
                        (235, 235, 235), 1, cv2.LINE_AA)
    return sheet


def _write_rgb(path: Path, img: np.ndarray, quality: int = 95) -> None:
    ext = path.suffix.lower()
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(img[..., ::-1]), params)
    if not ok:
        raise OSError(f"could not encode {path}")
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(buf.tobytes())
    tmp.replace(path)


def write_dataset(out_dir: Path, individuals: int, per_individual: int, seed: int = 0,
                  first_individual: int = 0, config: RenderConfig = RenderConfig(), *,
                  same_place: bool = False, home_share: float = 0.5) -> Path:
    """Render a labelled data set: ``out_dir/images/*.jpg``, ``out_dir/labels.csv`` (EVAL.md
    columns path, identity, viewpoint, sighting, station, timestamp, lat, lon) and
    ``out_dir/contact_sheet.png``. Returns the labels.csv path.

    Individuals are the seeds ``first_individual .. first_individual + individuals - 1``; each
    gets ``per_individual`` images in sightings (bursts of 1-3 frames) of one flank each, both
    flanks whenever per_individual >= 2. ``seed`` drives the renders, stations and times; an
    individual's images do not depend on how many other individuals are written.

    ``same_place``: every sighting at a station shows that station's background, as fixed
    camera traps do: different animals in front of the same rocks, the case where keypoints
    on the background pass for spots. Each individual then also has a home station (a
    resident's usual trail): its first sighting is there and each later one is there with
    probability ``home_share``, so the same animal comes back to the same place too (the case
    where spots on the animal line up with the place). Animals pass each camera on its trail:
    framed alike, within a few percent. Otherwise each sighting draws its own background,
    framing and station.
    """
    import datetime as dt

    if individuals < 1 or per_individual < 1:
        raise ValueError(f"need individuals >= 1 and per_individual >= 1, not {individuals}, {per_individual}")
    if not 0.0 <= home_share <= 1.0:
        raise ValueError(f"home_share must be in [0, 1], not {home_share}")
    _check(first_individual, "left", config)
    out_dir = Path(out_dir)
    img_dir = out_dir / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    srng = _rng(seed, 7001)
    n_st = 12
    st_lat = 43.6 + srng.random(n_st) * 1.6  # Ustyurt plateau / Mangystau, roughly
    st_lon = 54.8 + srng.random(n_st) * 3.2
    season = dt.datetime(2024, 3, 1)
    rows: list[dict] = []
    sheet: list[np.ndarray] = []
    sheet_labels: list[str] = []
    for i in range(individuals):
        ind = first_individual + i
        name = identity_name(ind)
        irng = _rng(seed, ind, 7002)
        remaining, k = per_individual, 0
        first_side = int(irng.integers(2))
        # a separate stream: the other draws (and so datasets without same_place) stay as they were
        hrng = _rng(seed, ind, 7005)
        home = int(hrng.integers(n_st))
        while remaining > 0:
            cap = max(1, remaining // 2) if (k == 0 and per_individual >= 2) else remaining
            b = int(min(cap, irng.integers(1, 4)))
            side = SIDES[(first_side + k) % 2] if k < 2 else SIDES[int(irng.integers(2))]
            night = bool(irng.random() < config.night_prob)
            st = int(irng.integers(n_st))
            if same_place and (k == 0 or hrng.random() < home_share):
                st = home
            day = int(irng.integers(0, 200))
            hour = int(irng.integers(20, 30)) % 24 if night else int(irng.integers(6, 20))
            t0 = season + dt.timedelta(days=day, hours=hour, minutes=int(irng.integers(60)),
                                       seconds=int(irng.integers(60)))
            sighting = f"{name}-s{k:03d}"
            frames = render_burst(ind, side, _rng(seed, ind, 7003, k), b, config, night=night,
                                  bg_seed=int(_rng(seed, 7004, st).integers(1 << 62)) if same_place else None,
                                  trail_seed=int(_rng(seed, 7006, st).integers(1 << 62)) if same_place else None)
            for f, img in enumerate(frames):
                fname = f"{name}_s{k:03d}_{f}.jpg"
                _write_rgb(img_dir / fname, img)
                rows.append({"path": f"images/{fname}", "identity": name, "viewpoint": side,
                             "sighting": sighting, "station": f"ST{st + 1:02d}",
                             "timestamp": (t0 + dt.timedelta(seconds=f)).isoformat(timespec="seconds"),
                             "lat": f"{st_lat[st]:.5f}", "lon": f"{st_lon[st]:.5f}"})
                if len(sheet) < 24 and (f == 0 or len(sheet) < 8):
                    sheet.append(img)
                    sheet_labels.append(f"{name} {side[0].upper()} {'IR' if night else ''}")
            remaining -= b
            k += 1
    labels = out_dir / "labels.csv"
    tmp = labels.with_name("labels.csv.part")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        wr = csv.DictWriter(fh, fieldnames=list(LABEL_COLUMNS))
        wr.writeheader()
        wr.writerows(rows)
    tmp.replace(labels)
    _write_rgb(out_dir / "contact_sheet.png", contact_sheet(sheet, min(6, len(sheet)), sheet_labels))
    return labels


def main(argv: list[str] | None = None) -> int:
    """``reid synth``: write a synthetic labelled data set. Returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="reid synth", description="Render synthetic camera-trap photos of procedural leopards "
        "(images/*.jpg, labels.csv in EVAL.md format, contact_sheet.png).")
    parser.add_argument("--individuals", type=int, default=10, help="number of individuals (default 10)")
    parser.add_argument("--per-individual", type=int, default=6, help="images per individual (default 6)")
    parser.add_argument("--out", type=Path, default=None, help="output folder")
    parser.add_argument("--season", type=Path, default=None, metavar="OUT",
                        help="write a synthetic camera-trap season instead (stations, paired cameras, "
                             "MegaDetector JSON, deployments.csv, known.csv, truth.csv; reid.synth_season)")
    parser.add_argument("--seed", type=int, default=0, help="render seed (default 0)")
    parser.add_argument("--first-individual", type=int, default=0,
                        help="seed of the first individual; individuals are consecutive seeds (default 0)")
    parser.add_argument("--size", type=int, nargs=2, default=(256, 256), metavar=("W", "H"),
                        help="image size in pixels (default 256 256)")
    parser.add_argument("--night-prob", type=float, default=0.3, help="share of infrared night sightings")
    parser.add_argument("--easy", action="store_true", help="mild conditions: the whole animal in view, little blur, no occluders, good JPEG "
                             "(default: the full range of camera-trap conditions)")
    parser.add_argument("--same-place", action="store_true",
                        help="fixed cameras: every sighting at a station shows that station's background; "
                        "each individual has a home station it returns to")
    parser.add_argument("--home-share", type=float, default=0.5,
                        help="with --same-place: share of an individual's later sightings at its home station "
                        "(default 0.5)")
    try:
        args = parser.parse_args(argv)
        if args.season is not None:
            return _season(args.season, args.seed)
        if args.out is None:
            parser.error("--out (or --season OUT) is required")
        if args.individuals < 1:
            parser.error(f"--individuals must be >= 1, not {args.individuals}")
        if args.per_individual < 1:
            parser.error(f"--per-individual must be >= 1, not {args.per_individual}")
        if not all(16 <= v <= 4096 for v in args.size):
            parser.error(f"--size W H must be between 16 and 4096, not {args.size[0]} {args.size[1]}")
        if not 0.0 <= args.night_prob <= 1.0:
            parser.error(f"--night-prob must be in [0, 1], not {args.night_prob}")
        if not 0.0 <= args.home_share <= 1.0:
            parser.error(f"--home-share must be in [0, 1], not {args.home_share}")
        if args.out.exists() and not args.out.is_dir():
            parser.error(f"--out {args.out} exists and is not a folder")
    except SystemExit as exc:  # argparse exits on bad arguments; report the status instead
        return exc.code if isinstance(exc.code, int) else 2
    cfg = RenderConfig(size=(args.size[0], args.size[1]), night_prob=args.night_prob, hard=not args.easy)
    try:
        labels = write_dataset(args.out, args.individuals, args.per_individual, seed=args.seed,
                               first_individual=args.first_individual, config=cfg, same_place=args.same_place,
                               home_share=args.home_share)
    except (OSError, ValueError) as exc:
        print(f"reid synth: error: {exc}", file=sys.stderr)
        return 1
    n = args.individuals * args.per_individual
    print(f"wrote {n} images of {args.individuals} individuals ({identity_name(args.first_individual)} .. "
          f"{identity_name(args.first_individual + args.individuals - 1)}) to {args.out / 'images'}")
    print(f"labels: {labels}")
    shown = f"all {n} images" if n <= 24 else f"a sample: at most 24 of the {n} images, mostly first frames of bursts"
    print(f"contact sheet: {args.out / 'contact_sheet.png'} ({shown})")
    return 0


def _season(out: Path, seed: int) -> int:
    from reid.synth_season import write_season

    try:
        counts = write_season(out, seed=seed)
    except (OSError, ValueError) as exc:
        print(f"reid synth: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote a synthetic season to {out}: {counts['photos']} photos ({out / 'images'}), "
          f"megadetector.json, deployments.csv, known.csv ({counts['known_photos']} photos to enroll first), truth.csv")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
