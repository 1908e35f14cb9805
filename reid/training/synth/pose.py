"""Camera and pose: where the animal stands in the frame, the camera's view of it, the body warp."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from reid.training.synth.coat import _Body
from reid.training.synth.config import _LEVELS, F32, RenderConfig
from reid.training.synth.paint import _smoothstep


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
    if cfg.closeup:  # drawn above all the same, so the other draws stay as they were
        mode = 1
    if front and not (cfg.closeup and mode == 1):  # head views: ears in the frame, the chest running out of its bottom
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
