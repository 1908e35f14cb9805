"""Where the shipped checkpoints are: models/ beside the package in a source checkout, the
`reid_models` package (models/ mapped as package data, pyproject.toml) when installed."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

#: The checkpoint used when models/DEFAULT is missing or empty: the ImageNet baseline.
DEFAULT_MODEL_NAME = "imagenet-lite0.pt"
_CHECKOUT_MODELS = Path(__file__).resolve().parent.parent / "models"


def models_dir() -> Path:
    """The folder holding models/DEFAULT and the checkpoints it names."""
    if (_CHECKOUT_MODELS / "DEFAULT").is_file():  # a source checkout (or an editable install)
        return _CHECKOUT_MODELS
    try:
        installed = resources.files("reid_models")
    except ModuleNotFoundError:
        return _CHECKOUT_MODELS  # neither: paths below it do not exist and loading says so
    return Path(str(installed))


def default_model_path() -> Path:
    """The shipped model: models/DEFAULT (a one-line file naming the checkpoint) or the baseline."""
    root = models_dir()
    pointer = root / "DEFAULT"
    if pointer.is_file():
        name = pointer.read_text().strip()
        if name:
            return root / name
    return root / DEFAULT_MODEL_NAME
