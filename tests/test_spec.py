"""ArchSpec / StageSpec: validation names the bad field, JSON round trips, the canonical dedupe key."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from nas.blockstrings import spec_from_block_strings
from nas.errors import NasError, SpecError
from nas.presets import PRESETS, preset
from nas.spec import ArchSpec, StageSpec


def stage(**changes) -> StageSpec:
    base = dict(block="mbconv", repeats=2, kernel=3, stride=1, expansion=6, out_channels=24, se_ratio=0.25)
    return StageSpec(**{**base, **changes})


def spec(*stages: StageSpec, **changes) -> ArchSpec:
    base = dict(stem_channels=24, stages=stages or (stage(),), head_channels=64)
    return ArchSpec(**{**base, **changes})


def b0_dict(**changes) -> dict:
    data = preset("efficientnet-b0").to_dict()
    data.update(changes)
    return data


def b0_stage_dict(index: int = 0, drop: str | None = None, **changes) -> dict:
    data = preset("efficientnet-b0").to_dict()
    data["stages"][index].update(changes)
    if drop:
        del data["stages"][index][drop]
    return data


# (what is wrong, how to make it, a field name the message must contain)
BAD_SPECS = [
    ("zero channels", lambda: stage(out_channels=0), "out_channels"),
    ("negative stem", lambda: spec(stem_channels=-8), "stem_channels"),
    ("negative head", lambda: spec(head_channels=-1), "head_channels"),
    ("boolean channels", lambda: stage(out_channels=True), "out_channels"),
    ("stride 3", lambda: stage(stride=3), "stride"),
    ("even kernel", lambda: stage(kernel=4), "kernel"),
    ("zero repeats", lambda: stage(repeats=0), "repeats"),
    ("unknown block type", lambda: stage(block="transformer"), "block"),
    ("SE ratio above 1", lambda: stage(se_ratio=1.5), "se_ratio"),
    ("negative SE ratio", lambda: stage(se_ratio=-0.1), "se_ratio"),
    ("expansion below 1", lambda: stage(expansion=0.5), "expansion"),
    ("ds with expansion", lambda: stage(block="ds", expansion=6), "expansion"),
    ("conv with SE", lambda: stage(block="conv", expansion=1, se_ratio=0.25), "se_ratio"),
    ("fused with groups", lambda: stage(block="fused_mbconv", group_size=2), "group_size"),
    ("group size not dividing", lambda: spec(stage(group_size=10)), "group_size"),
    ("skip not a bool", lambda: stage(skip="yes"), "skip"),
    ("bad stage activation", lambda: stage(activation="gelu"), "activation"),
    ("bad activation", lambda: spec(activation="tanh"), "activation"),
    ("bad norm", lambda: spec(norm="instancenorm"), "norm"),
    ("resolution too small", lambda: spec(resolution=4), "resolution"),
    ("dropout 1", lambda: spec(dropout=1.0), "dropout"),
    ("no stages", lambda: spec(stages=()), "stages"),
    ("unknown field in JSON", lambda: ArchSpec.from_dict(b0_dict(depth=3)), "depth"),
    ("unknown stage field in JSON", lambda: ArchSpec.from_dict(b0_stage_dict(2, filters=3)), "stages[2]"),
    ("missing field in JSON", lambda: ArchSpec.from_dict({"stem_channels": 32, "stages": []}), "head_channels"),
    ("missing stage field in JSON", lambda: ArchSpec.from_dict(b0_stage_dict(1, drop="kernel")), "stages[1].kernel"),
    ("bad value in JSON stage", lambda: ArchSpec.from_dict(b0_stage_dict(3, stride=4)), "stages[3].stride"),
    ("not JSON", lambda: ArchSpec.from_json("{stem: 32"), "spec"),
    ("malformed block string: no stride", lambda: spec_from_block_strings("r1_k3_e1_i32_o16"), "s"),
    ("malformed block string: unknown option", lambda: spec_from_block_strings("r1_k3_s11_e1_i32_o16_q7"), "q"),
    ("malformed block string: non-numeric", lambda: spec_from_block_strings("r1_kx_s11_e1_i32_o16"), "k"),
    ("malformed block string: repeated key", lambda: spec_from_block_strings("ir_r1_r2_k3_s1_e1_c16"), "r"),
    ("malformed block string: unknown flag", lambda: spec_from_block_strings("ir_r1_k3_s1_e1_c16_nogo"), "nogo"),
    ("malformed block string: typed without e", lambda: spec_from_block_strings("ir_r1_k3_s1_c16"), "e"),
    ("block string i-mismatch", lambda: spec_from_block_strings("r1_k3_s11_e1_i32_o16 r2_k3_s22_e6_i24_o24"), "i"),
    ("block string even kernel", lambda: spec_from_block_strings("er_r1_k2_s1_e4_c16"), "kernel"),
]


@pytest.mark.parametrize("what,make,field", BAD_SPECS, ids=[b[0] for b in BAD_SPECS])
def test_bad_specs_raise_spec_error_naming_the_field(what, make, field):
    with pytest.raises(SpecError) as info:
        make()
    message = str(info.value)
    assert isinstance(info.value, NasError)
    assert field in message and "\n" not in message, (what, message)


def test_at_least_fifteen_kinds_of_bad_spec():
    assert len(BAD_SPECS) >= 15


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip_through_json(name):
    original = preset(name)
    again = ArchSpec.from_json(original.to_json())
    assert again == original and again.key() == original.key()
    assert json.loads(again.to_json()) == original.to_dict()


def test_random_specs_round_trip_through_json(random_specs):
    for original in random_specs:
        assert ArchSpec.from_json(original.to_json(indent=None)) == original


def test_old_json_without_scale_head_still_loads():
    data = b0_dict()
    del data["scale_head"]
    assert ArchSpec.from_dict(data).scale_head is True


def test_expansion_6_and_6_0_are_one_spec():
    assert stage(expansion=6.0) == stage(expansion=6) and isinstance(stage(expansion=6.0).expansion, int)


# ------------------------------------------------------------------------------ canonical key
def test_key_ignores_the_name_and_scale_head():
    b0 = preset("efficientnet-b0")
    assert b0.with_(name="mine", scale_head=False).key() == b0.key()


def test_ds_and_mbconv_with_expansion_1_are_one_network():
    ds = spec(stage(block="ds", expansion=1, out_channels=16, repeats=1))
    ir = spec(stage(block="mbconv", expansion=1, out_channels=16, repeats=1))
    assert ds != ir and ds.key() == ir.key()


def test_fused_expansion_1_without_se_is_a_conv_block():
    fused = spec(stage(block="fused_mbconv", expansion=1, se_ratio=0.0))
    conv = spec(stage(block="conv", expansion=1, se_ratio=0.0))
    assert fused.key() == conv.key()
    # ... but not with SE, which the conv block does not have.
    assert spec(stage(block="fused_mbconv", expansion=1, se_ratio=0.25)).key() != conv.key()


def test_skip_matters_only_where_a_residual_is_possible():
    # One block, stride 2, 24 -> 32: no residual can exist, so skip changes nothing.
    one = stage(repeats=1, stride=2, out_channels=32)
    assert spec(one).key() == spec(replace(one, skip=False)).key()
    # Stride 1 and equal widths: the residual exists, skip changes the network.
    same = stage(repeats=1, stride=1, out_channels=24)
    assert spec(same).key() != spec(replace(same, skip=False)).key()
    # Later repeats always have a residual.
    two = stage(repeats=2, stride=2, out_channels=32)
    assert spec(two).key() != spec(replace(two, skip=False)).key()


def test_drop_connect_rate_matters_only_with_residuals():
    no_residual = stage(repeats=1, stride=2, out_channels=32)
    assert spec(no_residual, drop_connect_rate=0.2).key() == spec(no_residual, drop_connect_rate=0.0).key()
    assert spec(stage(), drop_connect_rate=0.2).key() != spec(stage(), drop_connect_rate=0.0).key()


@pytest.mark.parametrize("change", [dict(kernel=5), dict(se_ratio=0.5), dict(expansion=4), dict(repeats=3),
                                    dict(activation="relu"), dict(group_size=8), dict(out_channels=32)])
def test_keys_differ_when_the_network_differs(change):
    assert spec(stage()).key() != spec(stage(**change)).key()


def test_keys_differ_for_every_preset():
    assert len({preset(n).key() for n in PRESETS}) == len(PRESETS)


def test_mid_channels_follow_the_official_rule():
    assert stage(expansion=6).mid_channels(40) == 240
    assert stage(expansion=2.5).mid_channels(15) == 37  # int(37.5)
