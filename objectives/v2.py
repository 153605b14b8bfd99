"""EfficientNetV2's training-aware reward: A x (S / S_ref) ** w x (P / P_ref) ** v.

``S`` is the train step time (ms) and ``P`` the parameter count, each divided by a reference so
the reward stays near the accuracy. V2 used w = -0.07 and v = -0.05. The references are options
(``step_time_ref_ms``, ``params_ref``, unit-aware: ``"12ms"``, ``"5.3M"``); the search loop fills
them with the backbone's measured step time and counted params when the user gives none. An
objective built without them can describe itself but refuses to reward.
"""

from __future__ import annotations

from typing import Any, Mapping

from nas.errors import ConfigError
from objectives.base import Objective, number
from objectives.units import format_quantity, parse_quantity


class V2Objective(Objective):
    """``V2Objective(w=-0.07, v=-0.05, step_time_ref_ms=None, params_ref=None)``."""

    name = "v2"
    directions = {"accuracy": "max", "step_time_ms": "min", "params": "min"}
    references = ("step_time_ref_ms", "params_ref")

    def __init__(self, w: float = -0.07, v: float = -0.05, step_time_ref_ms: str | float | None = None,
                 params_ref: str | float | None = None) -> None:
        self.w = number("w", w, self.name)
        self.v = number("v", v, self.name)
        self.step_time_ref_ms = None if step_time_ref_ms is None else \
            parse_quantity(step_time_ref_ms, kind="step_time_ms", what="step_time_ref_ms")
        self.params_ref = None if params_ref is None else parse_quantity(params_ref, kind="params", what="params_ref")

    @classmethod
    def from_settings(cls, settings: Any) -> "V2Objective":
        """From ``w``, ``v`` and the references ``step_time_ref_ms`` / ``params_ref`` (None: measured)."""
        options = {name: getattr(settings, name) for name in ("w", "v", "step_time_ref_ms", "params_ref")}
        return cls(**{name: value for name, value in options.items() if value is not None})

    def references_from(self, values: Mapping[str, float]) -> dict[str, float]:
        """The reference network's proxy step time and full-size params, where none were given."""
        measured = {"step_time_ref_ms": values.get("step_time_ms"), "params_ref": values.get("params")}
        missing = self.missing_references()
        if any(measured[name] is None for name in missing):
            raise ConfigError(f"v2 objective: the reference network gave no {' or '.join(missing)}")
        return {name: float(measured[name]) for name in missing}

    def _reward(self, quality: float, values: Mapping[str, Any]) -> float:
        if self.step_time_ref_ms is None or self.params_ref is None:
            missing = [n for n in ("step_time_ref_ms", "params_ref") if getattr(self, n) is None]
            raise ConfigError(f"v2 objective: no reference {' or '.join(missing)} (the search loop sets the "
                              "backbone's; give them when using the objective alone)")
        step = self.need(values, "step_time_ms")
        params = self.need(values, "params")
        return quality * (step / self.step_time_ref_ms) ** self.w * (params / self.params_ref) ** self.v

    def describe(self) -> str:
        step = "S_ref" if self.step_time_ref_ms is None else format_quantity(self.step_time_ref_ms, "step_time_ms")
        params = "P_ref" if self.params_ref is None else format_quantity(self.params_ref, "params")
        return f"v2: {self.quality_label} x (step time/{step})^{self.w:g} x (params/{params})^{self.v:g}"


__all__ = ["V2Objective"]
