"""Stage 5, calibrate: evidence -> P(same individual), with the calibration this data dir uses.

Which calibration: first found of REID_CALIBRATION, the data dir's own (`reid calibrate`), the
model's shipped one; the fitting itself is reid.calibrate.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from reid.calibrate import Calibrator, calibration_path, project_calibration_path
from reid.errors import ReidError
from reid.model import Checkpoint
from reid.settings import Settings
from reid.stages.shortlist import Evidence

log = logging.getLogger(__name__)


def load_calibrator(settings: Settings, data_dir: Path, checkpoint: Checkpoint, *,
                    strict: bool) -> tuple[Calibrator, str]:
    """(the calibration in use, where it came from: file | project | shipped | none).

    One that cannot be used (unreadable, NaN, unknown feature, not monotone, another model's)
    is never used half-broken: `strict` (the CLI) refuses it with one line; otherwise (the
    service) a warning, and the shipped one is used instead."""
    model_id = checkpoint.model_id
    candidates: list[tuple[str, Path]] = []
    if settings.calibration is not None:
        candidates.append(("file", Path(settings.calibration)))
    own = project_calibration_path(data_dir, model_id)
    if settings.calibration is None and own.is_file():  # promoted by `reid calibrate`
        candidates.append(("project", own))
    for source, path in candidates:
        try:
            cal = Calibrator.load(path)
            if cal.model_id and cal.model_id != model_id:
                # another model's cosines mean something else: its probabilities would be wrong
                raise ValueError(f"it was fitted for model {cal.model_id}, not {model_id}")
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            if strict:
                raise ReidError(f"calibration {path} cannot be read (or used): {exc}") from None
            log.warning("calibration %s cannot be used (%s); using the model's shipped calibration", path, exc)
            continue
        return cal, source
    if checkpoint.path is not None:
        side = calibration_path(checkpoint.path)
        if side.is_file():
            try:
                return Calibrator.load(side), "shipped"
            except (OSError, ValueError, TypeError, AttributeError) as exc:
                raise ReidError(f"the model's shipped calibration {side} cannot be used: {exc}") from None
    if "calibration" in checkpoint.meta:
        return Calibrator.from_dict(checkpoint.meta["calibration"]), "shipped"
    log.warning("model %s ships no calibration: scores are rescaled cosines, not probabilities", model_id)
    return Calibrator.uncalibrated(), "none"


def calibrate(calibrator: Calibrator, evidence: Sequence[Evidence]) -> np.ndarray:
    """P(the query shows this individual) for each piece of evidence."""
    names = calibrator.features
    return calibrator.predict(np.asarray([e.features(names) for e in evidence])) if evidence else np.zeros(0)
