"""Where is the animal in a whole camera-trap frame? A saliency map from an ImageNet backbone.

Keypoints on the ground and rocks behind an animal are the main source of wrong matches on
real photos (README "Accuracy"). With a detector box the box says where the animal is; for a
whole frame without one, the channel norm of an ImageNet CNN's last feature map is high on
objects (animals) and low on ground, sky and vegetation texture. Keypoints where the map is
below a share of its maximum are dropped (reid.keypoints.store.KeypointStore.extract).

Measured on nyala-dev (benchmarks/saliency_nyala.py, keypoints only, whole gallery):
the ImageNet baseline's map helps (0.219 -> 0.274 at 0.25), the rosette-trained model's
does not (0.215) (its backbone was
fine-tuned on synthetic coats and no longer separates animal from ground), so the map always
comes from the shipped ImageNet checkpoint, whatever model embeds.
"""

from __future__ import annotations

import tempfile
import threading
import weakref
from pathlib import Path

import cv2
import numpy as np

from reid.keypoints.extract import Features

SALIENCY_CHECKPOINT = "imagenet-lite0.pt"  # in models/: ImageNet weights from the timm registry package
SALIENCY_SIDE = 448  # input side: a 14 x 14 map for EfficientNet-lite0 (224 px gives 7 x 7, too coarse)
# Photos per forward pass of a chunk's maps (`SaliencyMap.many`); the maps do not depend on it
# (tests/test_throughput.py). Measured on the 2-core CPU (nyala photos, ONNX Runtime on 2 threads):
# 63 ms a photo at 1, 2, 4 and 8 alike, while 8 raised a chunk's peak RSS by 0.86 GiB (4: 0.44).
# So 1 here; a machine with more cores per process (or a GPU) may gain from more.
SALIENCY_BATCH = 1


class SaliencyMap:
    """Callable: RGB image -> saliency map (SALIENCY_SIDE/32 square, float32, max 1).

    Runs the backbone with ONNX Runtime (exported once into `onnx_dir`, like reid.embed):
    30 ms at 448 px on 2 cores against ~90-180 ms in eager PyTorch. Loads on first use."""

    def __init__(self, checkpoint_path: Path, onnx_dir: Path | None = None) -> None:
        self.checkpoint_path = Path(checkpoint_path)
        self.onnx_dir = Path(onnx_dir) if onnx_dir is not None else Path(tempfile.gettempdir())
        self._session = None
        self._config = None
        self._lock = threading.Lock()

    def _load(self) -> None:
        from reid.embed import onnx_session
        from reid.model import load_checkpoint

        ck = load_checkpoint(self.checkpoint_path)
        self._config = ck.config
        # a batch axis: one forward pass for a chunk's photos (`many`)
        self._session = onnx_session(ck.model.backbone, (3, SALIENCY_SIDE, SALIENCY_SIDE),
                                     self.onnx_dir / f"{ck.sha256[:16]}-backbone{SALIENCY_SIDE}-b.onnx",
                                     output="features", dynamic_batch=True)

    def _pixels(self, rgb: np.ndarray) -> np.ndarray:
        cfg = self._config
        interp = cv2.INTER_AREA if min(rgb.shape[:2]) > SALIENCY_SIDE else cv2.INTER_LINEAR
        x = cv2.resize(np.ascontiguousarray(rgb[:, :, :3]), (SALIENCY_SIDE, SALIENCY_SIDE),
                       interpolation=interp).astype(np.float32) / 255.0
        x = (x - np.asarray(cfg.mean, np.float32)) / np.asarray(cfg.std, np.float32)
        return np.ascontiguousarray(x.transpose(2, 0, 1))

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        return self.many([rgb])[0]

    def many(self, rgbs: list[np.ndarray]) -> list[np.ndarray]:
        """The maps of several images, SALIENCY_BATCH per forward pass (the same maps as one by one)."""
        with self._lock:
            if self._session is None:
                self._load()
        out: list[np.ndarray] = []
        for start in range(0, len(rgbs), SALIENCY_BATCH):
            x = np.stack([self._pixels(rgb) for rgb in rgbs[start:start + SALIENCY_BATCH]])
            norms = np.linalg.norm(self._session.run(None, {"pixels": x})[0].astype(np.float32), axis=1)
            out.extend((n / max(float(n.max()), 1e-6)).astype(np.float32) for n in norms)
        return out


