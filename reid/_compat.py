"""Make `import torchvision` (and so `import timm`) work with a CPU-only torch.

The torchvision wheel on this project's registry is a CUDA build. With the CPU
build of torch its compiled extension cannot load, so the `torchvision::nms`
operator is never defined and torchvision's own import fails while registering
fake kernels for it. We define the missing schemas with pure-torch CPU kernels
*before* torchvision is imported. Where torchvision's extension loads normally
(e.g. matching CPU wheels in the Dockerfile) this module does nothing.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch

_LIB: torch.library.Library | None = None  # kept alive: dropping it unregisters the ops
SHIM_ACTIVE = False


def _op_exists(name: str) -> bool:
    try:
        getattr(torch.ops.torchvision, name)
    except (AttributeError, RuntimeError):
        return False
    return True


def _try_load_native_extension() -> bool:
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return False
    for so in Path(spec.origin).parent.glob("_C*.so"):
        try:
            torch.ops.load_library(str(so))
            return True
        except (OSError, RuntimeError):
            return False
    return False


def nms_cpu(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression; same contract as torchvision.ops.nms."""
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    boxes = boxes.float()
    x1, y1, x2, y2 = boxes.unbind(1)
    areas = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    order = scores.argsort(descending=True)
    keep: list[int] = []
    suppressed = torch.zeros(boxes.shape[0], dtype=torch.bool)
    for idx in order.tolist():
        if suppressed[idx]:
            continue
        keep.append(idx)
        xx1 = torch.maximum(x1[idx], x1)
        yy1 = torch.maximum(y1[idx], y1)
        xx2 = torch.minimum(x2[idx], x2)
        yy2 = torch.minimum(y2[idx], y2)
        inter = (xx2 - xx1).clamp(min=0) * (yy2 - yy1).clamp(min=0)
        iou = inter / (areas[idx] + areas - inter).clamp(min=1e-12)
        suppressed |= iou > iou_threshold
    return torch.tensor(keep, dtype=torch.long, device=boxes.device)


def ensure_torchvision_ops() -> None:
    """Idempotent; call before the first `import torchvision` / `import timm`."""
    global _LIB, SHIM_ACTIVE
    if _LIB is not None or "torchvision" in sys.modules or _op_exists("nms"):
        return
    if _try_load_native_extension() and _op_exists("nms"):
        return
    _LIB = torch.library.Library("torchvision", "DEF")
    for name in ("nms", "qnms"):
        _LIB.define(f"{name}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIB.impl("nms", nms_cpu, "CPU")
    SHIM_ACTIVE = True


ensure_torchvision_ops()
