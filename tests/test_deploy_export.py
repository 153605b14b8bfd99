"""nas/deploy export, fuse and load: every preset exports and computes what PyTorch computes;
BatchNorm folding keeps outputs; MODEL arguments and bad inputs give one-line errors."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from nas.cli import main
from nas.deploy.export import export_checked
from nas.deploy.formats import FORMATS
from nas.deploy.fuse import fuse_batchnorm
from nas.deploy.load import example_input, load_model
from nas.presets import PRESETS, preset

RESOLUTION = 32


def _close(parity, tolerance: float = 1e-3) -> bool:
    """Float32 kernels differ in summation order: compare relative to the logits' scale."""
    return parity.max_abs_diff <= tolerance * max(1.0, parity.max_abs_logit)


def every_layer_once(spec):
    """The preset with each stage cut to its first block and one repeated block: every distinct
    layer configuration it has (widths, kernels, strides, expansions, SE, residuals), at a fraction
    of the export time (the torch.export-based exporter takes ~0.3 s per block on this CPU)."""
    return spec.with_(stages=tuple(replace(stage, repeats=min(stage.repeats, 2)) for stage in spec.stages))


@pytest.mark.slow(reason="every published preset through the torch.export-based ONNX exporter and TorchScript, checked in "
                  "onnxruntime (5 s each); the fast tests export small networks")
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_exports_to_torchscript_and_onnx_with_parity(name, tmp_path, one_thread):
    loaded = load_model(every_layer_once(preset(name)), resolution=RESOLUTION)
    example = example_input(loaded.spec)
    for fmt in FORMATS:
        parity = export_checked(loaded.model, example, fmt, tmp_path / f"model.{fmt}")
        assert parity.batches == (1, 3)  # the batch axis is dynamic in both files
        assert parity.max_abs_logit > 1e-3, "random weights must give non-trivial logits to compare"
        assert _close(parity), (fmt, parity)


def test_onnx_file_declares_a_dynamic_batch_axis(tmp_path, one_thread):
    import onnx

    loaded = load_model("r1_k3_s11_e1_i16_o16_se0.25 r2_k5_s22_e6_i16_o24", resolution=RESOLUTION)
    path = tmp_path / "m.onnx"
    export_checked(loaded.model, example_input(loaded.spec), "onnx", path)
    graph = onnx.load(str(path)).graph
    (images,), (logits,) = graph.input, graph.output
    assert (images.name, logits.name) == ("images", "logits")
    dims = [d.dim_param or d.dim_value for d in images.type.tensor_type.shape.dim]
    assert isinstance(dims[0], str) and dims[1:] == [3, RESOLUTION, RESOLUTION]
    assert path.stat().st_mode & 0o044  # readable by others, like any file open() creates


def test_fused_batchnorm_keeps_outputs_and_drops_one_parameter_per_channel(random_specs, one_thread):
    from collections import Counter

    from torch import nn

    from nas.builder import build_model
    from nas.deploy.load import randomize_norm_statistics

    checked: Counter = Counter()
    for spec in random_specs[:40]:
        generator = torch.Generator().manual_seed(1)
        model = build_model(spec, generator=generator).eval()
        randomize_norm_statistics(model, spec, generator)
        fused, report = fuse_batchnorm(model)
        norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        assert report.folded == len(norms)  # every BatchNorm in our blocks follows a convolution
        assert report.params_after == report.params_before - sum(n.num_features for n in norms)
        assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
        if spec.norm != "batchnorm":  # every other norm kind is left as it is, and counted
            kept = Counter(type(m).__name__ for m in model.modules() if type(m).__name__ in report.kept_norms)
            assert report.folded == 0 and report.kept_norms and report.kept_norms == dict(kept)
        x = torch.randn(2, spec.in_chans, spec.resolution, spec.resolution)
        with torch.inference_mode():
            expected, got = model(x), fused(x)
        assert torch.allclose(got, expected, rtol=1e-4, atol=1e-5 * max(1.0, expected.abs().max().item()))
        checked[spec.norm] += 1
    assert checked["batchnorm"] >= 5 and checked["groupnorm"] + checked["layernorm"] >= 5, checked


