"""Is a photo already a crop of the animal? A cheap signal from the saliency map it needs anyway.

People crop photos by hand before sending them, and a detector's output is a crop too; then
no box is given, yet the coat fills the frame. The masks made for whole frames (the ellipse
that drops the corners, the saliency mask that drops the ground: reid.keypoints.extract,
reid.keypoints.saliency) would then eat the coat at the edges, and the scene check would take
the coat outside the ellipse for the place. The ImageNet saliency map (14 x 14, max 1) is high
on objects and low on ground, sky and vegetation. In a crop the animal runs out of the frame
on all four sides; in a whole frame there is ground or sky on at least one. `edge_reach` is
the map's maximum along its weakest border; a photo is a crop when it reaches
Settings.crop_detect. Chosen on nyala-dev's gallery split (benchmarks/crop_detect.py), where
it separated crops from the same photos whole better than the salient share of the frame
(`salient_share`), which nyala's large animals make high in whole frames too.

`salient_box` is the box of the salient cells: how benchmarks/crop_set.py crops nyala-dev.
"""

from __future__ import annotations

import numpy as np

CROP_VALUES = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
SALIENT_LEVEL = 0.25  # a cell is "animal" at this share of the map's maximum (= the keypoint mask's default)


def salient_share(saliency: np.ndarray, level: float = SALIENT_LEVEL) -> float:
    """Share of the saliency map's cells at least `level` of its maximum (the map has max 1)."""
    if saliency.size == 0:
        return 0.0
    return float((saliency >= level).mean())


def edge_reach(saliency: np.ndarray) -> float:
    """How far the animal reaches all four borders: the map's maximum along each border (share of
    its overall maximum), the lowest of the four."""
    if saliency.size == 0:
        return 0.0
    top = saliency.max()
    if top <= 0:
        return 0.0
    edges = (saliency[0].max(), saliency[-1].max(), saliency[:, 0].max(), saliency[:, -1].max())
    return float(min(edges) / top)


def is_crop(saliency: np.ndarray, threshold: float) -> bool:
    """Whether a photo with this saliency map is already a crop of the animal (threshold 0: never)."""
    return threshold > 0 and edge_reach(saliency) >= threshold


def salient_box(saliency: np.ndarray, image_size: tuple[int, int], level: float = 0.5,
                margin: float = 0.0) -> tuple[int, int, int, int]:
    """The box (x, y, w, h, image pixels) around the map's cells at least `level` of its maximum,
    the cells' full extent, grown by `margin` of its size on every side and clipped to the image.
    The whole image when no cell reaches `level`."""
    w, h = image_size
    mh, mw = saliency.shape
    rows, cols = np.nonzero(saliency >= level)
    if len(rows) == 0:
        return 0, 0, int(w), int(h)
    x0, x1 = cols.min() * w / mw, (cols.max() + 1) * w / mw
    y0, y1 = rows.min() * h / mh, (rows.max() + 1) * h / mh
    gx, gy = (x1 - x0) * margin, (y1 - y0) * margin
    x0, y0 = max(0, int(round(x0 - gx))), max(0, int(round(y0 - gy)))
    x1, y1 = min(int(w), int(round(x1 + gx))), min(int(h), int(round(y1 + gy)))
    return x0, y0, max(1, x1 - x0), max(1, y1 - y0)


def parse_crop(text: str | None) -> bool | None:
    """A crop flag as written in a form field or CSV column: true/false (1/0, yes/no, any case);
    empty or absent: None (detect). ValueError otherwise."""
    value = (text or "").strip().lower()
    if not value:
        return None
    if value not in CROP_VALUES:
        raise ValueError(f"crop must be true or false, got {text[:40]!r}")
    return CROP_VALUES[value]
