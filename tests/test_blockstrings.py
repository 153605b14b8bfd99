"""Block strings: the official notations decode to the presets, every spec round-trips through the
typed notation, and malformed strings are refused with the option named."""

from __future__ import annotations

import pytest

from nas.blockstrings import (decode_block, encode_block, spec_from_block_strings, spec_to_block_strings,
                              split_block_strings)
from nas.errors import SpecError
from nas.presets import EFFICIENTNET_B0_BLOCKS, EFFICIENTNET_V2_BLOCKS, MNASNET_BLOCKS, PRESETS, preset
from nas.spec import ArchSpec, StageSpec

# Official strings as printed in google/automl (efficientnet_builder.py, effnetv2_configs.py).
B0_OFFICIAL = ["r1_k3_s11_e1_i32_o16_se0.25", "r2_k3_s22_e6_i16_o24_se0.25", "r2_k5_s22_e6_i24_o40_se0.25",
               "r3_k3_s22_e6_i40_o80_se0.25", "r3_k5_s11_e6_i80_o112_se0.25", "r4_k5_s22_e6_i112_o192_se0.25",
               "r1_k3_s11_e6_i192_o320_se0.25"]
V2S_OFFICIAL = ["r2_k3_s1_e1_i24_o24_c1", "r4_k3_s2_e4_i24_o48_c1", "r4_k3_s2_e4_i48_o64_c1",
                "r6_k3_s2_e4_i64_o128_se0.25", "r9_k3_s1_e6_i128_o160_se0.25", "r15_k3_s2_e6_i160_o256_se0.25"]


def spec_fields(spec: ArchSpec) -> dict:
    data = spec.to_dict()
    del data["stages"]
    return data


def test_official_b0_strings_decode_to_the_preset():
    decoded = spec_from_block_strings(B0_OFFICIAL)
    b0 = preset("efficientnet-b0")
    assert decoded.stages == b0.stages
    assert (decoded.stem_channels, decoded.head_channels, decoded.resolution) == (32, 1280, 224)
    assert decoded.key() == b0.key()
    assert decoded.stages[0] == StageSpec(block="mbconv", repeats=1, kernel=3, stride=1, expansion=1,
                                          out_channels=16, se_ratio=0.25)


def test_official_v2s_strings_decode_to_the_preset():
    decoded = spec_from_block_strings(V2S_OFFICIAL, resolution=384)
    v2s = preset("efficientnetv2-s")
    assert decoded.stages == v2s.stages and decoded.stem_channels == 24
    assert [s.block for s in decoded.stages] == ["fused_mbconv"] * 3 + ["mbconv"] * 3
    assert decoded.stages[1].expansion == 4 and decoded.stages[3].se_ratio == 0.25


def test_presets_encode_back_to_their_official_strings():
    assert spec_to_block_strings(preset("efficientnet-b0"), "efficientnet") == B0_OFFICIAL
    assert spec_to_block_strings(preset("efficientnetv2-s"), "v2") == V2S_OFFICIAL
    for size, strings in EFFICIENTNET_V2_BLOCKS.items():
        assert spec_to_block_strings(preset(f"efficientnetv2-{size}"), "v2") == list(strings)
    for variant, strings in MNASNET_BLOCKS.items():
        assert spec_to_block_strings(preset(f"mnasnet-{variant}"), "efficientnet") == list(strings)
    assert list(EFFICIENTNET_B0_BLOCKS) == B0_OFFICIAL


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip_through_every_notation_they_fit(name):
    spec = preset(name)
    typed = spec_to_block_strings(spec, "typed")
    assert spec_from_block_strings(typed, **spec_fields(spec)) == spec
    styles = ["v2"] + ([] if name.startswith("efficientnetv2") else ["efficientnet"])
    for style in styles:
        again = spec_from_block_strings(spec_to_block_strings(spec, style), **spec_fields(spec))
        assert again == spec, style


def test_random_specs_round_trip_exactly_through_typed_strings(random_specs):
    for spec in random_specs:
        strings = spec_to_block_strings(spec, "typed")
        assert spec_from_block_strings(strings, **spec_fields(spec)) == spec, strings
        # Official notations either refuse the spec or give the same network.
        for style in ("efficientnet", "v2"):
            try:
                official = spec_to_block_strings(spec, style)
            except SpecError:
                continue
            assert spec_from_block_strings(official, **spec_fields(spec)).key() == spec.key(), official


def test_typed_strings_keep_relu_without_the_spec():
    a1 = preset("mnasnet-a1")
    strings = spec_to_block_strings(a1, "typed")
    assert strings[0] == "ds_r1_k3_s1_c16_noskip_nre" or strings[0] == "ir_r1_k3_s1_e1_c16_noskip_nre"
    pasted = spec_from_block_strings(" ".join(strings))
    assert pasted.activation == "relu" and pasted.stages == a1.stages


