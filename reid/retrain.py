"""`reid retrain`: fine-tune the model in use on a project's confirmed individuals.

Recipe (what fits 2 CPU cores in minutes, see docs/retraining.md for the measurements):
- Classes are individual x flank (reid.retrain_data), from individuals seen on >= 2
  occasions; a share of every batch is synthetic coats from reid.training.synth (both flanks of
  seeds the shipped model trained on), so the model keeps what it knew about rosettes.
- Only the last `train_stages` backbone stages, the pooling and the embedding head are
  trained; everything below is frozen and run ONCE per augmented view of each photo, its
  output cached (features at 14 x 14 x 112 for EfficientNet-lite0). A full forward and
  backward pass at 224 px cost 14-33 s per 32-image batch on the shared 2 cores; on the
  cached features a step is a fraction of a second, so minutes buy hundreds of steps.
- Supervised contrastive loss over P x K batches (reid.training.SupConLoss), BatchNorm
  frozen (running statistics of the base model; batches are small and mixed), a low
  learning rate for the backbone stages and a higher one for the head, cosine decay over
  whichever runs out first: the planned epochs or the time budget.
- Ctrl-C (or a crash) keeps `D/models/.retrain/`: the cached views and the last training
  state; running `reid retrain` again with the same data and settings resumes there.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import resource
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from reid.errors import ReidError
from reid.fileio import atomic_writer
from reid.labels import LabelRow
from reid.settings import Settings

log = logging.getLogger(__name__)

Report = Callable[[str, int, int], None]  # (phase, done, total): progress for the job API
STATE_DIR = ".retrain"
MIN_TRAIN_SHARE = 0.2  # of --minutes: less than this left to prepare views and train is refused


@dataclass
class RetrainConfig:
    minutes: float = 15.0  # bounds training + gate evaluation (promotion's re-embedding excluded)
    epochs: int = 40  # passes over the cached training views (time usually ends it first)
    views: int = 4  # cached views per training photo: 1 as enrolled + camera-trap augmentations
    p: int = 16  # classes per batch
    k: int = 4  # views per class
    train_stages: int = 2  # last backbone stages fine-tuned; the rest frozen and cached
    lr: float = 1e-4  # the fine-tuned backbone stages
    head_lr: float = 1e-3  # pooling and embedding head
    weight_decay: float = 1e-4
    temperature: float = 0.1
    embedding_dim: int = 512  # head added when the base model has none (the ImageNet baseline)
    synthetic_individuals: int = 24  # x 2 flanks, reid.training.synth seeds >= 100000 (the shipped model's)
    synthetic_views: int = 4
    synthetic_share: float = 0.25  # of the P classes in a batch
    held_out_fraction: float = 0.25  # individuals kept out of training for the gate
    min_held_out: int = 4
    new_fraction: float = 0.2  # of the held-out individuals, identified as newcomers
    input_size: int | None = None  # None: the base model's
    seed: int = 0

    def digest_part(self) -> dict[str, Any]:
        """What a resumable state must agree on (time limits may change between runs)."""
        d = asdict(self)
        for key in ("minutes", "epochs"):
            d.pop(key)
        return d


# -- model surgery ---------------------------------------------------------------------------------------
def _stages(model: Any, train_stages: int) -> tuple[list[Any], list[Any]]:
    """(frozen modules, trained modules) of an EfficientNet backbone, in forward order."""
    bb = model.backbone
    n = len(bb.blocks)
    if not 1 <= train_stages <= n:
        raise ReidError(f"train_stages must be between 1 and {n}")
    frozen = [bb.conv_stem, bb.bn1, *bb.blocks[: n - train_stages]]
    trained = [*bb.blocks[n - train_stages:], bb.conv_head, bb.bn2]
    return frozen, trained


def _run(modules: list[Any], x: Any) -> Any:
    for m in modules:
        x = m(x)
    return x


def build_candidate(base: Any, cfg: RetrainConfig) -> Any:
    """A trainable copy of the base model (a 512-d BN-neck head added if it had none)."""
    import copy

    from reid.model import ModelConfig, ReidModel

    config = replace(base.config)
    if cfg.input_size:
        config.input_size = (cfg.input_size, cfg.input_size)
    if not config.embedding_dim:
        config.embedding_dim = cfg.embedding_dim
        model = ReidModel(config)
        model.backbone.load_state_dict(base.model.backbone.state_dict())
        model.pool.load_state_dict(base.model.pool.state_dict())
    else:
        model = copy.deepcopy(base.model)
        model.config = ModelConfig.from_dict(asdict(config))
    return model


# -- cached views ----------------------------------------------------------------------------------------
@dataclass
class ViewCache:
    features: Any  # torch tensor (n, C, H, W), bfloat16: the frozen part's output per view
    labels: np.ndarray  # class index per view
    classes: list[str]
    synthetic: np.ndarray  # bool per class


def _bf16() -> bool:
    from reid.embed import cpu_has_bf16

    return cpu_has_bf16()


def build_cache(model: Any, cfg: RetrainConfig, rows: list[LabelRow], saliency: Callable | None,
                report: Report, progress: bool) -> ViewCache:
    """Crop, augment and run the frozen stages once per view; synthetic coats appended."""
    import torch
    from tqdm import tqdm

    from reid.embed import preprocess
    from reid.retrain_data import camera_trap_augment, class_name, training_crop
    from reid.training import synth

    frozen, _ = _stages(model, cfg.train_stages)
    size = model.config.input_size
    by_class: dict[str, list[LabelRow]] = {}
    for row in rows:
        by_class.setdefault(class_name(row), []).append(row)
    classes = sorted(c for c, members in by_class.items() if len(members) >= 2)  # positives from 2+ photos
    n_syn = cfg.synthetic_individuals * 2
    jobs: list[tuple[int, Any]] = [(ci, r) for ci, c in enumerate(classes) for r in by_class[c]]
    total = len(jobs) * cfg.views + n_syn * cfg.synthetic_views
    feats, labels = [], []
    rng = np.random.default_rng(cfg.seed)
    use_bf16 = _bf16()
    bar = tqdm(total=total, desc="preparing views", unit="view", disable=not progress, dynamic_ncols=True)
    pending: list[tuple[np.ndarray, int]] = []

    def flush() -> None:
        if not pending:
            return
        x = torch.from_numpy(np.stack([preprocess(im, model.config) for im, _ in pending]))
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
            feats.append(_run(frozen, x).to(torch.bfloat16))
        labels.extend(lbl for _, lbl in pending)
        bar.update(len(pending))
        report("preparing views", len(labels), total)
        pending.clear()

    for module in frozen:
        module.eval()
    for ci, row in jobs:
        try:
            crop = training_crop(row, saliency)
        except Exception as exc:  # noqa: BLE001 - one unreadable stored photo must not end the run
            log.warning("%s: skipped (%s)", row.path, exc)
            continue
        pending.append((cv2_resize(crop, size), ci))
        for _ in range(cfg.views - 1):
            pending.append((camera_trap_augment(crop, rng, size), ci))
        if len(pending) >= 32:
            flush()
    syn_classes = []
    for i in range(cfg.synthetic_individuals):
        for side in ("left", "right"):
            ci = len(classes) + len(syn_classes)
            syn_classes.append(f"synthetic:{100_000 + i}/{side}")
            for _ in range(cfg.synthetic_views):
                render_cfg = synth.RenderConfig(size=(size[1], size[0]), hard=rng.random() < 0.25)
                pending.append((synth.render(100_000 + i, side, rng, render_cfg), ci))
            if len(pending) >= 32:
                flush()
    flush()
    bar.close()
    if not feats:
        raise ReidError("no confirmed photo could be read for training")
    return ViewCache(torch.cat(feats), np.asarray(labels), classes + syn_classes,
                     np.asarray([False] * len(classes) + [True] * len(syn_classes)))


def cv2_resize(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    return cv2.resize(rgb, (size[1], size[0]), interpolation=cv2.INTER_AREA)


def pk_batch(cache: ViewCache, rng: np.random.Generator, p: int, k: int, synthetic_share: float) -> np.ndarray:
    """Indices of one P x K batch: P classes (a share of them synthetic), K views each."""
    by_class = [np.nonzero(cache.labels == c)[0] for c in range(len(cache.classes))]
    real = [c for c in range(len(by_class)) if not cache.synthetic[c] and len(by_class[c])]
    syn = [c for c in range(len(by_class)) if cache.synthetic[c] and len(by_class[c])]
    n_syn = min(len(syn), int(round(p * synthetic_share))) if syn else 0
    n_real = min(len(real), p - n_syn)
    picks = list(rng.choice(real, n_real, replace=False)) + (list(rng.choice(syn, n_syn, replace=False)) if n_syn else [])
    out = []
    for c in picks:
        pool = by_class[c]
        out.extend(rng.choice(pool, k, replace=len(pool) < k))
    return np.asarray(out)


# -- training --------------------------------------------------------------------------------------------
def _digest(base_sha: str, cfg: RetrainConfig, rows: list[LabelRow]) -> str:
    h = hashlib.sha256(base_sha.encode())
    h.update(json.dumps(cfg.digest_part(), sort_keys=True).encode())
    h.update(json.dumps(sorted((r.path, r.identity or "", r.viewpoint or "") for r in rows)).encode())
    return h.hexdigest()[:16]


def train_candidate(base: Any, cfg: RetrainConfig, rows: list[LabelRow], state_dir: Path, *,
                    deadline: float, saliency: Callable | None = None, report: Report | None = None,
                    progress: bool = True, resume: bool = True) -> tuple[Any, dict[str, Any]]:
    """Fine-tune a copy of `base` (a reid.model.Checkpoint) on `rows`; returns (model, history).

    Stops after cfg.epochs or at `deadline` (time.perf_counter()), whichever comes first: the
    time spent preparing the views counts against the training time. The
    cache and a state every 20 steps go to `state_dir`; a KeyboardInterrupt saves the state
    before it propagates."""
    import torch
    import torch.nn.functional as F
    from torch import nn
    from tqdm import tqdm

    from reid.training.train import SupConLoss

    report = report or (lambda *_: None)
    state_dir.mkdir(parents=True, exist_ok=True)
    digest = _digest(base.sha256, cfg, rows)
    torch.manual_seed(cfg.seed)
    model = build_candidate(base, cfg)
    frozen, trained = _stages(model, cfg.train_stages)
    cache_path, state_path = state_dir / "cache.pt", state_dir / "state.pt"
    cache = None
    if resume and cache_path.is_file():
        saved = torch.load(cache_path, map_location="cpu", weights_only=False)
        if saved.get("digest") == digest:
            cache = saved["cache"]
            log.info("resuming: %d cached views from %s", len(cache.labels), cache_path)
    t_cache = time.perf_counter()
    if cache is None:
        cache = build_cache(model, cfg, rows, saliency, report, progress)
        _atomic_save({"digest": digest, "cache": cache}, cache_path)
    cache_seconds = time.perf_counter() - t_cache
    cpu_before_training = cpu_seconds()

    for p in model.parameters():
        p.requires_grad_(False)
    backbone_params = [p for m in trained for p in m.parameters()]
    head_params = list(model.pool.parameters()) + list(model.head.parameters())
    for p in backbone_params + head_params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW([{"params": backbone_params, "lr": cfg.lr},
                             {"params": head_params, "lr": cfg.head_lr}], weight_decay=cfg.weight_decay)
    n_real_views = int((~cache.synthetic[cache.labels]).sum())
    steps_per_epoch = max(1, math.ceil(n_real_views / (cfg.p * cfg.k)))
    total_steps = cfg.epochs * steps_per_epoch
    step, elapsed, history = 0, 0.0, []
    if resume and state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        if state.get("digest") == digest:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["opt"])
            step, elapsed, history = state["step"], state["elapsed"], state["history"]
            log.info("resuming training at step %d of %d", step, total_steps)
    criterion = SupConLoss(cfg.temperature)
    train_seconds = elapsed + max(0.0, deadline - time.perf_counter())  # this run's share plus a resumed one's
    use_bf16 = _bf16()
    base_lrs = [g["lr"] for g in opt.param_groups]

    def save_state() -> None:
        _atomic_save({"digest": digest, "model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                      "elapsed": elapsed, "history": history}, state_path)

    model.train()
    for module in model.backbone.modules():  # frozen BatchNorm: the base model's statistics
        if isinstance(module, nn.BatchNorm2d):
            module.eval()
    bar = tqdm(total=total_steps, initial=step, desc="training", unit="step", disable=not progress,
               dynamic_ncols=True)
    losses: list[float] = []
    try:
        while step < total_steps and time.perf_counter() < deadline:
            t0 = time.perf_counter()
            frac = min(1.0, max(step / total_steps, elapsed / max(train_seconds, 1e-9)))
            for g, lr in zip(opt.param_groups, base_lrs, strict=True):  # cosine over steps or time
                g["lr"] = lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac)))
            rng = np.random.default_rng([cfg.seed, step])
            idx = pk_batch(cache, rng, cfg.p, cfg.k, cfg.synthetic_share)
            x = cache.features[torch.from_numpy(idx)].float()
            y = torch.from_numpy(cache.labels[idx])
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
                out = model.head(model.pool(_run(trained, x)))
            loss = criterion(F.normalize(out.float(), dim=1), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(backbone_params + head_params, 5.0)
            opt.step()
            step += 1
            elapsed += time.perf_counter() - t0
            losses.append(float(loss.item()))
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
            report("training", step, total_steps)
            if step % steps_per_epoch == 0:
                history.append({"epoch": step // steps_per_epoch, "loss": round(float(np.mean(losses)), 4),
                                "elapsed_s": round(elapsed, 1)})
                losses = []
            if step % 20 == 0:
                save_state()
    except KeyboardInterrupt:
        save_state()
        bar.close()
        raise
    bar.close()
    save_state()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, {"steps": step, "planned_steps": total_steps, "steps_per_epoch": steps_per_epoch,
                   "train_seconds": round(elapsed, 1), "prepare_seconds": round(cache_seconds, 1),
                   "train_cpu_seconds_this_run": round(cpu_seconds() - cpu_before_training, 1),
                   "cached_views": int(len(cache.labels)), "classes_real": int((~cache.synthetic).sum()),
                   "classes_synthetic": int(cache.synthetic.sum()), "history": history,
                   "stopped_by": "epochs" if step >= total_steps else "time"}


def _atomic_save(obj: Any, path: Path) -> None:
    import torch

    with atomic_writer(path, "wb") as fh:
        torch.save(obj, fh)


def peak_rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def cpu_seconds() -> float:
    """CPU time of this process (user + system): what the work cost, whoever else shares the cores."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return round(usage.ru_utime + usage.ru_stime, 1)


