"""Compound scaling maths: the constrained grid, predicted vs counted cost, the B1..BN family."""

from __future__ import annotations

import math

import pytest

from nas.compound import (PAPER, Coefficients, apply_coefficients, apply_official, check_phi, enumerate_grid,
                          grid_values, proxy_for_point, ratio_table, scale_compound, scaled_resolution)
from nas.counting import count
from nas.errors import ConfigError, NasError
from nas.presets import preset
from nas.scaling import round_filters, round_repeats, scale_spec
from search_spaces import ProxyConfig


@pytest.fixture(scope="module")
def b0():
    return preset("efficientnet-b0")


def test_every_kept_point_satisfies_the_formula_and_the_reference_is_marked(b0):
    points = enumerate_grid(b0, phi=1, step=0.05, high=1.5, tol=0.1)
    assert points[0].reference and points[0].coefficients == PAPER
    assert sum(p.reference for p in points) == 1
    assert len(points) > 20
    for p in points:
        assert min(p.alpha, p.beta, p.gamma) >= 1 and max(p.alpha, p.beta, p.gamma) <= 1.5 + 1e-9
        assert p.predicted == pytest.approx(p.alpha * p.beta ** 2 * p.gamma ** 2)
        assert p.in_constraint and abs(p.predicted / 2 - 1) <= 0.1 + 1e-9
    # 1.2 * 1.1^2 * 1.15^2 = 1.92: the paper's point lies on this grid and inside the constraint
    assert points[0].predicted == pytest.approx(1.92027)


def test_actual_ratio_is_exactly_the_counted_macs_ratio(b0):
    base_macs = count(b0).macs
    points = enumerate_grid(b0, phi=1, step=0.1, high=1.3, tol=0.1)
    frame = ratio_table(points)
    assert list(frame.columns[:7]) == ["alpha", "beta", "gamma", "reference", "in_constraint", "predicted", "actual"]
    for p, row in zip(points, frame.to_dict("records")):
        spec = scale_compound(b0, p.coefficients, 1)
        assert spec.key() == p.spec.key()
        assert p.actual == count(spec).macs / base_macs == row["actual"]
        assert p.macs == count(spec).macs and p.params == count(spec).params
    # rounding makes the two ratios differ: repeats round up (1 block * 1.2 -> 2 blocks)
    assert any(abs(p.actual - p.predicted) > 0.05 for p in points)


def test_reference_off_the_grid_is_still_evaluated(b0):
    points = enumerate_grid(b0, phi=1, step=0.1, high=1.3, tol=0.1)  # 1.15 is not a multiple of 0.1
    assert points[0].reference and points[0].gamma == 1.15
    assert all(not p.reference for p in points[1:])


def test_actual_constraint_filters_by_the_counted_ratio(b0):
    points = enumerate_grid(b0, phi=1, step=0.05, high=1.5, tol=0.1, constraint="actual")
    kept = [p for p in points if not p.reference]
    assert kept and all(abs(p.actual / 2 - 1) <= 0.1 + 1e-12 for p in kept)
    ref = points[0]
    # B0's counted cost at (1.2, 1.1, 1.15) is 2.23x (ceil on repeats): outside, yet present and marked
    assert ref.reference and not ref.in_constraint and ref.actual == pytest.approx(2.2287, abs=1e-3)
    formula = {p.coefficients for p in enumerate_grid(b0, step=0.05, high=1.5, tol=0.1)}
    assert {p.coefficients for p in kept} != formula


def test_phi_two_targets_four_times_the_cost(b0):
    points = enumerate_grid(b0, phi=2, step=0.1, high=1.3, tol=0.1, constraint="actual")
    assert all(abs(p.actual / 4 - 1) <= 0.1 + 1e-12 for p in points if not p.reference)


def test_resolution_rounds_to_a_multiple_of_4():
    assert scaled_resolution(224, 1.15) == 256  # 257.6 -> 256
    assert scaled_resolution(225, 1.0) == 225  # factor 1 keeps any resolution
    for factor in (1.01, 1.07, 1.15, 1.3, 2.66):
        r = scaled_resolution(224, factor)
        assert r % 4 == 0 and abs(r - 224 * factor) <= 2
    # the published EfficientNet resolutions are reproduced exactly from 224
    for published in (240, 260, 300, 380, 456, 528, 600):
        assert scaled_resolution(224, published / 224) == published


