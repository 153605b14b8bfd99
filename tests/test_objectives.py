"""Objectives: the MnasNet / EfficientNetV2 reward formulas, constraints, units and bad input."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, strategies as st

from nas.errors import ConfigError
from objectives import OBJECTIVES, MnasObjective, V2Objective, make_objective, parse_quantity
from objectives.units import format_quantity

B0 = {"accuracy": 0.771, "macs": 0.39e9, "params": 5.3e6, "step_time_ms": 10.0, "latency_ms": 75.0}


def test_soft_constraint_matches_the_mnasnet_paper():
    # MnasNet (Tan et al. 2019), sec. 3: with w = -0.07 a model twice the target pays about 5% reward,
    # and one at half the target gains about as much. 2 ** -0.07 = 0.9526.
    objective = make_objective("mnas")
    assert objective.target == 400e6 and objective.alpha == objective.beta == -0.07
    assert objective.reward({"accuracy": 1.0, "macs": 800e6}) == pytest.approx(0.9526, abs=1e-4)
    assert objective.reward({"accuracy": 1.0, "macs": 200e6}) == pytest.approx(2 ** 0.07)
    assert objective.reward({"accuracy": 0.8, "macs": 400e6}) == pytest.approx(0.8)
    # EfficientNet-B0: 0.39 G multiply-adds, top-1 77.1% -> just above its accuracy at T = 400M
    assert objective.reward(B0) == pytest.approx(0.771 * (0.39 / 0.4) ** -0.07)


def test_hard_constraint_ignores_cost_below_target_and_divides_above():
    objective = make_objective("mnas", constraint="hard", target="400M")
    assert (objective.alpha, objective.beta) == (0.0, -1.0)
    assert objective.reward({"accuracy": 0.7, "macs": 100e6}) == pytest.approx(0.7)
    assert objective.reward({"accuracy": 0.7, "macs": 400e6}) == pytest.approx(0.7)
    assert objective.reward({"accuracy": 0.7, "macs": 800e6}) == pytest.approx(0.35)


def test_w_overrides_the_exponent():
    soft = make_objective("mnas", w=-0.15)
    assert soft.reward({"accuracy": 1.0, "macs": 800e6}) == pytest.approx(2 ** -0.15)
    assert soft.reward({"accuracy": 1.0, "macs": 200e6}) == pytest.approx(2 ** 0.15)
    hard = make_objective("mnas", constraint="hard", w=-2)
    assert hard.reward({"accuracy": 1.0, "macs": 200e6}) == 1.0
    assert hard.reward({"accuracy": 1.0, "macs": 800e6}) == pytest.approx(0.25)


@pytest.mark.parametrize("cost, target, key, value, expected", [
    ("latency", "75ms", "latency_ms", 150.0, 2 ** -0.07),
    ("latency", "0.075s", "latency_ms", 37.5, 2 ** 0.07),
    ("params", "5M", "params", 10e6, 2 ** -0.07),
    ("macs", "1.2G", "macs", 2.4e9, 2 ** -0.07),
])
def test_every_cost_kind_with_its_unit(cost, target, key, value, expected):
    objective = make_objective("mnas", cost=cost, target=target)
    assert objective.directions == {"accuracy": "max", key: "min"}
    assert objective.reward({**B0, key: value, "accuracy": 1.0}) == pytest.approx(expected)
    assert objective.values({**B0, key: value}) == {"accuracy": B0["accuracy"], key: value}


def test_default_targets_per_cost():
    assert make_objective("mnas", cost="latency").target == 75.0
    assert make_objective("mnas", cost="params").target == 5e6


def test_v2_reward_and_references():
    # EfficientNetV2 (Tan & Le 2021), sec. 4: A * S^w * P^v with w = -0.07, v = -0.05
    objective = make_objective("v2", step_time_ref_ms="10ms", params_ref="5M")
    assert objective.directions == {"accuracy": "max", "step_time_ms": "min", "params": "min"}
    at_reference = {"accuracy": 0.8, "step_time_ms": 10.0, "params": 5e6}
    assert objective.reward(at_reference) == pytest.approx(0.8)
    slower_bigger = {"accuracy": 0.8, "step_time_ms": 20.0, "params": 10e6}
    assert objective.reward(slower_bigger) == pytest.approx(0.8 * 2 ** -0.07 * 2 ** -0.05)
    assert objective.values({**B0}) == {"accuracy": 0.771, "step_time_ms": 10.0, "params": 5.3e6}
    custom = V2Objective(w=-0.1, v=0.0, step_time_ref_ms=5.0, params_ref=1e6)
    assert custom.reward({"accuracy": 1.0, "step_time_ms": 10.0, "params": 9e9}) == pytest.approx(2 ** -0.1)


def test_v2_without_references_describes_but_refuses_to_reward():
    objective = make_objective("v2")
    assert "S_ref" in objective.describe()
    with pytest.raises(ConfigError, match="reference"):
        objective.reward(B0)


def test_failed_candidates_get_no_reward():
    for objective in (MnasObjective(), V2Objective(step_time_ref_ms=1.0, params_ref=1.0)):
        assert objective.reward({"macs": 1e8, "params": 1e6, "step_time_ms": 3.0}) is None
        assert objective.reward({**B0, "accuracy": None}) is None
        assert objective.reward({**B0, "accuracy": float("nan")}) is None


def test_a_missing_cost_is_a_configuration_error():
    objective = make_objective("mnas", cost="latency")
    with pytest.raises(ConfigError, match="latency_ms"):
        objective.reward({"accuracy": 0.9, "macs": 1e8})


def test_describe_is_one_line():
    for name in OBJECTIVES:
        text = make_objective(name).describe()
        assert text.startswith(name) and "\n" not in text
    assert make_objective("mnas").describe() == "mnas: ACC x (MACs/400M)^-0.07"


@pytest.mark.parametrize("text, kind, expected", [
    ("400M", "macs", 4e8), ("400m", "macs", 4e8), ("1.2G", "macs", 1.2e9), ("5M", "params", 5e6),
    ("500K", "params", 5e5), ("1e9", "macs", 1e9), ("123456", "params", 123456.0), (3e8, "macs", 3e8),
    ("75ms", "latency", 75.0), ("75", "latency", 75.0), ("0.5s", "latency", 500.0), ("250us", "latency", 0.25),
    (" 75 ms ", "latency", 75.0),
])
def test_parse_quantity(text, kind, expected):
    assert parse_quantity(text, kind=kind) == pytest.approx(expected)


@given(st.floats(min_value=1.0, max_value=1e13, allow_nan=False))
def test_format_then_parse_round_trips_to_four_digits(value):
    assert parse_quantity(format_quantity(value, "macs"), "macs") == pytest.approx(value, rel=1e-3)


@pytest.mark.parametrize("options, message", [
    ({"target": "0"}, "must be > 0"),
    ({"target": "-400M"}, "must be > 0"),
    ({"target": "75ms"}, "a time does not fit macs"),
    ({"cost": "latency", "target": "400M"}, "a count does not fit latency"),
    ({"cost": "params", "target": "many"}, "not a quantity"),
    ({"cost": "params", "target": "5 apples"}, "unit 'apples' does not fit params"),
    ({"cost": "params", "target": "5X"}, "unit 'X' does not fit params"),
    ({"cost": "flops"}, "unknown cost 'flops'; valid: macs, latency, params"),
    ({"constraint": "medium"}, "unknown constraint 'medium'; valid: soft, hard"),
    ({"w": "steep"}, "w must be a finite number"),
    ({"alpha": 1}, "unknown option(s) alpha"),
])
def test_bad_mnas_options_are_one_line_config_errors(options, message):
    with pytest.raises(ConfigError) as info:
        make_objective("mnas", **options)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_bad_names_and_v2_options():
    with pytest.raises(ConfigError, match=r"unknown objective 'speed'; valid: accuracy, mnas, v2"):
        make_objective("speed")
    with pytest.raises(ConfigError, match="step_time_ref_ms '5M': a count does not fit"):
        make_objective("v2", step_time_ref_ms="5M")
    with pytest.raises(ConfigError, match="params_ref '0': must be > 0"):
        make_objective("v2", params_ref="0")
    assert math.isclose(make_objective("v2", params_ref="5.3M").params_ref, 5.3e6)
