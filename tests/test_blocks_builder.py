"""Blocks and the builder: layer structure, residuals and drop-connect, initialization, norms, and a
real network learning real MNIST digits."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nas.blocks import ConvBlock, DepthwiseSeparable, FusedMBConv, MBConv, SqueezeExcite
from nas.blockstrings import spec_from_block_strings
from nas.builder import build_model
from nas.counting import count
from nas.errors import SpecError
from nas.kinds import NORMS
from nas.kinds.groupnorm import groupnorm_groups
from nas.presets import preset

pytestmark = pytest.mark.usefixtures("one_thread")


def test_mbconv_layers_follow_the_spec():
    block = MBConv(16, 24, kernel=5, stride=2, expansion=6, se_ratio=0.25, group_size=1, skip=True, drop_rate=0.0,
                   norm="batchnorm", activation="silu")
    assert (block.conv_pw.in_channels, block.conv_pw.out_channels, block.conv_pw.kernel_size) == (16, 96, (1, 1))
    assert block.conv_dw.groups == 96 and block.conv_dw.stride == (2, 2) and block.conv_dw.padding == (2, 2)
    assert block.se.reduce.out_channels == 4  # max(1, int(16 * 0.25)): the block input, not the 96 expanded
    assert block.conv_pwl.out_channels == 24 and not block.has_residual
    assert all(m.bias is None for m in (block.conv_pw, block.conv_dw, block.conv_pwl))
    assert block.se.reduce.bias is not None and block(torch.randn(2, 16, 9, 9)).shape == (2, 24, 5, 5)
    no_expand = MBConv(16, 16, 3, 1, 1, 0.0)
    assert no_expand.conv_pw is None and no_expand.se is None and no_expand.has_residual
    grouped = MBConv(16, 16, 3, 1, 6, 0.0, 16)
    assert grouped.conv_dw.groups == 6


def test_fused_mbconv_with_and_without_expansion():
    fused = FusedMBConv(24, 48, 3, 2, 4, 0.25)
    assert fused.conv_exp.kernel_size == (3, 3) and fused.conv_exp.stride == (2, 2)
    assert fused.conv_pwl.kernel_size == (1, 1) and fused.act2 is None and fused.se.expand.out_channels == 96
    single = FusedMBConv(24, 24, 3, 1, 1, 0.0)
    assert single.conv_exp is None and single.conv_pwl.kernel_size == (3, 3) and single.act2 is not None
    assert single.has_residual and single(torch.randn(1, 24, 8, 8)).shape == (1, 24, 8, 8)
    assert sum(isinstance(m, nn.Conv2d) for m in single.modules()) == 1


def test_ds_and_conv_blocks():
    ds = DepthwiseSeparable(32, 16, 3, 1, 0.25, 1)
    assert ds.conv_dw.groups == 32 and ds.conv_pw.out_channels == 16 and ds.se.reduce.out_channels == 8
    conv = ConvBlock(16, 16, 5, 1)
    assert conv.conv.groups == 1 and conv.has_residual
    assert conv(torch.randn(1, 16, 7, 7)).shape == (1, 16, 7, 7)


def test_blocks_take_norm_and_activation_by_name_or_factory():
    named = MBConv(16, 16, expansion=4, norm="groupnorm", activation="relu")
    assert isinstance(named.bn1, nn.GroupNorm) and isinstance(named.act1, nn.ReLU)
    assert isinstance(named.se.act, nn.ReLU) and named.se.reduce.out_channels == 4 and named.has_residual
    made = FusedMBConv(16, 32, stride=2, norm=lambda c: nn.BatchNorm2d(c, eps=1e-5), activation=nn.Hardswish)
    assert made.bn1.eps == 1e-5 and isinstance(made.act1, nn.Hardswish) and made.se is None
    assert made(torch.randn(2, 16, 8, 8)).shape == (2, 32, 4, 4)
    assert SqueezeExcite(32).reduce.out_channels == 8  # a quarter of the gated width by default


def test_the_builder_uses_the_public_blocks():
    model = build_model(preset("efficientnetv2-s"))
    assert isinstance(model.stages[0][0], FusedMBConv) and isinstance(model.stages[5][0], MBConv)
    assert isinstance(model.stages[5][0].se, SqueezeExcite)


@pytest.mark.parametrize("make, field", [
    (lambda: MBConv(16, 16, kernel=4), "kernel"),
    (lambda: MBConv(0, 16), "in_channels"),
    (lambda: MBConv(16, 16, expansion=6, group_size=5), "group_size"),
    (lambda: MBConv(16, 16, drop_rate=1.0), "drop_rate"),
    (lambda: FusedMBConv(16, 16, se_ratio=2), "se_ratio"),
    (lambda: DepthwiseSeparable(16, 16, stride=3), "stride"),
    (lambda: ConvBlock(16, 16, norm="instancenorm"), "unknown norm 'instancenorm'; valid: batchnorm"),
    (lambda: ConvBlock(16, 16, activation="gelu"), "unknown activation 'gelu'; valid: relu, silu"),
    (lambda: ConvBlock(16, 16, norm=3), "norm"),
])
def test_bad_block_arguments_raise_spec_errors(make, field):
    with pytest.raises(SpecError, match=field):
        make()


def test_squeeze_excite_gates_channels():
    se = SqueezeExcite(8, 2, "silu")
    x = torch.randn(2, 8, 5, 5)
    gate = se(x) / x
    assert torch.allclose(gate, gate[..., :1, :1].expand_as(gate), atol=1e-5)  # one gate per channel
    assert ((gate > 0) & (gate < 1)).all()


def test_drop_connect_drops_whole_samples_in_training_only():
    torch.manual_seed(0)  # test-local reproducibility of the bernoulli draws
    block = ConvBlock(8, 8, 3, 1, skip=True, drop_rate=0.5).train()
    x = torch.randn(256, 8, 4, 4)
    out = block(x)
    kept_identity = [(out[i] == x[i]).all().item() for i in range(len(x))]
    assert 80 < sum(kept_identity) < 176  # about half of the branches dropped
    block.eval()
    assert torch.equal(block(x), block(x))
    no_skip = ConvBlock(8, 8, 3, 1, skip=False, drop_rate=0.5)
    assert not no_skip.has_residual


def test_drop_connect_rate_grows_linearly_over_blocks():
    spec = preset("efficientnet-b0")
    model = build_model(spec)
    rates = [b.drop_rate for stage in model.stages for b in stage]
    assert len(rates) == 16
    assert rates == pytest.approx([0.2 * i / 16 for i in range(16)])


def test_official_initialization_and_seeded_generator():
    spec = preset("efficientnet-b0")
    model = build_model(spec, generator=torch.Generator().manual_seed(3))
    head = model.head.conv  # 1x1, 320 -> 1280: std sqrt(2 / 1280)
    assert head.weight.std().item() == pytest.approx(math.sqrt(2 / 1280), rel=0.02)
    dw = model.stages[1][0].conv_dw  # depthwise 3x3: fan_out = 9
    assert dw.weight.std().item() == pytest.approx(math.sqrt(2 / 9), rel=0.05)
    bound = 1 / math.sqrt(1000)
    assert model.head.classifier.weight.abs().max().item() <= bound and model.head.classifier.bias.abs().sum() == 0
    bn = model.stem.bn
    assert bn.eps == 1e-3 and bn.momentum == 0.01 and torch.equal(bn.weight, torch.ones_like(bn.weight))
    assert model.stages[0][0].se.reduce.bias.abs().sum() == 0
    again = build_model(spec, generator=torch.Generator().manual_seed(3))
    other = build_model(spec, generator=torch.Generator().manual_seed(4))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    assert not torch.equal(model.head.conv.weight, other.head.conv.weight)


def test_groupnorm_group_count():
    assert [groupnorm_groups(c) for c in (1, 4, 8, 16, 24, 33, 96, 1280)] == [1, 1, 2, 4, 6, 3, 24, 32]
    for c in range(1, 300):
        g = groupnorm_groups(c)
        assert c % g == 0 and g <= 32 and (c // g >= 4 or g == 1)


@pytest.mark.parametrize("norm", [n for n in NORMS if n != "batchnorm"])
def test_batch_independent_norms_do_not_mix_samples(norm):
    spec = spec_from_block_strings("ir_r2_k3_s2_e4_c16_se0.25 er_r1_k3_s2_e2_c24", stem_channels=8,
                                   head_channels=32, resolution=16, norm=norm, num_classes=5, dropout=0.0,
                                   drop_connect_rate=0.0)
    model = build_model(spec).train()
    x = torch.randn(4, 3, 16, 16)
    together = model(x)
    alone = torch.cat([model(x[i:i + 1]) for i in range(4)])
    assert torch.allclose(together, alone, atol=1e-5)


def test_overrides_of_classes_and_input_channels():
    spec = preset("mnasnet-b1")
    model = build_model(spec, num_classes=10, in_chans=1)
    assert model.stem.conv.in_channels == 1 and model.head.classifier.out_features == 10
    small = spec.with_(num_classes=10, in_chans=1)
    assert sum(p.numel() for p in model.parameters()) == count(small).params
    assert model.eval().forward_features(torch.zeros(1, 1, 32, 32)).shape == (1, 1280)


def readme_example() -> str:
    """The code block the README marks as the drop-in example, exactly as written there."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    marker = text.index("<!-- drop-in example:")
    start = text.index("```python\n", marker) + len("```python\n")
    return text[start:text.index("```", start)]


