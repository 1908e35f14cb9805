"""reid retrain, the promotion gate, model versions per data dir, and the retrain job route.

Small on purpose: 10 generated individuals (tests/conftest.py coats) seen on 3 occasions,
and a 64-pixel copy of the ImageNet baseline as the data dir's model in force, so a whole
retrain-and-gate runs in well under a minute on 2 shared cores."""

from __future__ import annotations

import csv
import json
import shutil
import signal
import time
from dataclasses import replace
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from conftest import MODEL, make_coat, photograph, run_cli
from live import live_server

from reid import model_versions as mv
from reid.retrain import RetrainConfig, retrain, train_candidate
from reid.retrain_gate import QueryOutcomes, evaluate_models, format_intervals, gate, paired_bootstrap
from reid.settings import Settings

N_INDIVIDUALS, SIGHTINGS = 10, 3
SMALL = 64  # input side of the test models
TINY = RetrainConfig(minutes=10, epochs=2, views=2, p=6, k=2, synthetic_individuals=2, synthetic_views=2,
                     held_out_fraction=0.4, min_held_out=4)
NO_MODEL_ENV = {"REID_MODEL": "", "REID_EMBED_BACKEND": "fp32"}  # the data dir's model answers
PATIENCE = 1800  # run_cli's timeout: only a hung process should ever reach it (2 cores shared by many jobs)


def _small_base(path: Path) -> Path:
    """The ImageNet baseline with a 64-pixel input: the same weights, a 12th of the pixels."""
    from reid.model import load_checkpoint, save_checkpoint

    ck = load_checkpoint(MODEL)
    ck.model.config.input_size = (SMALL, SMALL)
    return save_checkpoint(path, ck.model, version="base64")


def _write_individuals(root: Path) -> Path:
    rows = []
    for i in range(N_INDIVIDUALS):
        for s, side in enumerate(("left", "right")):
            coat = make_coat(20_000 + 10 * i + s)
            rng = np.random.default_rng(30_000 + 10 * i + s)
            for k in range(1, SIGHTINGS + 1):
                rel = f"img/ind{i}/{side}_{k}.jpg"
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(root / rel), photograph(coat, rng, size=(160, 120)))
                rows.append({"path": rel, "identity": f"Ind {i}", "viewpoint": side, "sighting": f"i{i}-s{k}",
                             "bbox_x": 0, "bbox_y": 0, "bbox_w": 160, "bbox_h": 120})
    labels = root / "labels.csv"
    with open(labels, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return labels


@pytest.fixture(scope="module")
def confirmed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(labels CSV, data dir template): the individuals enrolled through the CLI under the
    64-pixel base, which `reid models use` made the data dir's model in force."""
    root = tmp_path_factory.mktemp("retrain-set")
    labels = _write_individuals(root)
    data_dir = root / "data"
    _small_base(mv.checkpoint_path(data_dir, "base64"))
    proc = run_cli("models", "use", "base64", "--data-dir", data_dir, env=NO_MODEL_ENV, timeout=PATIENCE)
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("enroll", labels, "--data-dir", data_dir, env=NO_MODEL_ENV, timeout=PATIENCE)
    assert proc.returncode == 0, proc.stderr
    return labels, data_dir


@pytest.fixture
def data_dir(confirmed: tuple[Path, Path], tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(confirmed[1], copy)
    return copy


def _settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, embed_backend="fp32")


def _model_id(data_dir: Path, image: Path) -> str:
    proc = run_cli("identify", image, "--json", "--data-dir", data_dir, env=NO_MODEL_ENV, timeout=PATIENCE)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)[0]["model_id"]


