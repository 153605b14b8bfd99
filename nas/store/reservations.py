"""The reservation protocol: how processes sharing one study train each network once and fill an exact budget.

Every candidate is one Optuna trial with a life of two steps:

1. :meth:`Reservations.reserve` creates it ``RUNNING`` before its network trains, with the decisions
   as params and the network, stage and training key as user attributes. The storage hands out
   trial numbers under a lock, so several processes sharing one study get unique numbers, and the
   reservation is what makes a shared budget exact: a process counts every reservation below its
   own before it trains (:meth:`within_budget`).
2. :meth:`Reservations.complete` fills in the metrics and the reward (or the objective's raw values
   for a multi-objective study) and finishes the trial ``COMPLETE``, ``PRUNED`` or ``FAIL``.

A process that dies leaves its reservations ``RUNNING``. The same run folder resumed adopts them
(they are its own: the run folder's ``owner`` id is stored on each); another process sharing the
study sees them go stale once their heartbeat stops (Optuna's RDB heartbeat) and fails them with
:meth:`fail_stale`. A reservation that ends without metrics (given up, over budget, stale) is not a
candidate: it is no record and no count.

A process that stops on purpose (Ctrl-C, SIGTERM) does not wait for the heartbeat to tell: it
:meth:`release` s what it holds (Optuna's ``WAITING`` state: number, network and stage kept, still
counted against the budget), and the first process to :meth:`claim` one (a resume of the run
folder, or another process sharing the study) trains it under its original number. The claim is
one transaction on the trial's locked row (:meth:`nas.store.trial_rows.TrialRows.claim`: ``WAITING ->
RUNNING`` and the new owner together), so two claimers never both win and no reader sees it running
under its former owner.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from nas.errors import StorageError
from nas.spec import ArchSpec
from nas.store.records import Reservation, TrialLog, TrialRecord
from nas.store.study import first_line, shown

if TYPE_CHECKING:
    from nas.store.trial_rows import TrialRows


class Reservations:
    """Reserve, complete, give up and keep alive the trials of one study on behalf of ``owner``.

    Each step is one transaction of :class:`nas.store.trial_rows.TrialRows` (a trial's 42 parameters
    are one insert, not 42 round trips), and each budget check counts from the log without going over
    the study's records, so both cost the same at the 10,000th trial as at the 10th.
    """

    def __init__(self, study: Any, rows: "TrialRows", log: TrialLog, owner: str, metric_names: Sequence[str],
                 storage_url: str) -> None:
        self.study = study
        self.rows = rows
        self.log = log
        self.owner = owner
        self.metric_names = list(metric_names)
        self.storage_url = storage_url

    def _trial_id(self, number: int) -> int:
        """The storage's id of trial ``number`` (one dict look-up: the heartbeat thread asks too)."""
        reservation = self.log.reservation(number)
        if reservation is not None:
            return reservation.trial_id
        return self.study._storage.get_trial_id_from_study_id_trial_number(self.rows.study_id, number)

    def reserve(self, stage: str, choices: Mapping[str, Any], indices: Sequence[int], decisions: Sequence[Any],
                spec: ArchSpec, arch: str, train_key: str) -> int:
        """Create the RUNNING trial of a candidate about to be trained (or reused); returns its number."""
        from optuna.distributions import CategoricalDistribution  # optuna: imported when a study is used

        distributions = {d.name: CategoricalDistribution(list(d.options)) for d in decisions}
        attrs = {"stage": stage, "train_key": train_key, "key": spec.key(), "arch": arch, "spec": spec.to_dict(),
                 "indices": [int(i) for i in indices], "owner": self.owner}
        try:
            trial_id, number = self.rows.add_running(dict(choices), distributions, attrs)
        except Exception as exc:  # noqa: BLE001
            raise StorageError(f"storage {shown(self.storage_url)!r}: cannot add a trial: {first_line(exc)}") from None
        self.log.reserved(Reservation(number, trial_id, stage, train_key, tuple(int(i) for i in indices), self.owner))
        return number

    def complete(self, number: int, record: TrialRecord) -> TrialRecord:
        """Finish a reserved trial with its metrics; returns the record with its number (kept in the log)."""
        import optuna  # optuna: imported when a study is used
        from optuna.trial import TrialState

        trial_id = self._trial_id(number)
        m = record.metrics
        state = {"ok": TrialState.COMPLETE, "pruned": TrialState.PRUNED}.get(m.status, TrialState.FAIL)
        values = self._study_values(record) if state == TrialState.COMPLETE else None
        if state == TrialState.COMPLETE and values is None:
            state = TrialState.FAIL
        attrs = {"status": m.status, "metrics": m.to_dict(), "values": dict(record.values),
                 "reused_from": record.reused_from, "reward": record.reward}
        try:
            self.rows.finish(trial_id, state, values, attrs, [float(a) for a in m.history])
        except optuna.exceptions.UpdateFinishedTrialError:
            raise StorageError(f"trial {number} was given up by another process while this one trained it "
                               "(its heartbeat stopped for longer than the grace period)") from None
        done = replace(record, number=number, owner=self.owner)
        self.log.add([done])
        return done

    def _study_values(self, record: TrialRecord) -> list[float] | None:
        if self.metric_names == ["reward"]:
            ok = record.reward is not None and math.isfinite(record.reward)
            return [float(record.reward)] if ok else None
        out = []
        for name in self.metric_names:
            value = record.reward if name == "reward" else record.values.get(name)
            if value is None or not math.isfinite(float(value)):
                return None
            out.append(float(value))
        return out

    def give_up(self, number: int, reason: str) -> None:
        """End a reservation without a candidate (over budget, adopted elsewhere): FAIL, no metrics."""
        import optuna  # optuna: imported when a study is used
        from optuna.trial import TrialState

        trial_id = self._trial_id(number)
        try:
            self.rows.finish(trial_id, TrialState.FAIL, user_attrs={"given_up": reason})
        except optuna.exceptions.UpdateFinishedTrialError:
            pass
        self.log.ended(number)

    def release(self, number: int) -> None:
        """Hand back a reservation this process will not finish (it stops): claimable at once, number kept."""
        from optuna.trial import TrialState  # optuna: imported when a study is used

        try:
            self.rows.storage.set_trial_state_values(self._trial_id(number), TrialState.WAITING)
        except Exception:  # noqa: BLE001 - finished meanwhile, or the storage is gone: then the heartbeat tells
            return
        self.log.released(number)

    def claim(self, number: int) -> bool:
        """Take over a released reservation (RUNNING again, owned by this process); False if another took it."""
        reservation = self.log.reservation(number)
        if reservation is None:
            return False
        try:
            # The heartbeat first: a stale one would fail the trial as soon as it runs again.
            self.rows.storage.record_heartbeat(reservation.trial_id)
            if not self.rows.claim(reservation.trial_id, {"owner": self.owner}):
                return False
        except Exception:  # noqa: BLE001 - finished, or claimed by another process in the same instant
            return False
        self.log.reserved(replace(reservation, owner=self.owner, released=False))
        return True

    def heartbeat(self, numbers: Sequence[int]) -> None:
        """Mark this process's reservations alive (called every ``HEARTBEAT_S`` while they train)."""
        for number in numbers:
            try:
                self.rows.storage.record_heartbeat(self._trial_id(number))
            except Exception:  # noqa: BLE001 - a missed heartbeat is retried at the next beat
                pass

    def fail_stale(self) -> None:
        """Fail reservations of processes that stopped beating (they died)."""
        import optuna  # optuna: imported when a study is used

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(self.study)

    def counted(self, stage: str, below: int | None = None, refresh: bool = True) -> int:
        """Candidates of ``stage``, finished, training or released (optionally only those numbered below
        ``below``; ``refresh`` False: as of the last read)."""
        log = self.log.refresh() if refresh else self.log
        running = sum(1 for r in log.reservations if r.stage == stage and (below is None or r.number < below))
        return log.finished(stage, below) + running

    def within_budget(self, number: int, stage: str, budget: int) -> bool:
        """Whether reservation ``number`` is one of the first ``budget`` candidates of its stage."""
        return self.counted(stage, below=number) < budget


__all__ = ["Reservations"]
