"""nas/store/trial_rows.py: the one module on Optuna's private API. If an Optuna release changes what it
relies on, these tests fail here, by name, instead of a study being written wrongly.

Every test uses a real SQLite study and reads it back with plain Optuna, as optuna-dashboard would.
"""

from __future__ import annotations

import inspect
import math
from datetime import datetime
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from nas.decisions import Decision
from nas.metrics import Metrics
from nas.presets import preset
from nas.store import RunStore, TrialRecord, open_run
from nas.store.study import open_storage
from nas.store.trial_rows import TrialRows, study_id_of, trial_id_of

DISTRIBUTIONS = {"kernel": CategoricalDistribution([3, 5, 7]), "act": CategoricalDistribution(["relu", "swish"]),
                 "se": CategoricalDistribution([0.0, 0.25])}
ATTRS = {"stage": "search", "spec": {"nested": [1, 2]}, "owner": "abc"}


def new_study(tmp_path: Path) -> tuple[optuna.Study, TrialRows]:
    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    study = optuna.create_study(storage=storage, study_name="s")
    return study, TrialRows(storage, study_id_of(study))


def test_the_private_names_it_relies_on_are_there():
    from optuna.storages import RDBStorage
    from optuna.storages._rdb import models
    from optuna.storages._rdb import storage as rdb
    from sqlalchemy.orm import configure_mappers

    assert callable(rdb._create_scoped_session)
    assert list(inspect.signature(RDBStorage._build_frozen_trial_from_trial_model).parameters) == ["self", "trial"]
    configure_mappers()  # the relationships are backrefs, set up when the mappers are configured
    for related in ("params", "values", "user_attributes", "system_attributes", "intermediate_values"):
        assert hasattr(models.TrialModel, related), related
    assert "for_update" in inspect.signature(models.StudyModel.find_or_raise_by_id).parameters
    columns = {
        models.TrialModel: {"trial_id", "number", "study_id", "state", "datetime_start", "datetime_complete"},
        models.TrialParamModel: {"trial_id", "param_name", "param_value", "distribution_json"},
        models.TrialUserAttributeModel: {"trial_id", "key", "value_json"},
        models.TrialValueModel: {"trial_id", "objective", "value", "value_type"},
        models.TrialIntermediateValueModel: {"trial_id", "step", "intermediate_value", "intermediate_value_type"},
        models.TrialHeartbeatModel: {"trial_id", "heartbeat"},
    }
    for model, names in columns.items():
        assert names <= set(model.__table__.columns.keys()), model.__name__
    assert models.TrialValueModel.value_to_stored_repr(math.inf)[0] is None
    assert models.TrialIntermediateValueModel.intermediate_value_to_stored_repr(0.5)[0] == 0.5


def test_a_trial_written_in_one_transaction_reads_back_as_optuna_writes_it(tmp_path):
    study, rows = new_study(tmp_path)
    params = {"kernel": 5, "act": "swish", "se": 0.25}
    # The same trial written by Optuna itself, for comparison.
    template = FrozenTrial(number=-1, state=TrialState.RUNNING, value=None, datetime_start=None,
                           datetime_complete=None, params=params, distributions=DISTRIBUTIONS, user_attrs=ATTRS,
                           system_attrs={}, intermediate_values={}, trial_id=-1)
    theirs = study._storage.create_new_trial(study._study_id, template_trial=template)
    study._storage.set_trial_user_attr(theirs, "status", "ok")
    for step, value in enumerate([0.25, 0.5]):
        study._storage.set_trial_intermediate_value(theirs, step, value)
    study._storage.set_trial_state_values(theirs, TrialState.COMPLETE, [0.75])

    started = datetime.now()
    ours, number = rows.add_running(params, DISTRIBUTIONS, ATTRS)
    assert number == 1
    rows.finish(ours, TrialState.COMPLETE, [0.75], {"status": "ok"}, [0.25, 0.5])
    ended = datetime.now()
    after = study._storage.create_new_trial(study._study_id)  # plain Optuna numbers on from ours
    assert study._storage.get_trial(after).number == 2 and rows.add_running({}, {}, {})[1] == 3
    for trial_id in (after, after + 1):
        study._storage.set_trial_state_values(trial_id, TrialState.FAIL)

    reread = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'study.db'}")
    a, b = reread.trials[:2]
    assert [t.number for t in reread.trials] == [0, 1, 2, 3]
    for field in ("state", "values", "params", "distributions", "user_attrs", "intermediate_values"):
        assert getattr(a, field) == getattr(b, field), field
    # stamped while add_running and finish ran, in local time as Optuna reads it (no bound on how long they took)
    assert started <= b.datetime_start <= b.datetime_complete <= ended
    assert reread.best_trial.value == 0.75