def test_tiny_retrain_writes_a_version_whose_gate_follows_its_numbers(data_dir: Path) -> None:
    result = retrain(_settings(data_dir), TINY, progress=False)
    rec = result.record
    path = mv.checkpoint_path(data_dir, result.version)
    assert path.is_file() and mv.run_record_path(path).is_file()
    assert rec["parent"].startswith("base64@") and rec["model_in_force"].startswith("base64@")
    assert rec["data"]["train_individuals"] == 6 and len(rec["data"]["held_out_individuals"]) == 4
    assert rec["training"]["steps"] == rec["training"]["planned_steps"] > 0  # epochs ended it, not time
    assert rec["training"]["classes_real"] == 12 and rec["training"]["classes_synthetic"] == 4
    # the gate's verdict is the rule applied to the measured held-out numbers and their noise
    noise = rec["gate"]["intervals"]
    assert rec["gate"]["passed"] == gate(rec["held_out"]["candidate"], rec["held_out"]["current"], noise).passed
    fused = {r["model"]: r for r in rec["held_out_table"] if r["ranking"] == "fused"}
    assert noise["fused"]["n_known"] == fused["candidate"]["n_known"] == fused["current"]["n_known"]
    assert noise["fused"]["resamples"] == 1000
    gain = noise["fused"]["top1"]
    assert gain["change"] == pytest.approx(fused["candidate"]["top1"] - fused["current"]["top1"], abs=1e-5)
    assert gain["low"] <= gain["change"] <= gain["high"]
    assert "paired resamples" in format_intervals(noise)
    assert result.promoted == rec["gate"]["passed"]
    assert {(r["model"], r["ranking"]) for r in rec["held_out_table"]} == {
        (m, k) for m in ("current", "candidate") for k in ("global", "fused")}
    from reid.model import load_checkpoint

    ck = load_checkpoint(path)
    assert ck.version == result.version and ck.config.embedding_dim == 512  # a head was added to the baseline
    listed = {v.version: v for v in mv.list_versions(data_dir)}
    assert listed[result.version].current == result.promoted
    assert not (mv.models_dir(data_dir) / ".retrain").exists()  # finished: no state left to resume
    # --minutes bounds training and both evaluations: each evaluation's measured cost is on record
    budget = rec["time_budget"]
    assert budget["within"] and budget["seconds"] <= TINY.minutes * 60
    assert budget["current_eval_seconds"] > 0 and budget["candidate_eval_seconds"] > 0
    if result.pipeline is not None:
        result.pipeline.close()


def test_minutes_too_short_for_the_gate_is_a_one_line_error(data_dir: Path) -> None:
    # 3 seconds cannot hold two evaluations of the held-out individuals and training: the
    # command says how many minutes it needs instead of training nothing or overrunning
    proc = run_cli("retrain", "--data-dir", data_dir, "--minutes", "0.05", env=NO_MODEL_ENV, timeout=PATIENCE)
    assert proc.returncode == 2, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("reid: error: --minutes 0.05 leaves") and "give --minutes" in line
    assert "Traceback" not in proc.stderr
    assert {v.version for v in mv.list_versions(data_dir)} == {"shipped", "base64"}  # nothing written


def test_gate_rules() -> None:
    def m(top1: float, auroc: float | None) -> dict:
        return {"fused": {"top1": top1, "new_auroc": auroc}, "global": {"top1": 0.0, "new_auroc": None}}

    assert gate(m(0.5, 0.7), m(0.4, 0.7)).passed
    fail = gate(m(0.4, 0.7), m(0.4, 0.6))
    assert not fail.passed and "fused top-1 not higher: 0.400 vs 0.400" in fail.reasons
    lower = gate(m(0.6, 0.5), m(0.4, 0.6))
    assert not lower.passed and "new-individual AUROC lower: 0.500 vs 0.600" in lower.reasons


