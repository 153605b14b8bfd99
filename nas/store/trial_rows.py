"""A study's trial rows written and read in bulk: the one module that uses Optuna's private API.

Why not Optuna's public storage calls: ``RDBStorage`` writes a new trial's parameters one at a time,
each with two queries (the trial again, and an earlier parameter of the same name whose distribution
it checks), and each user attribute in a transaction of its own; and the cached storage's
``get_all_trials`` sorts every trial of the study on every read. Measured on a 42-decision space
(BENCHMARKS.md, issue 22), that was most of the engine's time per trial, and it grew with the study.

Here a trial is written in one transaction: the trial row, its parameters, user attributes and
heartbeat when it is reserved; its values, attributes, intermediate values and state when it ends.
A parameter's distribution is checked against the study's once per process (then kept), and reading
what changed is one query on the trials' states, after which only the trials that are new or have
ended are loaded. The rows are Optuna's own, so optuna-dashboard, ``optuna.load_study`` and Optuna's
samplers read them as if Optuna had written them.

What this relies on, each checked by ``tests/test_store_trial_rows.py`` so that an Optuna release
that changes it fails there, loudly, rather than corrupting a study:

- ``optuna.storages._rdb.models``: ``StudyModel.find_or_raise_by_id(for_update=)``; ``TrialModel``
  (``number``, ``study_id``, ``state``, ``datetime_start`` / ``datetime_complete``); ``TrialParamModel``, ``TrialUserAttributeModel``, ``TrialValueModel``
  (``value_to_stored_repr``), ``TrialIntermediateValueModel`` (``intermediate_value_to_stored_repr``),
  ``TrialHeartbeatModel`` and their columns;
- ``optuna.storages._rdb.storage._create_scoped_session`` (commit, rollback, Optuna's error types);
- ``RDBStorage.scoped_session`` and ``RDBStorage._build_frozen_trial_from_trial_model``; the models'
  relationships ``TrialModel.params``, ``values``, ``user_attributes``, ``system_attributes``,
  ``intermediate_values``.

All of it is in Optuna 4.0 (checked against its wheel) and in the version the tests run on.

Trial numbers are handed out as Optuna hands them out (the study's row locked, the number = the
trials before it), so processes using this module and processes using plain Optuna can share one study.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Iterable, Mapping, Sequence

import optuna  # this module is the study's: imported only where a study is opened
from optuna.distributions import BaseDistribution, check_distribution_compatibility, distribution_to_json
from optuna.distributions import json_to_distribution
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import RDBStorage
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.trial import FrozenTrial, TrialState

# Loading more trials than this at once reads a range of trial ids instead of a list (SQLite limits
# the number of bound variables of one statement).
_LIST_LIMIT = 500


class TrialRows:
    """The trials of one study in an :class:`optuna.storages.RDBStorage`, written one transaction per step."""

    def __init__(self, storage: RDBStorage, study_id: int) -> None:
        if not isinstance(storage, RDBStorage):
            raise TypeError(f"TrialRows needs an RDBStorage, got {type(storage).__name__}")
        self.storage = storage
        self.study_id = study_id
        self._checked: dict[str, str] = {}  # parameter name -> distribution JSON the study's agrees with

    # ------------------------------------------------------------------------------ writing
    def add_running(self, params: Mapping[str, Any], distributions: Mapping[str, BaseDistribution],
                    user_attrs: Mapping[str, Any], heartbeat: bool = True) -> tuple[int, int]:
        """A new RUNNING trial with its parameters, user attributes and (``heartbeat``) first heartbeat,
        in one transaction; returns (trial id, trial number)."""
        encoded = {name: distribution_to_json(distributions[name]) for name in params}
        self._check_distributions(encoded, distributions)
        with _create_scoped_session(self.storage.scoped_session) as session:
            # Locked as Optuna locks it: trial numbers are counted under this lock, and trial ids are
            # committed in order within the study (what reading by "trial id above the last seen" needs).
            models.StudyModel.find_or_raise_by_id(self.study_id, session, for_update=True)
            trial = models.TrialModel(study_id=self.study_id, number=None, state=TrialState.RUNNING)
            trial.datetime_start = datetime.now()
            session.add(trial)
            session.flush()
            trial_id = trial.trial_id
            if params:
                session.execute(models.TrialParamModel.__table__.insert(), [
                    {"trial_id": trial_id, "param_name": name,
                     "param_value": distributions[name].to_internal_repr(value), "distribution_json": encoded[name]}
                    for name, value in params.items()])
            self._insert_attrs(session, trial_id, user_attrs)
            if heartbeat:
                session.add(models.TrialHeartbeatModel(trial_id=trial_id))
            trial.number = number = self._next_number(session, trial_id)
        return trial_id, number

    def _next_number(self, session: Any, trial_id: int) -> int:
        """The new trial's number: the study's previous trial's + 1, read under the study's lock.

        Optuna counts the study's trials with a lower id (``TrialModel.count_past_trials``): the same
        number, since every writer numbers that way under that lock, but a count costs a pass over the
        study, and the previous trial is one step back along the trial ids."""
        trial = models.TrialModel
        previous = (session.query(trial.number).filter(trial.study_id == self.study_id, trial.trial_id < trial_id)
                    .order_by(trial.trial_id.desc()).limit(1).scalar())
        return 0 if previous is None else int(previous) + 1

    def finish(self, trial_id: int, state: TrialState, values: Sequence[float] | None = None,
               user_attrs: Mapping[str, Any] | None = None, intermediate: Iterable[float] = ()) -> None:
        """End a RUNNING trial in one transaction: values, user attributes (replaced when set before),
        intermediate values (steps 0, 1, ...) and the state.

        Raises :class:`optuna.exceptions.UpdateFinishedTrialError` when the trial is no longer RUNNING
        (another process failed it as stale, or it ended already): nothing is written then.
        """
        with _create_scoped_session(self.storage.scoped_session) as session:
            trial = models.TrialModel.find_or_raise_by_id(trial_id, session, for_update=True)
            if trial.state != TrialState.RUNNING:
                raise UpdateFinishedTrialError(f"trial {trial.number} is {trial.state.name}, not RUNNING")
            self._replace_attrs(session, trial_id, user_attrs or {})
            steps = []
            for step, value in enumerate(intermediate):
                stored, kind = models.TrialIntermediateValueModel.intermediate_value_to_stored_repr(float(value))
                steps.append({"trial_id": trial_id, "step": step, "intermediate_value": stored,
                              "intermediate_value_type": kind})
            if steps:
                session.execute(models.TrialIntermediateValueModel.__table__.insert(), steps)
            if values is not None:
                rows = []
                for objective, value in enumerate(values):
                    stored, kind = models.TrialValueModel.value_to_stored_repr(float(value))
                    rows.append({"trial_id": trial_id, "objective": objective, "value": stored, "value_type": kind})
                session.execute(models.TrialValueModel.__table__.insert(), rows)
            trial.state = state
            trial.datetime_complete = datetime.now()

    def claim(self, trial_id: int, user_attrs: Mapping[str, Any]) -> bool:
        """A released (WAITING) trial made RUNNING again with these user attributes (replaced), in one
        transaction, so no reader sees it running under its former owner; False when it is not WAITING
        (another process claimed it first, or it ended): nothing is written then."""
        with _create_scoped_session(self.storage.scoped_session) as session:
            trial = models.TrialModel.find_or_raise_by_id(trial_id, session, for_update=True)
            if trial.state != TrialState.WAITING:
                return False
            self._replace_attrs(session, trial_id, user_attrs)
            trial.state = TrialState.RUNNING
            trial.datetime_start = datetime.now()
        return True

    @classmethod
    def _replace_attrs(cls, session: Any, trial_id: int, attrs: Mapping[str, Any]) -> None:
        if attrs:
            table = models.TrialUserAttributeModel
            session.execute(table.__table__.delete().where(table.trial_id == trial_id, table.key.in_(list(attrs))))
            cls._insert_attrs(session, trial_id, attrs)

    @staticmethod
    def _insert_attrs(session: Any, trial_id: int, attrs: Mapping[str, Any]) -> None:
        if attrs:
            session.execute(models.TrialUserAttributeModel.__table__.insert(), [
                {"trial_id": trial_id, "key": key, "value_json": json.dumps(value)} for key, value in attrs.items()])

    def _check_distributions(self, encoded: Mapping[str, str], distributions: Mapping[str, BaseDistribution]) -> None:
        """Each parameter's distribution agrees with the one the study holds (checked once per name, then
        only when it differs from the one checked): Optuna's rule, without two queries per parameter."""
        for name, text in encoded.items():
            if self._checked.get(name) == text:
                continue
            if name not in self._checked:
                earlier = self._earlier_distribution(name)
                if earlier is not None:
                    check_distribution_compatibility(json_to_distribution(earlier), distributions[name])
            else:
                check_distribution_compatibility(json_to_distribution(self._checked[name]), distributions[name])
            self._checked[name] = text

    def _earlier_distribution(self, name: str) -> str | None:
        param, trial = models.TrialParamModel, models.TrialModel
        with _create_scoped_session(self.storage.scoped_session) as session:
            row = (session.query(param.distribution_json).join(trial, param.trial_id == trial.trial_id)
                   .filter(trial.study_id == self.study_id, param.param_name == name).first())
        return None if row is None else row[0]

    # ------------------------------------------------------------------------------ reading
    def states(self, after_id: int, ids: Iterable[int] = ()) -> list[tuple[int, int, TrialState]]:
        """(trial id, number, state) of the study's trials with an id above ``after_id`` or in ``ids``,
        by trial id: one query whose cost is the number of rows it returns."""
        trial = models.TrialModel
        ids = [i for i in ids if i <= after_id]
        condition = trial.trial_id > after_id
        if ids:
            condition = condition | trial.trial_id.in_(ids)
        with _create_scoped_session(self.storage.scoped_session) as session:
            rows = (session.query(trial.trial_id, trial.number, trial.state)
                    .filter(trial.study_id == self.study_id, condition).order_by(trial.trial_id).all())
        return [(int(i), int(n), s) for i, n, s in rows]

    def load(self, ids: Sequence[int]) -> list[FrozenTrial]:
        """The trials with these ids, in full (parameters, attributes, values), by trial id."""
        if not ids:
            return []
        from sqlalchemy.orm import selectinload  # sqlalchemy: with the study

        trial, wanted = models.TrialModel, set(ids)
        condition = trial.trial_id >= min(wanted) if len(wanted) > _LIST_LIMIT else trial.trial_id.in_(wanted)
        with _create_scoped_session(self.storage.scoped_session) as session:
            query = session.query(trial).filter(trial.study_id == self.study_id, condition).order_by(trial.trial_id)
            for related in (trial.params, trial.values, trial.user_attributes, trial.system_attributes,
                            trial.intermediate_values):
                query = query.options(selectinload(related))
            return [self.storage._build_frozen_trial_from_trial_model(t) for t in query.all()
                    if t.trial_id in wanted]


def trial_id_of(trial: FrozenTrial) -> int:
    """The storage's id of a loaded trial (a private field of FrozenTrial)."""
    return trial._trial_id


def study_id_of(study: "optuna.Study") -> int:
    """The storage's id of a loaded study (a private field of Study)."""
    return study._study_id


__all__ = ["TrialRows", "study_id_of", "trial_id_of"]