class SaliencyCache:
    """The saliency maps the pipeline asks for: the ImageNet checkpoint loaded on first use, a
    query's map reused by its own scene check, gallery photos' maps kept (a station's photos
    meet the scene check again and again)."""

    def __init__(self, checkpoint_path: Path, onnx_dir: Path) -> None:
        self.checkpoint_path, self.onnx_dir = Path(checkpoint_path), Path(onnx_dir)
        self._map: SaliencyMap | None = None
        self._lock = threading.Lock()
        self._gallery: dict[int, np.ndarray] = {}  # image id -> map (784 B each)
        # a chunk's query maps by id(image), with a weak reference to the image (an id is reused
        # once an image is freed; the image itself is not kept alive): the queries' keypoints
        # needed them, their scene checks may again
        self._recent: dict[int, tuple[weakref.ref, np.ndarray]] = {}

    def _backbone(self) -> SaliencyMap:
        with self._lock:
            if self._map is None:
                self._map = SaliencyMap(self.checkpoint_path, self.onnx_dir)
            return self._map

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """The saliency map of an image."""
        return self.many([rgb])[0]

    def many(self, rgbs: list[np.ndarray]) -> list[np.ndarray]:
        """The saliency maps of several images (a chunk's queries): one batched pass for those
        not seen recently."""
        found: dict[int, np.ndarray] = {}
        todo = []
        for rgb in rgbs:
            hit = self._recent.get(id(rgb))
            if hit is not None and hit[0]() is rgb:
                found[id(rgb)] = hit[1]
            else:
                todo.append(rgb)
        if todo:
            found.update(zip(map(id, todo), self._backbone().many(todo), strict=True))
        if len(self._recent) + len(todo) > 1024:  # start over rather than grow
            self._recent = {}
        for rgb in todo:
            self._recent[id(rgb)] = (weakref.ref(rgb), found[id(rgb)])
        return [found[id(rgb)] for rgb in rgbs]

    def of_gallery(self, image_id: int, crop: np.ndarray) -> np.ndarray:
        """A gallery photo's saliency map, kept."""
        found = self._gallery.get(image_id)
        if found is None:
            if len(self._gallery) >= 50_000:  # ~40 MB: start over rather than grow
                self._gallery.clear()
            found = self._gallery[image_id] = self(crop)
        return found


def sample(saliency: np.ndarray, points: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """The map at image points (x, y), bilinear, pixel centres aligned as cv2.resize does it
    (without stretching the map to a possibly 100-megapixel image)."""
    mh, mw = saliency.shape
    w, h = image_size
    u = np.clip((points[:, 0] + 0.5) * (mw / w) - 0.5, 0, mw - 1)
    v = np.clip((points[:, 1] + 0.5) * (mh / h) - 0.5, 0, mh - 1)
    u0, v0 = np.minimum(u.astype(int), mw - 2 if mw > 1 else 0), np.minimum(v.astype(int), mh - 2 if mh > 1 else 0)
    u1, v1 = np.minimum(u0 + 1, mw - 1), np.minimum(v0 + 1, mh - 1)
    fu, fv = u - u0, v - v0
    top = saliency[v0, u0] * (1 - fu) + saliency[v0, u1] * fu
    bottom = saliency[v1, u0] * (1 - fu) + saliency[v1, u1] * fu
    return top * (1 - fv) + bottom * fv


def keep_salient(features: Features, saliency: np.ndarray, threshold: float) -> Features:
    """The keypoints where the saliency map (stretched over the image) is >= threshold."""
    if len(features) == 0 or threshold <= 0:
        return features
    keep = sample(saliency, features.keypoints, features.image_size) >= threshold
    return Features(keypoints=features.keypoints[keep], descriptors=features.descriptors[keep],
                    image_size=features.image_size,
                    scales=None if features.scales is None else features.scales[keep],
                    angles=None if features.angles is None else features.angles[keep])


def pairs_on_animal(pairs: np.ndarray, query_saliency: np.ndarray, query_size: tuple[int, int],
                    gallery_saliency: np.ndarray, gallery_size: tuple[int, int], threshold: float) -> np.ndarray:
    """Which matched pairs (qx, qy, gx, gy rows) lie on the animal in BOTH photos: the map at
    least `threshold` at the query point and at the gallery point (bool per pair).

    The scene check may drop only the others (reid.keypoints.scene_check): a pair
    on the animal in both photos is the same coat seen twice, whether or not the animal stood
    where it stood before."""
    if len(pairs) == 0:
        return np.zeros(0, bool)
    pairs = np.asarray(pairs, np.float32)
    return ((sample(query_saliency, pairs[:, :2], query_size) >= threshold)
            & (sample(gallery_saliency, pairs[:, 2:4], gallery_size) >= threshold))
