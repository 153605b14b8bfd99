"""What a run holds: one :class:`TrialRecord` per evaluated proposal, decoded once and kept.

A trial's record is decoded from its Optuna trial (user attributes ``metrics``, ``spec``, ...) the
first time it is seen finished, and kept: :class:`TrialLog` asks the storage only for what changed
(Optuna's cached storage reads the unfinished and the new trials), decodes the new finished ones
and appends them, so reading a run costs the same at its 10th trial as at its 10,000th apart from
the list itself. Trials still RUNNING are :class:`Reservation` s (see :mod:`nas.store.reservations`).
A trial that ended without metrics (given up, over budget, stale) is neither.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from nas.metrics import Metrics
from nas.spec import ArchSpec
from nas.stats import at_chance, wilson_interval

# trials.csv columns, in order; param_<decision> columns follow.
COLUMNS = ("trial", "status", "reward", "accuracy", "macs", "params", "step_time_ms", "latency_ms", "arch", "key",
           "proxy_macs", "loss", "epochs", "wall_time_s", "error", "reused_from", "stage", "minival_size",
           "accuracy_low", "accuracy_high", "at_chance", "predicted_latency_ms", "score", "rung")


@dataclass(frozen=True)
class TrialRecord:
    """Everything stored about one evaluated proposal."""

    choices: Mapping[str, Any]  # decision name -> chosen option value
    indices: tuple[int, ...]
    metrics: Metrics
    spec: ArchSpec  # full-size candidate
    arch: str  # block strings of the full-size candidate
    key: str  # the full-size network's key
    reward: float | None
    values: Mapping[str, float] = field(default_factory=dict)
    reused_from: int | None = None
    number: int | None = None  # filled in by the store
    stage: str = "search"
    train_key: str = ""  # what was trained and how (proxy network + budget): the dedupe key
    owner: str = ""

    def row(self) -> dict[str, Any]:
        """The record's row of trials.csv."""
        m = self.metrics
        low = high = chance = None
        if m.accuracy is not None and m.minival_size:
            low, high = wilson_interval(round(m.accuracy * m.minival_size), m.minival_size)
            chance = at_chance(m.accuracy, m.minival_size, self.spec.num_classes)
        data = {
            "trial": self.number, "status": m.status, "reward": self.reward, "accuracy": m.accuracy,
            "macs": self.values.get("macs", m.macs), "params": self.values.get("params", m.params),
            "step_time_ms": m.step_time_ms, "latency_ms": self.values.get("latency_ms", m.latency_ms),
            "arch": self.arch, "key": self.key, "proxy_macs": m.proxy_macs, "loss": m.loss, "epochs": m.epochs,
            "wall_time_s": m.wall_time_s, "error": m.error, "reused_from": self.reused_from, "stage": self.stage,
            "minival_size": m.minival_size or None, "accuracy_low": low, "accuracy_high": high, "at_chance": chance,
            "predicted_latency_ms": self.values.get("predicted_latency_ms"), "score": self.values.get("score"),
            "rung": None if "rung" not in self.values else int(self.values["rung"]),
        }
        for name, value in sorted(self.values.items()):
            if name.startswith("score_"):
                data[name] = value
        for name, value in self.choices.items():
            data[f"param_{name}"] = value
        return data


@dataclass(frozen=True)
class Reservation:
    """A trial that is training (or was, in a process that died), or was released unfinished by a process
    that stopped (``released``: Ctrl-C, SIGTERM; whoever claims it first trains it under its number)."""

    number: int
    trial_id: int
    stage: str
    train_key: str
    indices: tuple[int, ...]
    owner: str
    released: bool = False


def decode(trial: Any) -> TrialRecord:
    """The record of a finished Optuna trial that has metrics."""
    attrs = trial.user_attrs
    return TrialRecord(
        choices=dict(trial.params), indices=tuple(attrs.get("indices", ())),
        metrics=Metrics.from_dict(attrs["metrics"]), spec=ArchSpec.from_dict(attrs["spec"]),
        arch=attrs.get("arch", ""), key=attrs.get("key", ""), reward=attrs.get("reward"),
        values=attrs.get("values", {}), reused_from=attrs.get("reused_from"), number=trial.number,
        stage=attrs.get("stage", "search"), train_key=attrs.get("train_key", ""), owner=attrs.get("owner", ""))


class TrialLog:
    """The study's trials as records and reservations, refreshed from the storage on :meth:`refresh`.

    ``records`` are in trial order; ``trained[train_key]`` is the record that trained a job (not a
    reuse of it); ``reservations`` are the RUNNING (and released: WAITING) trials of the last refresh.
    """

    def __init__(self, study: Any) -> None:
        self.study = study
        self._by_number: dict[int, TrialRecord] = {}
        self._ended: set[int] = set()  # finished without metrics: never a record
        self.records: list[TrialRecord] = []
        self.trained: dict[str, TrialRecord] = {}
        self.reservations: list[Reservation] = []

    def refresh(self) -> "TrialLog":
        """Read what changed in the storage: new finished trials become records, reservations are re-read."""
        reservations = []
        new = []
        for trial in self.study._storage.get_all_trials(self.study._study_id, deepcopy=False):
            number = trial.number
            if number in self._by_number or number in self._ended:
                continue
            attrs = trial.user_attrs
            if trial.state.name in ("RUNNING", "WAITING"):
                if "train_key" in attrs:
                    reservations.append(Reservation(number, trial._trial_id, attrs.get("stage", "search"),
                                                    attrs["train_key"], tuple(attrs.get("indices", ())),
                                                    attrs.get("owner", ""), released=trial.state.name == "WAITING"))
            elif "metrics" in attrs:
                new.append(decode(trial))
            else:
                self._ended.add(number)
        self.reservations = reservations
        self.add(new)
        return self

    def add(self, records: Iterable[TrialRecord]) -> None:
        """Append finished records (this process's own completions go in without a read)."""
        added = False
        for record in records:
            assert record.number is not None
            if record.number in self._by_number:
                continue
            self._by_number[record.number] = record
            if record.reused_from is None and record.train_key:
                self.trained.setdefault(record.train_key, record)
            if self.records and record.number < (self.records[-1].number or 0):
                added = True  # out of order (another process finished an earlier trial): sort below
            self.records.append(record)
        if added:
            self.records.sort(key=lambda r: r.number)
        self.reservations = [r for r in self.reservations if r.number not in self._by_number]

    def ended(self, number: int) -> None:
        """A reservation ended without a candidate (given up): it is no longer counted."""
        self._ended.add(number)
        self.reservations = [r for r in self.reservations if r.number != number]

    def of_stage(self, stage: str | None) -> list[TrialRecord]:
        return list(self.records) if stage is None else [r for r in self.records if r.stage == stage]


__all__ = ["COLUMNS", "Reservation", "TrialLog", "TrialRecord", "decode"]
