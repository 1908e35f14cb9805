"""Issue 11: damaged files are survived - keypoint caches and index quarantined and recomputed,
calibrations validated (CLI refuses, service warns and uses the shipped one), a damaged
catalogue is a one-line error naming the file and the way back."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import MODEL, LeopardSet, run_cli

from reid.batch import enroll_labels
from reid.calibrate import Calibrator, project_calibration_path
from reid.errors import ReidError
from reid.identify import open_pipeline

GOOD = {"features": ["cosine", "local"], "coef": [5.0, 7.0], "intercept": -13.9, "fitted_on": "test",
        "kind": "logistic"}


@pytest.mark.parametrize(("damage", "reason"), [
    ({"coef": [float("nan"), 1.0]}, "NaN"),
    ({"coef": ["five", 1.0]}, "numbers expected"),
    ({"features": ["cosine", "colour"]}, "each must be one of"),
    ({"coef": [5.0, -7.0]}, "negative coefficient"),
    ({"intercept": float("inf")}, "NaN or infinite"),
])
def test_calibration_values_are_validated_on_load(tmp_path: Path, damage: dict, reason: str) -> None:
    path = tmp_path / "cal.json"
    path.write_text(json.dumps({**GOOD, **damage}))
    with pytest.raises(ValueError, match=reason):
        Calibrator.load(path)


def test_an_empty_object_is_not_a_calibration(tmp_path: Path) -> None:
    path = tmp_path / "cal.json"
    path.write_text("{}")
    with pytest.raises(ValueError, match="names no features"):
        Calibrator.load(path)
    grid = {"features": ["cosine"], "kind": "grid", "knots": [[0.0, 0.5, 1.0]], "table": [0.1, 0.9, 0.5]}
    path.write_text(json.dumps(grid))
    with pytest.raises(ValueError, match="not monotone"):
        Calibrator.load(path)


@pytest.fixture
def small_dir(tmp_path: Path, leopard_images: LeopardSet):
    data_dir = tmp_path / "data"
    pipe = open_pipeline(data_dir=data_dir, model_path=MODEL)
    summary = enroll_labels(pipe, leopard_images.right_only_csv, progress=False)
    assert summary.enrolled == 2
    pipe.keypoint_index()
    pipe.close()
    pipe.catalog.close()
    return data_dir


def test_a_damaged_project_calibration_cli_refuses_service_warns(small_dir: Path, leopard_images: LeopardSet,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    pipe = open_pipeline(data_dir=small_dir, model_path=MODEL)
    own = project_calibration_path(small_dir, pipe.model_id)
    pipe.close()
    pipe.catalog.close()
    own.parent.mkdir(parents=True, exist_ok=True)
    own.write_text(json.dumps({**GOOD, "coef": [float("nan"), 1.0], "model_id": "x"}))
    proc = run_cli("identify", leopard_images.righty_left[0], "--data-dir", small_dir)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"reid: error: calibration {own} cannot be read") and "NaN" in proc.stderr
    with caplog.at_level(logging.WARNING):
        service = open_pipeline(data_dir=small_dir, model_path=MODEL, strict_calibration=False)
    assert service.calibration_source == "shipped" and not service.calibrator.is_uncalibrated
    assert any("cannot be used" in r.message for r in caplog.records)
    service.close()
    service.catalog.close()
    # reid check names it; --repair moves it aside, and the CLI works again
    check = run_cli("check", "--data-dir", small_dir)
    assert check.returncode == 1 and "cannot be used" in check.stdout, check.stdout
    assert run_cli("check", "--repair", "--data-dir", small_dir).returncode == 0
    assert not own.exists() and list((small_dir / "quarantine").rglob(own.name))
    assert run_cli("identify", leopard_images.righty_left[0], "--data-dir", small_dir).returncode == 0


def test_damaged_keypoint_caches_and_index_are_quarantined_and_recomputed(
        small_dir: Path, leopard_images: LeopardSet) -> None:
    caches = sorted((small_dir / "features").rglob("*.npz"))
    assert len(caches) >= 2
    caches[0].write_bytes(b"")  # EOFError / empty
    caches[1].write_bytes(caches[1].read_bytes()[:100])  # truncated zip: BadZipFile
    check = run_cli("check", "--data-dir", small_dir)
    assert check.returncode == 1 and "2 damaged" in check.stdout, check.stdout
    (index,) = (small_dir / "index").glob("keypoints-*.npz")
    index.write_bytes(b"PK\x03\x04 not really a zip")
    pipe = open_pipeline(data_dir=small_dir, model_path=MODEL)
    query = pipe.load_query(leopard_images.root / "img/righty/right_1.jpg", viewpoint="right")
    (result,) = pipe.identify([query])
    assert result.candidates[0].identity == "Righty" and result.candidates[0].inliers > 0
    pipe.close()
    pipe.catalog.close()
    moved = sorted(p.name for p in (small_dir / "quarantine").rglob("*.npz"))
    assert sorted([caches[0].name, caches[1].name, index.name]) == moved
    for path in caches[:2]:  # made again from the stored images
        assert path.is_file() and path.stat().st_size > 100
    assert run_cli("check", "--data-dir", small_dir).returncode == 0


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_catalogue_is_one_line_naming_the_file(small_dir: Path, leopard_images: LeopardSet,
                                                          damage: str) -> None:
    db = small_dir / "catalog.sqlite"
    for extra in ("-wal", "-shm"):
        Path(str(db) + extra).unlink(missing_ok=True)
    data = db.read_bytes()
    db.write_bytes(np.random.default_rng(0).bytes(len(data)) if damage == "garbage" else data[: len(data) // 3])
    for args in (["check"], ["identify", leopard_images.righty_left[0]], ["enroll", leopard_images.right_only_csv]):
        proc = run_cli(*args, "--data-dir", small_dir)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert str(db) in proc.stderr or "reid check" in proc.stderr, proc.stderr
        assert "restore" in proc.stderr


def test_catalog_open_error_is_a_reid_error(tmp_path: Path) -> None:
    from reid.catalog import Catalog

    (tmp_path / "catalog.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(ReidError, match="is damaged"):
        Catalog(tmp_path)


def test_temp_files_of_killed_runs_are_removed_by_the_next(tmp_path: Path) -> None:
    from reid.batch import AtomicCsv

    out = tmp_path / "results.csv"
    dead = tmp_path / ".results.csv.99999999-x1.tmp"  # beyond any pid_max: its process is gone
    alive = tmp_path / f".results.csv.{os.getppid()}-x2.tmp"  # a run still going
    other = tmp_path / ".other.csv.99999999-x3.tmp"
    for path in (dead, alive, other):
        path.write_text("partial")
    with AtomicCsv(out, ["path"]) as writer:
        writer.writer.writerow(["a.jpg"])
    assert out.read_text().splitlines() == ["path", "a.jpg"]
    assert not dead.exists() and alive.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, alive.name, other.name])
