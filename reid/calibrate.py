"""Turn raw match scores into calibrated P(same individual), and measure calibration.

A `Calibrator` maps a few score features (global cosine, and keypoint evidence when
available) to a probability. It is fitted on labelled query/candidate pairs and stored as
JSON beside the model checkpoint (`<checkpoint>.calibration.json`). Two kinds; by default
("auto") both are fitted on folds of the data and the lower held-out log-loss wins:

- "grid": a monotone table over the features, fitted by gradient boosting with
  monotone constraints and stored as P at a grid of knots, read by multilinear
  interpolation. It learns how the two kinds of evidence combine (a high cosine matters
  more when some spots verify) while more evidence still never lowers P. On nyala-dev it
  ranked better than the logistic and was better calibrated (ECE 0.01-0.02 vs 0.07),
  cross-fitted by individual (README, "Verdicts and calibration").
- "logistic": a logistic regression with non-negative weights; older calibration files, and
  data too small or too cleanly separated for a table (on the small synthetic splits it
  called more queries right: decision accuracy 0.73 vs 0.55-0.59).
"""

from __future__ import annotations

import itertools
import json
import logging
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from reid.errors import ReidError

log = logging.getLogger(__name__)

KINDS = ("auto", "grid", "logistic")
SELECTION_FOLDS = 5  # "auto": held-out log-loss over this many folds of queries
GRID_KNOTS = 64  # per feature, at quantiles of the fitting data (32 blurred the fit: nyala top-1 -2 points)
# Shallow, regularised and without early stopping (which would hold out a random part):
# deterministic, and smooth enough to sample on a grid.
GRID_BOOSTING = {"max_iter": 200, "learning_rate": 0.1, "max_depth": 3, "l2_regularization": 1.0,
                 "early_stopping": False, "random_state": 0}
GRID_MIN_POSITIVES = 20  # fewer matching pairs than this: a table would be noise; logistic instead


_FILE_NAMES = {"is_uncalibrated": "identity"}  # field -> its key in calibration files
_FIELD_NAMES = {v: k for k, v in _FILE_NAMES.items()}


