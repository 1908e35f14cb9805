"""Calibration: monotone, in [0, 1], and actually calibrated on data drawn from its own model."""

import json

import numpy as np

from reid.calibrate import Calibrator, expected_calibration_error


def test_fitted_calibration_is_monotone_bounded_and_calibrated(tmp_path):
    rng = np.random.default_rng(0)
    # Few positives among many negatives, as in a gallery search; true P = sigmoid(8x - 5).
    x = rng.uniform(0, 1, size=(4000, 1))
    y = (rng.uniform(size=4000) < 1 / (1 + np.exp(-(8 * x[:, 0] - 5)))).astype(int)
    cal = Calibrator.fit(x, y, ["cosine"], fitted_on="test", kind="logistic")
    grid = np.linspace(-1, 2, 50)[:, None]
    p = cal.predict(grid)
    assert np.all((p >= 0) & (p <= 1)) and np.all(np.diff(p) > 0)
    assert expected_calibration_error(cal.predict(x), y) < 0.03
    again = Calibrator.load(cal.save(tmp_path / "c.json"))
    assert np.allclose(again.predict(grid), p)


def test_ece_of_perfect_and_overconfident_scores():
    labels = np.array([1, 0, 1, 0])
    assert expected_calibration_error(np.array([1.0, 0.0, 1.0, 0.0]), labels) == 0.0
    assert abs(expected_calibration_error(np.array([0.9, 0.9, 0.9, 0.9]), labels) - 0.4) < 1e-9


def test_uncalibrated_fallback_is_a_rescale():
    cal = Calibrator.uncalibrated()
    assert np.allclose(cal.predict(np.array([[-1.0], [0.0], [1.0]])), [0.0, 0.5, 1.0])


def test_a_negative_coefficient_is_dropped_so_probability_stays_monotone():
    rng = np.random.default_rng(1)
    good = rng.uniform(0, 1, 3000)
    y = (rng.uniform(size=3000) < good**3).astype(int)
    misleading = rng.uniform(0, 1, 3000) - 0.5 * y  # lower for true pairs: would get a negative weight
    cal = Calibrator.fit(np.c_[misleading, good], y, ["cosine", "local"], kind="logistic")
    assert cal.coef[0] == 0.0 and cal.coef[1] > 0


def _and_pairs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs that match mostly when BOTH scores are high (a high cosine with no verified spots
    is weak, as on real photos): an interaction a weighted sum cannot express."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, size=(n, 2))
    p = 0.02 + 0.9 * ((x[:, 0] > 0.5) & (x[:, 1] > 0.5))
    return x, (rng.uniform(size=n) < p).astype(int), p


def test_grid_calibration_is_monotone_bounded_and_learns_how_evidence_combines(tmp_path):
    x, y, _ = _and_pairs(8000, 0)
    grid = Calibrator.fit(x, y, ["cosine", "local"], fitted_on="test")
    logistic = Calibrator.fit(x, y, ["cosine", "local"], kind="logistic")
    assert grid.kind == "grid" and len(grid.table) == np.prod([len(k) for k in grid.knots])
    # monotone along each feature everywhere, including beyond the fitted range, and in [0, 1]
    axis = np.linspace(-0.5, 1.5, 41)
    a, b = np.meshgrid(axis, axis, indexing="ij")
    p = grid.predict(np.c_[a.ravel(), b.ravel()]).reshape(a.shape)
    assert np.all((p >= 0) & (p <= 1))
    assert np.all(np.diff(p, axis=0) >= -1e-12) and np.all(np.diff(p, axis=1) >= -1e-12)
    # on fresh pairs from the same process, closer to the true probability than the logistic
    xt, yt, pt = _and_pairs(8000, 1)
    err_grid = np.abs(grid.predict(xt) - pt).mean()
    err_logistic = np.abs(logistic.predict(xt) - pt).mean()
    assert err_grid < 0.5 * err_logistic, (err_grid, err_logistic)
    assert expected_calibration_error(grid.predict(xt), yt) < 0.03
    again = Calibrator.load(grid.save(tmp_path / "g.json"))
    assert again.kind == "grid" and np.allclose(again.predict(xt), grid.predict(xt))


def test_grid_with_too_few_matching_pairs_falls_back_to_logistic_and_says_so():
    x, y, _ = _and_pairs(400, 2)
    y[np.flatnonzero(y)[10:]] = 0  # 10 matching pairs
    cal = Calibrator.fit(x, y, ["cosine", "local"], fitted_on="tiny", kind="grid")
    assert cal.kind == "logistic" and "too few for a grid" in cal.fitted_on


def test_a_calibration_file_from_before_the_grid_still_loads_as_logistic(tmp_path):
    path = tmp_path / "old.json"
    path.write_text('{"features": ["cosine", "local"], "coef": [5.0, 7.0], "intercept": -13.9, '
                    '"fitted_on": "old", "ece": 0.001, "identity": false}')
    cal = Calibrator.load(path)
    assert cal.kind == "logistic"
    assert np.allclose(cal.predict(np.array([[1.0, 1.0]])), 1 / (1 + np.exp(-(5.0 + 7.0 - 13.9))))


def test_candidates_with_equal_probability_are_ordered_by_their_evidence_not_float_noise():
    from reid.identify import rank_order

    # a flat stretch of a grid calibration: the same P up to interpolation noise
    probs = np.array([0.0002, 0.0002 + 1e-18, 0.0002 - 1e-18, 0.9])
    local = [0.0, 0.0, 2.0, 30.0]
    cosine = [0.9, 0.4, 0.1, 0.5]
    assert rank_order(probs, local, cosine).tolist() == [3, 2, 0, 1]


def test_auto_keeps_the_grid_where_evidence_combines_and_the_logistic_where_a_sum_suffices():
    x, y, _ = _and_pairs(6000, 3)
    groups = np.arange(len(y)) // 10  # ten candidates per query
    assert Calibrator.fit(x, y, ["cosine", "local"], groups=groups).kind == "grid"
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 1, size=(6000, 2))
    y = (rng.uniform(size=6000) < 1 / (1 + np.exp(-(6 * x[:, 0] + 6 * x[:, 1] - 9)))).astype(int)
    auto = Calibrator.fit(x, y, ["cosine", "local"], groups=groups)
    assert auto.kind == "logistic" and "held-out log-loss" in auto.fitted_on


def test_a_damaged_calibration_file_is_refused_with_its_reason(tmp_path):
    import pytest

    x, y, _ = _and_pairs(4000, 5)
    good = Calibrator.fit(x, y, ["cosine", "local"], kind="grid")
    for damage, reason in [({"table": good.table[:-3]}, "sizes disagree"), ({"kind": "tree"}, "unknown calibration kind"),
                           ({"kind": "logistic", "coef": [1.0]}, "one coefficient per feature")]:
        path = tmp_path / "bad.json"
        path.write_text(json.dumps({**json.loads(good.to_json()), **damage}))
        with pytest.raises(ValueError, match=reason):
            Calibrator.load(path)
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        Calibrator.load(path)


def test_the_uncalibrated_flag_keeps_its_file_name(tmp_path) -> None:
    """Calibrator.is_uncalibrated is "identity" in files: old and new files read both ways."""
    cal = Calibrator.uncalibrated()
    assert json.loads(cal.to_json())["identity"] is True and "is_uncalibrated" not in cal.to_json()
    path = cal.save(tmp_path / "u.json")
    assert Calibrator.load(path).is_uncalibrated and Calibrator.from_dict(json.loads(cal.to_json())) == cal