def test_the_readme_drop_in_example_trains():
    namespace: dict = {"__name__": "readme_example"}
    with torch.random.fork_rng():
        torch.manual_seed(0)  # drop-connect draws from the global generator: make this run repeatable
        exec(compile(readme_example(), "README.md (drop-in example)", "exec"), namespace)
    model, losses = namespace["model"], namespace["losses"]
    assert any(isinstance(m, MBConv) for m in model.modules())
    assert len(losses) == 40 and np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])


def read_idx(path, count_: int) -> np.ndarray:
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)
    return array[:count_]


def test_a_small_network_learns_mnist(mnist_dir, train_steps):
    images = torch.from_numpy(read_idx(mnist_dir / "train-images-idx3-ubyte.gz", 512).copy()).float()
    labels = torch.from_numpy(read_idx(mnist_dir / "train-labels-idx1-ubyte.gz", 512).astype(np.int64))
    images = ((images / 255.0 - 0.1307) / 0.3081).unsqueeze(1)
    test_images = torch.from_numpy(read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz", 512).copy()).float()
    test_images = ((test_images / 255.0 - 0.1307) / 0.3081).unsqueeze(1)
    test_labels = torch.from_numpy(read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz", 512).astype(np.int64))
    # groupnorm: batchnorm's TF momentum (0.01) needs far more than 100 steps for usable running stats.
    spec = spec_from_block_strings("ds_r1_k3_s1_c16 ir_r1_k3_s2_e4_c24_se0.25 er_r1_k3_s2_e2_c32",
                                   stem_channels=16, head_channels=64, resolution=28, num_classes=10, in_chans=1,
                                   dropout=0.0, norm="groupnorm")
    model = build_model(spec, generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = train_steps(model, images, labels, optimizer, steps=100, batch=32)
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    model.eval()
    with torch.inference_mode():
        accuracy = (model(test_images).argmax(1) == test_labels).float().mean().item()
    assert accuracy > 0.6  # held-out digits; chance is 0.1
