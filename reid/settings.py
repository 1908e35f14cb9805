"""The library's settings, typed, read from REID_* environment variables (pydantic-settings).

Defaults are the embedded setup: a data directory with SQLite + FAISS files and the
shipped model from models/. Thresholds were chosen on data; see README "Verdicts".
Every field is documented in docs/settings.md (tests/test_settings.py checks it). The web
service adds its own part (host, keys, request budgets) in service/settings.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Self

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from reid.errors import ReidError
from reid.models_dir import DEFAULT_MODEL_NAME, default_model_path, models_dir

__all__ = ["DEFAULT_MODEL_NAME", "REPO_MODELS", "Settings", "default_model_path", "setting_error"]

#: The folder of shipped checkpoints: models/ in a checkout, the `reid_models` package when installed.
REPO_MODELS = models_dir()

_FALSE = ("0", "false", "no", "off")
SCENE_CHECK_SCOPES = ("station", "all", "auto")  # Settings.scene_check_scope


def _default_cache_dir() -> Path:
    # read when a Settings is made, not at import: XDG_CACHE_HOME may be set later
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "leopard-reid"


#: While set, Settings read this mapping instead of os.environ (from_env(env), replace()).
_EXPLICIT_ENV: ContextVar[Mapping[str, str] | None] = ContextVar("reid_settings_env", default=None)


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source, reading a given mapping instead of os.environ."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._mapping = env
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {k.lower(): v for k, v in self._mapping.items() if v != ""}


@contextmanager
def _reading(env: Mapping[str, str]) -> Iterator[None]:
    token = _EXPLICIT_ENV.set(env)
    try:
        yield
    finally:
        _EXPLICIT_ENV.reset(token)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="REID_", env_ignore_empty=True, frozen=True, extra="forbid",
        validate_by_name=True, validate_by_alias=True,
    )
    data_dir: Path = Path("reid-data")
    # Derived files shared by every data dir (ONNX exports keyed by checkpoint hash).
    cache_dir: Path = Field(default_factory=_default_cache_dir)
    # None: the data dir's model in force (reid retrain), else default_model_path().
    # A field read from other variables than REID_<FIELD> lists them as aliases (the field's own
    # name stays usable in code; the last alias is the documented name): see env_name.
    model_path: Path | None = Field(None, validation_alias=AliasChoices("model_path", "REID_MODEL"))
    # A calibration file to use (REID_CALIBRATION), e.g. from `reid eval --fit-calibration`.
    # None: the data dir's own (calibration/<model>.json, written by `reid calibrate`) if there
    # is one, else the one shipped beside the model.
    calibration: Path | None = None
    embed_backend: str = "auto"
    embed_batch_size: int = Field(32, ge=1)
    threads: int = Field(0, ge=0)  # 0: torch's default (all cores)
    # Threads extracting and verifying the keypoints of a chunk's photos side by side
    # (reid.keypoints.parallel; 1: one photo at a time; 0: one per core). Results do not depend on it.
    keypoint_threads: int = Field(0, ge=0)
    shortlist_images: int = Field(200, ge=1)  # FAISS neighbours fetched before grouping by individual
    top_k: int = Field(5, ge=1)  # candidates returned per query (EVAL.md asks k >= 5)
    local_matching: bool = True  # keypoint verification of the top individuals (REID_LOCAL_MATCHING=0: off)
    rerank_individuals: int = Field(20, ge=0)  # individuals (best cosine first) verified with keypoints per query
    vote_individuals: int = Field(40, ge=0)  # plus this many chosen by whole-gallery keypoint votes (0: off)
    rerank_images: int = Field(3, ge=0)  # of each, the gallery images (best cosine or most votes first) matched
    # Gallery keypoint descriptors the whole-gallery vote scans per query keypoint once the
    # keypoint index is a FAISS IVF index (reid.keypoints.index.IVF_SCAN, 16 to 128 lists): the
    # largest cost of a season batch. Fewer is faster and finds fewer true neighbours (docs/verdicts.md).
    vote_scan: int = Field(12_000, ge=1)
    local_max_side: int = Field(320, ge=1)  # keypoints are extracted on images resized to this long side
    # keep keypoints inside this share of the crop's inscribed ellipse (0: all)
    keypoint_ellipse: float = Field(0.9, ge=0.0, le=1.0)
    # Whole frames (no box): keep keypoints where an ImageNet CNN's saliency map is at least
    # this share of its maximum, i.e. on the animal, not the ground (reid.keypoints.saliency; 0: off).
    keypoint_saliency: float = Field(0.25, ge=0.0, le=1.0)
    # A photo without a box or a station whose saliency map reaches at least this share of its maximum on all
    # four borders (the animal runs out of the frame on every side) is already a crop of the animal
    # (reid.keypoints.crops.edge_reach; chosen on nyala-dev's gallery split, docs/verdicts.md
    # "2. Crops"); its keypoints are then all kept (no ellipse, no saliency mask) at up to
    # crop_max_side px, and the scene check leaves it alone. 0: never detected (crop=true / --crop
    # still say so).
    crop_detect: float = Field(0.33, ge=0.0, le=1.0)
    crop_max_side: int = Field(320, ge=1)  # keypoints of a crop are extracted at this long side
    # The strongest this many keypoint candidates are checked against the scene: spots that
    # move with the two photos' surroundings (outside the ellipse) are dropped as the place,
    # not the animal (fixed cameras put different animals in front of the same rocks). 0: off.
    # Read from REID_SCENE_CHECK (the name users set) or REID_SCENE_CHECK_CANDIDATES.
    scene_check_candidates: int = Field(5, ge=0, validation_alias=AliasChoices(
        "scene_check_candidates", "REID_SCENE_CHECK_CANDIDATES", "REID_SCENE_CHECK"))
    # Which pairs: "auto" (default) the photos of the query's own camera station when it has
    # one, every pair when it has none (a photo without a station may share its place with any
    # gallery photo: on nyala-dev, which has no stations, 34 wrong `match` instead of 42 and top-1
    # 0.360 instead of 0.350, docs/verdicts.md); "station" only same-station pairs; "all" every
    # pair. A crop is never checked (its "surroundings" are coat: reid.keypoints.crops).
    scene_check_scope: str = "auto"
    # The check only discounts background: a spot whose point lies on the animal in both
    # photos (saliency map at least this share of its maximum, reid.keypoints.saliency) is kept even
    # when it lines up with the place, since a resident animal back on its usual trail does
    # exactly that (docs/verdicts.md). 0: any spot that moves with the place is dropped (the
    # old check, which turned such re-sightings into `new`).
    scene_check_animal: float = 0.5
    # An error-budget verdict policy (`reid fit-verdicts`, reid.open_set; docs/verdicts.md):
    # when set, it decides match / new / review instead of the three thresholds below.
    verdict_policy: Path | None = None
    # Verdicts on calibrated P(same individual): see README "Verdicts".
    match_threshold: float = 0.5
    match_margin: float = 0.15
    new_threshold: float = 0.15
    # Decompression-bomb guards for every image read (CLI, batch, service): pixels per image,
    # and bytes per file before it is even parsed.
    max_pixels: int = Field(100_000_000, gt=0)
    max_file_bytes: int = Field(64 * 1024 * 1024, gt=0)
    # Images per embedding call when identifying or enrolling many (reid identify, batch, enroll).
    chunk_size: int = Field(32, ge=1)
    # Videos: one frame every this many seconds, at most this many frames, and a video counts
    # as this many photos when a batch is planned in chunks.
    video_every_s: float = Field(1.0, gt=0.0)
    video_max_frames: int = Field(30, ge=1)
    video_weight: int = Field(8, ge=1)
    # Decided review items are kept this many days after their decision, then removed (with an
    # audit row) by `reid review archive`; 0 keeps them for ever.
    review_retention_days: int = Field(365, ge=0)

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:  # a typo in the environment or in code: one line naming it
            raise setting_error(type(self), exc) from None

    @field_validator("scene_check_scope")
    @classmethod
    def _scope(cls, v: str) -> str:
        # an unknown scope would otherwise act as "all"
        if v not in SCENE_CHECK_SCOPES:
            raise ValueError(f"must be one of {', '.join(map(repr, SCENE_CHECK_SCOPES))}, not {v!r}")
        return v

    @field_validator("scene_check_animal")
    @classmethod
    def _share(cls, v: float) -> float:
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"must be in [0, 1], not {v!r}")
        return v

    @field_validator("local_matching", mode="before")
    @classmethod
    def _switch(cls, v: object) -> object:
        # as before: anything but 0/false/no/off turns it on
        return v.strip().lower() not in _FALSE if isinstance(v, str) else v

    @property
    def resolved_model_path(self) -> Path:
        """--model / REID_MODEL, else the data dir's model in force (`reid models`), else the shipped one."""
        if self.model_path:
            return Path(self.model_path)
        from reid.model_versions import current_checkpoint

        return current_checkpoint(self.data_dir) or default_model_path()

    @classmethod
    def env_name(cls, field: str) -> str:
        """The environment variable a field is read from (as documented in docs/settings.md)."""
        alias = cls.model_fields[field].validation_alias if field in cls.model_fields else None
        if isinstance(alias, AliasChoices):
            return [a for a in alias.choices if isinstance(a, str) and a.startswith("REID_")][-1]
        return f"REID_{field.upper()}"

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        # code's values win over the environment; no .env or secrets files
        explicit = _EXPLICIT_ENV.get()
        return init_settings, env_settings if explicit is None else _MappingEnvSource(settings_cls, explicit)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Self:
        """REID_DATA_DIR, REID_MODEL, REID_MATCH_THRESHOLD, ... from `env` (default: os.environ);
        explicit overrides (None: not given) win."""
        clean = {k: v for k, v in overrides.items() if v is not None}
        if env is None:
            return cls(**clean)
        with _reading(env):
            return cls(**clean)

    def replace(self, **changes: object) -> Self:
        """A copy with some fields changed, checked like the original (dataclasses.replace's job)."""
        with _reading({}):
            return type(self)(**{**self.model_dump(), **changes})


def setting_error(cls: type[Settings], exc: ValidationError) -> ReidError:
    """A ValidationError as one line naming the variable, e.g. "REID_TOP_K='five' is not valid: ..."."""
    err = exc.errors(include_url=False)[0]
    where = str(err["loc"][0]) if err["loc"] else ""
    var = where.upper() if where.upper().startswith("REID_") else cls.env_name(where)
    if err["type"] == "value_error":  # our own checks: "REID_X must be ..., not 'y'"
        return ReidError(f"{var} {err['ctx']['error']}")
    if err["type"] == "extra_forbidden":
        return ReidError(f"unknown setting {where!r}")
    return ReidError(f"{var}={err['input']!r} is not valid: {err['msg']}")