def test_gate_refuses_a_candidate_worse_by_construction(confirmed: tuple[Path, Path], tmp_path: Path) -> None:
    """A network with random weights, against the ImageNet features it would replace, on real
    identifications of held-out photos: its embedding ranks worse and the gate refuses it."""
    import torch

    from reid.labels import read_labels
    from reid.model import ModelConfig, create_model, save_checkpoint

    labels, data_dir = confirmed
    torch.manual_seed(0)  # the random weights are part of the construction: the same every run
    random_model = save_checkpoint(tmp_path / "random.pt", create_model(ModelConfig(input_size=(SMALL, SMALL),
                                                                                   embedding_dim=None),
                                                                        imagenet=False), version="random")
    rows = [r for r in read_labels(labels) if r.identity in {"Ind 0", "Ind 1", "Ind 2", "Ind 3", "Ind 4"}]
    evals = evaluate_models({"current": mv.checkpoint_path(data_dir, "base64"), "candidate": random_model},
                            rows, _settings(tmp_path / "unused"), scratch=tmp_path / "scratch")
    cand, cur = evals["candidate"].metrics, evals["current"].metrics
    assert cand["global"]["top1"] < cur["global"]["top1"]  # worse, as constructed
    decision = gate(cand, cur)
    assert not decision.passed
    assert any(r.startswith(("fused top-1 not higher", "new-individual AUROC lower")) for r in decision.reasons)
    swapped = gate(cur, cand)  # the same numbers read the other way round
    assert swapped.passed == (cur["fused"]["top1"] > cand["fused"]["top1"]
                              and (cur["fused"]["new_auroc"] or 0) >= (cand["fused"]["new_auroc"] or 0))


def test_ctrl_c_keeps_a_state_that_resumes(confirmed: tuple[Path, Path], tmp_path: Path) -> None:
    from reid.labels import read_labels
    from reid.model import load_checkpoint

    labels, data_dir = confirmed
    base = load_checkpoint(mv.checkpoint_path(data_dir, "base64"))
    rows = [r for r in read_labels(labels) if r.identity in {"Ind 5", "Ind 6", "Ind 7"}]
    cfg = replace(TINY, epochs=4)

    def interrupt(phase: str, done: int, total: int) -> None:
        if phase == "training" and done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_candidate(base, cfg, rows, tmp_path / "state", deadline=time.perf_counter() + 600, report=interrupt,
                        progress=False)
    assert (tmp_path / "state" / "cache.pt").is_file() and (tmp_path / "state" / "state.pt").is_file()
    seen: list[int] = []
    _, info = train_candidate(base, cfg, rows, tmp_path / "state", deadline=time.perf_counter() + 600,
                              report=lambda phase, done, total: seen.append(done) if phase == "training" else None,
                              progress=False)
    assert seen[0] == 3 and info["steps"] == info["planned_steps"]  # went on after step 2, prepared nothing again
    assert "preparing views" not in str(seen)


def test_use_answers_with_the_version_then_rollback(confirmed: tuple[Path, Path], data_dir: Path,
                                                    tmp_path: Path) -> None:
    """A version promoted with `reid models use` answers identify (and a checkpoint written by
    retrain works with --model in another data dir); rollback restores the previous model."""
    labels, _ = confirmed
    query = labels.parent / "img/ind3/left_3.jpg"
    before = _model_id(data_dir, query)
    assert before.startswith("base64@")
    result = retrain(_settings(data_dir), replace(TINY, epochs=1), dry_run=False, progress=False)
    if result.pipeline is not None:
        result.pipeline.close()
    version = result.version
    proc = run_cli("models", "use", version, "--data-dir", data_dir, env=NO_MODEL_ENV, timeout=PATIENCE)
    assert proc.returncode == 0, proc.stderr
    assert _model_id(data_dir, query).startswith(f"{version}@")
    listing = run_cli("models", "list", "--data-dir", data_dir, env=NO_MODEL_ENV, timeout=PATIENCE).stdout
    assert f"*  {version}" in listing
    # the checkpoint travels: --model in another data dir answers with it
    proc = run_cli("identify", query, "--json", "--data-dir", tmp_path / "other", "--model",
                   mv.checkpoint_path(data_dir, version), env=NO_MODEL_ENV, timeout=PATIENCE)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["model_id"].startswith(f"{version}@")
    proc = run_cli("models", "rollback", "--data-dir", data_dir, env=NO_MODEL_ENV, timeout=PATIENCE)
    assert proc.returncode == 0, proc.stderr
    assert _model_id(data_dir, query) == before


