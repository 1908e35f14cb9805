"""Coat pattern: rosettes and spots painted on an individual's body map (flanks and face), cached."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from reid.training.synth.config import (
    _LEVELS,
    _TAG_FRONT,
    _TAG_LEFT,
    _TAG_RIGHT,
    F32,
    FACE_H,
    FACE_W,
    MAP_H,
    MAP_W,
    VIEWS,
)
from reid.training.synth.geometry import GROUND_Y, TORSO_X, _Geometry, _geometry, _Traits, _traits
from reid.training.synth.paint import _chaikin, _ellipse, _fbm, _fill, _grid, _hsv, _rng, _smoothstep


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
