"""Turn raw match scores into calibrated P(same individual), and measure calibration.

A `Calibrator` is a logistic regression on a few score features (global cosine, and
keypoint evidence when available), fitted on labelled query/candidate pairs and
stored as JSON beside the model checkpoint (`<checkpoint>.calibration.json`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from reid.errors import ReidError


@dataclass
class Calibrator:
    features: list[str] = field(default_factory=lambda: ["cosine"])
    coef: list[float] = field(default_factory=lambda: [1.0])
    intercept: float = 0.0
    fitted_on: str = ""  # what data, for the model card
    ece: float | None = None
    identity: bool = False  # True: no calibration available; scores are a monotone rescale

    @classmethod
    def uncalibrated(cls) -> Calibrator:
        """Fallback when a model ships no calibration: maps cosine [-1, 1] to [0, 1] linearly."""
        return cls(identity=True, fitted_on="none: uncalibrated (cosine rescaled to [0, 1])")

    def predict(self, x: np.ndarray) -> np.ndarray:
        """x: (n, len(features)) -> probabilities (n,) in [0, 1]; monotone in each feature with coef > 0."""
        x = np.atleast_2d(np.asarray(x, np.float64))
        if self.identity:
            return np.clip((x[:, 0] + 1.0) / 2.0, 0.0, 1.0)
        z = x @ np.asarray(self.coef, np.float64) + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, features: list[str], fitted_on: str = "") -> Calibrator:
        from sklearn.linear_model import LogisticRegression

        x = np.atleast_2d(np.asarray(x, np.float64))
        y = np.asarray(y, int)
        if len(np.unique(y)) < 2:
            raise ReidError("calibration needs both matching and non-matching candidate pairs "
                            "(too few labelled queries, or every candidate is right or every one wrong)")
        # No class re-weighting: the share of true pairs is part of what a probability must
        # reflect (balanced weights made scores read as 50/50 odds: ECE 0.47 on nyala).
        # More evidence must never lower P: a feature whose coefficient comes out negative
        # (collinear features, or a model that is near chance on the data) is dropped and
        # the fit repeated; a dropped feature keeps coefficient 0.
        keep = list(range(x.shape[1]))
        while True:
            lr = LogisticRegression(C=10.0, max_iter=1000).fit(x[:, keep], y)
            coefs = lr.coef_[0]
            if (coefs >= 0).all() or len(keep) == 1:
                break
            keep.pop(int(np.argmin(coefs)))
        coef = [0.0] * x.shape[1]
        for i, c in zip(keep, coefs, strict=True):
            coef[i] = max(0.0, float(c))
        return cls(features=features, coef=coef, intercept=float(lr.intercept_[0]), fitted_on=fitted_on)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(self.to_json())
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Calibrator:
        d = json.loads(Path(path).read_text())
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def calibration_path(checkpoint_path: Path) -> Path:
    return checkpoint_path.with_name(checkpoint_path.name + ".calibration.json")


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """ECE with equal-width bins: sum over bins of |accuracy - confidence| weighted by bin share."""
    probs = np.asarray(probs, np.float64)
    labels = np.asarray(labels, np.float64)
    if len(probs) == 0:
        return 0.0
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(probs, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            ece += m.mean() * abs(labels[m].mean() - probs[m].mean())
    return float(ece)
