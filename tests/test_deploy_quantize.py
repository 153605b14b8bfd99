"""int8 export: a network trained on digits keeps its accuracy within 2 points after ONNX Runtime's
static quantization calibrated on minival, and the int8 file runs in onnxruntime."""

from __future__ import annotations

import onnx
import pytest
import torch
import torch.nn.functional as F

from nas.cli import main

SPEC = "r1_k3_s11_e1_i16_o16_se0.25 r2_k3_s22_e4_i16_o24_se0.25 r2_k5_s22_e4_i24_o40_se0.25"


@pytest.fixture(scope="module")
def digits_checkpoint(tmp_path_factory):
    """A small MBConv network trained briefly on digits, saved as a model.pt (the trainer's format)."""
    from nas.api import load_spec
    from nas.builder import build_model
    from nas.checkpoint import save_model_checkpoint
    from nas.data import load_dataset
    from nas.data.augment import Augmenter, resize_images
    from nas.training import TrainBudget, make_optimizer
    from nas.training.setup import seeded_global_rng

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        # dropout and drop-connect draw from torch's global generator: seeded here, or the fixture trains
        # another model after whatever else ran in this worker (fp32 0.95-0.97, int8 drops of 2.8-5.2 points)
        with seeded_global_rng(0, torch.device("cpu")):
            data = load_dataset("digits", seed=0)
            spec = load_spec(SPEC).with_(resolution=16, num_classes=10, in_chans=1, head_channels=128)
            generator = torch.Generator().manual_seed(0)
            model = build_model(spec, generator=generator).to(memory_format=torch.channels_last)
            for module in model.modules():
                if isinstance(module, torch.nn.BatchNorm2d):
                    module.momentum = 0.1  # running statistics that follow 150 steps
            optimizer = make_optimizer(model, TrainBudget(batch_size=64, lr=0.01))
            augmenter = Augmenter(data.mean, data.std, "cpu")
            images = resize_images(data.train_x, 16)
            model.train()
            for _ in range(150):
                idx = torch.randint(0, images.shape[0], (64,), generator=generator)
                loss = F.cross_entropy(model(augmenter.to_float(images[idx])), data.train_y[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    finally:
        torch.set_num_threads(previous)
    path = tmp_path_factory.mktemp("digits") / "model.pt"
    save_model_checkpoint(path, spec, model.state_dict(), config={"dataset": "digits"})
    return path


def test_int8_accuracy_within_two_points_of_fp32_on_digits(digits_checkpoint, tmp_path, one_thread):
    from nas.deploy.pipeline import export_model

    out = tmp_path / "int8.onnx"
    report = export_model(digits_checkpoint, "onnx", out, int8=True, calibrate_dataset="digits", fuse_bn=True)
    accuracy = report.accuracy
    assert accuracy.images == 287 and accuracy.split == "minival"
    assert accuracy.fp32 > 0.85, "the fixture must train a real classifier"
    assert abs(accuracy.drop_points) <= 2.0, accuracy
    assert accuracy.agreement > 0.95
    graph = onnx.load(str(out)).graph
    ops = {node.op_type for node in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # really quantized (QDQ format)
    assert report.parity.max_abs_diff < 1e-3 * max(1.0, report.parity.max_abs_logit)


def test_int8_cli_prints_accuracy_before_and_after(digits_checkpoint, tmp_path, capsys, one_thread):
    out = tmp_path / "int8.onnx"
    assert main(["export", str(digits_checkpoint), "--int8", "--calibrate-dataset", "digits",
                 "--calibration-images", "64", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "(onnx int8" in text and "trained weights, 1x16x16, 10 classes" in text
    assert "minival accuracy on digits (287 images): fp32 0." in text and "int8 0." in text
