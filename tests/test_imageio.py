"""Every way an image can be bad ends in one ImageError with a readable reason."""

import io
import struct

import numpy as np
import pytest
from PIL import Image

from reid import imageio
from reid.errors import ImageError


def _jpeg(w=64, h=48, exif_dt=None, orientation=None) -> bytes:
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8))
    exif = Image.Exif()
    if exif_dt:
        exif.get_ifd(0x8769)[0x9003] = exif_dt
    if orientation:
        exif[0x0112] = orientation
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif.tobytes())
    return buf.getvalue()


def test_decode_jpeg_png_tiff_webp():
    rgb = np.random.default_rng(1).integers(0, 255, (40, 50, 3), dtype=np.uint8)
    for fmt in ("JPEG", "PNG", "TIFF", "WEBP"):
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format=fmt)
        out = imageio.decode(buf.getvalue())
        assert out.rgb.shape == (40, 50, 3) and out.rgb.dtype == np.uint8
        if fmt in ("PNG", "TIFF"):
            assert np.array_equal(out.rgb, rgb)


def test_exif_time_and_orientation():
    data = _jpeg(64, 48, exif_dt="2026:03:14 02:15:09", orientation=6)  # 6 = rotate 90 CW
    out = imageio.decode(data)
    assert out.timestamp is not None and out.timestamp.isoformat() == "2026-03-14T02:15:09"
    assert out.rgb.shape[:2] == (64, 48)  # rotated: width and height swapped


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty"),
        (b"this is a text file, not a photo\n" * 20, "not a readable image"),
        (_jpeg(200, 200)[:600], "truncated"),
    ],
)
def test_bad_bytes(data, reason):
    with pytest.raises(ImageError, match=reason):
        imageio.decode(data, name="x.jpg")


def test_decompression_bomb_refused_without_decoding():
    # A 20000x20000 PNG header with a tiny body: the size check must fire before any decode.
    def chunk(kind, payload):
        import zlib

        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")
    with pytest.raises(ImageError, match="MP limit"):
        imageio.decode(png, name="huge.png")


def test_tiny_image_refused():
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, format="PNG")
    with pytest.raises(ImageError, match="too small"):
        imageio.decode(buf.getvalue())


def test_load_missing_and_folder(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        imageio.load(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="folder"):
        imageio.load(tmp_path)


def test_crop_clips_and_rejects_outside():
    rgb = np.zeros((100, 200, 3), np.uint8)
    assert imageio.crop(rgb, (150, 50, 100, 100)).shape == (50, 50, 3)
    assert imageio.crop(rgb, None) is rgb
    with pytest.raises(ImageError):
        imageio.crop(rgb, (500, 500, 10, 10))
    with pytest.raises(ImageError):
        imageio.crop(rgb, (0, 0, 0, 10))


def test_video_frames(tmp_path):
    import cv2

    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(25):
        writer.write(np.full((48, 64, 3), i * 10, np.uint8))
    writer.release()
    frames = imageio.video_frames(path, every_s=1.0)
    assert [round(t, 1) for t, _ in frames] == [0.0, 1.0, 2.0]
    assert frames[0][1].shape == (48, 64, 3)
    (tmp_path / "fake.mp4").write_text("not a video")
    with pytest.raises(ImageError):
        imageio.video_frames(tmp_path / "fake.mp4")
