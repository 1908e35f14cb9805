"""The torchvision shim: makes timm importable on CPU torch, and stays out of the way otherwise."""

import subprocess
import sys

import torch

import reid  # noqa: F401
from reid import _compat


def test_timm_and_torchvision_import():
    import timm
    import torchvision

    assert torchvision.__version__
    assert timm.create_model("tf_efficientnet_lite0", pretrained=False) is not None


def test_nms_kernel_matches_greedy_definition():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 9, 10]], dtype=torch.float)
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    keep = torch.ops.torchvision.nms(boxes, scores, 0.5)
    # box 3 (0.95) suppresses boxes 0 and 1 (IoU > 0.5), box 2 is far away
    assert keep.tolist() == [3, 2]
    assert torch.ops.torchvision.nms(torch.zeros(0, 4), torch.zeros(0), 0.5).numel() == 0


def test_ensure_is_idempotent():
    _compat.ensure_torchvision_ops()
    _compat.ensure_torchvision_ops()
    assert hasattr(torch.ops.torchvision, "nms")


def test_no_op_when_torchvision_ops_already_exist():
    # Simulate a working native torchvision: the op is defined before reid is imported.
    code = (
        "import torch\n"
        "lib = torch.library.Library('torchvision', 'DEF')\n"
        "lib.define('nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor')\n"
        "from reid import _compat\n"
        "assert _compat.SHIM_ACTIVE is False, 'shim must not redefine existing ops'\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
