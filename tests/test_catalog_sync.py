"""The index is never stale: catalogue changes made by another process reach a running pipeline
and a running server, incrementally, without a restart."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import MODEL, LeopardSet, run_cli
from live import live_server

from reid.catalog import Catalog
from reid.identify import Pipeline
from reid.keypoints.extract import DESC_DIM, Features
from reid.keypoints.index import KeypointIndex
from reid.settings import Settings


def _photo_rows(leopards: LeopardSet, name: str, side: str, ks: range) -> list[Path]:
    slug = name.lower().replace(" ", "-")
    return [leopards.root / f"img/{slug}/{side}_{k}.jpg" for k in ks]


def test_generation_grows_with_every_catalogue_change(tmp_path: Path) -> None:
    cat = Catalog(tmp_path)
    g0 = cat.generation()
    ind = cat.create_individual("Tau Sheri")
    g1 = cat.generation()
    assert g1 > g0
    other = Catalog(tmp_path)  # another connection (as another process) sees the same number
    assert other.generation() == g1
    with other.transaction() as con:
        con.execute("UPDATE individuals SET notes = 'limps' WHERE id = ?", (ind.id,))
    assert cat.generation() > g1
    cat.audit("identify", detail={"x": 1})  # reading and auditing change nothing a gallery holds
    assert cat.generation() == other.generation()


def _second_pipeline(pipeline: Pipeline, data_dir: Path) -> Pipeline:
    """Another long-lived pipeline on the same data dir (as a second process would hold)."""
    return Pipeline(Settings.from_env(data_dir=data_dir, model_path=MODEL), checkpoint=pipeline.checkpoint)


def test_a_pipeline_sees_enrollment_moves_and_removals_by_another(
        leopard_images: LeopardSet, fresh_data_dir: Path, pipeline: Pipeline) -> None:
    server = _second_pipeline(pipeline, fresh_data_dir)
    writer = _second_pipeline(pipeline, fresh_data_dir)
    try:
        def enroll(name: str, side: str, ks: range) -> None:
            qs = [writer.load_query(p, viewpoint=side, keep_bytes=True) for p in _photo_rows(leopard_images, name, side, ks)]
            writer.enroll(name, qs)

        enroll("Aybala", "left", range(1, 3))
        query = server.load_query(_photo_rows(leopard_images, "Kyzyl", "left", range(4, 5))[0], viewpoint="left")
        (res,) = server.identify([query], audit=False)
        assert [c.identity for c in res.candidates] == ["Aybala"]  # the server saw the first enrollment
        server.keypoint_index()  # loaded now, so the next changes must be applied to it, not rebuilt
        enroll("Kyzyl", "left", range(1, 3))
        (res,) = server.identify([query], audit=False)
        assert res.candidates[0].identity == "Kyzyl" and res.candidates[0].inliers > 0
        assert len(server.keypoint_index()) == 4

        # another process moves Kyzyl's photos to a new individual (a correction), then removes one
        kyzyl_images = [r.id for r in writer.catalog.images_of(writer.catalog.individual_by_name("Kyzyl").id)]
        renamed = writer.catalog.create_individual("Kyzyl-true")
        with writer.catalog.transaction() as con:
            con.execute(f"UPDATE images SET individual_id = ? WHERE id IN ({','.join('?' * len(kyzyl_images))})",
                        (renamed.id, *kyzyl_images))
        (res,) = server.identify([query], audit=False)
        assert res.candidates[0].identity == "Kyzyl-true" and res.candidates[0].inliers > 0
        assert set(server.keypoint_index().owners().values()) >= {renamed.id}

        with writer.catalog.transaction() as con:
            con.execute("DELETE FROM embeddings WHERE image_id = ?", (kyzyl_images[0],))
            con.execute("DELETE FROM images WHERE id = ?", (kyzyl_images[0],))
        report = server.sync()
        assert report.removed == 1
        assert kyzyl_images[0] not in server.gallery.ids().tolist()
        assert kyzyl_images[0] not in server.keypoint_index()
        assert server.gallery.check(server.catalog, server.model_id).ok
        (res,) = server.identify([query], audit=False)
        assert res.candidates[0].identity == "Kyzyl-true" and res.candidates[0].image_id == kyzyl_images[1]
        assert not server.sync()  # nothing changed since: one read, nothing to apply
    finally:
        server.close()
        writer.close()


def test_enroll_from_the_cli_while_the_server_runs(leopard_images: LeopardSet, fresh_data_dir: Path) -> None:
    """The README's order: start the server, enroll in a second terminal, identify over HTTP."""
    with live_server(fresh_data_dir) as server:
        photo = _photo_rows(leopard_images, "Boran", "right", range(4, 5))[0]

        def identify() -> dict:
            r = httpx.post(server.url + "/v1/identify", files={"image": (photo.name, photo.read_bytes())},
                           data={"viewpoint": "right"}, timeout=120)
            assert r.status_code == 200, r.text
            return r.json()

        assert identify()["candidates"] == []  # empty catalogue: nobody to find yet
        enrolled = run_cli("enroll", "--individual", "Boran", "--viewpoint", "right",
                           *_photo_rows(leopard_images, "Boran", "right", range(1, 3)), "--data-dir", fresh_data_dir)
        assert enrolled.returncode == 0, enrolled.stderr
        assert "enrolled 2 new images" in enrolled.stdout
        found = identify()
        assert found["candidates"][0]["identity"] == "Boran"
        assert found["candidates"][0]["inliers"] > 0  # the keypoint index has the new photos too
        health = httpx.get(server.url + "/healthz", timeout=30).json()
        assert health["status"] == "ok" and health["counts"]["images"] == 2
    # a direct edit of the SQLite file by any tool bumps the generation as well (triggers)
    con = sqlite3.connect(fresh_data_dir / "catalog.sqlite")
    try:
        before = int(con.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])
        con.execute("UPDATE images SET station = 'S1'")
        con.commit()
        assert int(con.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0]) > before
    finally:
        con.close()


