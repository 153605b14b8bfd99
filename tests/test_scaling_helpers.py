"""Rounding helpers and spec scaling: the official rules reproduce B1..B7 from B0."""

from __future__ import annotations

import math

import pytest

from nas.counting import count
from nas.errors import SpecError
from nas.presets import preset
from nas.scaling import EFFICIENTNET_PARAMS, round_filters, round_repeats, scale_spec


@pytest.mark.parametrize("filters,width,expected", [
    (32, 1.0, 32), (32, 1.1, 32), (32, 1.4, 48), (32, 2.0, 64), (1280, 1.1, 1408), (1280, 1.2, 1536),
    (1280, 1.4, 1792), (1280, 1.6, 2048), (1280, 1.8, 2304), (1280, 2.0, 2560),
    (16, 0.25, 8), (40, 1.2, 48), (112, 1.8, 200), (3, 1.0, 8),
])
def test_round_filters_gives_the_published_widths(filters, width, expected):
    # Head widths of B2..B7 as in the official checkpoints (1408, 1536, 1792, 2048, 2304, 2560).
    assert round_filters(filters, width) == expected


def test_round_filters_never_loses_more_than_ten_percent():
    for filters in range(1, 400, 7):
        for width in (0.25, 0.35, 0.5, 0.75, 1.0, 1.1, 1.3, 1.7, 2.0):
            new = round_filters(filters, width)
            assert new % 8 == 0 and new >= 8
            assert new >= 0.9 * filters * width
    assert round_filters(30, 1.0, divisor=4) == 32


def test_round_repeats_rounds_up():
    assert [round_repeats(r, 1.1) for r in (1, 2, 3, 4)] == [2, 3, 4, 5]
    assert round_repeats(4, 3.1) == 13 and round_repeats(3, 1.0) == 3 and round_repeats(1, 0.25) == 1


def test_scaling_is_the_identity_at_one():
    b0 = preset("efficientnet-b0")
    assert scale_spec(b0) == b0


@pytest.mark.parametrize("name", sorted(EFFICIENTNET_PARAMS))
def test_presets_are_b0_scaled_by_their_table_row(name):
    width, depth, resolution, dropout = EFFICIENTNET_PARAMS[name]
    scaled = scale_spec(preset("efficientnet-b0"), width, depth, resolution, dropout)
    assert scaled.key() == preset(name).key()
    assert scaled.stem_channels == round_filters(32, width)
    assert [s.repeats for s in scaled.stages] == [math.ceil(depth * r) for r in (1, 2, 2, 3, 3, 4, 1)]


def test_mnasnet_head_stays_1280_unless_overridden():
    a1 = preset("mnasnet-a1")
    wide = scale_spec(a1, width=1.4)
    assert wide.head_channels == 1280 and wide.stem_channels == 48
    assert scale_spec(a1, width=1.4, scale_head=True).head_channels == 1792
    assert scale_spec(preset("efficientnet-b0"), width=1.4, scale_head=False).head_channels == 1280
    assert scale_spec(a1.with_(head_channels=0), width=2.0).head_channels == 0


def test_scaling_changes_cost_as_expected():
    b0 = preset("efficientnet-b0")
    deeper = scale_spec(b0, depth=2.0)
    wider = scale_spec(b0, width=2.0)
    assert count(deeper).macs < count(wider).macs  # FLOPs grow ~linearly in depth, ~quadratically in width
    assert count(scale_spec(b0, resolution=448)).macs == pytest.approx(4 * count(b0).macs, rel=0.05)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), True, "2"])
def test_bad_multipliers_are_refused(bad):
    with pytest.raises(SpecError, match="width"):
        scale_spec(preset("efficientnet-b0"), width=bad)
    with pytest.raises(SpecError, match="depth"):
        scale_spec(preset("efficientnet-b0"), depth=bad)


def test_scaled_resolution_is_validated():
    with pytest.raises(SpecError, match="resolution"):
        scale_spec(preset("efficientnet-b0"), resolution=2)