def test_crash_during_promotion_leaves_the_old_model_answering(confirmed: tuple[Path, Path],
                                                               data_dir: Path) -> None:
    labels, _ = confirmed
    query = labels.parent / "img/ind1/right_3.jpg"
    before = _model_id(data_dir, query)
    candidate = mv.checkpoint_path(data_dir, "r9-crash")
    from reid.model import load_checkpoint, save_checkpoint

    ck = load_checkpoint(mv.checkpoint_path(data_dir, "base64"))
    save_checkpoint(candidate, ck.model, version="r9-crash", meta={"note": "same weights, another version"})
    proc = run_cli("models", "use", "r9-crash", "--data-dir", data_dir,
                   env={**NO_MODEL_ENV, mv.KILL_ENV: "promote:index-ready"}, timeout=PATIENCE)
    assert proc.returncode == -signal.SIGKILL, proc.stderr  # killed after the index, before the swap
    assert any(p.name.startswith("r9-crash") for p in (data_dir / "index").glob("*.faiss"))  # it got that far
    assert mv.current_version(data_dir) == "base64"
    assert _model_id(data_dir, query) == before
    proc = run_cli("models", "use", "r9-crash", "--data-dir", data_dir, env=NO_MODEL_ENV, timeout=PATIENCE)
    assert proc.returncode == 0, proc.stderr
    assert _model_id(data_dir, query).startswith("r9-crash@")


def test_retrain_job_route_runs_one_at_a_time_and_reports(data_dir: Path) -> None:
    recipe = {k: getattr(TINY, k) for k in ("views", "p", "k", "synthetic_individuals", "synthetic_views",
                                            "held_out_fraction", "min_held_out")}
    with live_server(data_dir, env={**NO_MODEL_ENV, "REID_API_TOKEN": "secret"}, model=None) as server:
        admin = {"Authorization": "Bearer secret"}
        assert httpx.post(server.url + "/v1/jobs/retrain", json={}).status_code == 401
        bad = httpx.post(server.url + "/v1/jobs/retrain", json={"recipe": {"nope": 1}}, headers=admin)
        assert bad.status_code == 422 and "nope" in bad.json()["detail"]
        health = httpx.get(server.url + "/healthz", headers=admin).json()
        assert health["model_id"].startswith("base64@")
        r = httpx.post(server.url + "/v1/jobs/retrain", json={"epochs": 2, "recipe": recipe}, headers=admin)
        assert r.status_code == 202, r.text
        job = r.json()
        again = httpx.post(server.url + "/v1/jobs/retrain", json={"epochs": 2}, headers=admin)
        assert again.status_code == 409 and job["id"] in again.json()["detail"]
        phases = set()
        for _ in range(3000):
            state = httpx.get(f"{server.url}/v1/jobs/{job['id']}", headers=admin, timeout=30).json()
            phases.add(state["phase"])
            if state["status"] != "running":
                break
            time.sleep(0.2)
        assert state["status"] == "done", state
        assert "training" in phases or "evaluating" in phases
        res = state["result"]
        assert {row["ranking"] for row in res["table"]} == {"global", "fused"}
        answering = httpx.get(server.url + "/healthz", headers=admin).json()["model_id"]
        if res["promoted"]:
            assert answering.startswith(res["version"] + "@") and res["answering_model_id"] == answering
        else:
            assert answering == health["model_id"]
        models = httpx.get(server.url + "/v1/models", headers=admin).json()
        assert res["version"] in {v["version"] for v in models["versions"]}
        assert httpx.get(server.url + "/v1/jobs/nope", headers=admin).status_code == 404


