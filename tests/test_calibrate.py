"""Calibration: monotone, in [0, 1], and actually calibrated on data drawn from its own model."""

import numpy as np

from reid.calibrate import Calibrator, expected_calibration_error


def test_fitted_calibration_is_monotone_bounded_and_calibrated(tmp_path):
    rng = np.random.default_rng(0)
    # Few positives among many negatives, as in a gallery search; true P = sigmoid(8x - 5).
    x = rng.uniform(0, 1, size=(4000, 1))
    y = (rng.uniform(size=4000) < 1 / (1 + np.exp(-(8 * x[:, 0] - 5)))).astype(int)
    cal = Calibrator.fit(x, y, ["cosine"], fitted_on="test")
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
    cal = Calibrator.fit(np.c_[misleading, good], y, ["cosine", "local"])
    assert cal.coef[0] == 0.0 and cal.coef[1] > 0
