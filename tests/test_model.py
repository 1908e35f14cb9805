"""Model factory, checkpoint format and the embedding backends."""

import numpy as np
import pytest
import torch

from reid.embed import Embedder, preprocess
from reid.errors import ModelError
from reid.model import ModelConfig, create_model, imagenet_state_dict, load_checkpoint, save_checkpoint
from reid.settings import REPO_MODELS


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory):
    # 128 px keeps the test quick; the head exercises the BN-neck path.
    model = create_model(ModelConfig(input_size=(128, 128), embedding_dim=64))
    return load_checkpoint(save_checkpoint(tmp_path_factory.mktemp("ck") / "m.pt", model, version="test-v1",
                                           meta={"note": "test"}))


def test_imagenet_weights_are_the_packaged_ones():
    sd = imagenet_state_dict("tf_efficientnet_lite0")
    assert "conv_stem.weight" in sd and not any(k.startswith("classifier") for k in sd)
    model = create_model(ModelConfig(embedding_dim=None))
    assert torch.equal(model.backbone.conv_stem.weight, sd["conv_stem.weight"])


def test_unknown_arch_is_a_clear_error():
    with pytest.raises(ModelError, match="no packaged ImageNet weights"):
        imagenet_state_dict("resnet50")


def test_checkpoint_round_trip(small_checkpoint, tmp_path):
    ck = small_checkpoint
    assert ck.version == "test-v1" and ck.meta == {"note": "test"}
    assert ck.config.input_size == (128, 128) and ck.config.embedding_dim == 64
    assert ck.model_id.startswith("test-v1@")
    x = torch.randn(2, 3, 128, 128)
    out = ck.model(x)
    assert out.shape == (2, 64)
    assert torch.allclose(out.norm(dim=1), torch.ones(2), atol=1e-5)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError):
        load_checkpoint(tmp_path / "bad.pt")
    with pytest.raises(ModelError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_shipped_checkpoint_loads():
    ck = load_checkpoint(REPO_MODELS / "imagenet-lite0.pt")
    assert ck.model.dim == 1280 and ck.config.arch == "tf_efficientnet_lite0"


def test_preprocess_shape_and_range():
    rgb = np.full((300, 500, 3), 255, np.uint8)
    x = preprocess(rgb, ModelConfig(input_size=(128, 160)))
    assert x.shape == (3, 128, 160) and np.allclose(x, 1.0)


def test_backends_agree_with_fp32(small_checkpoint, tmp_path):
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 255, (rng.integers(100, 300), rng.integers(100, 300), 3), dtype=np.uint8) for _ in range(5)]
    ref = Embedder(small_checkpoint, backend="fp32").embed(crops)
    assert ref.shape == (5, 64) and np.allclose(np.linalg.norm(ref, axis=1), 1, atol=1e-5)
    onnx = Embedder(small_checkpoint, backend="onnx", onnx_dir=tmp_path).embed(crops)
    assert (ref * onnx).sum(1).min() >= 0.999
    assert Embedder(small_checkpoint, backend="fp32").embed([]).shape == (0, 64)
    with pytest.raises(ValueError):
        Embedder(small_checkpoint, backend="tpu")


def test_shipped_trained_model_tells_unseen_synthetic_flanks_apart():
    """Two renders of one flank score higher than renders of two different individuals
    (10 synthetic individuals never used in training: seeds 0-9, training uses >= 100000)."""
    from reid.training import synth

    cfg = synth.RenderConfig(size=(224, 224), hard=False, night_prob=0.0)
    images, labels = [], []
    for seed in range(10):
        rng = np.random.default_rng(seed)
        images += [synth.render(seed, "left", rng, cfg) for _ in range(2)]
        labels += [seed, seed]
    labels = np.asarray(labels)
    same = labels[:, None] == labels[None]
    np.fill_diagonal(same, False)
    other = labels[:, None] != labels[None]
    gaps = {}
    for name in ("rosette-lite0-v1.pt", "imagenet-lite0.pt"):
        ck = load_checkpoint(REPO_MODELS / name)
        emb = Embedder(ck, backend="fp32").embed(images)
        sims = emb @ emb.T
        gaps[name] = float(sims[same].mean() - sims[other].mean())
        if name == "rosette-lite0-v1.pt":
            assert ck.model.dim == 512
            np.fill_diagonal(sims, -np.inf)
            assert (labels[sims.argmax(1)] == labels).mean() >= 0.4  # chance: 1/19
    assert gaps["rosette-lite0-v1.pt"] > 0.15 > gaps["imagenet-lite0.pt"]
