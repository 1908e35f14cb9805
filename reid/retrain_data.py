"""What `reid retrain` learns from: the catalogue's confirmed photos, cropped as enrolled, and
camera-trap augmentations of them.

- Identity = individual x flank: left and right flanks carry different patterns, so they are
  different classes of one animal (as in reid.training for synthetic coats).
- An individual counts only when its photos come from at least two sightings or encounters
  (photos without a sighting id are grouped into encounters by time and station,
  reid.evaluate.with_encounters): frames of one burst teach the model to match a burst,
  not to re-identify an animal weeks later.
- Crops as enrolled: the stored box, or for a whole frame the box around the salient region
  of reid.keypoints.saliency's map (never the whole background: a model would learn the places).
- The split for the promotion gate is by individual, never by photo.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from reid.catalog import Catalog
from reid.evaluate import _sighting, with_encounters
from reid.labels import LabelRow

MIN_ENCOUNTERS = 2
SALIENT_SHARE = 0.25  # as Settings.keypoint_saliency: the map's "animal" level


def confirmed_rows(catalog: Catalog) -> list[LabelRow]:
    """Every confirmed catalogue image as a labelled row (file = the stored copy), with
    encounters filled in for photos without a sighting id."""
    data_dir = catalog.data_dir
    rows = [LabelRow(line=rec.id, path=rec.stored_path, file=data_dir / rec.stored_path, identity=rec.individual,
                     viewpoint=rec.viewpoint, sighting=rec.sighting, timestamp=rec.timestamp, station=rec.station,
                     lat=rec.lat, lon=rec.lon, box=rec.box_tuple)
            for ind in catalog.list_individuals() for rec in catalog.images_of(ind.id)]
    return with_encounters(rows)


def encounters_per_individual(rows: list[LabelRow]) -> dict[str, int]:
    seen: dict[str, set[str]] = {}
    for row in rows:
        seen.setdefault(row.identity or "", set()).add(_sighting(row))
    return {name: len(s) for name, s in seen.items() if name}


@dataclass
class ConfirmedSplit:
    """Eligible individuals split by individual into training and held-out (the gate's test)."""

    train: list[LabelRow]
    held_out: list[LabelRow]
    train_individuals: list[str]
    held_out_individuals: list[str]
    too_few_encounters: list[str]  # confirmed, but seen on one occasion only: not used


def split_confirmed(rows: list[LabelRow], *, held_out_fraction: float, min_held_out: int,
                    seed: int = 0) -> ConfirmedSplit:
    counts = encounters_per_individual(rows)
    eligible = sorted(n for n, c in counts.items() if c >= MIN_ENCOUNTERS)
    few = sorted(n for n, c in counts.items() if c < MIN_ENCOUNTERS)
    n_held = max(min_held_out, int(round(held_out_fraction * len(eligible))))
    held = set(random.Random(seed).sample(eligible, min(n_held, len(eligible))))
    train_names = [n for n in eligible if n not in held]
    return ConfirmedSplit(
        train=[r for r in rows if r.identity in set(train_names)],
        held_out=[r for r in rows if r.identity in held],
        train_individuals=train_names, held_out_individuals=sorted(held), too_few_encounters=few)


def class_name(row: LabelRow) -> str:
    """individual/flank: the training class of a photo."""
    return f"{row.identity}/{(row.viewpoint or 'unknown').lower()}"


def salient_box(saliency: np.ndarray, width: int, height: int) -> tuple[float, float, float, float] | None:
    """The box (x, y, w, h in pixels) around the cells at or above SALIENT_SHARE of the map's
    maximum, one cell of margin; None when nothing stands out (keep the whole frame)."""
    mask = saliency >= SALIENT_SHARE * float(saliency.max() or 1.0)
    if not mask.any() or mask.all():
        return None
    ys, xs = np.nonzero(mask)
    gh, gw = saliency.shape
    x0, x1 = max(0, xs.min() - 1) / gw * width, min(gw, xs.max() + 2) / gw * width
    y0, y1 = max(0, ys.min() - 1) / gh * height, min(gh, ys.max() + 2) / gh * height
    return (x0, y0, x1 - x0, y1 - y0)


def training_crop(row: LabelRow, saliency: Callable[[np.ndarray], np.ndarray] | None,
                  max_side: int = 320) -> np.ndarray:
    """The photo cropped as enrolled (its box; for a whole frame its salient region), at most
    `max_side` pixels on the long side (augmentations crop and resize from there)."""
    from reid import imageio

    rgb = imageio.load(row.file).rgb
    box = row.box
    if box is None and saliency is not None:
        box = salient_box(saliency(rgb), rgb.shape[1], rgb.shape[0])
    crop = imageio.crop(rgb, box)
    scale = max_side / max(crop.shape[:2])
    if scale < 1:
        crop = cv2.resize(crop, (max(1, int(crop.shape[1] * scale)), max(1, int(crop.shape[0] * scale))),
                          interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(crop)


# -- camera-trap augmentations -------------------------------------------------------------------------
def _motion_blur(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = int(rng.integers(5, 13))
    kernel = np.zeros((n, n), np.float32)
    kernel[n // 2, :] = 1.0 / n
    rot = cv2.getRotationMatrix2D((n / 2 - 0.5, n / 2 - 0.5), float(rng.uniform(0, 180)), 1.0)
    kernel = cv2.warpAffine(kernel, rot, (n, n))
    return cv2.filter2D(img, -1, kernel / max(kernel.sum(), 1e-6))


def camera_trap_augment(rgb: np.ndarray, rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """What camera traps do to a photo of the same animal: another framing and slight roll,
    night infrared (grey, flash fall-off), low light (dark, noisy), motion or focus blur, and
    partial occlusion (a branch, grass, the frame edge). Never a mirror: a mirrored left
    flank is no leopard's right flank. Returns (h, w) = `size`, RGB uint8."""
    h, w = rgb.shape[:2]
    scale = rng.uniform(0.65, 1.0)
    ch, cw = max(8, int(h * scale * rng.uniform(0.9, 1.1))), max(8, int(w * scale * rng.uniform(0.9, 1.1)))
    ch, cw = min(ch, h), min(cw, w)
    y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    img = rgb[y0:y0 + ch, x0:x0 + cw]
    rot = cv2.getRotationMatrix2D((cw / 2, ch / 2), float(rng.uniform(-10, 10)), 1.0)
    img = cv2.warpAffine(img, rot, (cw, ch), borderMode=cv2.BORDER_REFLECT)
    out_h, out_w = size
    img = cv2.resize(img, (out_w, out_h), interpolation=cv2.INTER_AREA).astype(np.float32)
    img = img * rng.uniform(0.8, 1.2) + rng.uniform(-15, 15)  # exposure
    if rng.random() < 0.3:  # night infrared: grey, bright centre falling off to the corners
        grey = img.mean(axis=2, keepdims=True)
        yy, xx = np.mgrid[0:out_h, 0:out_w].astype(np.float32)
        r2 = ((xx - out_w / 2) / out_w) ** 2 + ((yy - out_h / 2) / out_h) ** 2
        lit = grey[..., 0] * (1.25 - rng.uniform(0.5, 1.2) * r2)
        img = np.repeat(lit[..., None], 3, axis=2)
    if rng.random() < 0.25:  # low light: darker, gamma, sensor noise
        img = 255.0 * (np.clip(img, 0, 255) / 255.0) ** rng.uniform(1.3, 2.2) * rng.uniform(0.5, 0.8)
        img = img + rng.normal(0, rng.uniform(3, 10), img.shape)
    img = np.clip(img, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:  # motion or focus blur
        img = _motion_blur(img, rng) if rng.random() < 0.5 else cv2.GaussianBlur(img, (0, 0), rng.uniform(0.8, 2.0))
    if rng.random() < 0.3:  # partial occlusion: a branch or a blade of grass across the animal
        colour = tuple(int(c) for c in rng.integers(20, 120, 3))
        for _ in range(int(rng.integers(1, 4))):
            p0 = (int(rng.integers(0, out_w)), int(rng.integers(0, out_h)))
            p1 = (int(rng.integers(0, out_w)), int(rng.integers(0, out_h)))
            cv2.line(img, p0, p1, colour, int(rng.integers(3, max(4, out_w // 12))), cv2.LINE_AA)
    elif rng.random() < 0.15:  # the frame edge cuts off part of the animal
        cut = int(rng.uniform(0.1, 0.3) * out_w)
        if rng.random() < 0.5:
            img[:, :cut] = 0
        else:
            img[:, out_w - cut:] = 0
    return img
