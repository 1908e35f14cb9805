"""Photos that are already crops of the animal (reid.keypoints.crops; docs/verdicts.md "2. Crops"):
detected from the saliency map, all their keypoints kept, and the crop=true|false / --crop / --no-crop
override, through the real model, a real HTTP server and the real CLI."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from conftest import LeopardSet, run_cli
from live import live_server


def _rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def _whole_frame(coat_photo: np.ndarray) -> np.ndarray:
    """The same coat photographed from further away: small in the middle of a frame of plain ground."""
    rng = np.random.default_rng(3)
    h, w = coat_photo.shape[:2]
    ground = cv2.resize(rng.normal(0, 14, (12, 16)).astype(np.float32), (3 * w, 3 * h), interpolation=cv2.INTER_CUBIC)
    frame = np.clip(np.array([150, 140, 120], np.float32) + ground[..., None] + rng.normal(0, 3, (3 * h, 3 * w, 3)),
                    0, 255).astype(np.uint8)
    frame[h:2 * h, w:2 * w] = coat_photo
    return frame


def _outside_ellipse(points: np.ndarray, size: tuple[int, int], share: float) -> np.ndarray:
    w, h = size
    dx = (points[:, 0] - (w - 1) / 2) / (w / 2)
    dy = (points[:, 1] - (h - 1) / 2) / (h / 2)
    return dx * dx + dy * dy > share * share


def test_a_tight_crop_is_detected_and_a_whole_frame_is_not(pipeline, leopard_images: LeopardSet) -> None:
    store = pipeline.keypoints
    crop = _rgb(leopard_images.root / "img/kyzyl/left_3.jpg")  # the coat fills the photo
    frame = _whole_frame(crop)
    assert store.is_crop(crop)
    assert not store.is_crop(frame)
    # a declared value wins either way; a photo with a box is the box's business, never detected
    assert store.is_crop(frame, declared=True) and not store.is_crop(crop, declared=False)
    assert not store.is_crop(crop, boxed=True)
    # nor is a camera trap's frame (a station given): textured ground can look like a coat to the map
    assert not store.is_crop(crop, at_station=True) and store.is_crop(crop, at_station=True, declared=True)


def test_a_crop_keeps_the_keypoints_at_its_edges(pipeline, leopard_images: LeopardSet) -> None:
    store, ellipse = pipeline.keypoints, pipeline.settings.keypoint_ellipse
    crop = _rgb(leopard_images.root / "img/kyzyl/left_3.jpg")
    size = (crop.shape[1], crop.shape[0])
    as_frame = store.extract(crop, crop=False)
    as_crop = store.extract(crop, crop=True)
    assert not _outside_ellipse(as_frame.keypoints, size, ellipse).any()  # the ellipse ate the edges
    assert _outside_ellipse(as_crop.keypoints, size, ellipse).sum() >= 30
    # ... and they are matched: the verified spots of the rank-1 candidate reach the edges
    query = pipeline.load_query(leopard_images.root / "img/kyzyl/left_3.jpg", viewpoint="left")
    (res,) = pipeline.identify([query])
    assert res.crop is True and res.candidates[0].identity == "Kyzyl"
    pairs = res.candidates[0].match.pairs
    assert _outside_ellipse(pairs[:, :2], size, ellipse).sum() >= 3


def test_the_crop_field_over_http(enrolled_dir: Path, leopard_images: LeopardSet, tmp_path: Path) -> None:
    data_dir = shutil.copytree(enrolled_dir, tmp_path / "data")
    crop = (leopard_images.root / "img/kyzyl/left_3.jpg").read_bytes()
    ok, frame = cv2.imencode(".jpg", cv2.cvtColor(_whole_frame(_rgb(leopard_images.root / "img/kyzyl/left_3.jpg")),
                                                  cv2.COLOR_RGB2BGR))
    assert ok
    with live_server(data_dir) as server:
        def identify(jpeg: bytes, **form: str) -> httpx.Response:
            return httpx.post(f"{server.url}/v1/identify", data={"viewpoint": "left", **form},
                              files={"image": ("k.jpg", jpeg)}, timeout=120)

        detected = identify(crop)
        assert detected.status_code == 200, detected.text
        assert detected.json()["crop"] is True
        assert identify(frame.tobytes()).json()["crop"] is False
        assert identify(crop, crop="false").json()["crop"] is False
        assert identify(frame.tobytes(), crop="true").json()["crop"] is True
        assert identify(crop, crop="").json()["crop"] is True  # empty: detected
        for bad in ("maybe", "TRUE ", "2"):
            refused = identify(crop, crop=bad)
            assert refused.status_code == 422, refused.text
            assert "crop must be true or false" in refused.json()["detail"]
        enrolled = httpx.post(f"{server.url}/v1/individuals/1/images", data={"crop": "yes please"},
                              files={"image": ("k.jpg", crop)}, timeout=120)
        assert enrolled.status_code == 422 and "crop must be true or false" in enrolled.json()["detail"]


def test_crop_flags_on_the_cli(enrolled_dir: Path, leopard_images: LeopardSet, tmp_path: Path) -> None:
    data_dir = shutil.copytree(enrolled_dir, tmp_path / "data")
    photo = leopard_images.root / "img/kyzyl/left_3.jpg"
    base = ("identify", photo, "--viewpoint", "left", "--json", "--data-dir", data_dir)
    detected = run_cli(*base)
    assert detected.returncode == 0, detected.stderr
    assert json.loads(detected.stdout)[0]["crop"] is True
    refused = run_cli(*base, "--no-crop")
    assert json.loads(refused.stdout)[0]["crop"] is False
    both = run_cli(*base, "--crop", "--no-crop")
    assert both.returncode == 2 and "not allowed with argument" in both.stderr and "Traceback" not in both.stderr

    # enroll --individual --no-crop stores the photo as a whole frame; a labels CSV's crop column per row
    stranger = leopard_images.strangers[0]
    proc = run_cli("enroll", "--individual", "Stranger", "--viewpoint", "left", "--no-crop", stranger,
                   "--data-dir", data_dir)
    assert proc.returncode == 0, proc.stderr
    from reid.catalog import Catalog

    catalog = Catalog(data_dir)
    try:
        crops = {r.source_path: r.crop for ind in catalog.list_individuals() for r in catalog.images_of(ind.id)}
    finally:
        catalog.close()
    assert crops[str(stranger)] == 0
    assert crops["img/kyzyl/left_1.jpg"] == 1  # the session's gallery: detected as crops at enrollment

    queries = tmp_path / "queries.csv"
    with queries.open("w", newline="", encoding="utf-8") as fh:
        wr = csv.writer(fh)
        wr.writerow(["path", "viewpoint", "crop"])
        wr.writerow([str(photo), "left", "false"])
        wr.writerow([str(leopard_images.strangers[1]), "left", ""])
    out = tmp_path / "results.csv"
    proc = run_cli("batch", queries, "--out", out, "--data-dir", data_dir, "-q")
    assert proc.returncode == 0, proc.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text(f"path,crop\n{photo},perhaps\n")
    proc = run_cli("batch", bad, "--out", tmp_path / "r2.csv", "--data-dir", data_dir)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"reid: error: {bad}, line 2: crop must be true or false, got 'perhaps'"


@pytest.mark.parametrize("text, value", [("true", True), ("1", True), ("Yes", True), ("false", False),
                                         ("0", False), ("no", False), ("", None), (None, None)])
def test_crop_values_in_a_labels_csv(text: str | None, value: bool | None) -> None:
    from reid.keypoints.crops import parse_crop

    assert parse_crop(text) is value