@dataclass
class Calibrator:
    features: list[str] = field(default_factory=lambda: ["cosine"])
    coef: list[float] = field(default_factory=lambda: [1.0])
    intercept: float = 0.0
    fitted_on: str = ""  # what data, for the model card
    ece: float | None = None
    is_uncalibrated: bool = False  # True: no calibration available; scores are a monotone rescale
    model_id: str = ""  # the model whose scores it maps ("" in files written before it was recorded)
    kind: str = "logistic"  # files written before the grid existed are logistic
    knots: list[list[float]] = field(default_factory=list)  # grid: ascending knots per feature
    table: list[float] = field(default_factory=list)  # grid: P at every knot combination (C order)

    @classmethod
    def from_dict(cls, d: dict) -> Calibrator:
        """A calibration from its file's (or a checkpoint's) fields, by their names in files."""
        return cls(**{_FIELD_NAMES.get(k, k): v for k, v in d.items()})

    @classmethod
    def uncalibrated(cls) -> Calibrator:
        """Fallback when a model ships no calibration: maps cosine [-1, 1] to [0, 1] linearly."""
        return cls(is_uncalibrated=True, fitted_on="none: uncalibrated (cosine rescaled to [0, 1])")

    def predict(self, x: np.ndarray) -> np.ndarray:
        """x: (n, len(features)) -> probabilities (n,) in [0, 1]; monotone in each feature with coef > 0."""
        x = np.atleast_2d(np.asarray(x, np.float64))
        if self.is_uncalibrated:
            return np.clip((x[:, 0] + 1.0) / 2.0, 0.0, 1.0)
        if self.kind == "grid":
            return np.clip(self._interpolate(x), 0.0, 1.0)
        z = x @ np.asarray(self.coef, np.float64) + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))

    def _interpolate(self, x: np.ndarray) -> np.ndarray:
        """Multilinear interpolation in the table; outside the knots the edge value holds.

        A table that rises along each axis stays monotone between knots, so the
        monotonicity the fit guarantees holds for every input."""
        knots = [np.asarray(k, np.float64) for k in self.knots]
        table = np.asarray(self.table, np.float64).reshape([len(k) for k in knots])
        n = len(x)
        lower, frac = [], []
        for j, k in enumerate(knots):
            if len(k) == 1:  # a feature that never varied in the fitting data
                lower.append(np.zeros(n, int))
                frac.append(np.zeros(n))
                continue
            v = np.clip(x[:, j], k[0], k[-1])
            i = np.clip(np.searchsorted(k, v, side="right") - 1, 0, len(k) - 2)
            lower.append(i)
            frac.append((v - k[i]) / (k[i + 1] - k[i]))
        out = np.zeros(n)
        for corner in itertools.product((0, 1), repeat=len(knots)):
            if any(c and len(k) == 1 for c, k in zip(corner, knots, strict=True)):
                continue
            weight = np.ones(n)
            for c, f in zip(corner, frac, strict=True):
                weight = weight * (f if c else 1.0 - f)
            out += weight * table[tuple(i + c for i, c in zip(lower, corner, strict=True))]
        return out

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, features: list[str], fitted_on: str = "",
            kind: str = "auto", groups: np.ndarray | None = None) -> Calibrator:
        """Fit on labelled pairs: x (n, len(features)), y 1 where the candidate is the query's individual.

        kind "auto" fits both kinds on folds of the data and keeps the one with the lower
        held-out log-loss: the grid where there is enough data to shape it (nyala-dev), the
        logistic where there is not or the classes nearly separate (small synthetic splits,
        where a table was worse). groups: the query of each pair, so that one query's
        candidates never sit on both sides of a fold.
        """
        if kind not in KINDS:
            raise ReidError(f"unknown calibration kind {kind!r} (choose from {', '.join(KINDS)})")
        x = np.atleast_2d(np.asarray(x, np.float64))
        y = np.asarray(y, int)
        if len(np.unique(y)) < 2:
            raise ReidError("calibration needs both matching and non-matching candidate pairs "
                            "(too few labelled queries, or every candidate is right or every one wrong)")
        if kind == "auto":
            kind, losses = cls._select_kind(x, y, features, groups)
            fitted_on = f"{fitted_on} (kind chosen by held-out log-loss: {losses})".strip()
        if kind == "grid":
            if int(y.sum()) >= GRID_MIN_POSITIVES:
                return cls._fit_grid(x, y, features, fitted_on)
            log.info("only %d matching pairs (< %d): logistic calibration instead of a grid",
                     int(y.sum()), GRID_MIN_POSITIVES)
            fitted_on = f"{fitted_on} (logistic: only {int(y.sum())} matching pairs, too few for a grid)".strip()
        return cls._fit_logistic(x, y, features, fitted_on)

    @classmethod
    def _select_kind(cls, x: np.ndarray, y: np.ndarray, features: list[str],
                     groups: np.ndarray | None) -> tuple[str, str]:
        from sklearn.model_selection import GroupKFold

        groups = np.arange(len(y)) if groups is None else np.asarray(groups)
        if int(y.sum()) < GRID_MIN_POSITIVES or len(np.unique(groups)) < SELECTION_FOLDS:
            return "logistic", f"not compared, only {int(y.sum())} matching pairs"
        losses = {}
        for kind in ("grid", "logistic"):
            total = 0.0
            for train, test in GroupKFold(SELECTION_FOLDS).split(x, y, groups):
                try:
                    cal = cls.fit(x[train], y[train], features, kind=kind)
                except ReidError:  # a fold with one class only
                    total = float("inf")
                    break
                p = np.clip(cal.predict(x[test]), 1e-6, 1 - 1e-6)
                total -= float(np.sum(y[test] * np.log(p) + (1 - y[test]) * np.log(1 - p)))
            losses[kind] = total / len(y)
        chosen = min(losses, key=lambda k: (losses[k], k != "logistic"))  # a tie goes to the simpler one
        return chosen, ", ".join(f"{k} {v:.4f}" for k, v in losses.items())

    @classmethod
    def _fit_grid(cls, x: np.ndarray, y: np.ndarray, features: list[str], fitted_on: str) -> Calibrator:
        from sklearn.ensemble import HistGradientBoostingClassifier

        model = HistGradientBoostingClassifier(monotonic_cst=[1] * x.shape[1], **GRID_BOOSTING).fit(x, y)
        knots = [np.unique(np.quantile(x[:, j], np.linspace(0.0, 1.0, GRID_KNOTS)).round(6))
                 for j in range(x.shape[1])]
        mesh = np.stack(np.meshgrid(*knots, indexing="ij"), axis=-1).reshape(-1, x.shape[1])
        table = model.predict_proba(mesh)[:, 1]
        return cls(features=list(features), coef=[], intercept=0.0, fitted_on=fitted_on, kind="grid",
                   knots=[k.tolist() for k in knots], table=table.round(6).tolist())

    @classmethod
    def _fit_logistic(cls, x: np.ndarray, y: np.ndarray, features: list[str], fitted_on: str) -> Calibrator:
        from sklearn.linear_model import LogisticRegression

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
        return cls(features=list(features), coef=coef, intercept=float(lr.intercept_[0]), fitted_on=fitted_on,
                   kind="logistic")

    def to_json(self) -> str:
        # the file keeps its first name for the flag ("identity"): files stay readable both ways
        return json.dumps({_FILE_NAMES.get(k, k): v for k, v in asdict(self).items()}, indent=2)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(self.to_json())
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Calibrator:
        """Read a calibration file; ValueError if it does not describe a usable calibration.

        A calibration is never used half-broken: finite numbers, known features, monotone
        (non-negative weights, tables that never fall), the fields its kind needs."""
        d = json.loads(Path(path).read_text())
        if not isinstance(d, dict):
            raise ValueError("not a calibration (a JSON object is expected)")
        if "features" not in d:
            raise ValueError("not a calibration: it names no features")
        cal = cls.from_dict({k: v for k, v in d.items() if _FIELD_NAMES.get(k, k) in cls.__dataclass_fields__})
        cal.validate()
        if cal.kind == "logistic" and not cal.is_uncalibrated and "coef" not in d:
            raise ValueError("logistic calibration without coefficients")
        return cal

    def validate(self) -> None:
        """ValueError naming the first thing that makes this calibration unusable."""
        if self.kind not in ("grid", "logistic"):
            raise ValueError(f"unknown calibration kind {self.kind!r}")
        if not isinstance(self.features, list) or not self.features:
            raise ValueError("features must be a non-empty list")
        unknown = [f for f in self.features if f not in FEATURES]
        if unknown or len(set(self.features)) != len(self.features):
            raise ValueError(f"features {self.features!r}: each must be one of {', '.join(FEATURES)}, once")
        if not isinstance(self.model_id, str):
            raise ValueError("model_id must be text")
        if self.is_uncalibrated:
            return
        if self.kind == "logistic":
            coef = _finite_numbers(self.coef, "coef")
            _finite_numbers([self.intercept], "intercept")
            if len(coef) != len(self.features):
                raise ValueError("logistic calibration: one coefficient per feature expected")
            if (coef < 0).any():
                raise ValueError("logistic calibration: a negative coefficient (more evidence must never lower P)")
            return
        if not isinstance(self.knots, list) or len(self.knots) != len(self.features):
            raise ValueError("grid calibration: knots, features and table sizes disagree")
        knots = [_finite_numbers(k, "knots") for k in self.knots]
        shape = [len(k) for k in knots]
        if not all(shape) or len(self.table if isinstance(self.table, list) else []) != int(np.prod(shape)):
            raise ValueError("grid calibration: knots, features and table sizes disagree")
        if any((np.diff(k) <= 0).any() for k in knots):
            raise ValueError("grid calibration: knots must rise strictly")
        table = _finite_numbers(self.table, "table").reshape(shape)
        if (table < 0).any() or (table > 1).any():
            raise ValueError("grid calibration: probabilities outside [0, 1]")
        for axis in range(table.ndim):
            if (np.diff(table, axis=axis) < -1e-6).any():
                raise ValueError(f"grid calibration: P falls as {self.features[axis]} rises (not monotone)")


#: The score features a calibration may use (reid.stages.shortlist.Evidence.features).
FEATURES = ("cosine", "local", "inliers")


def _finite_numbers(values: object, what: str) -> np.ndarray:
    if not isinstance(values, list | tuple) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{what}: numbers expected")
    arr = np.asarray(values, np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{what}: NaN or infinite values")
    return arr


def calibration_path(checkpoint_path: Path) -> Path:
    """The calibration shipped beside a model checkpoint."""
    return checkpoint_path.with_name(checkpoint_path.name + ".calibration.json")


def project_calibration_path(data_dir: Path, model_id: str) -> Path:
    """A project's own calibration for one model (written by `reid calibrate`), in its data dir."""
    return Path(data_dir) / "calibration" / (re.sub(r"[^A-Za-z0-9_.@-]", "_", model_id) + ".json")


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
