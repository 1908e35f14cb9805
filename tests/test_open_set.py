"""Open-set scores and the error-budget verdict policy (reid.open_set)."""

from __future__ import annotations

import numpy as np
import pytest

from reid.open_set import (
    ImpostorStats,
    VerdictPolicy,
    evidence,
    fit_policy,
    impostor_scores,
    open_set_features,
    threshold_for_precision,
)


def test_threshold_for_precision_is_the_lowest_that_keeps_the_budget() -> None:
    conf = np.array([0.99, 0.95, 0.9, 0.8, 0.7, 0.6, 0.5])
    right = np.array([1, 1, 1, 1, 0, 1, 0], bool)
    assert threshold_for_precision(conf, right, 0.8, z=0) == 0.6  # 5 of 6 >= 0.6 right: 0.83
    assert threshold_for_precision(conf, right, 0.9, z=0) == 0.8  # 0.7 would give 4 of 5
    assert threshold_for_precision(conf, np.zeros(7, bool), 0.95, z=0) > 1.0  # never: nothing is a match
    # ties cannot be split: two photos at 0.9, one wrong
    assert threshold_for_precision(np.array([0.95, 0.9, 0.9]), np.array([1, 1, 0], bool), 0.9, z=0) == 0.95
    # by default the share must be shown, not only seen: 4 right of 4 is not enough for 0.8
    assert threshold_for_precision(conf, right, 0.8) > 1.0
    many = np.linspace(1, 0.5, 60)
    assert threshold_for_precision(many, np.ones(60, bool), 0.95) == many[-1]  # 60 of 60: bound 0.957
    assert threshold_for_precision(many[:40], np.ones(40, bool), 0.95) > 1.0  # 40 of 40: bound 0.937


def test_impostor_normalisation_discounts_an_animal_that_matches_everyone() -> None:
    scores = {"Busy": [evidence(40, 0.5)] * 30, "Quiet": [evidence(1, 0.5)] * 30}
    stats = ImpostorStats.from_scores(impostor_scores([]) | scores)
    strong = evidence(45, 0.5)
    assert stats.z("Quiet", strong) > 3 > stats.z("Busy", strong)
    # one lucky impostor score does not make an individual's null: it leans on everyone's
    few = ImpostorStats.from_scores({**scores, "Rare": [evidence(0, 0.5)]})
    assert abs(few.mean["Rare"] - few.global_mean) < abs(few.mean["Rare"] - evidence(0, 0.5))
    # a ranking whose rank 1 is a "busy" animal scores lower than the same raw evidence for a quiet one
    busy = open_set_features([("Busy", 0.6, 45, 0.5), ("Quiet", 0.1, 1, 0.4), ("Other", 0.0, 0, 0.3)], stats)
    quiet = open_set_features([("Quiet", 0.6, 45, 0.5), ("Busy", 0.1, 1, 0.4), ("Other", 0.0, 0, 0.3)], stats)
    assert quiet[0] > busy[0] and quiet[1] > busy[1]


def test_own_photos_are_not_impostors() -> None:
    got = impostor_scores([("A", [("A", 90.0, 0.9), ("B", 2.0, 0.3)]), ("B", [("B", 80.0, 0.9), ("A", 1.0, 0.2)])])
    assert got == {"B": [evidence(2.0, 0.3)], "A": [evidence(1.0, 0.2)]}


def _rankings(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Feature rows of simulated rankings: known photos with rank 1 right stand out, others do not."""
    known = rng.random(n) < 0.7
    right = known & (rng.random(n) < 0.6)
    lead = np.where(right, rng.normal(3.0, 1.2, n), rng.normal(0.5, 1.0, n))
    x = np.stack([lead, lead * 0.5 + rng.normal(0, 0.5, n), lead + rng.normal(0, 1, n), rng.random(n)], axis=1)
    return x, right, known


def test_a_policy_fitted_on_one_set_keeps_its_precision_on_another(tmp_path) -> None:
    x, right, known = _rankings(np.random.default_rng(0), 3000)
    policy = fit_policy(x, right, known, target_precision=0.95, known_miss=0.05)
    assert policy.measured["match_precision"] >= 0.95 and policy.measured["coverage"] > 0.2
    assert 0 < policy.new_threshold < policy.match_threshold <= 1
    x2, right2, known2 = _rankings(np.random.default_rng(1), 3000)
    conf = policy.confidence(x2)
    matched = conf >= policy.match_threshold
    assert right2[matched].mean() >= 0.93  # held out: about the target
    assert (conf[known2] < policy.new_threshold).mean() < 0.08  # about the stated miss rate
    again = VerdictPolicy.load(policy.save(tmp_path / "policy.json"))
    assert np.allclose(again.confidence(x2), conf)
    stricter = fit_policy(x, right, known, target_precision=0.99)
    assert stricter.match_threshold > policy.match_threshold


def test_a_policy_needs_both_outcomes() -> None:
    x, right, known = _rankings(np.random.default_rng(0), 50)
    with pytest.raises(ValueError, match="right and photos where it is not"):
        fit_policy(x, np.ones(50, bool), known)


def test_fit_verdicts_end_to_end(leopard_images, tmp_path) -> None:
    """`reid fit-verdicts` on real images through the real pipeline, then identify with the policy."""
    import csv

    from conftest import INDIVIDUALS, run_cli

    from reid.identify import open_pipeline

    held_out = set(INDIVIDUALS[:2])  # absent from the gallery: their queries are newcomers
    rows = list(csv.DictReader(leopard_images.gallery_csv.open(encoding="utf-8")))
    gallery = leopard_images.gallery_csv.with_name("gallery-open-set.csv")
    with gallery.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(r for r in rows if r["identity"] not in held_out)
    policy_file = tmp_path / "policy.json"
    proc = run_cli("fit-verdicts", "--gallery", gallery, "--queries", leopard_images.queries_csv,
                   "--out", policy_file, "--z", "0", "-q", timeout=600)  # 24 queries: no bound can be shown
    assert proc.returncode == 0, proc.stderr
    assert "match at confidence >=" in proc.stdout
    policy = VerdictPolicy.load(policy_file)
    assert policy.target_precision == 0.95 and set(policy.stats["mean"]) == set(INDIVIDUALS) - held_out
    assert policy.measured["match_precision"] is None or policy.measured["match_precision"] >= 0.95

    data_dir = tmp_path / "data"
    pipe = open_pipeline(data_dir=data_dir, verdict_policy=policy_file)
    from reid.batch import enroll_labels

    enroll_labels(pipe, gallery, progress=False)
    queries = list(csv.DictReader(leopard_images.queries_csv.open(encoding="utf-8")))
    loaded = [pipe.load_query(leopard_images.queries_csv.parent / r["path"], viewpoint=r["viewpoint"]) for r in queries]
    results = pipe.identify(loaded, audit=False)
    pipe.close()
    for r, res in zip(queries, results, strict=True):
        cands = [(c.identity, c.score, c.local_score, c.cosine) for c in res.candidates]
        assert res.decision == policy.decide(cands)[0]  # the policy decides, not the P thresholds
        if r["identity"] in held_out:
            assert res.decision != "match"
    assert sum(res.decision == "match" for res in results) > 0  # and it does decide

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    proc = run_cli("identify", leopard_images.queries_csv.parent / queries[0]["path"], "--data-dir", data_dir,
                   env={"REID_VERDICT_POLICY": str(bad)})
    assert proc.returncode == 2 and proc.stderr.startswith("reid: error: verdict policy"), proc.stderr