def _outcomes(hits: list[bool], known_scores: np.ndarray, new_scores: np.ndarray) -> QueryOutcomes:
    n_known, n_new = len(known_scores), len(new_scores)
    return QueryOutcomes(tuple(f"q{i}" for i in range(n_known + n_new)),
                         np.r_[np.ones(n_known, bool), np.zeros(n_new, bool)],
                         np.r_[np.asarray(hits, bool), np.zeros(n_new, bool)],
                         np.r_[known_scores, new_scores])


def _metrics(o: QueryOutcomes) -> dict:
    from reid.evaluate import auroc

    return {"fused": {"top1": float(o.hit1[o.known].mean()),
                      "new_auroc": auroc(list(o.top_score[o.known]), list(o.top_score[~o.known]))}}


def test_gate_wants_a_gain_beyond_the_noise_of_the_held_out_queries() -> None:
    """The same 60 known and 15 new queries under two candidates: one names 21 more of them
    first (passes), one names 2 more (a higher point estimate, but within the paired
    bootstrap's noise: refused for that reason)."""
    rng = np.random.default_rng(7)
    known_scores, new_scores = rng.uniform(0.4, 1.0, 60), rng.uniform(0.0, 0.6, 15)
    order = rng.permutation(60)
    current_hits = np.isin(np.arange(60), order[:24])  # 24 of 60 right
    current = _outcomes(current_hits, known_scores, new_scores)
    better = _outcomes(np.isin(np.arange(60), order[:45]), known_scores, new_scores)  # 45 of 60, a superset
    noisy = _outcomes(current_hits | np.isin(np.arange(60), order[50:52]), known_scores, new_scores)  # 26 of 60

    real = {"fused": paired_bootstrap(better, current)}
    assert real["fused"]["top1"]["change"] == pytest.approx(21 / 60, abs=1e-5)
    assert real["fused"]["top1"]["low"] > 0 and real["fused"]["new_auroc"] == {"change": 0.0, "low": 0.0, "high": 0.0}
    passed = gate(_metrics(better), _metrics(current), real)
    assert passed.passed and passed.reasons[0].startswith("fused top-1 higher beyond noise: 0.750 vs 0.400")
    assert passed.to_dict()["intervals"] == real

    within = {"fused": paired_bootstrap(noisy, current)}
    assert within["fused"]["top1"]["change"] == pytest.approx(2 / 60, abs=1e-5) and within["fused"]["top1"]["low"] <= 0
    refused = gate(_metrics(noisy), _metrics(current), within)
    assert not refused.passed
    assert refused.reasons[0].startswith("fused top-1 gain within noise: 0.433 vs 0.400 (95% interval")
    assert gate(_metrics(noisy), _metrics(current)).passed  # the point rule alone would have promoted it
    assert paired_bootstrap(noisy, current) == within["fused"]  # seeded: the same decision every time
    assert paired_bootstrap(current, current)["top1"] == {"change": 0.0, "low": 0.0, "high": 0.0}


def test_gate_refuses_an_auroc_drop_only_beyond_its_noise() -> None:
    rng = np.random.default_rng(3)
    known_scores, new_scores = rng.uniform(0.4, 1.0, 60), rng.uniform(0.0, 0.6, 15)
    hits = np.arange(60) < 24
    current = _outcomes(hits, known_scores, new_scores)
    more_hits = np.arange(60) < 50
    # one newcomer now scores like a known animal: AUROC a little lower, within its noise
    slightly = new_scores.copy()
    slightly[0] = 0.95
    small_drop = _outcomes(more_hits, known_scores, slightly)
    noise = {"fused": paired_bootstrap(small_drop, current)}
    iv = noise["fused"]["new_auroc"]
    assert iv["change"] < 0 <= iv["high"]
    decision = gate(_metrics(small_drop), _metrics(current), noise)
    assert decision.passed and any(r.startswith("new-individual AUROC lower only within noise") for r in decision.reasons)
    # every newcomer now scores like a known animal: lower beyond the noise, refused
    collapsed = _outcomes(more_hits, known_scores, rng.uniform(0.6, 1.0, 15))
    noise = {"fused": paired_bootstrap(collapsed, current)}
    assert noise["fused"]["new_auroc"]["high"] < 0
    decision = gate(_metrics(collapsed), _metrics(current), noise)
    assert not decision.passed and any(r.startswith("new-individual AUROC lower: ") and "interval" in r
                                       for r in decision.reasons)


