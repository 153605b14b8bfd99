"""The objective contract: a candidate's measured values in, a scalar reward and raw values out.

Objectives are pure functions of a flat mapping with the keys ``accuracy``, ``macs``, ``params``,
``step_time_ms`` and ``latency_ms`` (costs of the full-size candidate). They never see a model or
a run, so the same reward can be recomputed from a stored trial, and multi-objective controllers
and Pareto analysis read the raw values instead of the scalarised reward.

**Failed candidates get no reward.** A candidate without an accuracy (failed, diverged) makes
:meth:`Objective.reward` return None; the search loop does not even call it for them, stores no
reward and tells the controller ``None``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, Mapping

from nas.errors import ConfigError
from nas.metrics import LOSS_SCORES, SCORES, score_quality

VALUE_KEYS = ("accuracy", "macs", "params", "step_time_ms", "latency_ms")


def finite(values: Mapping[str, Any], key: str) -> float | None:
    """``values[key]`` as a float when present and finite, else None."""
    value = values.get(key)
    if value is None or isinstance(value, bool):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def number(name: str, value: Any, owner: str) -> float:
    """Validate a numeric option (an exponent); one-line ConfigError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{owner} objective: {name} must be a finite number, got {value!r}", field=name)
    return float(value)


class Objective(ABC):
    """Base class. ``directions`` maps each raw value to "max" or "min".

    ``needs_latency``: the reward uses the full-size network's latency, which the search then
    measures on the worker (or predicts from a latency table). ``references``: settings the
    objective measures on a reference network when they are not given (v2's step time and params):
    a job trains the reference where its candidates train and hands its values to
    :meth:`references_from`.
    """

    name: str = "objective"
    directions: dict[str, str] = {}
    needs_latency: bool = False
    references: tuple[str, ...] = ()
    score: str = "accuracy"  # which of nas.metrics.SCORES is the quality term (see quality())

    @classmethod
    def from_settings(cls, settings: Any) -> "Objective":
        """The objective a job's settings describe (attributes ``cost``, ``target``, ``w``, ...)."""
        return cls()

    def missing_references(self) -> tuple[str, ...]:
        """The references this objective still needs measured (none given, none measured yet)."""
        return tuple(name for name in self.references if getattr(self, name, None) is None)

    def references_from(self, values: Mapping[str, float]) -> dict[str, float]:
        """The missing references, from the measured values of the reference network."""
        return {}

    def with_score(self, score: str) -> "Objective":
        """This objective with ``score`` as its quality term (a name of :data:`nas.metrics.SCORES`)."""
        if score not in SCORES:
            raise ConfigError(f"unknown score {score!r}; valid: {', '.join(SCORES)}", field="score")
        self.score = score
        return self

    @property
    def quality_label(self) -> str:
        """How :meth:`describe` writes the quality term: ACC, or the score (exp(-loss) for a loss)."""
        if self.score == "accuracy":
            return "ACC"
        return f"exp(-{self.score})" if self.score in LOSS_SCORES else self.score

    def quality(self, values: Mapping[str, Any]) -> float | None:
        """The quality term: the accuracy, or the chosen score as a quality in (0, 1] (losses enter as
        exp(-loss), :func:`nas.metrics.score_quality`); None when the candidate has none (it failed)."""
        if self.score == "accuracy":
            return finite(values, "accuracy")
        raw = finite(values, f"score_{self.score}")
        if raw is None and self.score == "bn_accuracy":
            # a runner that re-estimated nothing (one of a user's, the benchmarks' instant runner): the
            # accuracy itself, as for a network without BatchNorm
            return finite(values, "accuracy")
        return None if raw is None else score_quality(self.score, raw)

    def values(self, values: Mapping[str, Any]) -> dict[str, float]:
        """The raw values this objective trades off (those of :attr:`directions` that are present); the
        ``accuracy`` entry is the quality term (the chosen score)."""
        out = {key: v for key in self.directions if (v := finite(values, key)) is not None}
        if "accuracy" in out or "accuracy" in self.directions:
            quality = self.quality(values)
            if quality is not None:
                out["accuracy"] = quality
        return out

    def reward(self, values: Mapping[str, Any]) -> float | None:
        """The scalar reward, or None when the candidate has no quality term (it failed)."""
        quality = self.quality(values)
        if quality is None:
            return None
        return self._reward(quality, values)

    def need(self, values: Mapping[str, Any], key: str) -> float:
        """A cost the reward needs; its absence is a configuration mismatch, not a candidate failure."""
        value = finite(values, key)
        if value is None:
            raise ConfigError(f"{self.name} objective needs {key!r} in the candidate's values, got "
                              f"{sorted(k for k in values if finite(values, k) is not None)}")
        if value <= 0:
            raise ConfigError(f"{self.name} objective: {key} must be > 0, got {value}")
        return value

    @abstractmethod
    def _reward(self, quality: float, values: Mapping[str, Any]) -> float:
        """The reward of a candidate whose quality term (its accuracy, or the chosen score) is ``quality``."""

    @abstractmethod
    def describe(self) -> str:
        """One line for logs and reports, e.g. ``mnas: ACC x (MACs/400M)^-0.07``."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


__all__ = ["Objective", "VALUE_KEYS", "finite", "number"]
