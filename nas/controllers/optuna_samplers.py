"""Optuna's TPE and NSGA-II as controllers, on an in-memory study the controller owns.

Each decision becomes a ``CategoricalDistribution`` over its option *indices*, so the study sees
the same integers as ``Proposal.choices``. ``ask`` is ``study.ask(fixed distributions)`` and ``tell``
is ``study.tell``; a proposal the controller never asked (a resumed run replaying stored trials,
or one asked before ``load_state_dict``) is added as a finished trial with ``study.add_trial``.
A failure (reward None) is a FAIL trial, which both samplers ignore.

``tpe`` maximises the reward. ``nsga2`` optimises the objective's raw values with their directions
(``objectives``, e.g. ``{"accuracy": "max", "step_time_ms": "min", "params": "min"}`` for the v2
reward; the search passes ``Objective.directions``), read from the ``values`` passed to ``tell``.
A told candidate missing one of those values counts as failed for NSGA-II.

**State.** An Optuna sampler cannot be stored with ``torch.load(weights_only=True)``, so the state
lists the finished trials (choices, objective values, state, system attributes) in trial order,
plus the study's system attributes, and ``load_state_dict`` replays them into a fresh study. The
samplers' NumPy random states are saved too; that reaches into Optuna internals
(``sampler._rng`` / ``sampler._random_sampler._rng``), guarded: if a future Optuna moves them,
resume is deterministic only up to the replay (same history, fresh sampler randomness).

**Logging.** Optuna logs every finished trial at INFO; with thousands of cheap trials that
drowns the console. Importing this module sets Optuna's verbosity to WARNING, which is global to
the process (it also quiets the run store's study-creation messages), the one switch Optuna
offers.
"""

from __future__ import annotations

import json
import math
import warnings
from typing import Any, Mapping, Sequence

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from nas.controllers.base import Controller, Decision, Proposal, clean_reward
from nas.errors import ConfigError

optuna.logging.set_verbosity(optuna.logging.WARNING)

_FINISHED = (TrialState.COMPLETE, TrialState.FAIL)


def _rng_holders(sampler: Any) -> list[Any]:
    """The sampler's LazyRandomState objects, found where Optuna 3-5 keep them (empty if moved)."""
    holders = []
    for owner in (sampler, getattr(sampler, "_random_sampler", None)):
        holder = getattr(owner, "_rng", None)
        if holder is not None and hasattr(holder, "rng"):
            holders.append(holder)
    return holders


def _jsonable(data: Mapping[str, Any]) -> str:
    """System attributes as a JSON string (weights_only-safe); attributes that are not JSON are dropped."""
    kept = {}
    for key, value in data.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        kept[key] = value
    return json.dumps(kept)


class OptunaController(Controller):
    """Shared ask/tell/replay machinery; subclasses give the sampler, directions and objective values."""

    directions: tuple[str, ...] = ("maximize",)

    def __init__(self, decisions: Sequence[Decision], seed: int = 0) -> None:
        super().__init__(decisions, seed)
        self.distributions = {d.name: CategoricalDistribution(list(range(d.size))) for d in self.decisions}
        self._pending: dict[int, int] = {}  # proposal id -> trial number
        self.study = self._new_study()

    def _sampler(self) -> optuna.samplers.BaseSampler:
        raise NotImplementedError

    def objective_values(self, reward: float, values: Mapping[str, float] | None) -> list[float]:
        raise NotImplementedError

    def _new_study(self) -> optuna.Study:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = self._sampler()
        return optuna.create_study(sampler=sampler, directions=list(self.directions))

    # --------------------------------------------------------------------------- ask / tell
    def ask(self) -> Proposal:
        trial = self.study.ask(self.distributions)
        proposal = self._new_proposal(trial.params[d.name] for d in self.decisions)
        self._pending[proposal.id] = trial.number
        return proposal

    def tell(self, proposal: Proposal, reward: float | None, values: Mapping[str, float] | None = None) -> None:
        choices = self.check_choices(proposal.choices)
        reward = clean_reward(reward)
        objective = None if reward is None else self.objective_values(reward, values)
        if objective is not None and not all(math.isfinite(v) for v in objective):
            objective = None
        number = self._pending.pop(proposal.id, None)
        if number is not None and self._trial_choices(number) == choices:
            if objective is None:
                self.study.tell(number, state=TrialState.FAIL)
            else:
                self.study.tell(number, objective if len(objective) > 1 else objective[0])
            return
        self._add(choices, objective, TrialState.COMPLETE if objective is not None else TrialState.FAIL)

    def _trial_choices(self, number: int) -> tuple[int, ...]:
        params = self.study._storage.get_trial_params(self.study._storage.get_trial_id_from_study_id_trial_number(
            self.study._study_id, number))
        return tuple(int(params[d.name]) for d in self.decisions)

    def _add(self, choices: Sequence[int], objective: list[float] | None, state: TrialState,
             system_attrs: Mapping[str, Any] | None = None) -> None:
        trial = create_trial(params={d.name: int(c) for d, c in zip(self.decisions, choices)},
                             distributions=self.distributions, values=objective if state == TrialState.COMPLETE else None,
                             state=state, system_attrs=dict(system_attrs or {}))
        self.study.add_trial(trial)

    # ------------------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        trials = []
        for t in self.study.get_trials(deepcopy=False, states=_FINISHED):
            trials.append({"choices": [int(t.params[d.name]) for d in self.decisions],
                           "values": None if t.values is None else [float(v) for v in t.values],
                           "state": t.state.name, "system_attrs": _jsonable(t.system_attrs)})
        rngs = []
        for holder in _rng_holders(self.study.sampler):
            name, keys, pos, has_gauss, gauss = holder.rng.get_state(legacy=True)
            rngs.append([name, [int(k) for k in keys], int(pos), int(has_gauss), float(gauss)])
        return {**self.base_state(), "trials": trials, "study_system_attrs": _jsonable(self.study._storage.get_study_system_attrs(self.study._study_id)),
                "rng_states": rngs}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.check_state(state)
        self.study = self._new_study()
        self._pending.clear()
        for t in state["trials"]:
            self._add(t["choices"], t["values"], TrialState[t["state"]], json.loads(t["system_attrs"]))
        for key, value in json.loads(state["study_system_attrs"]).items():
            self.study._storage.set_study_system_attr(self.study._study_id, key, value)
        holders = _rng_holders(self.study.sampler)
        if len(holders) == len(state["rng_states"]):
            for holder, (name, keys, pos, has_gauss, gauss) in zip(holders, state["rng_states"]):
                holder.rng.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
        self._next_id = int(state["next_id"])


