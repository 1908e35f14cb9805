"""`reid batch --ray`: chunks identified by Ray worker processes give the local run's output.

The Ray test starts a real local Ray runtime (2 worker processes) and is marked `cluster`
(run with `pytest -m cluster`); the executor seam of reid.runner is tested without Ray.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import LeopardSet, run_cli

from reid.cluster import EXIT_ONCE_ENV, WorkerOf, run_on_worker
from reid.runner import Journal, journal_path, plan_chunks, run_chunks


def test_executor_results_arriving_out_of_order_are_journaled_and_yielded_in_plan_order(tmp_path: Path) -> None:
    chunks = plan_chunks(list(range(10)), size=3)
    journal = Journal(journal_path(tmp_path / "out.csv"), {"run": 1})
    journal.record(chunks[1].key, [-1])  # finished by an earlier, interrupted run

    def backwards(todo):  # a cluster returns whichever chunk finishes first
        assert [c.key for c in todo] == [c.key for c in chunks if c.key != chunks[1].key]
        for c in reversed(todo):
            yield c, [x * 10 for x in c.items]

    out = list(run_chunks(chunks, lambda c: pytest.fail("ran locally"), journal, executor=backwards))
    assert [c.key for c, _ in out] == [c.key for c in chunks]
    assert [d for _, d in out] == [[0, 10, 20], [-1], [60, 70, 80], [90]]
    journal.close()
    assert len(Journal(journal.path, {"run": 1}).done) == len(chunks)  # every result was persisted


def test_executor_that_stops_early_is_an_error_not_a_short_output(tmp_path: Path) -> None:
    chunks = plan_chunks(list(range(6)), size=2)
    journal = Journal(tmp_path / "j", {"run": 2})
    with pytest.raises(RuntimeError, match="ended without chunk"):
        list(run_chunks(chunks, lambda c: None, journal, executor=lambda todo: iter([(todo[0], [])])))


class _DoublingWorker:  # the shape of reid.season.run.SeasonWorker: (pipeline, *args), called with a chunk
    def __init__(self, pipeline: object, factor: int) -> None:
        self.pipeline, self.factor = pipeline, factor

    def __call__(self, chunk: object) -> list[object]:
        return [(self.pipeline, x * self.factor) for x in chunk.items]


def test_a_worker_class_runs_on_the_workers_pipeline_and_survives_pickling() -> None:
    import pickle

    work = pickle.loads(pickle.dumps(WorkerOf(_DoublingWorker, (3,))))  # what Ray ships to a worker
    data, audits, outcomes = run_on_worker(work, "worker-pipeline", [1, 2])
    assert data == [("worker-pipeline", 3), ("worker-pipeline", 6)] and audits == [] and outcomes == []


def test_workers_without_ray_is_refused(leopard_images: LeopardSet, enrolled_dir: Path, tmp_path: Path) -> None:
    proc = run_cli("batch", leopard_images.queries_csv, "--out", tmp_path / "r.csv", "--data-dir", enrolled_dir,
                   "--workers", "2")
    assert proc.returncode == 2 and proc.stderr.strip() == "reid: error: --workers needs --ray (a local run is one process)"


def test_ray_not_installed_is_one_line_before_the_model_loads(leopard_images: LeopardSet, tmp_path: Path) -> None:
    shadow = tmp_path / "shadow" / "ray"  # an importable `ray` that fails as a missing one does
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    path = os.pathsep.join([str(shadow.parent), os.environ.get("PYTHONPATH", "")])
    proc = run_cli("batch", leopard_images.queries_csv, "--out", tmp_path / "r.csv", "--data-dir", tmp_path / "d",
                   "--ray", "local", env={"PYTHONPATH": path})
    assert proc.returncode == 2
    assert proc.stderr.strip() == "reid: error: --ray needs Ray: pip install 'leopard-reid[cluster]' (or pip install ray)"
    assert not (tmp_path / "d").exists()  # refused before the pipeline opened the data dir


def _queue(data_dir: Path) -> list[tuple]:
    """The review queue of a data dir, in a form two runs can be compared by (ids aside)."""
    from reid.catalog import Catalog
    from reid.review import list_items

    catalog = Catalog(data_dir)
    try:
        items, _ = list_items(catalog, status="all", limit=10_000)
    finally:
        catalog.close()
    return sorted((i.file_name, i.box, i.sha256, i.verdict, i.status, i.source, i.sighting, i.viewpoint,
                   tuple((c.identity, round(c.probability, 6), c.image_id) for c in i.candidates),
                   tuple((p.file_name, p.box, p.viewpoint) for p in i.photos)) for i in items)


@pytest.mark.cluster
def test_ray_batch_with_a_worker_killed_midway_writes_the_local_output(leopard_images: LeopardSet,
                                                                       enrolled_dir: Path, pipeline,
                                                                       tmp_path: Path) -> None:
    pytest.importorskip("ray")
    from review_helpers import copy_catalog

    local_data = copy_catalog(enrolled_dir, pipeline, tmp_path / "local-data")
    ray_data = copy_catalog(enrolled_dir, pipeline, tmp_path / "ray-data")
    common = ["-q", "--chunk", "4"]  # 24 queries: 6 chunks
    local = tmp_path / "local" / "results.csv"
    proc = run_cli("batch", leopard_images.queries_csv, "--out", local, "--data-dir", local_data, *common)
    assert proc.returncode == 0, proc.stderr
    common = ["--data-dir", str(ray_data), *common]

    died = tmp_path / "worker-died"  # the first worker to take a chunk exits hard, once
    out = tmp_path / "ray" / "results.csv"
    proc = run_cli("batch", leopard_images.queries_csv, "--out", out, *common, "--ray", "local", "--workers", "2",
                   env={EXIT_ONCE_ENV: str(died)}, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert died.exists()  # a worker really died mid-run, and Ray restarted it and retried its chunk
    assert out.read_bytes() == local.read_bytes()  # same rows, same order, byte for byte
    assert not journal_path(out).exists()
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert summary["engine"] == "ray" and summary["workers"] == 2 and summary["queries"] == 24
    assert "engine: ray, 2 worker processes" in proc.stdout
    # the photos a person should review were queued by the driver, as the local run queued them
    queued = _queue(ray_data)
    assert queued == _queue(local_data) and len(queued) > 0


@pytest.mark.cluster
def test_ray_season_with_a_worker_killed_midway_writes_the_local_outputs(tmp_path: Path) -> None:
    """`reid season run --ray local` on the synthetic season: the files of the local run, byte
    for byte; the same review items; resumable from the same journal; a killed worker retried."""
    pytest.importorskip("ray")
    import shutil

    from reid.settings import default_model_path

    shipped = {"REID_MODEL": str(default_model_path())}
    synth = tmp_path / "synth"
    assert run_cli("synth", "--season", synth, "--seed", "0").returncode == 0
    base = tmp_path / "base"
    proc = run_cli("enroll", synth / "known.csv", "--data-dir", base, "-q", env=shipped)
    assert proc.returncode == 0, proc.stderr
    shutil.copytree(base, tmp_path / "ray-data")
    shutil.copytree(base, tmp_path / "local-data")

    def season(out: Path, data: str, *extra: str, env: dict[str, str] | None = None):
        return run_cli("season", "run", synth / "images", "--out", out, "--deployments", synth / "deployments.csv",
                       "--detections", synth / "megadetector.json", "--data-dir", tmp_path / data, "-q",
                       "--chunk", "3", *extra, env={**shipped, **(env or {})}, timeout=900)

    proc = season(tmp_path / "local", "local-data")
    assert proc.returncode == 0, proc.stderr
    died = tmp_path / "worker-died"
    proc = season(tmp_path / "ray", "ray-data", "--ray", "local", "--workers", "2", env={EXIT_ONCE_ENV: str(died)})
    assert proc.returncode == 0, proc.stderr
    assert died.exists() and "engine: ray, 2 worker processes" in proc.stdout
    for name in ("results.csv", "deployments.csv", "groups.csv", "flank_links.csv"):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
    local, ray = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("local", "ray"))
    assert (local["engine"], local["workers"]) == ("local", 1) and (ray["engine"], ray["workers"]) == ("ray", 2)
    for s in (local, ray):
        for key in ("timing", "engine", "workers"):
            s.pop(key)
    assert local == ray
    assert _queue(tmp_path / "ray-data") == _queue(tmp_path / "local-data")
    assert local["review_items"]["unknown_groups"] >= 2

    # a local run SIGKILLed midway resumes from its journal on Ray: the same files
    import sys

    from test_resume import kill_when_journal_has

    out = tmp_path / "resumed"
    cmd = [sys.executable, "-m", "reid.cli", "season", "run", str(synth / "images"), "--out", str(out),
           "--deployments", str(synth / "deployments.csv"), "--detections", str(synth / "megadetector.json"),
           "--data-dir", str(tmp_path / "local-data"), "-q", "--chunk", "3"]
    assert kill_when_journal_has(cmd, journal_path(out / "results.csv"), 2, {**os.environ, **shipped}) >= 2
    proc = season(out, "local-data", "--ray", "local", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    assert "resumed:" in proc.stdout
    for name in ("results.csv", "groups.csv", "flank_links.csv"):
        assert (out / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name


@pytest.mark.parametrize("verb", [("models", "use", "v2"), ("models", "rollback"), ("models", "prepare", "v2"),
                                  ("retrain",)])
def test_reembedding_verbs_refuse_workers_without_ray(verb: tuple[str, ...], tmp_path: Path) -> None:
    proc = run_cli(*verb, "--data-dir", tmp_path / "d", "--workers", "2")
    assert proc.returncode == 2 and proc.stderr.strip() == "reid: error: --workers needs --ray (a local run is one process)"
    assert not (tmp_path / "d").exists()


def _add_version_v2(tmp_path: Path, *data_dirs: Path) -> None:
    """A model version `v2` in each data dir: the test model at a 96-pixel input, one file
    (one model id), so every catalogue image needs a new vector."""
    import shutil

    from conftest import MODEL

    from reid import model_versions as mv
    from reid.model import load_checkpoint, save_checkpoint

    ck = load_checkpoint(MODEL)
    ck.model.config.input_size = (96, 96)
    v2 = save_checkpoint(tmp_path / "v2.pt", ck.model, version="v2")
    for d in data_dirs:
        mv.models_dir(d).mkdir(exist_ok=True)
        shutil.copy(v2, mv.checkpoint_path(d, "v2"))


def test_models_prepare_embeds_and_indexes_without_changing_the_model_in_force(enrolled_dir: Path, pipeline,
                                                                              tmp_path: Path) -> None:
    from review_helpers import copy_catalog

    from reid import model_versions as mv
    from reid.catalog import Catalog
    from reid.gallery import Gallery
    from reid.model import load_checkpoint

    data = copy_catalog(enrolled_dir, pipeline, tmp_path / "data")
    _add_version_v2(tmp_path, data)
    model_id = load_checkpoint(mv.checkpoint_path(data, "v2")).model_id
    proc = run_cli("models", "prepare", "v2", "--data-dir", data, env={"REID_MODEL": ""}, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert f"model {model_id} prepared" in proc.stdout and mv.current_version(data) is None
    catalog = Catalog(data)
    try:
        assert not catalog.images_missing_embedding(model_id)
        assert len(catalog.embedding_ids(model_id)) == len(catalog.embedding_ids(pipeline.model_id)) >= 20
    finally:
        catalog.close()
    assert Gallery.index_path(data, model_id).is_file()


@pytest.mark.cluster
def test_models_use_on_ray_stores_the_local_vectors_and_answers_the_same(leopard_images: LeopardSet,
                                                                          enrolled_dir: Path, pipeline,
                                                                          tmp_path: Path) -> None:
    """Promotion's re-embedding on 2 Ray workers (one killed before its first shard and retried)
    stores the vectors the local path stores, and the promoted model then answers identically."""
    pytest.importorskip("ray")
    import numpy as np
    from review_helpers import copy_catalog

    from reid import model_versions as mv
    from reid.catalog import Catalog
    from reid.model import load_checkpoint

    local_data = copy_catalog(enrolled_dir, pipeline, tmp_path / "local-data")
    ray_data = copy_catalog(enrolled_dir, pipeline, tmp_path / "ray-data")
    _add_version_v2(tmp_path, local_data, ray_data)
    env = {"REID_MODEL": "", "REID_EMBED_BATCH_SIZE": "4"}  # the data dir's model answers; shards of 4

    proc = run_cli("models", "use", "v2", "--data-dir", local_data, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    died = tmp_path / "worker-died"
    # a relative data dir (the default one is): the workers get absolute paths
    proc = run_cli("models", "use", "v2", "--data-dir", ray_data.name, "--ray", "local", "--workers", "2",
                   env={**env, EXIT_ONCE_ENV: str(died)}, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert died.exists()  # a worker really died, and Ray restarted it and retried its shard
    assert "on 2 Ray worker processes" in proc.stderr
    model_id = load_checkpoint(mv.checkpoint_path(ray_data, "v2")).model_id
    assert model_id in proc.stdout and mv.current_version(ray_data) == "v2"

    stored = {}
    for d in (local_data, ray_data):
        catalog = Catalog(d)
        try:
            ids = catalog.embedding_ids(model_id)
            stored[d] = catalog.embeddings(model_id, ids)
        finally:
            catalog.close()
    (local_ids, local_vecs), (ray_ids, ray_vecs) = stored[local_data], stored[ray_data]
    assert len(local_ids) >= 20 and ray_ids == local_ids
    assert np.allclose(ray_vecs, local_vecs, atol=1e-5)

    # afterwards the promoted model answers the same: the batch CSVs byte for byte
    outs = []
    for d in (local_data, ray_data):
        out = tmp_path / d.name / "results.csv"
        proc = run_cli("batch", leopard_images.queries_csv, "--out", out, "--data-dir", d, "-q", env=env, timeout=600)
        assert proc.returncode == 0, proc.stderr
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
