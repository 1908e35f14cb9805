"""Stage 1, decode and crop: bytes or a file -> a QueryImage (the animal's crop and what is known).

The same decoding serves a query, an enrollment and a stored catalogue image (`stored_crop`):
a large JPEG is decoded at a reduced size that keeps the box (or frame) >= WORK_SIDE px
(reid.imageio.decode), and a stored image is decoded exactly as it was at enrollment, so its
cached keypoints and its crop share their pixel coordinates.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from reid import imageio
from reid.budget import PixelBudget
from reid.catalog import ImageRecord, normalise_viewpoint


@dataclass
class QueryImage:
    """A decoded image to identify or enroll, with what is known about it."""

    rgb: np.ndarray  # the animal crop, RGB uint8
    name: str  # file path or upload name, echoed in results
    viewpoint: str = "unknown"
    sighting: str | None = None
    station: str | None = None
    timestamp: str | None = None
    lat: float | None = None
    lon: float | None = None
    box: tuple[float, float, float, float] | None = None
    sha256: str | None = None
    data: bytes | None = field(default=None, repr=False)  # original file bytes (for enrollment copies)
    full_size: tuple[int, int] | None = None  # (width, height) before cropping
    crop: bool | None = None  # already a crop of the animal: True/False as declared, None = detect


def load_query(source: bytes | str | Path, *, max_pixels: int, max_bytes: int = imageio.MAX_BYTES,
               name: str | None = None, viewpoint: str | None = None,
               box: tuple[float, float, float, float] | None = None, keep_bytes: bool = False,
               budget: PixelBudget | None = None, **meta: Any) -> QueryImage:
    """Decode (bytes or path), read EXIF time, crop to the box. Raises ImageError.

    `budget` is charged the decoded pixels (the service's per-request and process-wide limits)."""
    if isinstance(source, bytes):
        data, label = source, name or "upload"
    else:
        data, label = imageio.read_bytes(source, max_bytes=max_bytes), name or str(source)
    decoded = imageio.decode(data, name=label, max_pixels=max_pixels, max_bytes=max_bytes, budget=budget,
                             reduce_for=box)
    rgb = imageio.crop(decoded.rgb, imageio.scale_box(box, decoded.scale))
    timestamp = meta.pop("timestamp", None) or (decoded.timestamp.isoformat() if decoded.timestamp else None)
    return QueryImage(
        rgb=rgb, name=label, viewpoint=normalise_viewpoint(viewpoint), box=box, timestamp=timestamp,
        sha256=hashlib.sha256(data).hexdigest(), data=data if keep_bytes else None,
        full_size=decoded.full_size, **meta,
    )


def load_video(path: str | Path, *, every_s: float, max_frames: int, max_pixels: int, name: str | None = None,
               viewpoint: str | None = None, box: tuple[float, float, float, float] | None = None,
               timestamp: str | None = None, **meta: Any) -> list[QueryImage]:
    """A video's sampled frames as queries named `<name>#t=<seconds>s`, each cropped to the box.

    sha256: of the video file's bytes followed by `#frame=<index of the frame in the file>`, so a
    frame is one photo however often its video is read. timestamp: the clip's start plus the
    frame's offset; the start is `timestamp` (e.g. from a queries CSV), else the file's
    modification time (OpenCV reads no recording time from the container). Raises ImageError."""
    label = name or str(path)
    frames = imageio.sample_video(path, every_s=every_s, max_frames=max_frames, max_pixels=max_pixels)
    start = _parse_time(timestamp) or datetime.fromtimestamp(Path(path).stat().st_mtime)
    file_hash = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            file_hash.update(block)
    out = []
    for index, t, rgb in frames:
        frame_hash = file_hash.copy()
        frame_hash.update(f"#frame={index}".encode())
        out.append(QueryImage(
            rgb=imageio.crop(rgb, box), name=f"{label}#t={t:.1f}s", viewpoint=normalise_viewpoint(viewpoint),
            box=box, sha256=frame_hash.hexdigest(), timestamp=(start + timedelta(seconds=t)).isoformat(),
            full_size=(rgb.shape[1], rgb.shape[0]), **meta,
        ))
    return out


def _parse_time(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def stored_crop(data_dir: Path, record: ImageRecord, *, max_pixels: int,
                max_bytes: int = imageio.MAX_BYTES) -> np.ndarray:
    """The stored copy of a catalogue image, cropped as enrolled."""
    box = record.box_tuple
    data = imageio.read_bytes(Path(data_dir) / record.stored_path, max_bytes=max_bytes)
    # decoded as load_query decoded it at enrollment (the same reduction for the same file
    # and box), so cached keypoints and this crop share their pixel coordinates
    decoded = imageio.decode(data, name=record.stored_path, max_pixels=max_pixels, max_bytes=max_bytes,
                             reduce_for=box)
    return imageio.crop(decoded.rgb, imageio.scale_box(box, decoded.scale))
