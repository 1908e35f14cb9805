"""Batched inference: RGB crops in, L2-normalised float32 embeddings out.

Backends (measured in benchmarks/bench_embed.py; `auto` picks the default):
- ``fp32``: plain PyTorch, the reference.
- ``bf16``: channels_last + bfloat16 autocast; needs AVX-512 BF16 / AMX to pay off.
- ``onnx``: the model exported once to ONNX and run with ONNX Runtime (fp32 maths).
Every backend is checked against fp32 in tests (cosine >= 0.999).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from reid.model import Checkpoint, ModelConfig, ReidModel

BACKENDS = ("fp32", "bf16", "onnx")


def cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def preprocess(rgb: np.ndarray, config: ModelConfig) -> np.ndarray:
    """Resize to the model's input size and normalise: HxWx3 uint8 -> 3xHxW float32."""
    h, w = config.input_size
    interp = cv2.INTER_AREA if rgb.shape[0] > h or rgb.shape[1] > w else cv2.INTER_LINEAR
    x = cv2.resize(rgb, (w, h), interpolation=interp).astype(np.float32) / 255.0
    x = (x - np.asarray(config.mean, np.float32)) / np.asarray(config.std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def default_backend() -> str:
    """ONNX Runtime measured ~3x fp32 PyTorch on 2 cores and matches it exactly; bf16 autocast
    was faster than fp32 but drifted to cosine 0.998, below the 0.999 bar."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return "fp32"
    return "onnx"


def onnx_session(module: torch.nn.Module, shape: tuple[int, int, int], path: Path, *, output: str,
                 dynamic_batch: bool):
    """An ONNX Runtime session for a torch module, exported to `path` once (atomically) and
    reused; input "pixels" of (batch,) + shape. Also serves reid.keypoints.saliency's backbone."""
    import onnxruntime as ort

    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=path.parent)
        os.close(fd)
        try:
            axes = {"pixels": {0: "batch"}, output: {0: "batch"}} if dynamic_batch else None
            torch.onnx.export(module.eval(), torch.zeros(1, *shape), tmp, input_names=["pixels"],
                              output_names=[output], dynamic_axes=axes, opset_version=17, dynamo=False)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


class Embedder:
    """Turns crops into embeddings with one model; thread-safe for inference."""

    def __init__(self, checkpoint: Checkpoint, *, backend: str = "auto", batch_size: int = 32,
                 threads: int | None = None, onnx_dir: Path | None = None) -> None:
        self.checkpoint = checkpoint
        self.config = checkpoint.config
        self.model: ReidModel = checkpoint.model.eval()
        self.batch_size = batch_size
        if threads:
            torch.set_num_threads(threads)
        if backend == "auto":
            backend = default_backend()
        if backend not in BACKENDS:
            raise ValueError(f"unknown embedding backend {backend!r}; choose from {BACKENDS}")
        self.backend = backend
        self._ort = None
        if backend == "bf16":
            self.model = self.model.to(memory_format=torch.channels_last)
        elif backend == "onnx":
            self._ort = self._onnx_session(onnx_dir)

    @property
    def dim(self) -> int:
        return self.model.dim

    @property
    def model_id(self) -> str:
        return self.checkpoint.model_id

    def _onnx_session(self, onnx_dir: Path | None):
        h, w = self.config.input_size
        path = Path(onnx_dir or tempfile.gettempdir()) / f"{self.checkpoint.sha256[:16]}.onnx"
        return onnx_session(self.model, (3, h, w), path, output="embedding", dynamic_batch=True)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if self._ort is not None:
            out = self._ort.run(None, {"pixels": batch})[0]
            return out / np.linalg.norm(out, axis=1, keepdims=True).clip(min=1e-12)
        x = torch.from_numpy(batch)
        with torch.inference_mode():
            if self.backend == "bf16":
                x = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    out = self.model(x)
            else:
                out = self.model(x)
        return out.float().numpy()

    def embed(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Embed RGB crops (any sizes); returns (N, dim) float32, rows L2-normalised."""
        if len(crops) == 0:
            return np.zeros((0, self.dim), np.float32)
        out = []
        for start in range(0, len(crops), self.batch_size):
            batch = np.stack([preprocess(c, self.config) for c in crops[start:start + self.batch_size]])
            out.append(self._run(batch))
        return np.ascontiguousarray(np.concatenate(out).astype(np.float32))