def test_a_distribution_that_conflicts_with_the_study_is_refused_and_nothing_is_written(tmp_path):
    study, rows = new_study(tmp_path)
    rows.add_running({"kernel": 3}, DISTRIBUTIONS, {})
    fresh = TrialRows(open_storage(f"sqlite:///{tmp_path / 'study.db'}"), study_id_of(study))  # another process
    with pytest.raises(ValueError, match="[Cc]annot set different distribution"):
        fresh.add_running({"kernel": 3}, {"kernel": optuna.distributions.IntDistribution(1, 9)}, {})
    with pytest.raises(ValueError):
        rows.add_running({"kernel": 3}, {"kernel": optuna.distributions.IntDistribution(1, 9)}, {})
    assert len(study.get_trials()) == 1


def test_finishing_a_trial_that_already_ended_writes_nothing(tmp_path):
    study, rows = new_study(tmp_path)
    trial_id, _ = rows.add_running({"kernel": 3}, DISTRIBUTIONS, {})
    rows.finish(trial_id, TrialState.FAIL, user_attrs={"given_up": "stale"})
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        rows.finish(trial_id, TrialState.COMPLETE, [1.0], {"status": "ok"}, [0.5])
    (trial,) = study.get_trials()
    assert trial.state == TrialState.FAIL and trial.user_attrs == {"given_up": "stale"}
    assert trial.intermediate_values == {} and trial.values is None


def test_a_released_trial_is_claimed_once_with_its_new_owner_in_one_step(tmp_path):
    study, rows = new_study(tmp_path)
    trial_id, _ = rows.add_running({"kernel": 3}, DISTRIBUTIONS, ATTRS)
    assert not rows.claim(trial_id, {"owner": "def"})  # RUNNING: nothing to claim, nothing written
    study._storage.set_trial_state_values(trial_id, TrialState.WAITING)  # released, as Optuna writes it
    assert rows.claim(trial_id, {"owner": "def"})
    assert not rows.claim(trial_id, {"owner": "ghi"})  # claimed once
    (trial,) = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'study.db'}").trials
    assert trial.state == TrialState.RUNNING and trial.user_attrs == {**ATTRS, "owner": "def"}


def test_reading_what_changed_returns_new_and_watched_trials_only(tmp_path):
    study, rows = new_study(tmp_path)
    ids = [rows.add_running({"kernel": 3}, DISTRIBUTIONS, {})[0] for _ in range(4)]
    rows.finish(ids[1], TrialState.COMPLETE, [0.5])
    assert [(i, n, s.name) for i, n, s in rows.states(ids[2], [ids[0], ids[1], ids[3]])] == [
        (ids[0], 0, "RUNNING"), (ids[1], 1, "COMPLETE"), (ids[3], 3, "RUNNING")]
    loaded = rows.load([ids[1], ids[3]])
    assert [trial_id_of(t) for t in loaded] == [ids[1], ids[3]] and loaded[0].values == [0.5]


def statements(store: RunStore) -> list[str]:
    """Every SQL statement the store's engine executes from now on."""
    from sqlalchemy import event

    seen: list[str] = []
    event.listen(store.log.rows.storage.engine, "before_cursor_execute",
                 lambda conn, cursor, sql, *args: seen.append(sql))
    return seen


def test_a_refresh_costs_the_same_however_many_trials_the_study_holds(tmp_path):
    spec = preset("efficientnet-b0")
    decisions = (Decision("k", (3, 5, 7)),)
    writer = RunStore.create(tmp_path / "run", {"space": "test"})
    reader = open_run(tmp_path / "run")
    seen = statements(reader)

    def add(count: int) -> None:
        for _ in range(count):
            k = len(writer.records())
            writer.record(TrialRecord(choices={"k": 3}, indices=(0,), metrics=Metrics(accuracy=0.5), spec=spec,
                                      arch="b0", key=f"n{k}", reward=0.5, train_key=f"t{k}"), decisions)

    def cost_of_one_more() -> tuple[int, int]:
        """Statements of a refresh after another process added a trial and reserved one; then of one more."""
        reader.records()
        add(1)
        number = writer.reserve("search", {"k": 5}, (1,), decisions, spec, "b0", f"running-{number_of_trials()}")
        seen.clear()
        assert reader.records()[-1].number == number - 1 and reader.reservations()[-1].number == number
        changed = len(seen)
        seen.clear()
        reader.records()
        writer.give_up(number, "test")
        return changed, len(seen)

    def number_of_trials() -> int:
        return len(writer.records()) + len(writer.reservations())

    add(3)
    small = cost_of_one_more()
    add(40)
    assert cost_of_one_more() == small and small[1] == 1  # nothing changed: one query on the unseen trials' states
