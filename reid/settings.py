"""All tunable settings in one place, read from REID_* environment variables.

Defaults are the embedded setup: a data directory with SQLite + FAISS files and the
shipped model from models/. Thresholds were chosen on data; see README "Verdicts".
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path

from reid.errors import ReidError

REPO_MODELS = Path(__file__).resolve().parent.parent / "models"
DEFAULT_MODEL_NAME = "imagenet-lite0.pt"


def default_model_path() -> Path:
    """The shipped model: models/DEFAULT (a one-line file naming the checkpoint) or the baseline."""
    pointer = REPO_MODELS / "DEFAULT"
    if pointer.is_file():
        name = pointer.read_text().strip()
        if name:
            return REPO_MODELS / name
    return REPO_MODELS / DEFAULT_MODEL_NAME


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("reid-data")
    # Derived files shared by every data dir (ONNX exports keyed by checkpoint hash).
    cache_dir: Path = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "leopard-reid"
    model_path: Path | None = None  # None: the data dir's model in force (reid retrain), else default_model_path()
    # A calibration file to use (REID_CALIBRATION), e.g. from `reid eval --fit-calibration`.
    # None: the data dir's own (calibration/<model>.json, written by `reid calibrate`) if there
    # is one, else the one shipped beside the model.
    calibration: Path | None = None
    embed_backend: str = "auto"
    embed_batch_size: int = 32
    threads: int = 0  # 0: torch's default (all cores)
    shortlist_images: int = 200  # FAISS neighbours fetched before grouping by individual
    top_k: int = 5  # candidates returned per query (EVAL.md asks k >= 5)
    local_matching: bool = True  # keypoint verification of the top individuals (REID_LOCAL_MATCHING=0: off)
    rerank_individuals: int = 20  # individuals (best cosine first) verified with keypoints per query
    vote_individuals: int = 40  # plus this many chosen by whole-gallery keypoint votes (0: off)
    rerank_images: int = 3  # of each, the gallery images (best cosine or most votes first) matched
    local_max_side: int = 320  # keypoints are extracted on images resized to this long side
    keypoint_ellipse: float = 0.9  # keep keypoints inside this share of the crop's inscribed ellipse (0: all)
    # Whole frames (no box): keep keypoints where an ImageNet CNN's saliency map is at least
    # this share of its maximum, i.e. on the animal, not the ground (reid.saliency; 0: off).
    keypoint_saliency: float = 0.25
    # The strongest this many keypoint candidates are checked against the scene: spots that
    # move with the two photos' surroundings (outside the ellipse) are dropped as the place,
    # not the animal (fixed cameras put different animals in front of the same rocks). 0: off.
    scene_check: int = 5
    # Which pairs: "station" (default) only photos from the same camera station, where the
    # place is known to be shared; "all" every pair (whole frames without station ids, such as
    # nyala-dev). Where nothing inside the ellipse changed (a re-cropped copy, a resting animal)
    # the spots are kept; a coat filling the crop, whose "surroundings" are coat, would still
    # lose its true spots: README "Accuracy".
    scene_check_scope: str = "station"
    # The check only discounts background: a spot whose point lies on the animal in both
    # photos (saliency map at least this share of its maximum, reid.saliency) is kept even
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
    max_upload_bytes: int = 40 * 1024 * 1024
    max_pixels: int = 100_000_000
    host: str = "127.0.0.1"
    port: int = 8000
    # A single admin key for scripts ('Authorization: Bearer <token>'); `reid keys add` makes
    # named keys with roles. When either exists, every route that holds data needs a key.
    api_token: str | None = None
    # The lowest role that sees coordinates, exact station positions, source paths and GPS EXIF
    # (viewer, reviewer or admin): one rule for JSON, pages, reports, exports and image files.
    location_role: str = "reviewer"
    # Host names the service answers to (REID_ALLOWED_HOSTS, comma separated, e.g.
    # "reid.example.org,192.168.1.20:8000"); loopback names are always allowed. Any other Host
    # header is refused: a DNS-rebinding page cannot read a laptop's service.
    allowed_hosts: tuple[str, ...] = ()
    # Decoded pixels one request may cost, summed over all its images (JPEGs are decoded at a
    # reduced size where the pipeline does not need more), and what all requests in flight
    # together may hold before new ones get 503 + Retry-After instead of the machine swapping.
    max_request_pixels: int = 150_000_000
    max_inflight_pixels: int = 400_000_000
    # Decided review items are kept this many days after their decision, then removed (with an
    # audit row) by `reid review archive`; 0 keeps them for ever.
    review_retention_days: int = 365
    allowed_roots: tuple[Path, ...] = ()  # folders the service may read for server-side batch jobs

    def __post_init__(self) -> None:
        # checked here, not only when read from the environment: a value set in code is as
        # likely to be misspelt, and an unknown scope would otherwise act as "all"
        if self.scene_check_scope not in ("station", "all"):
            raise ReidError(f"REID_SCENE_CHECK_SCOPE must be 'station' or 'all', not {self.scene_check_scope!r}")
        if self.location_role not in ("viewer", "reviewer", "admin"):
            raise ReidError(f"REID_LOCATION_ROLE must be viewer, reviewer or admin, not {self.location_role!r}")
        if not 0.0 <= self.scene_check_animal <= 1.0:
            raise ReidError(f"REID_SCENE_CHECK_ANIMAL must be in [0, 1], not {self.scene_check_animal!r}")

    @property
    def resolved_model_path(self) -> Path:
        """--model / REID_MODEL, else the data dir's model in force (`reid models`), else the shipped one."""
        if self.model_path:
            return Path(self.model_path)
        from reid.model_versions import current_checkpoint

        return current_checkpoint(self.data_dir) or default_model_path()

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: object) -> Settings:
        """REID_DATA_DIR, REID_MODEL, REID_MATCH_THRESHOLD, ... ; explicit overrides win."""
        env = dict(os.environ if env is None else env)
        values: dict[str, object] = {}
        for f in fields(cls):
            key = "REID_MODEL" if f.name == "model_path" else f"REID_{f.name.upper()}"
            raw = env.get(key)
            if raw is None or raw == "":
                continue
            try:
                values[f.name] = _parse(f.name, raw)
            except ValueError as exc:  # a typo in the environment: say which variable
                raise ReidError(f"{key}={raw!r} is not valid: {exc}") from None
        settings = cls(**values)  # type: ignore[arg-type]
        clean = {k: v for k, v in overrides.items() if v is not None}
        return replace(settings, **clean) if clean else settings


def _parse(name: str, raw: str) -> object:
    if name in ("data_dir", "model_path", "cache_dir", "calibration", "verdict_policy"):
        return Path(raw)
    if name == "allowed_roots":
        return tuple(Path(p) for p in raw.split(os.pathsep) if p)
    if name == "allowed_hosts":
        return tuple(h.strip().lower() for h in raw.split(",") if h.strip())
    if name == "local_matching":
        return raw.strip().lower() not in ("0", "false", "no", "off")
    if name in ("embed_batch_size", "threads", "shortlist_images", "top_k", "max_upload_bytes", "max_pixels", "port",
                "max_request_pixels", "max_inflight_pixels", "review_retention_days",
                "rerank_individuals", "vote_individuals", "rerank_images", "local_max_side", "scene_check"):
        return int(raw)
    if name in ("match_threshold", "match_margin", "new_threshold", "keypoint_ellipse", "keypoint_saliency",
                "scene_check_animal"):
        return float(raw)
    return raw
