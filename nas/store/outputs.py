"""The table every run folder holds: ``trials.csv``, one row per finished trial (B0's file is the search's).

Columns (:data:`~nas.store.records.COLUMNS`): ``trial, status, reward, accuracy, macs, params, ...``,
then one ``param_<decision>`` column per decision of the stages the run has. The file is written
atomically (a temporary file moved into place), so a reader never sees half a table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from nas.fileio import atomic_write_text
from nas.store.records import COLUMNS, TrialRecord

TRIALS_FILE = "trials.csv"


def trials_frame(records: Sequence[TrialRecord]) -> Any:
    """The records as a DataFrame with trials.csv's columns (empty records: the columns only)."""
    import pandas as pd  # pandas: imported when a table is made

    frame = pd.DataFrame([r.row() for r in records])
    if frame.empty:
        frame = pd.DataFrame(columns=list(COLUMNS))
    ordered = list(COLUMNS) + sorted(c for c in frame.columns if c not in COLUMNS)
    return frame.reindex(columns=ordered)


def write_trials_csv(run_dir: str | Path, records: Sequence[TrialRecord]) -> Path:
    path = Path(run_dir) / TRIALS_FILE
    atomic_write_text(path, trials_frame(records).to_csv(index=False))
    return path


__all__ = ["TRIALS_FILE", "trials_frame", "write_trials_csv"]
