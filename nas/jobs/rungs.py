"""Successive halving on the engine: rungs of growing fidelity, the best 1/eta of each promoted.

``nas search --rungs 1,3,9 --eta 3``: every candidate the controller proposes trains at the first
rung (1 epoch); the best third of the first rung go on to 3 epochs, the best third of those to 9.
Most of the budget goes to the candidates that earned it.

**Promotion is asynchronous (ASHA).** Whenever a worker is free, the engine first asks for a
promotion, highest rung first: a candidate of rung k is promoted when it is among the best
``floor(n_k / eta)`` of the ``n_k`` candidates rung k has finished so far and has not been promoted
yet; otherwise a new candidate starts at the first rung. No worker waits for a rung to fill. At
the end (no new candidate left to start), exactly ``floor(n_k / eta)`` candidates have been promoted
from rung k. A candidate promoted early may later be overtaken in its rung by ones that finished
after it (ASHA accepts that to keep every worker busy); every promotion is among the best of its
rung at the moment it is made. The best are the best by reward; with a multi-objective controller
(nsga2), by non-dominated rank of the objective's raw values, then crowding distance.

**One schedule, continued.** Every training plans for the last rung: its learning-rate schedule
(warm-up, then cosine) runs over the last rung's epochs, and rung k is that training stopped after
its own epochs (``TrainBudget.schedule_epochs``). A promotion continues the rung's checkpoint
(``RUN/checkpoints/<training key>.pt``: weights, optimizer, generators) to the next stop, so it costs
the difference in epochs, and gives what one uninterrupted training to that stop gives, bit for bit
on the CPU. Where the checkpoint is missing (another process of a shared study trained the rung, a
rung stopped mid-epoch, or a kill lost it) the promotion trains from scratch to its stop: the same
result at a higher cost. The price of the rule: a first rung is ranked on a model whose learning
rate has not yet decayed, not on a short training of its own (BENCHMARKS.md measures both against
the reference). Checkpoints that can no longer be promoted are deleted as the rungs fill, and the
folder is removed when the stage ends.

**Learning and choosing.** The controller learns from the first-rung reward, which every candidate
has. Each rung is a stage of the engine (``search``, ``rung1``, ``rung2``...; ``trials.csv``'s
``rung`` column), so it resumes after ``kill -9``, dedupes and runs on the same runner. B0 is the
best at the highest rung reached (:func:`nas.ranking.candidates`).
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from nas.controllers.sequence import SequenceController
from nas.engine import CHECKPOINTS, Plan, Stage
from nas.errors import ConfigError
from nas.limits import MAX_EPOCHS, check_at_most
from nas.pareto import crowding_distance, front_ranks
from nas.store import TrialRecord

SEARCH_STAGE = "search"


def rung_stage(k: int) -> str:
    """The stage name of rung ``k`` (0: the search stage itself)."""
    return SEARCH_STAGE if k == 0 else f"rung{k}"


def rung_of(stage: str) -> int | None:
    """The rung a stage name is, or None (rerank, fidelity...)."""
    if stage == SEARCH_STAGE:
        return 0
    if stage.startswith("rung") and stage[4:].isdigit():
        return int(stage[4:])
    return None


@dataclass(frozen=True)
class RungSettings:
    """Epochs per rung (increasing) and the reduction factor eta (keep the best 1/eta)."""

    rungs: tuple[float, ...]
    eta: int = 3

    def check(self, trials: int) -> None:
        if len(self.rungs) < 2:
            raise ConfigError(f"rungs needs at least two budgets, e.g. 1,3,9; got {list(self.rungs)}", field="rungs")
        if any(not (isinstance(r, (int, float)) and math.isfinite(r) and r > 0) for r in self.rungs):
            raise ConfigError(f"rungs must be epochs > 0, got {list(self.rungs)}", field="rungs")
        if any(b <= a for a, b in zip(self.rungs, self.rungs[1:])):
            raise ConfigError(f"rungs must increase, got {list(self.rungs)}", field="rungs")
        check_at_most(self.rungs[-1], MAX_EPOCHS, "rungs", "epochs")
        if not (isinstance(self.eta, int) and not isinstance(self.eta, bool) and self.eta >= 2):
            raise ConfigError(f"eta must be an integer >= 2, got {self.eta!r}", field="eta")
        reach = trials // self.eta ** (len(self.rungs) - 1)
        if reach < 1:
            raise ConfigError(f"{len(self.rungs)} rungs with eta {self.eta} need at least "
                              f"{self.eta ** (len(self.rungs) - 1)} trials to fill the last rung; trials is {trials}",
                              field="rungs")

    def epochs(self, k: int) -> float:
        return float(self.rungs[k])


def best_first(records: Sequence[TrialRecord], objective: Any, multi_objective: bool) -> list[TrialRecord]:
    """The records best first: by reward, or (multi-objective) by front rank then crowding distance."""
    if not multi_objective:
        return sorted(records, key=lambda r: (-r.reward, r.number))
    names = list(objective.directions)
    values = [[objective.values(r.values).get(name, math.nan) for name in names] for r in records]
    usable = [i for i, row in enumerate(values) if not any(math.isnan(v) for v in row)]
    if not usable:
        return []
    points = np.array([values[i] for i in usable], dtype=float)
    directions = [objective.directions[name] for name in names]
    ranks = front_ranks(points, directions)
    crowding = crowding_distance(points, ranks, directions)
    order = sorted(range(len(usable)), key=lambda j: (ranks[j], -crowding[j], records[usable[j]].number))
    return [records[usable[j]] for j in order]


class SuccessiveHalving:
    """The promotions of a search with rungs: what the engine asks for before a new candidate."""

    def __init__(self, search: Any, settings: RungSettings) -> None:
        self.search = search
        self.settings = settings
        self.multi_objective = bool(getattr(search.controller, "objectives", None))
        self.top = len(settings.rungs) - 1
        self.folder = Path(search.out) / CHECKPOINTS
        self.stages = [Stage(rung_stage(k), search.decisions, SequenceController(search.decisions), 0,
                             self.plan_maker(k)) for k in range(1, self.top + 1)]

    @property
    def store(self) -> Any:
        return self.search.store  # made after the set-up that makes this object

    @property
    def objective(self) -> Any:
        return self.search.parts.objective  # rebuilt when its references are measured

    # ------------------------------------------------------------------------- plans
    def budget(self, k: int) -> Any:
        return replace(self.search.parts.budget, epochs=self.settings.epochs(k),
                       schedule_epochs=self.settings.epochs(self.top), steps=None)

    def plan(self, k: int, choices: tuple[int, ...]) -> Plan:
        """Rung ``k``'s plan for ``choices``: its stop of the one schedule, continuing rung k-1's checkpoint."""
        full, proxy = self.search.full_and_proxy(tuple(choices), self.search.proxy)
        resume = None
        if k > 0 and float(self.settings.epochs(k - 1)).is_integer():
            resume = self.plan(k - 1, choices)
        return Plan(full, proxy, self.budget(k), extra={"rung": float(k)}, resume_from=resume, keep_state=k < self.top)

    def plan_maker(self, k: int) -> Callable[[tuple[int, ...]], Plan]:
        return lambda choices: self.plan(k, choices)

    # -------------------------------------------------------------------- promotions
    def _finished(self, records: Sequence[TrialRecord], k: int) -> list[TrialRecord]:
        """Rung k's finished distinct networks (first record of each)."""
        seen: dict[str, TrialRecord] = {}
        for r in records:
            if r.stage == rung_stage(k):
                seen.setdefault(r.key, r)
        return list(seen.values())

    def next(self) -> tuple[Stage, tuple[int, ...]] | None:
        """The next promotion (highest rung first), or None when no candidate is due one now."""
        records = self.store.records()
        reservations = self.store.reservations()
        for k in range(self.top, 0, -1):
            below = self._finished(records, k - 1)
            cap = len(below) // self.settings.eta
            held = {tuple(r.indices) for r in records if r.stage == rung_stage(k)}
            held |= {tuple(r.indices) for r in reservations if r.stage == rung_stage(k)}
            if len(held) >= cap:
                continue
            ranked = best_first([r for r in below if r.metrics.ok and r.reward is not None], self.objective,
                                self.multi_objective)
            for r in ranked[:cap]:
                if tuple(r.indices) not in held:
                    stage = self.stages[k - 1]
                    stage.trials = cap  # a process sharing the study checks its reservation against it
                    return stage, tuple(r.indices)
        return None

    def finished(self, record: TrialRecord) -> None:
        """After each result: delete the checkpoints no promotion can use any more (a rung's network that
        finished the next rung, or that can no longer reach the best of its rung)."""
        if not self.folder.exists():
            return
        records = self.store.records()
        reserved = {(r.stage, tuple(r.indices)) for r in self.store.reservations()}
        budget = self.search.config.trials
        for k in range(self.top):
            done = self._finished(records, k)
            most = budget // self.settings.eta ** k // self.settings.eta  # the most rung k can ever promote
            ranked = best_first([r for r in done if r.metrics.ok and r.reward is not None], self.objective,
                                self.multi_objective)
            hopeful = {tuple(r.indices) for r in ranked[:most]}
            above = {tuple(r.indices) for r in records if r.stage == rung_stage(k + 1)}
            for r in done:
                waiting = (rung_stage(k + 1), tuple(r.indices)) in reserved
                if not waiting and (tuple(r.indices) in above or tuple(r.indices) not in hopeful):
                    self._forget(r)

    def _forget(self, record: TrialRecord) -> None:
        path = self.folder / f"{record.train_key}.pt"
        if path.exists():
            path.unlink()

    def close(self) -> None:
        """The rungs are done: no checkpoint is needed any more."""
        shutil.rmtree(self.folder, ignore_errors=True)


__all__ = ["RungSettings", "SuccessiveHalving", "best_first", "rung_of", "rung_stage"]
