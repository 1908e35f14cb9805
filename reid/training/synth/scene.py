"""Scene: the procedural background (ground, rocks, vegetation) and grass and branch occluders."""

from __future__ import annotations

import math

import cv2
import numpy as np

from reid.training.synth.config import F32
from reid.training.synth.paint import _chaikin, _ellipse, _fbm, _fill, _smoothstep

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
