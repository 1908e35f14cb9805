"""Training: a tiny run lowers the loss and writes a checkpoint the pipeline can load."""

import json

import numpy as np
import pytest
import torch

from reid.model import load_checkpoint
from reid.training.train import SupConLoss, TrainConfig, epoch_classes, retrieval_top1, train


def test_supcon_loss_orders_good_and_bad_embeddings():
    loss = SupConLoss()
    labels = torch.arange(6).repeat_interleave(3)
    centres = torch.randn(6, 32)
    separated = loss(centres[labels] + 0.05 * torch.randn(18, 32), labels)
    random = loss(torch.randn(18, 32), labels)
    assert separated.item() < 2.0 < random.item()
    with pytest.raises(ValueError):
        loss(torch.randn(3, 32), torch.tensor([0, 1, 2]))  # one sample per class: no prototype


def test_epochs_draw_fresh_individuals():
    cfg = TrainConfig(ids_per_epoch=5)
    first, second = epoch_classes(cfg, 0), epoch_classes(cfg, 1)
    assert len(first) == 10 and {c[1] for c in first} == {"left", "right"}
    assert not {c[0] for c in first} & {c[0] for c in second}
    assert min(c[0] for c in first) >= cfg.train_seed_base  # never the evaluation seeds


def test_retrieval_top1():
    emb = np.eye(4, dtype=np.float32)[[0, 0, 1, 1, 2]]
    assert retrieval_top1(emb, np.array([0, 0, 1, 1, 2])) == pytest.approx(4 / 5)


def test_tiny_training_run_lowers_loss_and_writes_checkpoint(tmp_path):
    # Overfit mode (the same 3 individuals every epoch) so that a few seconds of CPU show learning.
    cfg = TrainConfig(input_size=64, embedding_dim=32, epochs=4, steps_per_epoch=6, p=4, k=2, ids_per_epoch=2,
                      lr=1e-4, head_lr=1e-3, warmup_steps=1, val_individuals=2, val_per_flank=2, bf16="off",
                      workers=0, threads=2, hard_fraction=0.0, fresh_each_epoch=False)
    run = train(cfg, tmp_path, version="tiny-test", progress=False)
    losses = [h["loss"] for h in run["history"]]
    assert losses[-1] < losses[0], losses
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["version"] == "tiny-test" and record["recipe"]["input_size"] == 64
    assert len(record["data"]["synth_sha256"]) == 64
    ck = load_checkpoint(tmp_path / "model.pt")
    assert ck.version == "tiny-test" and ck.config.input_size == (64, 64) and ck.model.dim == 32
    out = ck.model(torch.randn(2, 3, 64, 64))
    assert torch.allclose(out.norm(dim=1), torch.ones(2), atol=1e-5)
    # Resuming a finished run trains no more epochs and keeps the history.
    again = train(cfg, tmp_path, version="tiny-test", progress=False)
    assert len(again["history"]) == 4