class TPEController(OptunaController):
    """Optuna's TPESampler on the reward (single objective, maximised).

    ``n_startup_trials`` random proposals come first. ``multivariate`` models the decisions jointly
    (better on coupled decisions). ``constant_liar`` makes in-flight proposals count as bad ones so
    that parallel workers spread out. Each ask costs time linear in the number of finished trials.
    """

    name = "tpe"

    def __init__(self, decisions: Sequence[Decision], seed: int = 0, *, n_startup_trials: int = 10,
                 n_ei_candidates: int = 24, multivariate: bool = False, constant_liar: bool = False) -> None:
        if not (isinstance(n_startup_trials, int) and not isinstance(n_startup_trials, bool) and n_startup_trials >= 0):
            raise ConfigError(f"tpe controller: n_startup_trials must be an integer >= 0, got {n_startup_trials!r}",
                              field="controller_option")
        if not (isinstance(n_ei_candidates, int) and not isinstance(n_ei_candidates, bool) and n_ei_candidates >= 1):
            raise ConfigError(f"tpe controller: n_ei_candidates must be an integer >= 1, got {n_ei_candidates!r}")
        for name, flag in (("multivariate", multivariate), ("constant_liar", constant_liar)):
            if not isinstance(flag, bool):
                raise ConfigError(f"tpe controller: {name} must be true or false, got {flag!r}")
        self.options = dict(n_startup_trials=n_startup_trials, n_ei_candidates=n_ei_candidates,
                            multivariate=multivariate, constant_liar=constant_liar)
        super().__init__(decisions, seed)

    def _sampler(self) -> optuna.samplers.BaseSampler:
        return optuna.samplers.TPESampler(seed=self.seed, **self.options)

    def objective_values(self, reward: float, values: Mapping[str, float] | None) -> list[float]:
        return [reward]


class NSGA2Controller(OptunaController):
    """Optuna's NSGAIISampler on the objective's raw values (default: accuracy up, MACs down)."""

    name = "nsga2"

    def __init__(self, decisions: Sequence[Decision], seed: int = 0, *, population_size: int = 50,
                 mutation_prob: float | None = None, crossover_prob: float = 0.9,
                 objectives: Mapping[str, str] | None = None) -> None:
        if not (isinstance(population_size, int) and not isinstance(population_size, bool) and population_size >= 2):
            raise ConfigError(f"nsga2 controller: population_size must be an integer >= 2, got {population_size!r}",
                              field="controller_option")
        for name, p in (("mutation_prob", mutation_prob), ("crossover_prob", crossover_prob)):
            if p is not None and not (isinstance(p, (int, float)) and not isinstance(p, bool) and 0.0 <= p <= 1.0):
                raise ConfigError(f"nsga2 controller: {name} must be in [0, 1], got {p!r}", field="controller_option")
        objectives = dict(objectives or {"accuracy": "max", "macs": "min"})
        bad = {k: v for k, v in objectives.items() if v not in ("max", "min")}
        if not objectives or bad:
            raise ConfigError(f"nsga2 controller: objectives must map value names to 'max' or 'min', got "
                              f"{objectives!r}", field="controller_option")
        self.objectives = objectives
        self.directions = tuple("maximize" if d == "max" else "minimize" for d in objectives.values())
        self.options = dict(population_size=population_size, mutation_prob=mutation_prob,
                            crossover_prob=crossover_prob)
        super().__init__(decisions, seed)

    def _sampler(self) -> optuna.samplers.BaseSampler:
        return optuna.samplers.NSGAIISampler(seed=self.seed, **self.options)

    def objective_values(self, reward: float, values: Mapping[str, float] | None) -> list[float]:
        values = values or {}
        return [float(values[name]) if values.get(name) is not None else math.nan for name in self.objectives]


__all__ = ["OptunaController", "TPEController", "NSGA2Controller"]
