"""A Ray Tune ``Searcher`` around one of our controllers, for users who drive a search with Tune.

``nas search --runner ray`` does not need it (our loop asks and tells the controller itself); it is
for a ``tune.Tuner`` of one's own, e.g. to combine a controller with other Tune schedulers or
loggers::

    from ray import tune
    from nas.controllers import make_controller
    from nas.controllers.tune_adapter import ControllerSearcher

    searcher = ControllerSearcher(make_controller("random", space.decisions, seed=0), space.decisions,
                                  metric="reward", mode="max")
    tuner = tune.Tuner(trainable, tune_config=tune.TuneConfig(search_alg=searcher, num_samples=20))

Each suggested config maps every decision name to its chosen option and carries the option indices
under ``"choices"`` (what ``SearchSpace.decode`` takes). A finished trial's metric is told to the
controller as its reward (negated for ``mode="min"``, since controllers maximise); an errored trial
or one without the metric is told ``None``, the controllers' "failed" signal.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from ray.tune.search import Searcher

from nas.fileio import atomic_torch_save

CHOICES_KEY = "choices"
VALUE_KEYS = ("accuracy", "macs", "params", "step_time_ms", "latency_ms")


class ControllerSearcher(Searcher):
    """Tune's ask/tell (``suggest`` / ``on_trial_complete``) mapped onto ``Controller.ask`` / ``tell``."""

    def __init__(self, controller: Any, decisions: Sequence[Any], metric: str | None = "reward",
                 mode: str | None = "max") -> None:
        super().__init__(metric=metric, mode=mode)
        self.controller = controller
        self.decisions = tuple(decisions)
        self._pending: dict[str, Any] = {}  # Tune trial id -> our Proposal
        self.told = 0

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        """Accept Tune's metric / mode when the searcher was built without them; no space needed."""
        if metric:
            self._metric = metric
        if mode:
            self._mode = mode
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        proposal = self.controller.ask()
        self._pending[trial_id] = proposal
        config: dict[str, Any] = {d.name: d.options[i] for d, i in zip(self.decisions, proposal.choices)}
        config[CHOICES_KEY] = [int(i) for i in proposal.choices]
        return config

    def on_trial_complete(self, trial_id: str, result: Mapping[str, Any] | None = None, error: bool = False) -> None:
        proposal = self._pending.pop(trial_id, None)
        if proposal is None:  # suggested before a restore: the controller forgot it (see the contract)
            return
        self.controller.tell(proposal, None if error else self._reward(result), _values(result))
        self.told += 1

    def _reward(self, result: Mapping[str, Any] | None) -> float | None:
        if not result or self._metric not in result:
            return None
        try:
            value = float(result[self._metric])
        except (TypeError, ValueError):
            return None
        if not math.isfinite(value):
            return None
        return -value if self._mode == "min" else value

    # ---------------------------------------------------------------------------- state
    def get_state(self) -> dict[str, Any]:
        return {"controller": self.controller.state_dict(), "told": self.told, "metric": self._metric,
                "mode": self._mode}

    def set_state(self, state: dict[str, Any]) -> None:
        self.controller.load_state_dict(state["controller"])
        self.told = int(state.get("told", 0))
        self._metric = state.get("metric", self._metric)
        self._mode = state.get("mode", self._mode)
        self._pending.clear()  # asked-but-untold proposals are forgotten, as Controller promises

    def save(self, checkpoint_path: str) -> None:
        atomic_torch_save(self.get_state(), checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        import torch  # torch: imported when used, not at module import

        self.set_state(torch.load(checkpoint_path, weights_only=True))


def _values(result: Mapping[str, Any] | None) -> dict[str, float] | None:
    """The objective values a multi-objective controller (nsga2) reads, when the trial reported them."""
    if not result:
        return None
    values = {}
    for key in VALUE_KEYS:
        value = result.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            values[key] = float(value)
    return values or None


__all__ = ["ControllerSearcher", "CHOICES_KEY"]
