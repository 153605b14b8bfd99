"""The kind registries: every registered block and norm kind is complete and agrees with what it
builds; unknown names list the valid ones. Parametrized over the registries, so a new kind is
checked here without editing this file."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nas.blockstrings import decode_block, encode_block, spec_from_block_strings, spec_to_block_strings
from nas.builder import build_model
from nas.counting import count
from nas.errors import SpecError
from nas.kinds import BLOCKS, NORMS
from nas.presets import preset
from nas.registry import Registry
from nas.spec import ArchSpec, StageSpec
from search_spaces.base import parse_op

pytestmark = pytest.mark.usefixtures("one_thread")


def params_of(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_registries_load_kinds_by_name_and_list_valid_names():
    for registry in (BLOCKS, NORMS):
        for name in registry:
            assert registry[name].name == name
    with pytest.raises(SpecError, match="unknown norm 'instancenorm'; valid: batchnorm, .*layernorm"):
        NORMS["instancenorm"]
    with pytest.raises(SpecError, match="unknown block 'transformer'; valid: conv, ds, fused_mbconv, mbconv"):
        BLOCKS["transformer"]
    with pytest.raises(SpecError, match="norm: unknown normalization 'instancenorm'; valid: batchnorm"):
        preset("efficientnet-b0").with_(norm="instancenorm")


def test_a_kind_registered_from_outside_is_used_by_the_spec():
    registry = Registry("norm", {"batchnorm": "nas.kinds.batchnorm:KIND"}, error=SpecError)
    registry.register("plain", "nas.kinds.layernorm:KIND")
    assert list(registry) == ["batchnorm", "plain"] and registry["plain"].name == "layernorm"
    with pytest.raises(SpecError, match="registered already"):
        registry.register("plain", "nas.kinds.groupnorm:KIND")
    with pytest.raises(SpecError, match="module:attribute"):
        registry.register("other", "nas.kinds.groupnorm")


@pytest.mark.parametrize("name", list(NORMS))
@pytest.mark.parametrize("follows", [True, False])
def test_norm_kind_params_are_those_of_its_layers(name, follows):
    kind = NORMS[name]
    for channels in (1, 3, 8, 24, 96, 1280):
        layers = [kind.build(channels, follows)]
        if follows:
            layers.append(kind.wrap_activation(channels, nn.SiLU()))
        assert kind.params(channels, follows) == sum(params_of(layer) for layer in layers), (name, channels)
        x = torch.randn(2, channels, 5, 5)
        for layer in layers:
            x = layer(x)
        assert x.shape == (2, channels, 5, 5) and torch.isfinite(x).all()


@pytest.mark.parametrize("name", list(NORMS))
def test_every_norm_counts_exactly_on_b0_and_round_trips(name):
    spec = preset("efficientnet-b0").with_(norm=name)
    with torch.device("meta"):
        model = build_model(spec)
    assert count(spec).params == params_of(model)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model.eval()(torch.zeros(1, 3, 224, 224, device="meta"))
    assert count(spec).macs == counter.get_total_flops() // 2 == count(preset("efficientnet-b0")).macs
    assert ArchSpec.from_json(spec.to_json()) == spec
    assert spec.key() != preset("efficientnet-b0").key() or name == "batchnorm"
    for style in ("typed", "efficientnet"):
        again = spec_from_block_strings(spec_to_block_strings(spec, style), stem_channels=32, norm=name,
                                        resolution=224, name=spec.name)
        assert again.key() == spec.key()


@pytest.mark.parametrize("name", list(BLOCKS))
def test_every_block_kind_is_complete(name):
    kind = BLOCKS[name]
    stage = StageSpec(block=name, repeats=2, kernel=3, stride=2, expansion=4 if kind.has_expansion else 1,
                      out_channels=16, se_ratio=0.25 if kind.has_se else 0.0,
                      group_size=2 if kind.has_group_size else 1)
    # block strings: the typed notation round-trips; official ones write the kind or its alias
    text = encode_block(stage, 8)
    assert text.startswith(kind.prefix + "_") and decode_block(text).stage == stage
    assert kind.official or kind.official_alias in BLOCKS
    # search-space operator
    op = kind.op + ("4" if kind.has_expansion else "")
    assert parse_op(op) == (name, 4.0 if kind.has_expansion else 1)
    # cost == built block, and the block is the kind's
    spec = ArchSpec(stem_channels=8, stages=(stage,), head_channels=0, resolution=16, num_classes=3)
    model = build_model(spec)
    assert count(spec).params == params_of(model)
    # fields the kind does not have are refused
    for field, value in (("expansion", 2), ("se_ratio", 0.5), ("group_size", 2)):
        has = {"expansion": kind.has_expansion, "se_ratio": kind.has_se, "group_size": kind.has_group_size}[field]
        if not has:
            with pytest.raises(SpecError, match=f"stage.{field}"):
                StageSpec(**{**stage.to_dict(), field: value})


def test_kind_codes_are_unambiguous():
    kinds = BLOCKS.entries()
    assert len({k.prefix for k in kinds}) == len({k.op for k in kinds}) == len(kinds)
    for style in ("efficientnet", "v2"):
        codes = [k.official[style] for k in kinds if style in k.official]
        assert len(codes) == len(set(codes)) and 0 in codes