def test_export_cli_fuse_bn_reports_parity_and_folding(tmp_path, capsys, one_thread):
    out = tmp_path / "sub" / "b0.ts"
    assert main(["export", "efficientnet-b0", "--resolution", "32", "--fuse-bn", "--format", "torchscript",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert out.is_file()
    # B0: 49 BatchNorms (stem, 16 blocks, head); each folded one leaves a bias of its width behind.
    assert "folded 49 BatchNorm layer(s)" in text and "5,288,548 -> 5,267,540 parameters" in text
    assert "checked with torch.jit.load at batch 1, 3: max abs difference" in text
    assert "random weights" in text


def test_trained_checkpoint_round_trips_through_torchscript(tmp_path, capsys, one_thread):
    from nas.builder import build_model
    from nas.checkpoint import save_model_checkpoint
    from nas.presets import preset
    from nas.scaling import scale_spec

    spec = scale_spec(preset("efficientnet-b0"), 0.25, 0.25, 32).with_(num_classes=10, in_chans=1, norm="groupnorm")
    raw = build_model(spec, generator=torch.Generator().manual_seed(4)).eval()
    ema = build_model(spec, generator=torch.Generator().manual_seed(5)).eval()  # other weights: which one loads shows
    save_model_checkpoint(tmp_path / "model.pt", spec, raw.state_dict(), ema_state_dict=ema.state_dict())
    x = torch.randn(2, 1, 32, 32)
    for flags, expected, other in ((["--ema"], ema, raw), ([], raw, ema)):
        out = tmp_path / f"model{len(flags)}.ts"
        assert main(["export", str(tmp_path / "model.pt"), "--format", "torchscript", "--fuse-bn", *flags,
                     "--out", str(out)]) == 0
        text = capsys.readouterr().out
        assert "trained weights, 1x32x32, 10 classes" in text and "folded 0 BatchNorm" in text
        assert "left as they are" in text and "GroupNorm" in text
        scripted = torch.jit.load(str(out))
        with torch.inference_mode():
            assert torch.allclose(scripted(x), expected(x), atol=1e-5), flags
            assert not torch.allclose(scripted(x), other(x), atol=1e-3), flags


def _error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_export_bad_inputs_are_one_line_errors(tmp_path, capsys):
    corrupt = tmp_path / "model.pt"
    corrupt.write_bytes(b"not a checkpoint at all")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert "unreadable model checkpoint" in _error(capsys, ["export", str(corrupt), "--out", str(tmp_path / "a.onnx")])
    assert "no such model checkpoint" in _error(capsys, ["export", str(tmp_path / "none.pt"),
                                                         "--out", str(tmp_path / "a.onnx")])
    err = _error(capsys, ["export", "efficientnet-b0", "--out", str(blocker / "b0.onnx")])
    assert err.startswith(f"error: --out {blocker / 'b0.onnx'}: cannot write there") and "is a file" in err
    assert "--out" in _error(capsys, ["export", "efficientnet-b0", "--out", str(tmp_path)])
    assert "use format onnx" in _error(capsys, ["export", "efficientnet-b0", "--format", "torchscript", "--int8",
                                                "--calibrate-dataset", "digits", "--out", str(tmp_path / "a.ts")])
    assert "--calibrate-dataset" in _error(capsys, ["export", "efficientnet-b0", "--int8",
                                                    "--out", str(tmp_path / "a.onnx")])
    assert "--resolution" in _error(capsys, ["export", "efficientnet-b0", "--resolution", "2",
                                             "--out", str(tmp_path / "a.onnx")])
    assert "--ema" in _error(capsys, ["export", "efficientnet-b0", "--ema", "--out", str(tmp_path / "a.onnx")])
    assert "invalid choice" in _error(capsys, ["export", "efficientnet-b0", "--format", "tflite",
                                               "--out", str(tmp_path / "a.onnx")])
    assert not list(tmp_path.glob("*.onnx")) and blocker.read_text() == "x"
