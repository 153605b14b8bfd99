"""One run as the report reads it: the store's records, read once, and what the ranking makes of them.

Everything comes through the store API (:func:`nas.store.open_run`) and the ranking
(:func:`nas.ranking.choose_b0`, :func:`nas.ranking.ties_with_b0`); the study is never parsed here. A
run still in progress reads as it stands: its finished trials are records, its RUNNING trials
reservations.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.errors import NasError
from nas.jobs import run_objective
from nas.jobs.fidelity import RESULT_FILE as FIDELITY_FILE
from nas.ranking import SEARCH, Choice, choose_b0, rung, ties_with_b0
from nas.store import Reservation, RunStore, TrialRecord, open_run


@dataclass
class RunView:
    """A run's records and what is derived from them, for every section of the report."""

    label: str
    store: RunStore
    records: list[TrialRecord]
    reservations: list[Reservation]
    choice: Choice | None
    ties: dict[str, float]  # key of a candidate tied with B0 -> McNemar p-value
    fidelity: dict[str, Any] | None  # RUN/fidelity.json, when a check was run
    objective: str  # the reward's formula, or why it cannot be rebuilt

    @classmethod
    def read(cls, run_dir: str | Path, label: str, storage: str | None = None) -> "RunView":
        store = open_run(run_dir, storage)
        records = store.records()
        reservations = store.reservations()
        choice = choose_b0(records)
        ties = {} if choice is None else {c.key: t.p_value for c, t in ties_with_b0(choice)}
        try:
            objective = run_objective(store.config).describe()
        except NasError as exc:
            objective = f"unknown ({exc})"
        return cls(label, store, records, reservations, choice, ties, _fidelity(store.run_dir), objective)

    @property
    def config(self) -> dict[str, Any]:
        return self.store.config

    @property
    def main_stage(self) -> str:
        """The stage whose trials are the run's candidates: ``search`` (its rungs included) for a search,
        otherwise the first rewarded stage (``grid`` for a scaling grid)."""
        if any(rung(r) is not None for r in self.records):
            return SEARCH
        return next((r.stage for r in self.records if r.reward is not None), self.config.get("kind", SEARCH))

    def candidates_of_main_stage(self) -> list[TrialRecord]:
        """The records the controller proposed (the first rung of a search with rungs), in trial order."""
        main = self.main_stage
        return [r for r in self.records if r.stage == main]


def _fidelity(run_dir: Path) -> dict[str, Any] | None:
    """``fidelity.json`` as written by ``nas fidelity``; a file that cannot be read is reported as such."""
    path = run_dir / FIDELITY_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return {"unreadable": str(exc)}
    return data if isinstance(data, dict) else {"unreadable": "not a JSON object"}


def read_runs(run_dirs: list[str | Path], labels: list[str], storage: str | None = None) -> list[RunView]:
    return [RunView.read(d, label, storage) for d, label in zip(run_dirs, labels)]


__all__ = ["RunView", "read_runs"]
