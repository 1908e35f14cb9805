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
    data, audits = run_on_worker(work, "worker-pipeline", [1, 2])
    assert data == [("worker-pipeline", 3), ("worker-pipeline", 6)] and audits == []


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


@pytest.mark.cluster
def test_ray_batch_with_a_worker_killed_midway_writes_the_local_output(leopard_images: LeopardSet,
                                                                       enrolled_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    common = ["--data-dir", str(enrolled_dir), "-q", "--chunk", "4"]  # 24 queries: 6 chunks
    local = tmp_path / "local" / "results.csv"
    proc = run_cli("batch", leopard_images.queries_csv, "--out", local, *common)
    assert proc.returncode == 0, proc.stderr

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
