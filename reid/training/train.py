"""Train the rosette embedding: supervised contrastive loss on P x K batches of synthetic coats.

Why this recipe:
- Identity comes from `reid.training.synth`: every individual is a seed, and each flank of an
  individual is its own class (left and right coats differ). Each epoch draws a fresh
  block of individuals, so the network cannot memorise coats, only learn to compare them.
- Because the classes change every epoch, there is no classifier head: the loss is
  supervised contrastive over the batch (`SupConLoss`; why not ArcFace: see its docstring).
- Backgrounds, night IR, blur, occlusion and crops come from the renderer, so the
  embedding learns to ignore what is not coat.
`scripts/train.py` is the command line; everything else lives here.
"""

from __future__ import annotations

import json
import logging
import math
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from reid.embed import preprocess
from reid.fileio import atomic_writer
from reid.model import ModelConfig, ReidModel, create_model, save_checkpoint

log = logging.getLogger(__name__)

FLANK_SIDES = ("left", "right")


@dataclass
class TrainConfig:
    arch: str = "tf_efficientnet_lite0"
    input_size: int = 224
    embedding_dim: int = 512
    epochs: int = 10
    steps_per_epoch: int = 60
    p: int = 12  # identities (flank classes) per batch
    k: int = 4  # renders per identity
    ids_per_epoch: int = 200  # fresh individuals each epoch (x2 flanks = classes)
    # Share of renders from the full hard distribution (tiny, washed-out, occluded animals);
    # the rest are mild. All-hard batches were mostly frames with no identity signal left.
    hard_fraction: float = 0.25
    train_seed_base: int = 100_000  # training individuals; evaluation uses seeds < 100_000
    lr: float = 5e-5  # backbone; 3e-4 wrecked the ImageNet features in early steps
    head_lr: float = 1e-3  # GeM p and the embedding head
    freeze_bn: bool = True  # keep the backbone's ImageNet BatchNorm statistics (small, mixed batches)
    fresh_each_epoch: bool = True  # False: every epoch reuses epoch 0's individuals (overfit checks)
    weight_decay: float = 1e-4
    warmup_steps: int = 20
    temperature: float = 0.1
    val_individuals: int = 40
    val_per_flank: int = 4
    val_seed_base: int = 90_000  # never used for training, never used for the reported test (seeds 0..)
    bf16: str = "auto"  # auto | on | off
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 0  # 0: torch default; 1 is faster when another process shares 2 cores
    workers: int = 1
    seed: int = 0
    extra_labels: list[str] = field(default_factory=list)  # licensed real data only for shipped weights

    def model_config(self) -> ModelConfig:
        return ModelConfig(arch=self.arch, input_size=(self.input_size, self.input_size),
                           embedding_dim=self.embedding_dim)


class SupConLoss(nn.Module):
    """Supervised contrastive loss (Khosla et al. 2020) over a P x K batch.

    Every other render of the same flank class is a positive, every render of another class
    a negative; no classifier head, so identities can be fresh in every batch. Why not
    ArcFace: with fresh identities each epoch its head must be re-learnt each time; measured
    here, per-epoch imprinted sub-center ArcFace heads diverged (loss 11 -> 27, val top-1
    0.01), and an ArcFace margin over in-batch prototypes was biased (a leave-one-out own
    prototype against full-mean others) and its loss rose on a tiny run.
    """

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        self.temperature = temperature

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        z = F.normalize(embeddings.float(), dim=1)
        n = len(z)
        logits = (z @ z.T) / self.temperature
        self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
        positives = (labels[:, None] == labels[None, :]) & ~self_mask
        if not positives.any(1).all():
            raise ValueError("SupConLoss needs at least 2 samples per class in a batch")
        logits = logits.masked_fill(self_mask, float("-inf"))
        log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
        return -(log_prob.masked_fill(~positives, 0).sum(1) / positives.sum(1)).mean()


# -- data ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RealClass:
    """One flank of one real individual from an extra labels CSV (licensed data only)."""

    name: str
    files: tuple[Path, ...]
    boxes: tuple[tuple[float, float, float, float] | None, ...]


Class = tuple[int, str] | RealClass


def load_extra_classes(csv_paths: list[str]) -> list[RealClass]:
    """Group labelled rows by (identity, viewpoint): left and right flanks are separate classes."""
    from reid.labels import read_labels

    groups: dict[tuple[str, str], list] = {}
    for path in csv_paths:
        for row in read_labels(path, require_identity=True):
            groups.setdefault((row.identity, (row.viewpoint or "unknown").lower()), []).append(row)
    return [RealClass(f"{ident}/{vp}", tuple(r.file for r in rows), tuple(r.box for r in rows))
            for (ident, vp), rows in sorted(groups.items()) if len(rows) >= 2]