def test_paired_bootstrap_needs_the_same_queries() -> None:
    a = _outcomes([True, False], np.array([0.9, 0.8]), np.array([0.1]))
    b = replace(a, names=("x", "y", "z"))
    with pytest.raises(ValueError, match="same queries"):
        paired_bootstrap(a, b)


def _wait_for(server_url: str, job_id: str, headers: dict, until) -> dict:
    for _ in range(6000):
        state = httpx.get(f"{server_url}/v1/jobs/{job_id}", headers=headers, timeout=60).json()
        if until(state):
            return state
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} never got there: {state}")


def test_jobs_outlive_a_server_restart(data_dir: Path) -> None:
    """A finished job still answers after the server restarts over the same data dir; one that
    was running when its server stopped is `interrupted`, not `running` forever, and blocks
    nothing; the one-at-a-time 409 holds in the new server too."""
    recipe = {k: getattr(TINY, k) for k in ("views", "p", "k", "synthetic_individuals", "synthetic_views",
                                            "held_out_fraction", "min_held_out")}
    env = {**NO_MODEL_ENV, "REID_API_TOKEN": "secret"}
    admin = {"Authorization": "Bearer secret"}
    with live_server(data_dir, env=env, model=None) as server:
        r = httpx.post(server.url + "/v1/jobs/retrain", json={"epochs": 1, "dry_run": True, "recipe": recipe},
                       headers=admin, timeout=60)
        assert r.status_code == 202, r.text
        finished = _wait_for(server.url, r.json()["id"], admin, lambda s: s["status"] != "running")
        assert finished["status"] == "done", finished
        # a long one (the time bound would end it in an hour), stopped with its server mid-way
        r = httpx.post(server.url + "/v1/jobs/retrain", json={"minutes": 60, "epochs": 1000, "recipe": recipe},
                       headers=admin, timeout=60)
        assert r.status_code == 202, r.text
        cut = r.json()["id"]
        _wait_for(server.url, cut, admin, lambda s: s["done"] > 0)
        # progress is saved at most every SAVE_EVERY_S: stop the server only once some was saved
        from service.job_store import JobStore

        store = JobStore(data_dir)
        for _ in range(1500):
            saved = store.get(cut)
            if saved is not None and saved.done > 0:
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"job {cut}'s progress was never saved")
        assert httpx.post(server.url + "/v1/jobs/retrain", json={}, headers=admin, timeout=60).status_code == 409
    with live_server(data_dir, env=env, model=None) as server:
        again = httpx.get(f"{server.url}/v1/jobs/{finished['id']}", headers=admin, timeout=60).json()
        assert again["status"] == "done" and again["result"] == finished["result"]
        assert again["elapsed_s"] == finished["elapsed_s"]
        state = httpx.get(f"{server.url}/v1/jobs/{cut}", headers=admin, timeout=60).json()
        assert state["status"] == "interrupted" and "ended before it finished" in state["error"], state
        assert state["eta_s"] is None and state["done"] > 0  # its last saved progress
        r = httpx.post(server.url + "/v1/jobs/retrain", json={"minutes": 60, "epochs": 1000, "recipe": recipe},
                       headers=admin, timeout=60)
        assert r.status_code == 202, r.text  # the interrupted job blocks nothing
        busy = httpx.post(server.url + "/v1/jobs/retrain", json={}, headers=admin, timeout=60)
        assert busy.status_code == 409 and r.json()["id"] in busy.json()["detail"]