def test_phi_one_scales_depth_width_and_resolution_by_the_one_rule(b0):
    b1ish = scale_compound(b0, PAPER, 1)
    assert b1ish.resolution == 256  # 224 * 1.15 = 257.6, rounded to the nearest multiple of 4
    assert [s.repeats for s in b1ish.stages] == [round_repeats(s.repeats, 1.2) for s in b0.stages]
    assert [s.out_channels for s in b1ish.stages] == [round_filters(s.out_channels, 1.1) for s in b0.stages]
    assert b1ish.stem_channels == round_filters(32, 1.1) and b1ish.head_channels == round_filters(1280, 1.1)
    assert scale_compound(b0, PAPER, 0) is b0


def test_apply_paper_coefficients_grows_monotonically_and_phi0_is_b0(b0):
    models = apply_coefficients(b0, PAPER, 7)
    assert [m.phi for m in models] == list(range(8))
    assert models[0].spec.key() == b0.key() and models[0].spec == b0
    for small, big in zip(models, models[1:]):
        assert big.params > small.params and big.macs > small.macs and big.resolution > small.resolution
    assert models[7].depth == pytest.approx(1.2 ** 7) and models[7].width == pytest.approx(1.1 ** 7)
    assert models[7].resolution == 596  # 224 * 1.15^7 = 595.8


def test_official_reproduces_every_preset(b0):
    models = apply_official(b0, 7)
    for m in models:
        published = preset(f"efficientnet-b{m.phi}")
        assert m.params == count(published).params
        assert m.spec.key() == published.key() and m.resolution == published.resolution
    # side by side: the official depth of B7 (3.1) is not 1.2^7 (3.58)
    assert models[7].depth == 3.1 and models[7].paper_depth == pytest.approx(1.2 ** 7)


def test_mnasnet_head_stays_fixed_under_compound_scaling():
    base = preset("mnasnet-a1")
    scaled = scale_compound(base, PAPER, 2)
    assert scaled.head_channels == 1280 and scaled.stages[-1].out_channels > base.stages[-1].out_channels


def test_proxy_at_phi0_is_the_search_proxy_and_grows_with_the_point(b0):
    proxy = ProxyConfig(width=0.5, depth=0.5, resolution=32)
    plain = scale_spec(b0, width=0.5, depth=0.5, resolution=32)
    assert proxy_for_point(b0, PAPER, 0, proxy).key() == plain.key()
    grown = proxy_for_point(b0, Coefficients(1.0, 1.0, 1.3), 1, proxy)
    assert grown.resolution == round(32 * 1.3) and grown.num_blocks == plain.num_blocks
    deeper = proxy_for_point(b0, Coefficients(1.4, 1.0, 1.0), 1, proxy)
    assert deeper.num_blocks > plain.num_blocks and deeper.resolution == 32


@pytest.mark.parametrize("call, message", [
    (lambda b: Coefficients(0.9, 1.1, 1.1), "alpha must be >= 1"),
    (lambda b: Coefficients(1.2, 0.99, 1.1), "beta must be >= 1"),
    (lambda b: Coefficients(1.2, 1.1, 0.5), "gamma must be >= 1"),
    (lambda b: check_phi(-1), "phi must be >= 0"),
    (lambda b: check_phi(1.5, integer=True), "whole number"),
    (lambda b: enumerate_grid(b, phi=-1), "phi must be >= 0"),
    (lambda b: enumerate_grid(b, phi=0), "phi must be > 0"),
    (lambda b: enumerate_grid(b, step=0.1, high=1.3, tol=0.001), "leaves the grid empty"),
    (lambda b: enumerate_grid(b, step=0.1, high=1.3, tol=0.001, constraint="actual"), "leaves the grid empty"),
    (lambda b: enumerate_grid(b, constraint="exact"), "unknown constraint"),
    (lambda b: grid_values(0, 1.5), "step must be"),
    (lambda b: grid_values(0.1, 0.9), "max must be"),
    (lambda b: apply_official(b, 8), "at most 7"),
])
def test_bad_inputs_raise_one_line_errors(b0, call, message):
    with pytest.raises(NasError) as info:
        call(b0)
    assert isinstance(info.value, ConfigError)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_grid_values_have_no_float_drift():
    assert grid_values(0.1, 1.3) == (1.0, 1.1, 1.2, 1.3)
    assert len(grid_values(0.05, 1.5)) == 11 and 1.15 in grid_values(0.05, 1.5)
    assert all(math.isclose(v, round(v, 2)) for v in grid_values(0.05, 1.5))
