"""Search spaces: sizes, round trips of the published backbones, and that every sample builds and counts."""

from __future__ import annotations

import numpy as np
import pytest

from nas.counting import count
from nas.errors import SpaceError
from nas.presets import preset
from search_spaces import SPACES, ProxyConfig, make_space, space_from_dict


def test_efficientnet_b0_round_trips_through_the_efficientnet_space():
    space = make_space("efficientnet")
    b0 = preset("efficientnet-b0")
    choices = space.encode(b0)
    decoded = space.decode(choices)
    assert decoded.stages == b0.stages
    assert decoded.key() == b0.key()
    assert (decoded.stem_channels, decoded.head_channels, decoded.resolution) == (32, 1280, 224)
    # B0 is "every decision at its base value".
    assert space.backbone().key() == b0.key()


def test_efficientnetv2_s_round_trips_through_the_v2_space():
    space = make_space("efficientnetv2")
    v2s = preset("efficientnetv2-s")
    decoded = space.decode(space.encode(v2s))
    assert decoded.stages == v2s.stages
    assert decoded.key() == v2s.with_(resolution=decoded.resolution, dropout=decoded.dropout,
                                      drop_connect_rate=decoded.drop_connect_rate).key()


def test_mnasnet_space_uses_the_mobilenet_v2_backbone():
    space = make_space("mnasnet")
    backbone = space.backbone()
    assert [s.out_channels for s in backbone.stages] == [16, 24, 32, 64, 96, 160, 320]
    assert [s.repeats for s in backbone.stages] == [1, 2, 3, 4, 3, 3, 1]
    assert {s.activation for s in backbone.stages} == {"relu"}
    # 7 stages x (4 ops, 2 kernels, 2 SE, 2 skip, 3 filters, 3 layers)
    assert space.size == (4 * 2 * 2 * 2 * 3 * 3) ** 7
    assert len(space.decisions) == 42


@pytest.mark.parametrize("name", sorted(SPACES))
def test_every_sample_decodes_builds_and_counts(name):
    from nas.builder import build_model

    space = make_space(name)
    assert space.size > 1
    rng = np.random.default_rng(0)
    proxy = ProxyConfig(width=0.25, depth=0.25, resolution=16)
    for i in range(25):
        choices = space.sample(rng)
        full = space.full_size(choices, proxy, num_classes=10, in_chans=1)
        assert space.encode(full) is not None
        assert space.decode(space.encode(full)).key() == space.decode(choices).key()
        cost = count(full)
        assert cost.macs > 0 and cost.params > 0
        if i < 5:  # building is slower: a few proxies per space
            small = space.proxy(full, proxy)
            model = build_model(small)
            assert sum(p.numel() for p in model.parameters()) == count(small).params


def test_proxy_transform_shrinks_width_depth_and_resolution():
    space = make_space("efficientnet")
    full = space.full_size(space.base_choices(), ProxyConfig(), num_classes=10, in_chans=1)
    small = space.proxy(full, ProxyConfig(width=0.5, depth=0.5, resolution=32))
    assert small.resolution == 32 and small.num_classes == 10 and small.in_chans == 1
    assert count(small).params < count(full).params
    assert sum(s.repeats for s in small.stages) < sum(s.repeats for s in full.stages)


def test_choices_outside_the_space_are_refused():
    space = make_space("efficientnet")
    with pytest.raises(SpaceError, match="choices"):
        space.decode([0] * 3)
    with pytest.raises(SpaceError, match="outside"):
        space.decode([99] * len(space.decisions))
    with pytest.raises(SpaceError, match="not in the space"):
        space.encode(preset("efficientnetv2-s").with_(stages=preset("efficientnetv2-s").stages + (
            preset("efficientnetv2-s").stages[-1],)))


def test_unknown_space_lists_the_valid_ones():
    with pytest.raises(SpaceError, match="efficientnet, efficientnetv2"):
        make_space("nope")


YAML_OK = """
name: tiny
stem_channels: 16
head_channels: 256
resolution: 64
activation: relu
choices:
  op: [ds, mbconv3, fused4]
  kernel: [3, 5]
  layers: [0, 1]
stages:
  - {op: ds, kernel: 3, stride: 1, filters: 16, layers: 1}
  - {op: mbconv3, kernel: 3, stride: 2, filters: 24, layers: 2, se: 0.25, choices: {kernel: [3, 7]}}
"""


def test_yaml_space_loads_and_samples(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(YAML_OK)
    space = make_space(str(path))
    assert space.name == "tiny"
    assert space.size == (3 * 2 * 2) ** 2
    assert space.decisions[4].name == "s2_kernel" and space.decisions[4].options == (3, 7)
    spec = space.decode(space.sample(np.random.default_rng(1)))
    assert spec.head_channels == 256 and spec.activation == "relu"


@pytest.mark.parametrize("text, message", [
    ("stages: 3", "stages"),
    ("stages: []", "stages"),
    ("stages:\n  - {op: mbconv6, kernel: 3, stride: 1, filters: 16}", "missing layers"),
    ("stages:\n  - {op: mbconv6, kernel: 3, stride: 3, filters: 16, layers: 1}", "stride"),
    ("stages:\n  - {op: warp, kernel: 3, stride: 1, filters: 16, layers: 1}", "operator"),
    ("stages:\n  - {op: mbconv6, kernel: 3, stride: 1, filters: 16, layers: 1, colour: red}", "colour"),
    ("choices: {kernel: [3, 4]}\nstages:\n  - {op: mbconv6, kernel: 3, stride: 1, filters: 16, layers: 1}", "kernel"),
    ("choices: {filters: [0, 1.0]}\nstages:\n  - {op: mbconv6, kernel: 3, stride: 1, filters: 16, layers: 1}",
     "filters"),
    ("choices: {depth: [1, 2]}\nstages:\n  - {op: mbconv6, kernel: 3, stride: 1, filters: 16, layers: 1}", "depth"),
    ("choices: {se: [0, 1.5]}\nstages:\n  - {op: mbconv6, kernel: 3, stride: 1, filters: 16, layers: 1}", "se_ratio"),
    ("choices: {kernel: [3, 3]}\nstages:\n  - {op: mbconv6, kernel: 3, stride: 1, filters: 16, layers: 1}",
     "duplicate"),
    ("stages: [\n", "not valid YAML"),
])
def test_bad_yaml_spaces_give_one_line_errors(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SpaceError, match=message) as info:
        make_space(str(path))
    assert "\n" not in str(info.value)
    assert str(path) in str(info.value)


def test_missing_yaml_file(tmp_path):
    with pytest.raises(SpaceError, match="no such space file"):
        make_space(str(tmp_path / "absent.yaml"))


def test_space_from_dict_rejects_non_mapping():
    with pytest.raises(SpaceError):
        space_from_dict([1, 2, 3])
