"""Safe image decoding: bytes or path in, RGB uint8 array out, or one clear ImageError.

Camera-trap data is messy: truncated JPEGs from full SD cards, sidecar files named
.jpg, huge panoramas. Every way an image can be bad ends in `ImageError` with a
sentence naming the problem; nothing here raises anything else for bad input.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from reid.budget import PixelBudget
from reid.errors import ImageError

#: Default limits (the settings REID_MAX_PIXELS and REID_MAX_FILE_BYTES pass their own).
#: Refuse images above this many pixels (decompression-bomb guard). 100 MP covers
#: every camera trap and most DSLRs; a 20000x20000 image (400 MP) is refused.
MAX_PIXELS = 100_000_000
#: Refuse files above this size before even parsing them.
MAX_BYTES = 64 * 1024 * 1024

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".m4v"}
_FORMATS = {"JPEG", "PNG", "TIFF", "WEBP", "MPO"}  # MPO: some cameras' stereo/JPEG variant
_EXIF_DATETIME_ORIGINAL = 0x9003
_EXIF_DATETIME = 0x0132
_EXIF_IFD = 0x8769


@dataclass(frozen=True)
class DecodedImage:
    """An EXIF-rotated RGB image and what its metadata says."""

    rgb: np.ndarray  # HxWx3 uint8, RGB order
    timestamp: datetime | None  # EXIF DateTimeOriginal (local camera time), if present
    format: str
    scale: float = 1.0  # rgb is the image at this scale (< 1: a large JPEG decoded reduced)
    full_size: tuple[int, int] | None = None  # (width, height) of the upright image at full size

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])


def _exif_timestamp(img: Image.Image) -> datetime | None:
    try:
        exif = img.getexif()
        raw = exif.get_ifd(_EXIF_IFD).get(_EXIF_DATETIME_ORIGINAL) or exif.get(_EXIF_DATETIME)
    except Exception:  # broken EXIF must not cost us the image
        return None
    if not raw:
        return None
    try:
        return datetime.strptime(str(raw).strip("\x00 "), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None


#: Reduced-size decoding keeps the region the pipeline uses (the box, or the whole frame) at
#: least this many pixels on its long side. Every later step works far smaller (embedding
#: 224 px, keypoints 320 px, the scene check 160 px, evidence pictures <= 720 px high).
WORK_SIDE = 1536
MIN_CROP = 8  # crop() refuses a region narrower or lower than this (pixels)
_ORIENTATION = 0x0112


def _draft_factor(img: Image.Image, box: tuple[float, float, float, float] | None) -> int:
    """1, 2, 4 or 8: how much smaller a JPEG may be decoded (DCT scaling) and keep the
    box (or whole frame) at least WORK_SIDE px on its long side."""
    if img.format not in ("JPEG", "MPO"):
        return 1
    w, h = img.size
    if box is None:
        sides = (w, h)
    else:  # the part of the box inside the image, as crop() will cut it: a box reaching far
        # outside must not make the part inside too small to use
        x, y, bw, bh = box
        sides = (min(w, x + bw) - max(0.0, x), min(h, y + bh) - max(0.0, y))
    long_side, short_side = max(sides), min(sides)
    factor = 1
    while factor < 8 and long_side / (factor * 2) >= WORK_SIDE and short_side / (factor * 2) >= 2 * MIN_CROP:
        factor *= 2
    return factor


def decode(data: bytes, *, name: str = "image", max_pixels: int = MAX_PIXELS, max_bytes: int = MAX_BYTES,
           budget: PixelBudget | None = None, reduce_for: tuple[float, float, float, float] | None | bool = False) -> DecodedImage:
    """Decode JPEG/PNG/TIFF/WebP bytes to an EXIF-oriented RGB array.

    budget: the request's pixel allowance, charged from the header before any pixel is
    decoded. reduce_for: a box (or None: the whole frame) the caller will crop; a large JPEG
    is then decoded at 1/2, 1/4 or 1/8 size where that keeps the region >= WORK_SIDE px, and
    `scale` says by how much (a box in original pixels times `scale` is one in `rgb`).
    False: full size."""
    if not data:
        raise ImageError(f"{name}: the file is empty (0 bytes)")
    if len(data) > max_bytes:
        raise ImageError(f"{name}: file is {len(data) / 2**20:.0f} MiB, above the {_mib(max_bytes)} limit")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            fmt = img.format or "?"
            if fmt not in _FORMATS:
                raise ImageError(f"{name}: unsupported image format {fmt}; use JPEG, PNG, TIFF or WebP")
            w, h = img.size
            if w * h > max_pixels:
                raise ImageError(
                    f"{name}: image is {w}x{h} = {w * h / 1e6:.0f} MP, above the {max_pixels / 1e6:.0f} MP limit"
                )
            if w < 16 or h < 16:
                raise ImageError(f"{name}: image is only {w}x{h} pixels; too small to identify anything")
            factor, rotated = 1, _rotated(img)
            if reduce_for is not False:
                box = reduce_for if isinstance(reduce_for, tuple) else None
                if box is not None and rotated:
                    box = (box[1], box[0], box[3], box[2])  # the box is in upright pixels
                factor = _draft_factor(img, box)
                if factor > 1:
                    img.draft("RGB", (-(-w // factor), -(-h // factor)))
            if budget is not None:
                budget.charge(img.size[0] * img.size[1], name)
            img.load()  # forces the full decode: truncation shows up here
            timestamp = _exif_timestamp(img)
            scale = img.size[0] / w
            img = ImageOps.exif_transpose(img)
            rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
            del img
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not a readable image (JPEG, PNG, TIFF or WebP expected)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{name}: image dimensions are above the {max_pixels / 1e6:.0f} MP limit") from None
    except OSError as exc:
        msg = str(exc)
        if "truncated" in msg.lower():
            raise ImageError(f"{name}: the image file is truncated (incomplete download or copy?)") from None
        raise ImageError(f"{name}: image data is corrupt ({msg})") from None
    except (ValueError, SyntaxError, MemoryError) as exc:
        raise ImageError(f"{name}: image data is corrupt ({exc})") from None
    return DecodedImage(rgb=np.ascontiguousarray(rgb), timestamp=timestamp, format=fmt, scale=scale,
                        full_size=(h, w) if rotated else (w, h))


def _rotated(img: Image.Image) -> bool:
    try:
        return img.getexif().get(_ORIENTATION, 1) in (5, 6, 7, 8)
    except Exception:  # noqa: BLE001 - broken EXIF: exif_transpose will not rotate either
        return False


def scale_box(box: tuple[float, float, float, float] | None, scale: float) -> tuple[float, float, float, float] | None:
    """A box in original pixels -> the same box in an image decoded at `scale`."""
    if box is None or scale == 1.0:
        return box
    x, y, bw, bh = box
    return (x * scale, y * scale, bw * scale, bh * scale)


def _mib(n: int) -> str:
    return f"{n // 2**20} MiB" if n >= 2**20 else f"{n} byte"


def read_bytes(path: str | Path, *, max_bytes: int = MAX_BYTES) -> bytes:
    p = Path(path)
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        raise ImageError(f"{p}: no such file") from None
    except OSError as exc:
        raise ImageError(f"{p}: cannot read ({exc.strerror})") from None
    if p.is_dir():
        raise ImageError(f"{p}: is a folder, not an image")
    if size > max_bytes:
        raise ImageError(f"{p}: file is {size / 2**20:.0f} MiB, above the {_mib(max_bytes)} limit")
    try:
        return p.read_bytes()
    except OSError as exc:
        raise ImageError(f"{p}: cannot read ({exc.strerror})") from None


def load(path: str | Path, *, max_pixels: int = MAX_PIXELS, max_bytes: int = MAX_BYTES) -> DecodedImage:
    """Read and decode an image file."""
    return decode(read_bytes(path, max_bytes=max_bytes), name=str(path), max_pixels=max_pixels, max_bytes=max_bytes)


def crop(rgb: np.ndarray, box: tuple[float, float, float, float] | None) -> np.ndarray:
    """Crop to an (x, y, w, h) box in pixels, clipped to the image; None = whole image."""
    if box is None:
        return rgb
    x, y, w, h = box
    if w <= 0 or h <= 0:
        raise ImageError(f"bounding box {box} has no area")
    H, W = rgb.shape[:2]
    x0, y0 = max(0, int(round(x))), max(0, int(round(y)))
    x1, y1 = min(W, int(round(x + w))), min(H, int(round(y + h)))
    if x1 - x0 < MIN_CROP or y1 - y0 < MIN_CROP:
        raise ImageError(f"bounding box {box} lies outside the {W}x{H} image or is too small")
    return rgb[y0:y1, x0:x1]


def encode_jpeg(rgb: np.ndarray, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def encode_png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def write_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Write atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(encode_png(rgb))
    tmp.replace(path)
    return path


def video_frames(path: str | Path, *, every_s: float = 1.0, max_frames: int = 30,
                 max_pixels: int = MAX_PIXELS) -> list[tuple[float, np.ndarray]]:
    """Sample frames (time in seconds, RGB) from a video: one per `every_s`, at most `max_frames`."""
    return [(t, rgb) for _, t, rgb in sample_video(path, every_s=every_s, max_frames=max_frames,
                                                   max_pixels=max_pixels)]


def sample_video(path: str | Path, *, every_s: float = 1.0, max_frames: int = 30,
                 max_pixels: int = MAX_PIXELS) -> list[tuple[int, float, np.ndarray]]:
    """Sampled frames as (index in the file, time in seconds, RGB)."""
    import cv2

    p = Path(path)
    if not p.is_file():
        raise ImageError(f"{p}: no such file")
    cap = cv2.VideoCapture(str(p))
    try:
        if not cap.isOpened():
            raise ImageError(f"{p}: not a readable video")
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        if not np.isfinite(fps) or fps <= 0:
            fps = 25.0
        step = max(1, int(round(fps * every_s)))
        frames: list[tuple[int, float, np.ndarray]] = []
        index = 0
        while len(frames) < max_frames:
            ok = cap.grab()
            if not ok:
                break
            if index % step == 0:
                ok, bgr = cap.retrieve()
                if ok and bgr is not None:
                    if bgr.shape[0] * bgr.shape[1] > max_pixels:
                        raise ImageError(f"{p}: video frames are too large")
                    frames.append((index, index / fps, np.ascontiguousarray(bgr[:, :, ::-1])))
            index += 1
    finally:
        cap.release()
    if not frames:
        raise ImageError(f"{p}: video has no decodable frames")
    return frames
