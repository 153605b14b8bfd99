"""Persistence of a run: the run folder (``run.json``) and its Optuna study, split by concern.

=====================  =========================================================================
``study.py``           opening an RDB storage; where the run folder's own study file is
``records.py``         :class:`TrialRecord` and :class:`TrialLog`: trials decoded once and kept
``reservations.py``    the reservation protocol: reserve, complete, give up, heartbeats, budgets
``outputs.py``         trials.csv, appended as trials finish
``processes.py``       a process's number in a shared study (its own proposals)
``trial_rows.py``      the study's trial rows written and read in bulk (Optuna's private API, only here)
``run.py``             :class:`RunStore`: the folder and its study; :func:`open_run` for readers
=====================  =========================================================================
"""

from nas.store.outputs import TRIALS_FILE, TrialsCsv, trials_frame, write_trials_csv
from nas.store.records import COLUMNS, Reservation, TrialLog, TrialRecord
from nas.store.run import LOCAL_KEYS, RUN_FILE, RunStore, config_difference, open_run, run_exists, run_labels
from nas.store.study import GRACE_S, HEARTBEAT_S, STUDY_FILE, STUDY_NAME, default_storage_url

__all__ = ["COLUMNS", "GRACE_S", "HEARTBEAT_S", "LOCAL_KEYS", "RUN_FILE", "Reservation", "RunStore",
           "STUDY_FILE", "STUDY_NAME", "TRIALS_FILE", "TrialLog", "TrialRecord", "TrialsCsv", "config_difference",
           "default_storage_url", "open_run", "run_exists", "run_labels", "trials_frame", "write_trials_csv"]
