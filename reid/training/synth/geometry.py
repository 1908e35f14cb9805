"""Animal geometry: an individual's traits and body proportions (the outline the coat is painted on)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reid.training.synth.config import _TAG_TRAITS, F32
from reid.training.synth.paint import _chaikin, _hsv, _rng, _stroke


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
