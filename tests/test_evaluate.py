"""EVAL.md metrics: the split, the numbers on hand-built results, and a whole evaluation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import MODEL, LeopardSet

from reid.errors import ReidError
from reid.evaluate import auroc, compute_metrics, evaluate, natural_key, split_by_sighting, with_encounters
from reid.identify import Candidate, Identification
from reid.labels import LabelRow, write_labels


def row(identity: str | None, sighting: str | None, n: int = 0, viewpoint: str = "left") -> LabelRow:
    path = f"{identity}/{sighting}_{n}.jpg"
    return LabelRow(line=n + 2, path=path, file=Path("/data") / path, identity=identity, viewpoint=viewpoint,
                    sighting=sighting)


def result(name: str, ranked: list[tuple[str, float]], decision: str = "review") -> Identification:
    return Identification(name=name, decision=decision, candidates=[
        Candidate(rank=i + 1, individual_id=i, identity=ident, score=score, cosine=score, image_id=i, viewpoint="left")
        for i, (ident, score) in enumerate(ranked)
    ])


# -- split --------------------------------------------------------------------------------------------
def test_natural_order() -> None:
    assert sorted(["s10", "s2", "s1", "a"], key=natural_key) == ["a", "s1", "s2", "s10"]


def test_split_first_half_of_sightings_to_gallery() -> None:
    rows = [row("A", s, k) for s in ("s10", "s2", "s1", "s3", "s4") for k in (0, 1)]  # 5 sightings
    rows += [row("B", "only", 0), row("B", "only", 1, "right")]  # one sighting: gallery only
    rows += [row("C", "x1", 0), row("C", "x2", 0)]
    rows += [row(None, "?", 0)]  # unlabelled: a query
    gallery, queries = split_by_sighting(rows)
    assert {(r.identity, r.sighting) for r in gallery} == {("A", "s1"), ("A", "s2"), ("B", "only"), ("C", "x1")}
    assert {(r.identity, r.sighting) for r in queries} == {("A", "s3"), ("A", "s4"), ("A", "s10"), ("C", "x2"),
                                                           (None, "?")}
    assert len(gallery) + len(queries) == len(rows)
    assert gallery == [r for r in rows if r in gallery]  # input order is kept


def test_split_without_sighting_ids_treats_each_image_as_one() -> None:
    rows = [row("A", None, k) for k in range(4)]
    gallery, queries = split_by_sighting(rows)
    assert len(gallery) == 2 and len(queries) == 2


def test_photos_without_sighting_ids_are_grouped_into_encounters_by_time_and_station() -> None:
    from dataclasses import replace

    def at(identity: str, n: int, when: str | None, station: str | None = "ST1", sighting: str | None = None):
        return replace(row(identity, sighting, n), timestamp=when, station=station)

    rows = [at("A", 0, "2026-05-01T21:00:00"), at("A", 1, "2026-05-01T21:01:00"),
            at("A", 2, "2026-05-01T21:25:00"),  # chained: within 30 min of the previous photo
            at("A", 3, "2026-05-01T22:10:00"),  # a later visit
            at("B", 4, "2026-05-01T21:00:30"),  # another animal, same place and time
            at("A", 5, "2026-05-01T21:00:40", station="ST2"),  # another camera
            at("A", 6, "2026-05-01T18:00:00+03:00"),  # 15:00 UTC, given with an offset
            at("A", 7, None), at("A", 8, "not a time"),  # no usable time: their own encounter
            at("A", 9, "2026-05-01T21:00:10", sighting="given")]  # a sighting id is kept
    out = with_encounters(rows)
    s = [r.sighting for r in out]
    assert s[0] == s[1] == s[2] and len({s[0], s[3], s[4], s[5], s[6]}) == 5
    assert s[7] is None and s[8] is None and s[9] == "given"
    assert [r.path for r in out] == [r.path for r in rows]
    gallery, queries = split_by_sighting(out)
    assert {r.line for r in gallery} >= {2, 3, 4} or {r.line for r in queries} >= {2, 3, 4}  # a burst stays together


def test_split_new_fraction_holds_whole_individuals_out() -> None:
    rows = [row(f"ind{i}", f"s{s}", k) for i in range(10) for s in range(4) for k in range(2)]
    gallery, queries = split_by_sighting(rows, new_fraction=0.2, seed=7)
    in_gallery = {r.identity for r in gallery}
    held_out = {r.identity for r in queries} - in_gallery
    assert len(held_out) == 2 and len(in_gallery) == 8
    assert sum(r.identity in held_out for r in queries) == 16  # all their images are queries
    again, _ = split_by_sighting(rows, new_fraction=0.2, seed=7)
    assert again == gallery  # deterministic by seed
    other, _ = split_by_sighting(rows, new_fraction=0.2, seed=8)
    assert {r.identity for r in other} != in_gallery
    with pytest.raises(ValueError):
        split_by_sighting(rows, new_fraction=1.0)


# -- metrics --------------------------------------------------------------------------------------------
def test_compute_metrics_on_hand_built_results() -> None:
    results = [
        result("q1", [("A", 0.9), ("B", 0.2)], "match"),  # known A, rank 1, right decision
        result("q2", [("C", 0.6), ("B", 0.5), ("D", 0.1), ("E", 0.05), ("F", 0.04)], "review"),  # known B at rank 2
        result("q3", [("A", 0.3)] + [(x, 0.01) for x in "CDEF"], "review"),  # known B, absent from the top 5
        result("q4", [("A", 0.2)], "new"),  # unknown, right decision
        result("q5", [("B", 0.7)], "match"),  # unknown, wrong decision
        Identification(name="q6", decision="error", candidates=[], error="truncated"),  # known A, unreadable
        result("ignored", [("A", 1.0)], "match"),  # not in the truth: ignored
    ]
    truth = {"q1": "A", "q2": "B", "q3": "B", "q4": None, "q5": "Z", "q6": "A"}
    m = compute_metrics(results, truth, gallery_identities={"A", "B", "C", "D", "E", "F"})
    assert m["n_known"] == 4 and m["n_unknown"] == 2 and m["n_queries"] == 6
    assert m["top1"] == 0.25  # q1
    assert m["top5"] == 0.5  # q1, q2
    assert m["mrr"] == pytest.approx((1 + 0.5 + 0 + 0) / 4)
    assert m["decision_accuracy"] == pytest.approx(2 / 6, abs=1e-6)  # q1 match, q4 new
    # rank-1 scores, known 0.9 0.6 0.3 0.0 (error) vs unknown 0.2 0.7:
    # 0.9 beats both, 0.6 and 0.3 beat 0.2, 0.0 beats none -> 4 of 8 pairs
    assert m["new_auroc"] == 0.5
    assert m["decisions"] == {"match": 2, "new": 1, "review": 2, "error": 1}
    assert m["wrong_matches"] == 1  # q5: a newcomer called a known animal


def test_compute_metrics_with_aligned_truth_and_one_class() -> None:
    results = [result("same.jpg", [("A", 0.8)], "match"), result("same.jpg", [("B", 0.8)], "match")]
    m = compute_metrics(results, ["A", "A"])  # a sequence: names may repeat
    assert m["top1"] == 0.5 and m["mrr"] == 0.5 and m["new_auroc"] is None and m["n_unknown"] == 0
    assert m["wrong_matches"] == 1  # the second names B
    with pytest.raises(ValueError):
        compute_metrics(results, ["A"])


def test_auroc_counts_ties_as_half() -> None:
    assert auroc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert auroc([0.1], [0.9]) == 0.0
    assert auroc([0.5, 0.5], [0.5]) == 0.5
    assert auroc([0.5, 0.7], [0.5, 0.1]) == pytest.approx((0.5 + 1 + 1 + 1) / 4)
    assert auroc([], [0.3]) is None


# -- a whole evaluation ------------------------------------------------------------------------------
def test_evaluate_with_a_held_out_individual(leopard_images: LeopardSet, fresh_data_dir: Path,
                                             tmp_path: Path) -> None:
    from reid.identify import open_pipeline
    from reid.labels import read_labels

    gallery = [r for r in read_labels(leopard_images.gallery_csv) if r.identity != "Sary"]
    g_csv = write_labels(tmp_path / "g.csv", gallery)
    pipe = open_pipeline(data_dir=fresh_data_dir, model_path=MODEL)
    m = evaluate(pipe, g_csv, leopard_images.queries_csv, progress=False)
    assert m["n_known"] == 20 and m["n_unknown"] == 4
    assert m["gallery_individuals"] == 5 and m["gallery_images"] == 20
    assert m["top1"] == 1.0
    assert m["new_auroc"] is not None and m["new_auroc"] > 0.5
    assert m["throughput_images_per_s"] > 0 and m["protocol"] == "reid-eval v1"
    assert m["flank_in_gallery"]["n_known"] == 20 and m["flank_in_gallery"]["top1"] == 1.0


def test_known_queries_of_a_flank_the_gallery_lacks_are_reported_apart(leopard_images: LeopardSet,
                                                                       fresh_data_dir: Path, tmp_path: Path) -> None:
    from reid.identify import open_pipeline
    from reid.labels import read_labels

    rows = read_labels(leopard_images.gallery_csv)
    one_sided = rows[0].identity
    gallery = [r for r in rows if not (r.identity == one_sided and r.viewpoint == "left")]
    pipe = open_pipeline(data_dir=fresh_data_dir, model_path=MODEL)
    m = evaluate(pipe, write_labels(tmp_path / "g.csv", gallery), leopard_images.queries_csv, progress=False)
    unseen = sum(r.identity == one_sided and r.viewpoint == "left" for r in read_labels(leopard_images.queries_csv))
    assert unseen > 0 and m["n_known"] == 24
    assert m["flank_in_gallery"]["n_known"] == 24 - unseen
    # the left flank of a right-only individual cannot be named: a miss overall, not in the subset
    assert m["top1"] == pytest.approx((24 - unseen) / 24, abs=1e-6) and m["flank_in_gallery"]["top1"] == 1.0


def test_keypoint_only_ranking_uses_no_embedding(leopard_images: LeopardSet, fresh_data_dir: Path) -> None:
    from reid.cli import RANKINGS
    from reid.identify import open_pipeline

    pipe = open_pipeline(data_dir=fresh_data_dir, model_path=MODEL, **RANKINGS["local"])
    m = evaluate(pipe, leopard_images.gallery_csv, leopard_images.queries_csv, progress=False, ranking="local",
                 cross_fit=True)
    assert m["ranking"] == "local" and m["n_known"] == 24
    assert m["top1"] >= 0.9  # these coats are distinct enough for spots alone
    # without the embedding the verdicts still come out of a keypoint-only calibration
    assert 0.0 <= m["ece"] <= 1.0


def test_fit_calibration_writes_a_loadable_monotone_calibration(leopard_images: LeopardSet, fresh_data_dir: Path,
                                                                tmp_path: Path) -> None:
    from reid.calibrate import Calibrator
    from reid.identify import open_pipeline
    from reid.labels import read_labels

    gallery = [r for r in read_labels(leopard_images.gallery_csv) if r.identity != "Sary"]
    g_csv = write_labels(tmp_path / "g.csv", gallery)
    out = tmp_path / "cal.json"
    pipe = open_pipeline(data_dir=fresh_data_dir, model_path=MODEL)
    m = evaluate(pipe, g_csv, leopard_images.queries_csv, progress=False, fit_out=out)
    cal = Calibrator.load(out)
    assert cal.features == ["cosine", "local"]
    more_spots = cal.predict(np.c_[np.full(20, 0.5), np.linspace(0, 5, 20)])
    higher_cosine = cal.predict(np.c_[np.linspace(-1, 1, 20), np.full(20, 1.0)])
    assert np.all(np.diff(more_spots) >= -1e-12) and np.all(np.diff(higher_cosine) >= -1e-12)  # float noise
    assert "in-sample" in m["calibration"]
    assert m["ece"] == cal.ece  # the reported metrics use the calibration just written
    assert m["top1"] == 1.0 and m["decision_accuracy"] > 0.5

    # a project uses its own calibration through REID_CALIBRATION / Settings.calibration ...
    assert cal.model_id == pipe.model_id
    own = open_pipeline(data_dir=fresh_data_dir, model_path=MODEL, calibration=out)
    assert own.calibrator.fitted_on == cal.fitted_on and own.calibrator.table == cal.table
    own.catalog.close()
    # ... and never with another model, whose scores it does not describe
    other = Path(__file__).resolve().parents[1] / "models" / "rosette-lite0-v1.pt"
    with pytest.raises(ReidError, match="was fitted for model"):
        open_pipeline(data_dir=tmp_path / "other", model_path=other, calibration=out)
    with pytest.raises(ReidError, match="cannot be read"):
        open_pipeline(data_dir=tmp_path / "other", model_path=MODEL, calibration=tmp_path / "missing.json")