def _features(rng: np.random.Generator, n: int = 300) -> Features:
    desc = rng.random((n, DESC_DIM), dtype=np.float32)
    desc /= np.linalg.norm(desc, axis=1, keepdims=True)
    return Features(keypoints=rng.uniform(0, 300, (n, 2)).astype(np.float32), descriptors=desc,
                          image_size=(320, 240))


@pytest.mark.parametrize("exact_limit", [1_000_000, 500])  # exact search, and the IVF index (tombstones)
def test_keypoint_index_forgets_removed_images_and_follows_moves(exact_limit: int, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    feats = {i: _features(rng) for i in range(1, 7)}
    index = KeypointIndex(exact_limit=exact_limit)
    for i, f in feats.items():
        index.add(i, 100 + i, "left", f)
    index.prepare()
    assert index.vote(feats[3], "left").ranked()[0] == 103  # an image's own keypoints vote for it
    index.remove([3])
    votes = index.vote(feats[3], "left")
    assert 103 not in votes.mass and 3 not in votes.image_ids.tolist() and 3 not in index
    assert index.removed_rows == len(feats[3])
    index.relabel({4: 200})
    assert index.vote(feats[4], "left").ranked()[0] == 200
    index.save(tmp_path / "kp.npz")  # tombstones survive a save and a load
    loaded = KeypointIndex.load(tmp_path / "kp.npz", exact_limit=exact_limit)
    assert sorted(loaded.image_ids()) == [1, 2, 4, 5, 6] and loaded.owners()[4] == 200
    assert 103 not in loaded.vote(feats[3], "left").mass
    loaded.add(3, 103, "left", feats[3])  # re-added (a flank corrected): found again
    assert loaded.vote(feats[3], "left").ranked()[0] == 103
