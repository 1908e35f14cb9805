"""Pixel budgets, reduced-size JPEG decoding and bounded evidence pictures (issue 11), in process."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
from PIL import Image

from reid import imageio
from reid.budget import BusyError, PixelBudget, PixelBudgetError, PixelPool
from reid.keypoints.draw import draw_evidence
from reid.keypoints.verify import LocalMatch


def jpeg(w: int, h: int, orientation: int | None = None) -> bytes:
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (h // 16, w // 16, 3), dtype=np.uint8)).resize((w, h))
    buf = io.BytesIO()
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    img.save(buf, "JPEG", quality=80, exif=exif.tobytes())
    return buf.getvalue()


def test_request_budget_sums_over_images_and_pool_is_returned() -> None:
    pool = PixelPool(1000)
    with PixelBudget(600, pool) as budget:
        budget.charge(400, "a.png")
        with pytest.raises(PixelBudgetError, match="b.png.*more than"):
            budget.charge(300, "b.png")
        assert pool.in_use == 400
    assert pool.in_use == 0


def test_a_full_pool_refuses_with_busy_then_frees() -> None:
    pool = PixelPool(1000)
    first = PixelBudget(1000, pool)
    first.charge(900, "big")
    with pytest.raises(BusyError):
        PixelBudget(1000, pool, wait_s=0.05).charge(200, "other")
    waiter = PixelBudget(1000, pool, wait_s=30)
    t = threading.Thread(target=waiter.charge, args=(200, "later"))
    t.start()
    first.release()  # the waiting request goes ahead as soon as memory is back
    t.join()
    assert pool.in_use == 200
    waiter.release()


def test_large_jpeg_is_decoded_reduced_and_boxes_follow() -> None:
    data = jpeg(6400, 4800)
    budget = PixelBudget(10**9)
    whole = imageio.decode(data, reduce_for=None, budget=budget)
    assert whole.scale == 0.25 and whole.rgb.shape[:2] == (1200, 1600) and whole.full_size == (6400, 4800)
    assert budget.used == 1600 * 1200  # charged what was decoded, not the header's 30 MP
    box = (1000.0, 800.0, 1600.0, 1200.0)  # a small animal: its box keeps full resolution
    boxed = imageio.decode(data, reduce_for=box)
    assert boxed.scale == 1.0
    big_box = (800.0, 600.0, 4000.0, 3000.0)
    half = imageio.decode(data, reduce_for=big_box)
    crop = imageio.crop(half.rgb, imageio.scale_box(big_box, half.scale))
    assert half.scale == 0.5 and crop.shape[:2] == (1500, 2000)
    assert imageio.decode(data).scale == 1.0  # reduce_for not given: full size, as before


def test_rotated_jpeg_keeps_its_upright_size() -> None:
    data = jpeg(6400, 4800, orientation=6)  # stored landscape, shown portrait
    decoded = imageio.decode(data, reduce_for=None)
    assert decoded.full_size == (4800, 6400) and decoded.rgb.shape[:2] == (1600, 1200)


def test_evidence_picture_is_bounded_whatever_the_aspect_ratio() -> None:
    match = LocalMatch(1, 0.5)
    strip = np.zeros((16, 100_000, 3), np.uint8)
    photo = np.zeros((300, 400, 3), np.uint8)
    for a, b in ((strip, photo), (photo, strip), (strip.transpose(1, 0, 2), photo), (photo, photo[..., 0])):
        out = draw_evidence(a, b, match)
        assert out.ndim == 3 and out.shape[0] <= 720 and out.shape[1] <= 2 * 2 * 720 + 8, out.shape
