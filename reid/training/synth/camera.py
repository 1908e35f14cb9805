"""Camera effects and compositing: shading, day colour or night infrared, blur, noise, banner, JPEG."""

from __future__ import annotations

import math

import cv2
import numpy as np

from reid.training.synth.coat import _Body, _line_kernel
from reid.training.synth.config import F32
from reid.training.synth.paint import _fbm, _grid, _smoothstep
from reid.training.synth.pose import _homography, _mapping, _Scene
from reid.training.synth.scene import _background, _occluders


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
