"""What a run holds: one :class:`TrialRecord` per evaluated proposal, decoded once and kept.

A trial's record is decoded from its Optuna trial (user attributes ``metrics``, ``spec``, ...) the
first time it is seen finished, and kept: :class:`TrialLog` asks the storage only for what changed
(the states of the new and the unfinished trials), decodes the new finished ones and appends them,
so reading a run costs the same at its 10th trial as at its 10,000th. Trials still RUNNING, or released
(WAITING) by a process that stopped, are :class:`Reservation` s (see :mod:`nas.store.reservations`).
A trial that ended without metrics (given up, over budget, stale) is neither.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from nas.metrics import Metrics
from nas.spec import ArchSpec
from nas.stats import at_chance, wilson_interval

if TYPE_CHECKING:
    from nas.store.trial_rows import TrialRows

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
    """The study's trials as records and reservations, brought up to date by :meth:`refresh`.

    ``records`` are in trial order; ``trained[train_key]`` is the record that trained a job (not a
    reuse of it); ``reservations`` are the RUNNING trials and the released (WAITING) ones, which a
    process gave back unfinished to be claimed (this process's, and others' as of the last refresh). A
    refresh asks the storage for the states of the trials it has not seen end (one small query,
    :meth:`nas.store.trial_rows.TrialRows.states`) and loads only those that are new, have ended or
    changed state (released, claimed), so it costs the same at the 10,000th trial as at the 10th.
    Trials this process reserved or claimed are known without a read; their records join the log when
    it completes them.
    """

    def __init__(self, rows: "TrialRows") -> None:
        self.rows = rows
        self._by_number: dict[int, TrialRecord] = {}
        self._ended: set[int] = set()  # finished without metrics: never a record
        self.records: list[TrialRecord] = []
        self.arrived: list[TrialRecord] = []  # the records in the order they joined the log
        self.trained: dict[str, TrialRecord] = {}
        self._reservations: dict[int, Reservation] = {}  # number -> RUNNING / WAITING trial with a training key
        self._numbers: dict[str, list[int]] = {}  # stage -> its records' numbers, sorted
        self._seen_id = -1  # every trial with an id up to this one is known (ended, a record, or watched)
        self._watched: dict[int, str] = {}  # trial id -> state when loaded: unfinished trials of other processes
        self._mine: dict[int, int] = {}  # trial id -> number: RUNNING trials this process reserved or claimed

    @property
    def reservations(self) -> list[Reservation]:
        return sorted(self._reservations.values(), key=lambda r: r.number)

    def reservation(self, number: int) -> Reservation | None:
        return self._reservations.get(number)

    def refresh(self) -> "TrialLog":
        """Read what changed in the storage: new finished trials become records, new RUNNING (or released)
        ones reservations, and a reservation released or claimed elsewhere is read again."""
        load = []
        for trial_id, number, state in self.rows.states(self._seen_id, self._watched):
            self._seen_id = max(self._seen_id, trial_id)
            if trial_id in self._mine:
                continue
            if number in self._by_number or number in self._ended:
                self._watched.pop(trial_id, None)
                continue
            if self._watched.get(trial_id) == state.name:
                continue  # unchanged since it was loaded: training elsewhere, or released and not yet claimed
            load.append(trial_id)
        new = []
        for trial in self.rows.load(load):
            new += self._take(trial)
        self.add(new)
        return self

    def _take(self, trial: Any) -> list[TrialRecord]:
        """A trial loaded from the storage: watched while it is unfinished (a reservation when it has a
        training key: RUNNING, or released when WAITING), then a record (or ended)."""
        from nas.store.trial_rows import trial_id_of  # optuna: imported when a study is used

        trial_id, number, attrs = trial_id_of(trial), trial.number, trial.user_attrs
        if not trial.state.is_finished():
            self._watched[trial_id] = trial.state.name
            self._reservations.pop(number, None)
            if "train_key" in attrs:
                self._reservations[number] = Reservation(number, trial_id, attrs.get("stage", "search"),
                                                         attrs["train_key"], tuple(attrs.get("indices", ())),
                                                         attrs.get("owner", ""), released=trial.state.name == "WAITING")
            return []
        self._watched.pop(trial_id, None)
        self._reservations.pop(number, None)
        if "metrics" in attrs:
            return [decode(trial)]
        self._ended.add(number)
        return []

    def reserved(self, reservation: Reservation) -> None:
        """A trial this process has just reserved (or claimed): known without a read until it completes,
        is given up or released."""
        self._watched.pop(reservation.trial_id, None)
        self._mine[reservation.trial_id] = reservation.number
        self._reservations[reservation.number] = reservation

    def released(self, number: int) -> None:
        """This process gave reservation ``number`` back (WAITING): watched from now on, as another's."""
        reservation = self._reservations.get(number)
        if reservation is not None:
            self._mine.pop(reservation.trial_id, None)
            self._watched[reservation.trial_id] = "WAITING"
            self._reservations[number] = replace(reservation, released=True)

    def add(self, records: Iterable[TrialRecord]) -> None:
        """Append finished records (this process's own completions go in without a read)."""
        out_of_order = False
        for record in records:
            assert record.number is not None
            if record.number in self._by_number:
                continue
            self._by_number[record.number] = record
            if record.reused_from is None and record.train_key:
                self.trained.setdefault(record.train_key, record)
            if self.records and record.number < (self.records[-1].number or 0):
                out_of_order = True  # another process finished an earlier trial: sort below
            self.records.append(record)
            self.arrived.append(record)
            insort(self._numbers.setdefault(record.stage, []), record.number)
            self._forget_reservation(record.number)
        if out_of_order:
            self.records.sort(key=lambda r: r.number)

    def ended(self, number: int) -> None:
        """A reservation ended without a candidate (given up): it is no longer counted."""
        self._ended.add(number)
        self._forget_reservation(number)

    def _forget_reservation(self, number: int) -> None:
        reservation = self._reservations.pop(number, None)
        if reservation is not None:
            self._mine.pop(reservation.trial_id, None)

    def of_stage(self, stage: str | None) -> list[TrialRecord]:
        return list(self.records) if stage is None else [r for r in self.records if r.stage == stage]

    def finished(self, stage: str, below: int | None = None) -> int:
        """How many records ``stage`` has (numbered below ``below``, when given), without a read."""
        numbers = self._numbers.get(stage, [])
        return len(numbers) if below is None else bisect_left(numbers, below)


__all__ = ["COLUMNS", "Reservation", "TrialLog", "TrialRecord", "decode"]
