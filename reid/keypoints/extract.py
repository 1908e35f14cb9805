"""Keypoints of one photo: RootSIFT detection and description, the region masks, the cache file.

What a photo's keypoints are (`Features`), how they are found (`extract`: grey, <= 320 px,
CLAHE, upright SIFT, RootSIFT, inside the animal's ellipse) and how they are kept beside the
catalogue (`save_features` / `load_features`). Matching them: reid.keypoints.vote (one-vs-many
votes over the gallery) and reid.keypoints.verify (geometry).

Measured on nyala-dev with benchmarks/eval_local_nyala.py (keypoints only, whole gallery of the
same flank, 150 queries of its EVAL.md split): plain SIFT + RANSAC pairs and CLAHE + RootSIFT
pairs rank far below LNBNN; LNBNN on 640 px rotation-invariant RootSIFT 0.080 top-1,
upright RootSIFT at 320 px 0.187-0.200 (the defaults below), at 240 px 0.167; a centred
ellipse mask (a crude "the animal is in the middle" prior) 0.247, not used because camera-
trap frames without a box do not centre the animal. On all 590 queries, LNBNN at 640 px
rotation-invariant: 0.171 top-1, 0.408 top-5. The pipeline's numbers (fused with the
embedding, 20% new individuals) are in README "Accuracy".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from reid.errors import ImageError
from reid.fileio import atomic_writer

DESC_DIM = 128


@dataclass
class Features:
    """Keypoints of one image (coordinates in ORIGINAL image pixels) and their descriptors."""

    keypoints: np.ndarray  # (N, 2) float32 x, y
    descriptors: np.ndarray  # (N, 128) RootSIFT, float32 (or float16 / uint8 as stored)
    image_size: tuple[int, int]  # (width, height) of the original image
    scales: np.ndarray | None = None  # (N,) keypoint diameter in original pixels
    angles: np.ndarray | None = None  # (N,) degrees

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])


def _empty_features(image_size: tuple[int, int]) -> Features:
    return Features(
        keypoints=np.zeros((0, 2), np.float32),
        descriptors=np.zeros((0, DESC_DIM), np.float32),
        image_size=image_size,
        scales=np.zeros((0,), np.float32),
        angles=np.zeros((0,), np.float32),
    )


def to_grey(rgb: np.ndarray) -> np.ndarray:
    if rgb.ndim == 2:
        return rgb if rgb.dtype == np.uint8 else np.clip(rgb, 0, 255).astype(np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] not in (3, 4):
        raise ImageError(f"expected an HxWx3 RGB image, got shape {rgb.shape}")
    rgb = rgb[:, :, :3]
    if rgb.dtype != np.uint8:
        rgb = np.clip(rgb, 0, 255).astype(np.uint8)
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def _box_origin(shape: tuple[int, ...], box: tuple[float, float, float, float]) -> tuple[int, int]:
    # Same rounding/clipping as reid.imageio.crop, so keypoints map back exactly.
    x, y = box[0], box[1]
    return max(0, int(round(x))), max(0, int(round(y)))


def extract(
    rgb: np.ndarray,
    *,
    box: tuple[float, float, float, float] | None = None,
    max_side: int = 320,
    max_features: int = 1500,
    rootsift: bool = True,
    clahe: bool = True,
    upright: bool = True,
    ellipse: float = 0.0,
    outside: bool = False,
) -> Features:
    """RootSIFT keypoints of an RGB image (only inside the animal's box when one is given).

    The region is converted to grey, resized so its long side is <= `max_side` (never
    enlarged), contrast-equalised with CLAHE (night IR and harsh sun both flatten coat
    patterns), and SIFT keeps the `max_features` strongest points. Keypoints come back in
    ORIGINAL image pixels (box offset and resize undone).

    Defaults were chosen on real nyala photos (benchmarks/eval_local_nyala.py):
    - max_side=320, not 640: coat marks are large structures; at 640 the 1500 strongest
      points are mostly fur, grass and gravel texture (top-1 on 20-animal shortlists 0.20
      at 640 vs 0.42 at 320). The default assumes the region is the ANIMAL (a detector box
      or an animal-filling crop): for a whole wide camera-trap frame without a box, pass a
      box, or a larger max_side.
    - upright=True (HotSpotter's gravity assumption): animals are photographed upright, so
      rotation invariance only adds confusable matches (0.42 vs 0.34 top-1, same setting).
    - CLAHE on (0.20 vs 0.15 top-1 over the whole gallery).
    `rootsift=False, clahe=False, upright=False` gives plain SIFT (the baseline).

    `ellipse` > 0 keeps only keypoints inside the ellipse inscribed in the region, scaled by
    it (1 = touching the edges): the corners of an animal's box or crop are mostly ground,
    sky and vegetation, and of a whole frame the camera's info bar and logo.
    """
    from reid.imageio import crop

    H, W = rgb.shape[:2]
    size = (int(W), int(H))
    ox = oy = 0
    if box is not None:
        region = crop(rgb, box)
        ox, oy = _box_origin(rgb.shape, box)
    else:
        region = rgb
    grey = to_grey(region)
    h, w = grey.shape[:2]
    scale = min(1.0, float(max_side) / max(h, w)) if max_side else 1.0
    if scale < 1.0:
        grey = cv2.resize(grey, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    if clahe:
        grey = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(grey)
    sift = cv2.SIFT_create(nfeatures=max(0, int(max_features)))
    if upright:
        # Gravity assumption (HotSpotter): animals stand upright in camera-trap photos,
        # so drop SIFT's rotation invariance - one descriptor per point, angle 0.
        kps = sift.detect(grey, None)
        uniq: dict[tuple[int, int, int], cv2.KeyPoint] = {}
        for kp in kps:
            key = (round(kp.pt[0] * 4), round(kp.pt[1] * 4), round(kp.size * 4))
            if key not in uniq or kp.response > uniq[key].response:
                uniq[key] = kp
        kps = [cv2.KeyPoint(kp.pt[0], kp.pt[1], kp.size, 0.0, kp.response, kp.octave, kp.class_id)
               for kp in uniq.values()]
        kps, desc = sift.compute(grey, kps) if kps else ((), None)
    else:
        kps, desc = sift.detectAndCompute(grey, None)
    if desc is None or len(kps) == 0:
        return _empty_features(size)
    if ellipse > 0:
        gh, gw = grey.shape[:2]
        pts = np.array([k.pt for k in kps], np.float32).reshape(-1, 2)
        dx = (pts[:, 0] - (gw - 1) / 2) / (gw / 2)
        dy = (pts[:, 1] - (gh - 1) / 2) / (gh / 2)
        # outside=True keeps the corners instead: the scene around the animal (scene_homography)
        inside = np.nonzero((dx * dx + dy * dy > ellipse * ellipse) if outside
                            else (dx * dx + dy * dy <= ellipse * ellipse))[0]
        if len(inside) == 0:
            return _empty_features(size)
        kps, desc = [kps[i] for i in inside], desc[inside]
    # SIFT may return a few more than nfeatures (ties); keep the strongest.
    if max_features and len(kps) > max_features:
        order = np.argsort([-k.response for k in kps], kind="stable")[:max_features]
        kps = [kps[i] for i in order]
        desc = desc[order]
    desc = desc.astype(np.float32)
    if rootsift:
        # RootSIFT (Arandjelovic & Zisserman 2012): L1-normalise, sqrt -> Hellinger kernel
        # under L2; the result has unit L2 norm, so L2 distance <-> cosine.
        desc /= np.maximum(desc.sum(axis=1, keepdims=True), 1e-7)
        np.sqrt(desc, out=desc)
    inv = 1.0 / scale
    pts = np.array([k.pt for k in kps], np.float32)
    # pixel-centre aware mapping from the resized frame back to the original
    pts = (pts + 0.5) * inv - 0.5
    pts[:, 0] += ox
    pts[:, 1] += oy
    return Features(
        keypoints=pts.astype(np.float32),
        descriptors=np.ascontiguousarray(desc, dtype=np.float32),
        image_size=size,
        scales=np.array([k.size * inv for k in kps], np.float32),
        angles=np.array([k.angle for k in kps], np.float32),
    )


def save_features(path: Path, f: Features) -> None:
    """Write features atomically as a compact .npz (descriptors as float16)."""
    n = len(f)
    arrays = {
        "keypoints": np.asarray(f.keypoints, np.float32).reshape(n, 2),
        "descriptors": np.asarray(f.descriptors).astype(np.float16).reshape(n, DESC_DIM),
        "image_size": np.asarray(f.image_size, np.int64),
    }
    if f.scales is not None:
        arrays["scales"] = np.asarray(f.scales, np.float32)
    if f.angles is not None:
        arrays["angles"] = np.asarray(f.angles, np.float32)
    with atomic_writer(path, "wb") as fh:
        np.savez_compressed(fh, **arrays)


def load_features(path: Path) -> Features:
    """Read features written by `save_features` (descriptors come back as float32)."""
    try:
        with np.load(Path(path), allow_pickle=False) as z:
            kp = z["keypoints"].astype(np.float32)
            desc = z["descriptors"].astype(np.float32)
            size = tuple(int(v) for v in z["image_size"])
            scales = z["scales"].astype(np.float32) if "scales" in z.files else None
            angles = z["angles"].astype(np.float32) if "angles" in z.files else None
        n = len(kp)
        if (kp.shape != (n, 2) or desc.shape != (n, DESC_DIM) or len(size) != 2
                or any(a is not None and a.shape != (n,) for a in (scales, angles))):
            raise ValueError("arrays of inconsistent shapes")
        if not (np.isfinite(kp).all() and np.isfinite(desc).all()):
            raise ValueError("NaN or infinite values")
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - any damage (BadZipFile, EOFError, ...) means: recompute
        raise ImageError(f"{path}: unreadable keypoint cache ({type(exc).__name__}: {exc})") from None
    return Features(kp, desc, (size[0], size[1]), scales, angles)
