"""Which flank a crop shows: a small left/right classifier on the model's own embeddings.

A lateral photo of a left flank shows the animal facing left (head on the image's left), a
right flank the mirror of that. The classifier is a logistic regression on the difference
between the embedding of a crop and the embedding of its mirror image, so mirroring a crop
flips the answer exactly (f(mirror(x)) = -f(x)) and the training set doubles for free: each
labelled crop and its mirror (with the other label). It is trained on synthetic renders
(reid.training.synth, both flanks of procedural leopards, day and night) and on the catalogue's
confirmed photos with a known flank (up to MAX_CONFIRMED of them). It never sees nyala-dev, which only
measures it (docs/seasons.md).

Below `min_confidence` the flank is "unknown": identification then compares the crop with both
flanks, which costs a little precision but never filters the right animal out.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from reid.fileio import atomic_write_text

log = logging.getLogger(__name__)

MIN_CONFIDENCE = 0.9  # P(flank) below this: "unknown"
SYNTH_INDIVIDUALS = 24  # training individuals (seeds from SYNTH_FIRST): 2 renders per flank each
SYNTH_FIRST = 900_000  # far from evaluation (0..9999) and training seeds
SYNTH_SIZE = (224, 160)
MAX_CONFIRMED = 300  # catalogue photos with a known flank added to the training set
VERSION = 1


def mirrored(crops: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [np.ascontiguousarray(c[:, ::-1]) for c in crops]


def flank_features(embed, crops: Sequence[np.ndarray]) -> np.ndarray:
    """embedding(crop) - embedding(mirror(crop)): antisymmetric under mirroring."""
    if not crops:
        return np.zeros((0, 0), np.float32)
    both = embed([*crops, *mirrored(crops)])
    return (both[: len(crops)] - both[len(crops):]).astype(np.float32)


@dataclass
class FlankClassifier:
    coef: list[float]
    intercept: float
    model_id: str
    fitted_on: str
    min_confidence: float = MIN_CONFIDENCE
    version: int = VERSION

    def p_left(self, features: np.ndarray) -> np.ndarray:
        if len(features) == 0:
            return np.zeros(0)
        z = np.asarray(features, np.float64) @ np.asarray(self.coef, np.float64) + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))

    def estimate(self, features: np.ndarray) -> list[tuple[str, float]]:
        """(flank, P(that flank)) per crop; "unknown" (with P(left)) below min_confidence."""
        out = []
        for p in self.p_left(features).tolist():
            if p >= self.min_confidence:
                out.append(("left", round(p, 4)))
            elif 1 - p >= self.min_confidence:
                out.append(("right", round(1 - p, 4)))
            else:
                out.append(("unknown", round(max(p, 1 - p), 4)))
        return out

    @classmethod
    def fit(cls, features: np.ndarray, labels: Sequence[str], *, model_id: str, fitted_on: str) -> FlankClassifier:
        """Logistic regression (no intercept: mirroring makes the problem symmetric about 0) on
        the features and their negations (the mirrored crops, other label)."""
        from sklearn.linear_model import LogisticRegression

        y = np.array([1 if lab == "left" else 0 for lab in labels])
        x = np.concatenate([features, -features])
        y = np.concatenate([y, 1 - y])
        clf = LogisticRegression(C=1.0, fit_intercept=False, max_iter=2000)
        clf.fit(x, y)
        return cls(coef=[float(v) for v in clf.coef_[0]], intercept=0.0, model_id=model_id, fitted_on=fitted_on)

    def save(self, path: Path) -> None:
        atomic_write_text(path, json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: Path) -> FlankClassifier:
        return cls(**json.loads(path.read_text()))


def synthetic_crops(individuals: int = SYNTH_INDIVIDUALS, *, first: int = SYNTH_FIRST,
                    seed: int = 0) -> tuple[list[np.ndarray], list[str]]:
    """Two renders per flank of each synthetic individual (day and night), labelled by flank."""
    from reid.training.synth import RenderConfig, render

    cfg = RenderConfig(size=SYNTH_SIZE, night_prob=0.3, hard=True)
    crops, labels = [], []
    for i in range(individuals):
        rng = np.random.default_rng([seed, first + i])
        for side in ("left", "right"):
            for _ in range(2):
                crops.append(render(first + i, side, rng, cfg))
                labels.append(side)
    return crops, labels


def classifier_path(cache_dir: Path, model_id: str, confirmed_key: str = "") -> Path:
    suffix = f"-{confirmed_key[:16]}" if confirmed_key else ""
    return Path(cache_dir) / "flank" / f"{model_id}-v{VERSION}{suffix}.json"


def load_or_fit(embed, model_id: str, cache_dir: Path, *, min_confidence: float = MIN_CONFIDENCE,
                confirmed: Callable[[], tuple[list[np.ndarray], list[str]]] | None = None,
                confirmed_key: str = "") -> FlankClassifier:
    """The flank classifier for this model: cached beside the ONNX exports, fitted on first use
    on ~100 synthetic renders and their mirrors, plus `confirmed()` (crops, flanks) of
    catalogue photos whose flank a person gave (identified by `confirmed_key`; a changed
    catalogue gets a new fit). On nyala-dev, confirmed photos of other individuals raised the
    held-out accuracy from 0.78 to 0.98 (docs/seasons.md)."""
    path = classifier_path(cache_dir, model_id, confirmed_key if confirmed is not None else "")
    if path.is_file():
        try:
            clf = FlankClassifier.load(path)
            if clf.model_id == model_id and clf.version == VERSION:
                clf.min_confidence = min_confidence
                return clf
        except (OSError, ValueError, TypeError):
            log.warning("flank classifier %s unreadable; fitting it again", path)
    log.info("fitting the flank classifier for model %s on synthetic renders (once)", model_id)
    crops, labels = synthetic_crops()
    fitted_on = f"{len(crops)} synthetic renders (reid.synth seeds {SYNTH_FIRST}+)"
    if confirmed is not None:
        more, more_labels = confirmed()
        crops, labels = [*crops, *more], [*labels, *more_labels]
        fitted_on += f" + {len(more)} confirmed catalogue photos"
    clf = FlankClassifier.fit(flank_features(embed, crops), labels, model_id=model_id,
                              fitted_on=f"{fitted_on}, and their mirrors")
    clf.min_confidence = min_confidence
    try:
        clf.save(path)
    except OSError as exc:
        log.warning("flank classifier not cached: %s", exc)
    return clf


__all__ = ["FlankClassifier", "MIN_CONFIDENCE", "flank_features", "load_or_fit", "mirrored", "synthetic_crops"]