# -- the whole command --------------------------------------------------------------------------------------
@dataclass
class RetrainResult:
    version: str | None  # written version (None: --dry-run)
    promoted: bool
    record: dict[str, Any]
    pipeline: Any = None  # the promoted model's pipeline (ready to answer), when promoted


def retrain(settings: Settings, cfg: RetrainConfig, *, base_path: Path | None = None, dry_run: bool = False,
            actor: str = "cli", report: Report | None = None, progress: bool = True,
            resume: bool = True, embed: Callable[[Any], Any] | None = None) -> RetrainResult:
    """Train a candidate on the confirmed individuals, gate it on held-out ones, write it as a
    version of the data dir, and promote it when the gate passes. `settings` is the data dir's
    (its model in force is the one the candidate must beat). `embed`: how promotion embeds the
    catalogue (reid.model_versions.prepare; None: in this process)."""
    from reid import model_versions as mv
    from reid.calibrate import calibration_path
    from reid.catalog import Catalog, now_iso
    from reid.keypoints.saliency import SALIENCY_CHECKPOINT, SaliencyMap
    from reid.model import load_checkpoint, save_checkpoint
    from reid.retrain_data import split_confirmed
    from reid.retrain_gate import evaluate_models, fit_candidate_calibration, gate, table
    from reid.settings import REPO_MODELS
    from reid.training.train import git_commit

    report = report or (lambda *_: None)
    started = time.perf_counter()
    budget = cfg.minutes * 60.0
    data_dir = Path(settings.data_dir)
    if not (data_dir / "catalog.sqlite").is_file():
        raise ReidError(f"no catalogue in {data_dir}: enroll confirmed individuals first")
    current_path = settings.resolved_model_path
    base_path = Path(base_path) if base_path else current_path
    as_of = now_iso()
    catalog = Catalog(data_dir)
    try:
        from reid.retrain_data import confirmed_rows

        rows = confirmed_rows(catalog)
    finally:
        catalog.close()
    split = split_confirmed(rows, held_out_fraction=cfg.held_out_fraction, min_held_out=cfg.min_held_out,
                            seed=cfg.seed)
    if len(split.train_individuals) < 2 or len(split.held_out_individuals) < 2:
        raise ReidError(f"too few confirmed individuals seen on two or more occasions: "
                        f"{len(split.train_individuals) + len(split.held_out_individuals)} (at least "
                        f"{cfg.min_held_out + 2} needed: {cfg.min_held_out} are held out to test the result)")
    base = load_checkpoint(base_path)
    log.info("retraining %s on %d photos of %d individuals (%d held out for the gate; %d seen only once, unused)",
             base.model_id, len(split.train), len(split.train_individuals), len(split.held_out_individuals),
             len(split.too_few_encounters))
    saliency = SaliencyMap(REPO_MODELS / SALIENCY_CHECKPOINT, Path(settings.cache_dir) / "onnx")
    state_dir = mv.models_dir(data_dir) / STATE_DIR
    gate_scratch = state_dir / "gate"  # one scratch catalogue for both models: they share its keypoint caches
    shutil.rmtree(gate_scratch, ignore_errors=True)
    try:
        # The model in force is evaluated first, so that its measured cost reserves the
        # candidate's evaluation out of --minutes (the candidate costs no more: the keypoints
        # are cached by then) and training gets the rest: the whole command keeps its bound.
        report("evaluating", 0, 2)
        t_eval = time.perf_counter()
        evals = evaluate_models({"current": current_path}, split.held_out, settings, new_fraction=cfg.new_fraction,
                                seed=cfg.seed, progress=progress, scratch=gate_scratch)
        current_eval_s = time.perf_counter() - t_eval
        report("evaluating", 1, 2)
        deadline = started + budget - current_eval_s
        left = deadline - time.perf_counter()
        if left < MIN_TRAIN_SHARE * budget:
            need = math.ceil((time.perf_counter() - started + current_eval_s) / (1 - MIN_TRAIN_SHARE) / 60)
            raise ReidError(f"--minutes {cfg.minutes:g} leaves {max(left, 0):.0f} s to train: evaluating the model in "
                            f"force on the {len(split.held_out)} held-out photos took {current_eval_s:.0f} s, and the "
                            f"candidate needs as long; give --minutes {need} or more")
        model, training = train_candidate(base, cfg, split.train, state_dir, deadline=deadline,
                                          saliency=saliency, report=report, progress=progress, resume=resume)
        version = mv.next_version_name(data_dir, as_of)
        candidate_path = state_dir / f"{version}.pt"
        save_checkpoint(candidate_path, model, version=version,
                        meta={"parent": base.model_id, "recipe": asdict(cfg), "data_dir": str(data_dir)})
        t_eval = time.perf_counter()
        evals |= evaluate_models({"candidate": candidate_path}, split.held_out, settings,
                                 new_fraction=cfg.new_fraction, seed=cfg.seed, progress=progress, scratch=gate_scratch)
        candidate_eval_s = time.perf_counter() - t_eval
        report("evaluating", 2, 2)
    finally:
        shutil.rmtree(gate_scratch, ignore_errors=True)
    spent = time.perf_counter() - started
    time_budget = {"minutes": cfg.minutes, "current_eval_seconds": round(current_eval_s, 1),
                   "candidate_eval_seconds": round(candidate_eval_s, 1), "seconds": round(spent, 1),
                   "within": spent <= budget}
    noise = evals["candidate"].noise_against(evals["current"], seed=cfg.seed)
    decision = gate(evals["candidate"].metrics, evals["current"].metrics, noise)
    record = {
        "version": version, "created": now_iso(), "parent": base.model_id,
        "model_in_force": evals["current"].model_id, "git_commit": git_commit(),
        "data": {"as_of": as_of, "photos": len(rows), "train_photos": len(split.train),
                 "train_individuals": len(split.train_individuals),
                 "held_out_individuals": split.held_out_individuals, "held_out_photos": len(split.held_out),
                 "unused_one_encounter": len(split.too_few_encounters),
                 "synthetic_individuals": cfg.synthetic_individuals},
        "recipe": asdict(cfg), "training": training, "time_budget": time_budget,
        "held_out": {name: ev.metrics for name, ev in evals.items()},
        "held_out_table": table(evals), "calibration_in_gate": evals["candidate"].calibration,
        "gate": decision.to_dict(),
        # The model written is the one the gate measured, not a second run on everything:
        # see docs/retraining.md ("Which model is written").
        "written": "the held-out-tested candidate (trained without the held-out individuals)",
        "seconds": round(time.perf_counter() - started, 1), "cpu_seconds": cpu_seconds(), "peak_rss_mib": peak_rss_mib(),
        "promoted": False, "dry_run": dry_run,
    }
    if dry_run:
        shutil.rmtree(state_dir, ignore_errors=True)
        return RetrainResult(None, False, record)
    path = mv.checkpoint_path(data_dir, version)
    cal = fit_candidate_calibration(evals["candidate"], f"reid retrain {version}: held-out individuals "
                                                        f"{', '.join(split.held_out_individuals)} of {data_dir}")
    save_checkpoint(path, model, version=version, meta={"parent": base.model_id, "gate": decision.to_dict()})
    if cal is not None:
        from reid.model import file_sha256

        cal.model_id = f"{version}@{file_sha256(path)[:12]}"
        cal.save(calibration_path(path))
    mv.run_record_path(path).write_text(json.dumps(record, indent=2))
    pipeline = None
    if decision.passed:
        pipeline = mv.use(settings.replace(model_path=None), version, actor=actor, embed=embed)
        record["promoted"] = True
        mv.run_record_path(path).write_text(json.dumps(record, indent=2))
    shutil.rmtree(state_dir, ignore_errors=True)  # finished: nothing to resume
    return RetrainResult(version, decision.passed, record, pipeline)
