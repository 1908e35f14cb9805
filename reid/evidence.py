"""Evidence pictures a person can judge: this photo beside the candidate's enrolled photo.

One fixed-size picture whatever the photos' sizes or aspect ratios (each photo is fitted into
its panel, letterboxed), so a strip of a panorama or a tiny crop cannot make an unbounded PNG:

    +------------------------------------------------------------------+
    | Tau Sheri - right flank - P = 0.97 - match                       |  verdict, drawn on it
    | 23 matched spots; this photo: IMG_0042.JPG (right)               |
    | note: no left-flank photo of Aybala enrolled: cannot confirm     |  reid.explain.flank_note
    +--------------------------------+---------------------------------+
    | this photo                     | Tau Sheri, enrolled photo 17    |
    |  [whole crop]   ---lines---    |  [whole crop]                   |  lines optional (lines=False)
    +--------------------------------+---------------------------------+
    | matched region, zoomed         | matched region, zoomed          |  where the verified spots are
    +--------------------------------+---------------------------------+

Text is drawn with Pillow and the DejaVu Sans font that matplotlib ships (names may be in
any script); without it, Pillow's own font.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np

PANEL = (720, 520)  # (w, h) of each whole-photo panel
ZOOM = (720, 360)  # (w, h) of each zoomed panel
GAP = 12
CAPTION = 30  # caption band above each row of panels
BACKGROUND = (245, 243, 238)
PANEL_BACKGROUND = (40, 40, 40)
MAX_LINES = 40
WIDTH = 2 * PANEL[0] + 3 * GAP


@dataclass(frozen=True)
class EvidenceText:
    """What the picture says: the verdict lines at the top and the two panels' captions."""

    title: str  # e.g. "Tau Sheri - right flank - P = 0.97 - match"
    detail: str = ""
    note: str | None = None
    query_caption: str = "this photo"
    gallery_caption: str = ""


@cache
def _font_path() -> str | None:
    spec = importlib.util.find_spec("matplotlib")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
        if path.is_file():
            return str(path)
    return None


def _font(size: int):
    from PIL import ImageFont

    path = _font_path()
    return ImageFont.truetype(path, size) if path else ImageFont.load_default(size)


