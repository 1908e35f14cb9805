"""Issue 11: `reid backup` while the catalogue is open, `reid restore`, the same answers after."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from conftest import MODEL, LeopardSet, run_cli

from reid.batch import enroll_labels
from reid.identify import open_pipeline


def answers(data_dir: Path, photos: list[Path]) -> list[list[tuple[str, float, int]]]:
    pipe = open_pipeline(data_dir=data_dir, model_path=MODEL)
    try:
        results = pipe.identify([pipe.load_query(p, viewpoint="right") for p in photos])
        return [[(c.identity, round(c.score, 6), c.inliers) for c in r.candidates] for r in results]
    finally:
        pipe.close()
        pipe.catalog.close()


def test_backup_while_open_and_restore_answer_the_same(leopard_images: LeopardSet, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    pipe = open_pipeline(data_dir=data_dir, model_path=MODEL)
    assert enroll_labels(pipe, leopard_images.right_only_csv, progress=False).enrolled == 2
    assert enroll_labels(pipe, leopard_images.gallery_csv, progress=False).enrolled == 24
    assert run_cli("keys", "add", "ranger", "--role", "viewer", "--data-dir", data_dir).returncode == 0
    photos = [leopard_images.root / "img/righty/right_2.jpg", leopard_images.root / "img/kyzyl/right_3.jpg"]
    before = answers(data_dir, photos)
    # the backup runs while this pipeline holds the catalogue open (as the service would)
    dest = tmp_path / "backup"
    proc = run_cli("backup", dest, "--data-dir", data_dir)
    assert proc.returncode == 0, proc.stderr
    assert "backup of" in proc.stdout and (dest / "backup.json").is_file()
    pipe.close()
    pipe.catalog.close()
    assert run_cli("backup", dest, "--data-dir", data_dir).returncode == 2  # never over an old backup

    restored = tmp_path / "restored"
    proc = run_cli("restore", dest, "--data-dir", restored)
    assert proc.returncode == 0, proc.stderr
    assert answers(restored, photos) == before
    assert "ranger" in run_cli("keys", "list", "--data-dir", restored).stdout  # keys come back too
    with sqlite3.connect(restored / "catalog.sqlite") as con:
        assert con.execute("SELECT COUNT(*) FROM images").fetchone()[0] == 26

    # an existing catalogue is replaced only with --force, and kept aside
    assert run_cli("restore", dest, "--data-dir", restored).returncode == 2
    assert run_cli("restore", dest, "--data-dir", restored, "--force").returncode == 0
    assert list(tmp_path.glob("restored.before-restore-*"))
    # a damaged image in the backup: refused before anything is replaced
    image = next((dest / "images").rglob("*.jpg"))
    image.write_bytes(image.read_bytes()[:-10])
    proc = run_cli("restore", dest, "--data-dir", tmp_path / "again")
    assert proc.returncode == 2 and "damaged" in proc.stderr and not (tmp_path / "again").exists()
