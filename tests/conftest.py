"""Shared fixtures: a small labelled set of generated spot-pattern images and an enrolled pipeline.

The images are made with OpenCV here (dark rosette-like blobs on a tawny background, one
pattern per individual and flank; each photo a random crop, rotation, perspective warp,
brightness change and noise of it), so the tests need no data files and no network.
Everything expensive (model load, ONNX export, enrollment) happens once per session.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest

# Derived caches (the ONNX export) go to one temp dir per test session, shared by subprocesses.
os.environ.setdefault("REID_CACHE_DIR", tempfile.mkdtemp(prefix="reid-test-cache-"))

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "models" / "imagenet-lite0.pt"
INDIVIDUALS = ("Tau Sheri", "Aybala", "Kyzyl", "Ustyurt-2", "Boran", "Sary")
SIDES = ("left", "right")
PHOTOS = 4  # per individual and side; photo k of both sides = sighting k
COAT_SIZE = (480, 360)  # (w, h) of the whole flank pattern
PHOTO_SIZE = (320, 240)


def make_coat(seed: int, size: tuple[int, int] = COAT_SIZE) -> np.ndarray:
    """One flank's pattern: rosettes (rings of dark blobs around a darker centre) and solid spots."""
    rng = np.random.default_rng(seed)
    w, h = size
    # Per-coat style (tone, rosette size and density) as well as layout, so that a generic
    # ImageNet embedding can already tell these individuals apart.
    base = np.array([70, 150, 205], np.float32) + rng.uniform(-25, 25, 3).astype(np.float32)  # tawny, BGR
    scale = rng.uniform(0.7, 1.4)
    n_rosettes = int(rng.integers(14, 40))
    img = np.empty((h, w, 3), np.float32)
    img[:] = base
    # low-frequency shading so the background is not flat
    shade = cv2.resize(rng.normal(0, 12, (6, 8)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    img += shade[..., None]
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(n_rosettes):
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        r = int(rng.integers(12, 24) * scale)
        cv2.ellipse(img, (cx, cy), (int(r * 0.8), int(r * 0.6)), float(rng.uniform(0, 180)), 0, 360,
                    (40, 95, 150), -1, cv2.LINE_AA)  # the rosette's darker interior
        for k in range(int(rng.integers(4, 7))):  # broken ring of dark blobs
            a = 2 * np.pi * k / 6 + rng.uniform(-0.3, 0.3)
            bx, by = int(cx + r * np.cos(a)), int(cy + r * 0.8 * np.sin(a))
            cv2.ellipse(img, (bx, by), (int(rng.integers(4, 8) * scale), int(rng.integers(3, 6) * scale)),
                        float(rng.uniform(0, 180)), 0, 360, (20, 22, 25), -1, cv2.LINE_AA)
    for _ in range(int(rng.integers(10, 60))):  # small solid spots between rosettes
        cv2.circle(img, (int(rng.integers(0, w)), int(rng.integers(0, h))), int(rng.integers(2, 5)),
                   (25, 25, 30), -1, cv2.LINE_AA)
    return cv2.GaussianBlur(img, (3, 3), 0)


def photograph(coat: np.ndarray, rng: np.random.Generator, size: tuple[int, int] = PHOTO_SIZE) -> np.ndarray:
    """A camera-trap-like view of a coat: crop, rotation, perspective warp, brightness and noise."""
    h, w = coat.shape[:2]
    cw, ch = int(w * rng.uniform(0.85, 0.92)), int(h * rng.uniform(0.85, 0.92))
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    src = np.float32([[x0, y0], [x0 + cw, y0], [x0 + cw, y0 + ch], [x0, y0 + ch]])
    jitter = rng.uniform(-0.03, 0.03, (4, 2)).astype(np.float32) * np.float32([cw, ch])
    dst = np.float32([[0, 0], [size[0], 0], [size[0], size[1]], [0, size[1]]]) + jitter
    m = cv2.getPerspectiveTransform(src, dst)
    rot = cv2.getRotationMatrix2D((size[0] / 2, size[1] / 2), float(rng.uniform(-5, 5)), 1.0)
    m = np.vstack([rot, [0, 0, 1]]) @ m
    out = cv2.warpPerspective(coat, m, size, borderMode=cv2.BORDER_REFLECT)
    out = out.astype(np.float32) * rng.uniform(0.85, 1.15) + rng.normal(0, 4, out.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def _write(path: Path, bgr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])


def _write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["path", "identity", "viewpoint", "sighting"])
        w.writeheader()
        w.writerows(rows)
    return path


@dataclass
class LeopardSet:
    """What `leopard_images` wrote; all CSVs use paths relative to `root`."""

    root: Path
    labels_csv: Path  # every image of INDIVIDUALS
    gallery_csv: Path  # sightings 1-2 of each individual
    queries_csv: Path  # sightings 3-4 of each individual
    right_only_csv: Path  # "Righty": right flank only (the flank-filter test)
    righty_left: list[Path] = field(default_factory=list)  # left views of Righty, never enrolled
    strangers: list[Path] = field(default_factory=list)  # an individual in no CSV at all
    individuals: tuple[str, ...] = INDIVIDUALS


def _slug(name: str) -> str:
    return name.lower().replace(" ", "-")


@pytest.fixture(scope="session")
def leopard_images(tmp_path_factory: pytest.TempPathFactory) -> LeopardSet:
    root = tmp_path_factory.mktemp("leopards")
    everything, gallery, queries = [], [], []
    for i, name in enumerate(INDIVIDUALS):
        for s, side in enumerate(SIDES):
            coat = make_coat(1000 + 10 * i + s)
            rng = np.random.default_rng(5000 + 10 * i + s)
            for k in range(1, PHOTOS + 1):
                rel = f"img/{_slug(name)}/{side}_{k}.jpg"
                _write(root / rel, photograph(coat, rng))
                row = {"path": rel, "identity": name, "viewpoint": side, "sighting": f"{_slug(name)}-s{k}"}
                everything.append(row)
                (gallery if k <= PHOTOS // 2 else queries).append(row)
    righty_rows, righty_left = [], []
    coat_r, coat_l = make_coat(7001), make_coat(7002)
    rng = np.random.default_rng(7003)
    for k in range(1, 3):
        rel = f"img/righty/right_{k}.jpg"
        _write(root / rel, photograph(coat_r, rng))
        righty_rows.append({"path": rel, "identity": "Righty", "viewpoint": "right", "sighting": f"righty-s{k}"})
        righty_left.append(root / f"img/righty/left_{k}.jpg")
        _write(righty_left[-1], photograph(coat_l, rng))
    strangers = []
    coat_x = make_coat(9001)
    for k in range(1, 3):
        strangers.append(root / f"img/stranger/left_{k}.jpg")
        _write(strangers[-1], photograph(coat_x, rng))
    return LeopardSet(
        root=root,
        labels_csv=_write_csv(root / "labels.csv", everything),
        gallery_csv=_write_csv(root / "gallery.csv", gallery),
        queries_csv=_write_csv(root / "queries.csv", queries),
        right_only_csv=_write_csv(root / "right_only.csv", righty_rows),
        righty_left=righty_left,
        strangers=strangers,
    )


def run_cli(*args: str | os.PathLike, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`python -m reid.cli ARGS` in a subprocess, as a user would run `reid ARGS`."""
    full_env = {**os.environ, "REID_MODEL": str(MODEL), **(env or {})}
    return subprocess.run([sys.executable, "-m", "reid.cli", *map(str, args)], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=timeout)


@pytest.fixture(scope="session")
def _enrolled(leopard_images: LeopardSet, tmp_path_factory: pytest.TempPathFactory):
    """gallery.csv enrolled through the CLI (as a user would), then right_only.csv in-process
    through the session pipeline, which later tests reuse (model loaded once)."""
    from reid.batch import enroll_labels
    from reid.identify import open_pipeline

    data_dir = tmp_path_factory.mktemp("reid-data")
    proc = run_cli("enroll", leopard_images.gallery_csv, "--data-dir", data_dir)
    assert proc.returncode == 0, proc.stderr
    assert "enrolled 24 new images" in proc.stdout, proc.stdout
    pipe = open_pipeline(data_dir=data_dir, model_path=MODEL)
    summary = enroll_labels(pipe, leopard_images.right_only_csv, progress=False)
    assert summary.enrolled == 2 and not summary.errors
    yield data_dir, pipe
    pipe.catalog.close()


@pytest.fixture(scope="session")
def enrolled_dir(_enrolled) -> Path:
    """A data dir holding gallery.csv (6 individuals x 2 flanks x 2 sightings) and Righty's
    two right-flank images. Treat it as read-only: tests that enroll more use `fresh_data_dir`."""
    return _enrolled[0]


@pytest.fixture(scope="session")
def pipeline(_enrolled):
    """The in-process pipeline on `enrolled_dir`."""
    return _enrolled[1]


@pytest.fixture
def fresh_data_dir(enrolled_dir: Path, tmp_path: Path) -> Path:
    """An empty data dir (the session's ONNX export lives in REID_CACHE_DIR and is reused)."""
    data_dir = tmp_path / "reid-data"
    data_dir.mkdir()
    return data_dir
