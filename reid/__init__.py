"""Leopard re-identification: embeddings, gallery search, keypoint verification."""

from reid import _compat  # noqa: F401  (must run before anything imports torchvision/timm)

__version__ = "0.1.0"
