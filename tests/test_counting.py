"""The analytic counter against the built model: params exactly, MACs exactly against torch's
FlopCounterMode (which counts 2 FLOPs per multiply-add), for random specs over every registered block
and norm kind and for every preset at its own resolution."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nas.builder import build_model
from nas.counting import count
from nas.errors import SpecError
from nas.kinds import BLOCKS, NORMS
from nas.presets import PRESETS, preset

pytestmark = pytest.mark.usefixtures("one_thread")


def torch_macs(model: nn.Module, in_chans: int, resolution: int, device: str = "cpu") -> int:
    """FlopCounterMode counts 2 FLOPs per multiply-add."""
    model.eval()
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, in_chans, resolution, resolution, device=device))
    return counter.get_total_flops() // 2


def build_on_meta(spec) -> nn.Module:
    """The network with shapes but no storage: FlopCounterMode counts it without computing anything,
    so even B7 at 600 px costs a fraction of a second."""
    with torch.device("meta"):
        return build_model(spec)


def torch_peak(model: nn.Module, in_chans: int, resolution: int) -> int:
    """Largest conv output of one image (and the input), seen by forward hooks."""
    sizes = [in_chans * resolution * resolution]
    hooks = [m.register_forward_hook(lambda _m, _i, out: sizes.append(out[0].numel()))
             for m in model.modules() if isinstance(m, nn.Conv2d)]
    model.eval()
    with torch.inference_mode():
        model(torch.zeros(1, in_chans, resolution, resolution))
    for h in hooks:
        h.remove()
    return max(sizes)


def params_of(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_random_specs_agree_with_the_built_model(random_specs):
    assert len(random_specs) >= 200
    blocks, kernels, norms_chans, se, grouped = set(), set(), set(), False, False
    for spec in random_specs:
        cost = count(spec)
        model = build_model(spec)
        assert cost.params == params_of(model), spec
        assert cost.macs == torch_macs(model, spec.in_chans, spec.resolution), spec
        blocks |= {s.block for s in spec.stages}
        kernels |= {s.kernel for s in spec.stages}
        norms_chans.add((spec.norm, spec.in_chans))
        se |= any(s.se_ratio > 0 for s in spec.stages)
        grouped |= any(s.group_size > 1 for s in spec.stages)
    # The sample covers what it claims to: every block kind, kernel, norm kind x input channels, SE, grouping.
    assert blocks == set(BLOCKS) and kernels == {3, 5, 7}
    assert len(norms_chans) == 2 * len(NORMS) and se and grouped


def test_peak_activation_is_the_largest_feature_map(random_specs):
    for spec in random_specs[:30]:
        assert count(spec).peak_activation == torch_peak(build_model(spec), spec.in_chans, spec.resolution)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_macs_agree_with_flop_counter_at_their_own_resolution(name):
    spec = preset(name)  # B0..B7 at 224..600 px, V2-S/M/L at 384/480/480, MnasNet at 224
    model = build_on_meta(spec)
    assert count(spec).params == params_of(model)
    assert count(spec).macs == torch_macs(model, 3, spec.resolution, device="meta")


def test_flop_counter_counts_the_same_on_the_meta_device():
    spec = preset("efficientnetv2-s")
    real = torch_macs(build_model(spec), 3, 64)
    assert real == torch_macs(build_on_meta(spec), 3, 64, device="meta") == count(spec, resolution=64).macs


def test_parts_add_up_and_params_do_not_depend_on_resolution():
    spec = preset("efficientnet-b0")
    cost = count(spec)
    assert [p.name for p in cost.stages] == ["stem"] + [f"stage{i}" for i in range(1, 8)] + ["head"]
    assert sum(p.macs for p in cost.stages) == cost.macs
    assert sum(p.params for p in cost.stages) == cost.params
    # Table 1 of the EfficientNet paper: output resolution and width of every stage.
    assert [(p.resolution_out, p.channels_out) for p in cost.stages[:-1]] == [
        (112, 32), (112, 16), (56, 24), (28, 40), (14, 80), (14, 112), (7, 192), (7, 320)]
    assert count(spec, resolution=300).params == cost.params
    assert count(spec, resolution=300).macs > cost.macs
    assert count(spec.with_(resolution=300)).macs == count(spec, resolution=300).macs


def test_b0_is_0_39_g_multiply_adds():
    # EfficientNet paper, Table 2: B0 0.39B FLOPs (multiply-adds).
    assert 0.38e9 <= count(preset("efficientnet-b0")).macs <= 0.40e9


def test_mnasnet_a1_cost():
    # MnasNet paper, Table 1: MnasNet-A1 3.9M params, 312M multiply-adds at 224.
    cost = count(preset("mnasnet-a1"))
    assert abs(cost.params - 3.9e6) < 0.05e6
    assert abs(cost.macs - 312e6) < 3e6


@pytest.mark.parametrize("resolution", [4, 0, -32, 10_000, 32.5, True])
def test_bad_resolution_is_refused(resolution):
    with pytest.raises(SpecError, match="resolution"):
        count(preset("efficientnet-b0"), resolution=resolution)


def test_counting_does_not_need_torch():
    import subprocess
    import sys

    code = ("import sys; from nas import count, preset; count(preset('efficientnetv2-s')); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