def epoch_classes(cfg: TrainConfig, epoch: int, extra: list[RealClass] | None = None) -> list[Class]:
    """The classes of one epoch: a fresh block of synthetic individuals (both flanks) + any real ones."""
    first = cfg.train_seed_base + (epoch if cfg.fresh_each_epoch else 0) * cfg.ids_per_epoch
    synthetic: list[Class] = [(seed, side) for seed in range(first, first + cfg.ids_per_epoch) for side in FLANK_SIDES]
    return synthetic + list(extra or [])


def augment_real(rgb: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """Camera-trap-like variation for real photos: crop, rotation, light, sometimes grey (IR)."""
    import cv2

    h, w = rgb.shape[:2]
    scale = rng.uniform(0.55, 1.0)
    ch, cw = max(16, int(h * scale)), max(16, int(w * scale))
    y0, x0 = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    img = rgb[y0:y0 + ch, x0:x0 + cw]
    m = cv2.getRotationMatrix2D((cw / 2, ch / 2), rng.uniform(-15, 15), 1.0)
    img = cv2.warpAffine(img, m, (cw, ch), borderMode=cv2.BORDER_REFLECT)
    img = img.astype(np.float32) * rng.uniform(0.7, 1.3) + rng.uniform(-20, 20)
    if rng.random() < 0.3:
        img = np.repeat(img.mean(axis=2, keepdims=True), 3, axis=2)
    return cv2.resize(np.clip(img, 0, 255).astype(np.uint8), (size, size), interpolation=cv2.INTER_AREA)


def render_class(cls: Class, rng: np.random.Generator, cfg: TrainConfig) -> np.ndarray:
    """One training image of a class: a synthetic render, or an augmented real photo."""
    from reid import imageio
    from reid.training import synth

    if isinstance(cls, RealClass):
        i = int(rng.integers(len(cls.files)))
        return augment_real(imageio.crop(imageio.load(cls.files[i]).rgb, cls.boxes[i]), rng, cfg.input_size)
    seed, side = cls
    render_cfg = synth.RenderConfig(size=(cfg.input_size, cfg.input_size), hard=rng.random() < cfg.hard_fraction)
    return synth.render(seed, side, rng, render_cfg)


class SynthBatches(torch.utils.data.IterableDataset):
    """Yields (pixels, labels) P x K batches for one epoch; deterministic by (seed, epoch, step)."""

    def __init__(self, cfg: TrainConfig, epoch: int, classes: list[Class]) -> None:
        self.cfg, self.epoch, self.classes = cfg, epoch, classes

    def __iter__(self):
        cfg = self.cfg
        info = torch.utils.data.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        mc = cfg.model_config()
        for step in range(wid, cfg.steps_per_epoch, nw):
            rng = np.random.default_rng([cfg.seed, self.epoch, step])
            picks = rng.choice(len(self.classes), size=cfg.p, replace=False)
            pixels, labels = [], []
            for c in picks:
                for _ in range(cfg.k):
                    pixels.append(preprocess(render_class(self.classes[c], rng, cfg), mc))
                    labels.append(int(c))
            yield torch.from_numpy(np.stack(pixels)), torch.tensor(labels)


@dataclass
class ValidationSet:
    images: list[np.ndarray]
    labels: np.ndarray  # flank class
    night: np.ndarray  # bool
    hard: np.ndarray  # bool: rendered with the full hard distribution


def validation_set(cfg: TrainConfig) -> ValidationSet:
    """Renders of held-out individuals, half mild and half hard, a third of them night IR."""
    from reid.training import synth

    images, labels, night, hard = [], [], [], []
    for i in range(cfg.val_individuals):
        seed = cfg.val_seed_base + i
        for s, side in enumerate(FLANK_SIDES):
            rng = np.random.default_rng([cfg.seed, seed, s])
            for j in range(cfg.val_per_flank):
                is_night, is_hard = j % 3 == 2, j % 2 == 1
                render_cfg = synth.RenderConfig(size=(cfg.input_size, cfg.input_size), hard=is_hard)
                images.append(synth.render(seed, side, rng, render_cfg, night=is_night))
                labels.append(2 * i + s)
                night.append(is_night)
                hard.append(is_hard)
    return ValidationSet(images, np.asarray(labels), np.asarray(night), np.asarray(hard))


def retrieval_top1(emb: np.ndarray, labels: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Leave-one-out: share of images whose nearest other image has the same class."""
    sims = emb @ emb.T
    np.fill_diagonal(sims, -np.inf)
    nn_idx = sims.argmax(1)
    ok = labels[nn_idx] == labels
    if mask is not None:
        ok = ok[mask]
    return float(ok.mean()) if len(ok) else float("nan")


# -- loop ------------------------------------------------------------------------------------------------
def _device(cfg: TrainConfig) -> torch.device:
    if cfg.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(cfg.device)


def _use_bf16(cfg: TrainConfig, device: torch.device) -> bool:
    if cfg.bf16 == "on":
        return True
    if cfg.bf16 == "off":
        return False
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    from reid.embed import cpu_has_bf16

    return cpu_has_bf16()


@torch.no_grad()
def embed_images(model: ReidModel, images: list[np.ndarray], device: torch.device, bf16: bool,
                 batch: int = 64) -> np.ndarray:
    model.eval()
    out = []
    for i in range(0, len(images), batch):
        x = torch.from_numpy(np.stack([preprocess(im, model.config) for im in images[i:i + batch]])).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out.append(model(x).float().cpu().numpy())
    return np.concatenate(out)


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                              cwd=Path(__file__).resolve().parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def train(cfg: TrainConfig, out_dir: Path, *, version: str, resume: bool = True,
          progress: bool = True) -> dict[str, Any]:
    """Run the recipe; writes out_dir/{last.pt, model.pt, run.json}. Returns the run record."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = _device(cfg)
    bf16 = _use_bf16(cfg, device)
    model = create_model(cfg.model_config()).to(device)
    params = [{"params": model.backbone.parameters(), "lr": cfg.lr},
              {"params": list(model.pool.parameters()) + list(model.head.parameters()), "lr": cfg.head_lr}]
    opt = torch.optim.AdamW(params, weight_decay=cfg.weight_decay)
    total_steps = cfg.epochs * cfg.steps_per_epoch

    def lr_factor(step: int) -> float:  # linear warm-up, cosine decay
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        t = (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps)
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    criterion = SupConLoss(cfg.temperature)
    state_path = out_dir / "last.pt"
    start_epoch, history, best = 0, [], -1.0
    if resume and state_path.exists():
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        start_epoch, history, best = state["epoch"] + 1, state["history"], state["best"]
        log.info("resumed from %s at epoch %d", state_path, start_epoch)
    vs = validation_set(cfg)
    extra = load_extra_classes(cfg.extra_labels)
    started = time.time()
    for epoch in range(start_epoch, cfg.epochs):
        classes = epoch_classes(cfg, epoch, extra)
        loader = torch.utils.data.DataLoader(SynthBatches(cfg, epoch, classes), batch_size=None,
                                             num_workers=cfg.workers, persistent_workers=False)
        model.train()
        if cfg.freeze_bn:
            for module in model.backbone.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.eval()
        losses = []
        bar = tqdm(loader, total=cfg.steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not progress,
                   dynamic_ncols=True)
        for x, y in bar:
            x, y = x.to(device), y.to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                feats = model.forward_features(x)
            loss = criterion(feats.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        emb = embed_images(model, vs.images, device, bf16)
        val = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_top1": retrieval_top1(emb, vs.labels),
               "val_top1_mild": retrieval_top1(emb, vs.labels, ~vs.hard),
               "val_top1_hard": retrieval_top1(emb, vs.labels, vs.hard),
               "val_top1_night": retrieval_top1(emb, vs.labels, vs.night),
               "elapsed_s": round(time.time() - started, 1)}
        history.append(val)
        log.info("epoch %d: loss %.3f  val top-1 %.3f (mild %.3f, hard %.3f, night %.3f)", epoch + 1, val["loss"],
                 val["val_top1"], val["val_top1_mild"], val["val_top1_hard"], val["val_top1_night"])
        if progress:
            print(json.dumps(val), flush=True)
        if val["val_top1"] >= best:
            best = val["val_top1"]
            save_checkpoint(out_dir / "model.pt", model.cpu(), version=version, meta={"recipe": asdict(cfg), "val": val})
            model.to(device)
        with atomic_writer(state_path, "wb") as fh:
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                        "epoch": epoch, "history": history, "best": best}, fh)
    run = {"version": version, "recipe": asdict(cfg), "history": history, "best_val_top1": best,
           "device": str(device), "bf16": bf16, "threads": torch.get_num_threads(), "git_commit": git_commit(),
           "data": {"synthetic": f"reid.training.synth, training seeds >= {cfg.train_seed_base}",
                    "synth_sha256": _synth_source_hash(),
                    "extra_labels": cfg.extra_labels}}
    (out_dir / "run.json").write_text(json.dumps(run, indent=2))
    return run


def _synth_source_hash() -> str:
    """Which generator the data came from (the files may differ from the recorded commit): one
    digest over the renderer's modules, in name order."""
    import hashlib

    from reid.training import synth

    digest = hashlib.sha256()
    for path in sorted(Path(synth.__file__).parent.glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()
