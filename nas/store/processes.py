"""The processes of a shared study, numbered in the order they joined it.

Every ``nas search`` process on one study (``--storage URL --study NAME``) draws its own proposals:
its stream is derived from the study's seed and its number here
(:func:`nas.controllers.base.proposal_seed`; number 0 draws from the seed itself, as a lone search does).

The number must be unique even when two processes join at the same instant, and Optuna's study
attributes are overwritten, not compared and set. What the storage does hand out atomically is a trial
number (it locks the study's row while it numbers a trial, in SQLite and PostgreSQL alike), so a
process's number is a *ticket*: a trial of the side study ``NAME:processes`` in the same storage, holding
the process's owner id and folder name (optuna-dashboard lists the processes there). The main study's
trial numbers stay the search's own. A run folder keeps its number in ``run.json`` (``process``), so a
resumed folder draws from the same stream; a run without one (older runs, a folder's own study) is 0.
"""

from __future__ import annotations

from typing import Any

from nas.errors import StorageError
from nas.store.study import first_line

PROCESSES_SUFFIX = ":processes"


def processes_study_name(study_name: str) -> str:
    """The side study whose trials number the processes of ``study_name``."""
    return f"{study_name}{PROCESSES_SUFFIX}"


def join_study(storage: Any, study_name: str, owner: str, folder: str) -> int:
    """This process's number in ``study_name`` (0 for the first to join), taken once, atomically."""
    import optuna  # optuna: imported when a study is used
    from optuna.trial import TrialState

    try:
        side = optuna.create_study(storage=storage, study_name=processes_study_name(study_name),
                                   load_if_exists=True)
        trial_id = storage.create_new_trial(side._study_id)
        storage.set_trial_user_attr(trial_id, "owner", owner)
        storage.set_trial_user_attr(trial_id, "out", folder)
        number = storage.get_trial_number_from_id(trial_id)
        storage.set_trial_state_values(trial_id, TrialState.COMPLETE, [float(number)])
    except Exception as exc:  # noqa: BLE001
        raise StorageError(f"cannot number this process in study {study_name!r}: {first_line(exc)}") from None
    return number


__all__ = ["PROCESSES_SUFFIX", "join_study", "processes_study_name"]
