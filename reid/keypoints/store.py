"""The gallery's keypoints kept beside the catalogue: the feature cache and the keypoint index.

Per gallery image its keypoints are cached in data/features/ (the animal's at enrollment, the
scene's the first time a scene check needs them), named by the extraction settings that made
them. The whole-gallery index (reid.keypoints.index) is built from them, saved in data/index/
by a background writer once it has grown, and read back at the next start when it still
belongs to the catalogue's images.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from reid.catalog import Catalog, ImageRecord
from reid.damage import quarantine
from reid.errors import ImageError
from reid.fileio import atomic_write_text
from reid.keypoints.crops import is_crop
from reid.keypoints.extract import Features, extract, load_features, save_features
from reid.keypoints.index import KeypointIndex
from reid.keypoints.parallel import map_in_order
from reid.keypoints.saliency import SALIENCY_CHECKPOINT, SaliencyCache, keep_salient
from reid.settings import REPO_MODELS, Settings

log = logging.getLogger(__name__)


class KeypointStore:
    """Extracts, caches and indexes gallery keypoints with one data dir's settings.

    `crop_of(record)`: the stored copy of a catalogue image, cropped as enrolled (the
    pipeline's decode/crop stage)."""

    def __init__(self, settings: Settings, catalog: Catalog, crop_of: Callable[[ImageRecord], np.ndarray]) -> None:
        self.settings = settings
        self.catalog = catalog
        self.crop_of = crop_of
        self.saliency = SaliencyCache(REPO_MODELS / SALIENCY_CHECKPOINT, Path(settings.cache_dir) / "onnx")
        self._index: KeypointIndex | None = None  # built on first use
        self._lock = threading.Lock()
        self._saved = 0  # images in the index when it was last read or saved
        self._writer: threading.Thread | None = None  # the background save, if one ran

    # -- one photo's keypoints --------------------------------------------------------------------
    def _salient(self, *, scene: bool, boxed: bool) -> bool:
        """Whether the saliency mask applies: to the animal's keypoints of a whole frame (a box
        already says where the animal is)."""
        return self.settings.keypoint_saliency > 0 and not scene and not boxed

    def is_crop(self, rgb: np.ndarray, *, boxed: bool = False, declared: bool | None = None,
                at_station: bool = False) -> bool:
        """Whether a photo is already a crop of the animal (reid.keypoints.crops): as `declared`
        (crop=true|false, --crop/--no-crop) when it is not None, else detected from its saliency map
        (the same map its keypoint mask uses: computed once) on a photo with neither a box nor a
        camera station. A photo with a station is a camera trap's frame: there textured ground can
        reach all four borders of the map as a coat does (tests/test_fusion.py's gravel), and taking
        it for a crop would keep the ground's keypoints and skip the scene check."""
        if declared is not None:
            return bool(declared)
        if boxed or at_station or self.settings.crop_detect <= 0:
            return False
        return is_crop(self.saliency(rgb), self.settings.crop_detect)

    def extract(self, rgb: np.ndarray, *, scene: bool = False, boxed: bool = False, crop: bool = False) -> Features:
        """RootSIFT keypoints of a crop with these settings (reid.keypoints.extract): inside the
        animal's ellipse and, for a whole frame (boxed=False), on the salient part
        (reid.keypoints.saliency); scene=True: those outside the ellipse instead.
        crop=True (a photo that is all animal): every keypoint, at crop_max_side."""
        if crop and not scene:
            return extract(rgb, max_side=self.settings.crop_max_side, ellipse=0.0)
        feats = extract(rgb, max_side=self.settings.local_max_side, ellipse=self.settings.keypoint_ellipse,
                        outside=scene)
        if self._salient(scene=scene, boxed=boxed):
            feats = keep_salient(feats, self.saliency(rgb), self.settings.keypoint_saliency)
        return feats

    def extract_many(self, rgbs: Sequence[np.ndarray], boxed: Sequence[bool], crops: Sequence[bool],
                     map_: Callable[..., list[Any]] = map_in_order) -> list[Features]:
        """`extract` for a chunk's photos: the whole frames' saliency maps in one batched pass,
        the keypoints by `map_` (a thread pool: OpenCV's SIFT runs without the GIL)."""
        salient = [not c and self._salient(scene=False, boxed=b) for b, c in zip(boxed, crops, strict=True)]
        maps = iter(self.saliency.many([rgb for rgb, s in zip(rgbs, salient, strict=True) if s]))
        wanted = [next(maps) if s else None for s in salient]

        def one(j: int) -> Features:
            if crops[j]:
                return self.extract(rgbs[j], crop=True)
            feats = extract(rgbs[j], max_side=self.settings.local_max_side, ellipse=self.settings.keypoint_ellipse)
            found = wanted[j]
            return feats if found is None else keep_salient(feats, found, self.settings.keypoint_saliency)

        return map_(one, range(len(rgbs)))

    # -- the feature cache ------------------------------------------------------------------------
    def features_path(self, record: ImageRecord, *, scene: bool = False) -> Path:
        box = hashlib.sha256(record.box.encode()).hexdigest()[:8] if record.box else "full"
        # the extraction settings are part of the key: features made otherwise do not match
        region = f"{'o' if scene else 'e'}{self.settings.keypoint_ellipse:g}"
        if self._salient(scene=scene, boxed=bool(record.box)):
            region += f"-a{self.settings.keypoint_saliency:g}"
        name = f"{record.sha256}-{box}-s{self.settings.local_max_side}-{region}.npz"
        if record.crop and not scene:  # enrolled as a crop: all its keypoints (KeypointStore.extract)
            name = f"{record.sha256}-{box}-s{self.settings.crop_max_side}-crop.npz"
        return self.catalog.data_dir / "features" / record.sha256[:2] / name

    def features(self, image_id: int, *, scene: bool = False) -> Features:
        """Keypoints of a gallery image, cached beside the catalogue: the animal's computed at
        enrollment, the scene's (scene=True) the first time a query needs them."""
        record = self.catalog.get_image(image_id)
        path = self.features_path(record, scene=scene)
        if path.is_file():
            try:
                return load_features(path)
            except ImageError as exc:  # any damage: moved aside, made again from the stored image
                quarantine(self.catalog.data_dir, path, str(exc).removeprefix(f"{path}: "))
        feats = self.extract(self.crop_of(record), scene=scene, boxed=bool(record.box), crop=bool(record.crop))
        path.parent.mkdir(parents=True, exist_ok=True)
        save_features(path, feats)
        return feats

    def cache(self, record: ImageRecord, crop: np.ndarray) -> None:
        """Cache a newly enrolled image's keypoints from its crop (already decoded)."""
        path = self.features_path(record)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_features(path, self.extract(crop, boxed=bool(record.box), crop=bool(record.crop)))

    # -- the whole-gallery index ------------------------------------------------------------------
    def index(self, gallery: Any) -> KeypointIndex:
        """The whole-gallery keypoint index, kept in step with `gallery` (reid.gallery.Gallery).

        Read from the data dir when saved there (index_path), else built from the cached
        keypoints of every gallery image; saved again once it has grown by 5% (a 10,000-image
        index is ~1.5 GB on disk), so a restart or a one-off `reid identify` reads it instead
        of rebuilding it. One build at a time: a second caller waits for the first.
        """
        with self._lock:
            if self._index is None:
                self._index = self._load() or KeypointIndex(scan=self.settings.vote_scan)
                self._saved = len(self._index)
            kp = self._index
            if len(kp) >= len(gallery):  # gallery images are never removed: in step
                return kp
            missing = [int(i) for i in gallery.ids().tolist() if int(i) not in kp]
            if missing:
                entries = self.catalog.gallery_entries(missing)
                if len(missing) > 50:
                    log.info("loading keypoints of %d gallery images", len(missing))
                for image_id in missing:
                    e = entries.get(image_id)
                    if e is not None:
                        kp.add(image_id, e.individual_id, e.viewpoint, self.features(image_id))
            if len(kp) - self._saved >= max(1, self._saved // 20):
                self._save(kp)
            return kp

    def apply_catalog_changes(self, gone: list[int], owners: dict[int, int], max_removed_share: float) -> None:
        """Bring a loaded index in step with the catalogue (reid.catalog_sync): `gone` images stop
        voting, `owners` moved to other individuals; an index that is mostly removed rows is
        dropped and rebuilt on next use."""
        with self._lock:
            kp = self._index
            if kp is None:
                return
            kp.remove(gone)
            kp.relabel(owners)
            if gone and kp.removed_rows > max_removed_share * max(1, kp.descriptor_count):
                self._index = None

    def index_path(self) -> Path:
        """Where the keypoint index is saved: named by the extraction settings its keypoints need."""
        s = self.settings
        # crops' keypoints are made at crop_max_side: a saved index made with another is rebuilt
        crop = f"-c{s.crop_max_side}" if s.crop_max_side != s.local_max_side else ""
        return (self.catalog.data_dir / "index"
                / f"keypoints-s{s.local_max_side}-e{s.keypoint_ellipse:g}-a{s.keypoint_saliency:g}{crop}.npz")

    def _save(self, kp: KeypointIndex) -> None:
        """Snapshot the index (under the caller's lock) and write it in a background thread:
        at 10,000 images the write takes ~20 s, and identify requests need not wait for it.
        Not a daemon thread: a one-off `reid identify` finishes writing before it exits."""
        kp.prepare()  # the IVF lists are saved too: training them is half of a build
        arrays, ids = kp.snapshot(), kp.image_ids()
        # what the keypoints belong to: checked on load (_load)
        stamp = json.dumps({"images": len(ids), "catalog_sha256": self.catalog.image_digest(ids)})
        path = self.index_path()
        self._saved = len(ids)

        def write() -> None:
            try:
                KeypointIndex.write(path, arrays)
                atomic_write_text(path.with_suffix(".json"), stamp)
            except OSError as exc:  # a read-only data dir still identifies, only slower to start
                log.warning("keypoint index not saved: %s", exc)

        self.flush()  # one write at a time
        self._writer = threading.Thread(target=write, name="keypoint-index-save")
        self._writer.start()

    def flush(self) -> None:
        """Wait for the background write of the index to finish."""
        writer = self._writer
        if writer is not None:
            writer.join()

    def _load(self) -> KeypointIndex | None:
        """The saved keypoint index if it belongs to this catalogue's images, else None (rebuilt)."""
        path = self.index_path()
        if not path.is_file():
            return None
        try:
            stamp = json.loads(path.with_suffix(".json").read_text())
            kp = KeypointIndex.load(path, scan=self.settings.vote_scan)
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - any damage: moved aside and rebuilt
            quarantine(self.catalog.data_dir, path, f"{type(exc).__name__}: {exc}")
            return None
        if not isinstance(stamp, dict) or stamp.get("catalog_sha256") != self.catalog.image_digest(kp.image_ids()):
            log.warning("keypoint index %s was made for other images than this catalogue's; rebuilding it", path)
            return None
        return kp