def test_typed_notation_details():
    d = decode_block("ir_r2_k5_s2_e4.5_c40_se0.25_gs8_noskip_nre")
    assert d.style == "typed" and d.in_channels is None and d.explicit_activation
    assert d.stage == StageSpec(block="mbconv", repeats=2, kernel=5, stride=2, expansion=4.5, out_channels=40,
                                se_ratio=0.25, skip=False, group_size=8, activation="relu")
    assert encode_block(d.stage, 16, "typed", "relu") == "ir_r2_k5_s2_e4.5_c40_se0.25_gs8_noskip_nre"
    assert decode_block("ds_r1_k3_s1_c16").stage.block == "ds"
    assert decode_block("cn_r1_k3_s2_c16").stage.block == "conv"
    assert decode_block("er_r1_k3_s2_e4_c16", activation="relu").stage.activation == "relu"
    # Option order is free.
    assert decode_block("c16_s2_k3_r1_e4_i8".replace("c16_", "o16_")).stage.out_channels == 16


def test_official_notations_refuse_what_they_cannot_say():
    grouped = spec_from_block_strings("ir_r1_k3_s1_e6_c16_gs8", stem_channels=16)
    fused = preset("efficientnetv2-s")
    fractional = spec_from_block_strings("ir_r1_k3_s1_e2.5_c16", stem_channels=16)
    mixed = spec_from_block_strings("ir_r1_k3_s1_e6_c16_nre ir_r1_k3_s1_e6_c16", activation="silu")
    cases = [(grouped, "efficientnet", "group_size"), (grouped, "v2", "group_size"),
             (fused, "efficientnet", "block"), (fractional, "v2", "expansion"), (mixed, "efficientnet", "activation")]
    for spec, style, field in cases:
        with pytest.raises(SpecError, match=field):
            spec_to_block_strings(spec, style)
    with pytest.raises(SpecError, match="style"):
        spec_to_block_strings(fused, "timm")


def test_ds_and_conv_blocks_are_written_as_their_official_equivalents():
    spec = spec_from_block_strings("ds_r1_k3_s1_c16 cn_r1_k3_s2_c24", stem_channels=16)
    assert spec_to_block_strings(spec, "v2") == ["r1_k3_s1_e1_i16_o16", "r1_k3_s2_e1_i16_o24_c1"]
    assert spec_from_block_strings(spec_to_block_strings(spec, "v2"), stem_channels=16).key() == spec.key()


def test_input_widths_are_checked_against_the_previous_stage():
    with pytest.raises(SpecError, match="i32 does not match the output of the stem .24."):
        spec_from_block_strings(B0_OFFICIAL, stem_channels=24)
    broken = list(B0_OFFICIAL)
    broken[3] = broken[3].replace("i40", "i48")
    with pytest.raises(SpecError, match=r"block string 4 .*: i: input width i48"):
        spec_from_block_strings(broken)


@pytest.mark.parametrize("text,field", [
    ("", "empty"), ("r1_k3_s12_e1_i32_o16", "non-square"), ("r1_k3_s111_e1_i32_o16", "s"),
    ("r1_k3_s11_e1_i32", "o"), ("r1_k3_s1_e1_i32_o16_c2", "c"), ("r1_k3_s11_e1_i32_o16_c1", "c"),
    ("r1_k3_s11_e1.5_i32_o16", "e"), ("ir_r1_k3_s22_e1_c16", "s"), ("ir_r1_k3_s1_e1_c16_nre_nsw", "activation"),
    ("ir__r1_k3", "malformed"), ("ir_r1_k3_s1_e1_o16", "o"), ("r1_k3_s11_e1_i0_o16", "i"),
    ("ir_r1_k3_s3_e1_c16", "stride"), ("ir_r1_k3_s1_e1_c16_se2", "se_ratio"), ("ir_r1_k3_s1_e1_c0", "out_channels"),
])
def test_malformed_block_strings(text, field):
    with pytest.raises(SpecError, match=field):
        decode_block(text)


def test_splitting_accepts_spaces_commas_and_pasted_lists():
    pasted = "['r1_k3_s11_e1_i32_o16_se0.25', 'r2_k3_s22_e6_i16_o24_se0.25']"
    assert spec_from_block_strings(pasted).stages == spec_from_block_strings(B0_OFFICIAL[:2]).stages
    assert split_block_strings("a_1, b_2  c_3") == ["a_1", "b_2", "c_3"]
    assert split_block_strings([["a_1", "b_2"], ["c_3"]]) == ["a_1", "b_2", "c_3"]
    with pytest.raises(SpecError, match="none given"):
        spec_from_block_strings(" , ")