def _fit(rgb: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, float, tuple[int, int]]:
    """`rgb` scaled to fit `size` (w, h), centred on a dark panel: (panel, scale, (x0, y0))."""
    w, h = size
    panel = np.empty((h, w, 3), np.uint8)
    panel[:] = PANEL_BACKGROUND
    ih, iw = rgb.shape[:2]
    scale = min(w / max(1, iw), h / max(1, ih))
    nw, nh = max(1, round(iw * scale)), max(1, round(ih * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    x0, y0 = (w - nw) // 2, (h - nh) // 2
    panel[y0:y0 + nh, x0:x0 + nw] = cv2.resize(np.ascontiguousarray(rgb[..., :3]), (nw, nh), interpolation=interp)
    return panel, scale, (x0, y0)


def _region(points: np.ndarray, shape: tuple[int, ...], aspect: float) -> tuple[int, int, int, int]:
    """A box (x0, y0, x1, y1) around the matched points, padded, of about the zoom panel's aspect."""
    ih, iw = shape[:2]
    lo, hi = points.min(0), points.max(0)
    centre = (lo + hi) / 2
    w = max(hi[0] - lo[0], 0.2 * iw) * 1.3
    h = max(hi[1] - lo[1], 0.2 * ih) * 1.3
    w, h = max(w, h * aspect), max(h, w / aspect)  # widen the short side: the zoom fills its panel
    w, h = min(w, iw), min(h, ih)
    x0 = int(np.clip(centre[0] - w / 2, 0, iw - w))
    y0 = int(np.clip(centre[1] - h / 2, 0, ih - h))
    return x0, y0, x0 + max(1, int(w)), y0 + max(1, int(h))


def _colours(n: int) -> list[tuple[int, int, int]]:
    return [tuple(int(v) for v in cv2.cvtColor(np.uint8([[[int(180 * i / max(1, n)), 230, 255]]]),
                                               cv2.COLOR_HSV2RGB)[0, 0]) for i in range(n)]


def evidence_picture(query_rgb: np.ndarray, gallery_rgb: np.ndarray | None, pairs: np.ndarray | None,
                     text: EvidenceText, *, lines: bool = True, max_lines: int = MAX_LINES) -> np.ndarray:
    """The picture as RGB uint8 of a fixed width (WIDTH) and at most ~1,000 px high.

    `pairs`: (n, 4) matched spots qx, qy, gx, gy in the two crops' pixels, strongest first.
    `lines=False` draws no lines and no spot markers over the coats, only the outline of the
    zoomed region, so the rosettes themselves can be compared. `gallery_rgb=None`: no
    candidate; the photo is shown alone with the text (e.g. the flank note).
    """
    from PIL import Image, ImageDraw

    pairs = np.zeros((0, 4), np.float32) if pairs is None else np.asarray(pairs, np.float32).reshape(-1, 4)
    has_zoom = gallery_rgb is not None and len(pairs) >= 3
    header_lines = [text.title] + ([text.detail] if text.detail else []) + ([f"note: {text.note}"] if text.note else [])
    header = 16 + 34 + 28 * (len(header_lines) - 1)
    top = header + CAPTION
    height = top + PANEL[1] + GAP + ((CAPTION + ZOOM[1] + GAP) if has_zoom else 0)
    canvas = np.empty((height, WIDTH, 3), np.uint8)
    canvas[:] = BACKGROUND
    left_x, right_x = GAP, 2 * GAP + PANEL[0]

    qp, qs, qo = _fit(query_rgb, PANEL)
    canvas[top:top + PANEL[1], left_x:left_x + PANEL[0]] = qp
    if gallery_rgb is not None:
        gp, gs, go = _fit(gallery_rgb, PANEL)
        canvas[top:top + PANEL[1], right_x:right_x + PANEL[0]] = gp
    boxes: list[tuple[int, int, int, int]] = []
    if has_zoom:
        assert gallery_rgb is not None
        aspect = ZOOM[0] / ZOOM[1]
        zoom_top = top + PANEL[1] + GAP + CAPTION
        for rgb, pts, x in ((query_rgb, pairs[:, :2], left_x), (gallery_rgb, pairs[:, 2:], right_x)):
            x0, y0, x1, y1 = _region(pts, rgb.shape, aspect)
            boxes.append((x0, y0, x1, y1))
            zp, _, _ = _fit(rgb[y0:y1, x0:x1], ZOOM)
            canvas[zoom_top:zoom_top + ZOOM[1], x:x + ZOOM[0]] = zp
        # the zoomed regions outlined on the whole photos (thin, at their edges: never over the spots)
        for (x0, y0, x1, y1), s, (ox, oy), x in ((boxes[0], qs, qo, left_x), (boxes[1], gs, go, right_x)):
            cv2.rectangle(canvas, (x + ox + round(x0 * s), top + oy + round(y0 * s)),
                          (x + ox + round(x1 * s) - 1, top + oy + round(y1 * s) - 1), (255, 210, 0), 1, cv2.LINE_AA)
    if lines and gallery_rgb is not None and len(pairs):
        shown = pairs[:max_lines]
        for (qx, qy, gx, gy), col in zip(shown, _colours(len(shown)), strict=True):
            p1 = (left_x + qo[0] + round(qx * qs), top + qo[1] + round(qy * qs))
            p2 = (right_x + go[0] + round(gx * gs), top + go[1] + round(gy * gs))
            cv2.line(canvas, p1, p2, col, 1, cv2.LINE_AA)
            cv2.circle(canvas, p1, 4, col, 1, cv2.LINE_AA)
            cv2.circle(canvas, p2, 4, col, 1, cv2.LINE_AA)
            if has_zoom:  # the same spots, marked in the zooms
                for (x0, y0, x1, y1), px, py, x in ((boxes[0], qx, qy, left_x), (boxes[1], gx, gy, right_x)):
                    zs = min(ZOOM[0] / (x1 - x0), ZOOM[1] / (y1 - y0))
                    zx = x + (ZOOM[0] - round((x1 - x0) * zs)) // 2 + round((px - x0) * zs)
                    zy = zoom_top + (ZOOM[1] - round((y1 - y0) * zs)) // 2 + round((py - y0) * zs)
                    cv2.circle(canvas, (zx, zy), 6, col, 1, cv2.LINE_AA)

    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    y = 12
    for n, line in enumerate(header_lines):
        size = 26 if n == 0 else 19
        colour = (150, 60, 0) if line.startswith("note: ") else (20, 20, 20)
        draw.text((GAP, y), line, font=_font(size), fill=colour)
        y += 34 if n == 0 else 28
    small = _font(17)
    draw.text((left_x, header + 6), text.query_caption, font=small, fill=(60, 60, 60))
    draw.text((right_x, header + 6), text.gallery_caption if gallery_rgb is not None
              else "no enrolled photo to compare with", font=small, fill=(60, 60, 60))
    if has_zoom:
        zy = top + PANEL[1] + GAP + 6
        draw.text((left_x, zy), "matched region, zoomed", font=small, fill=(60, 60, 60))
        draw.text((right_x, zy), "the same region of the enrolled photo", font=small, fill=(60, 60, 60))
    return np.asarray(image)
