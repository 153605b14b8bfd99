"""The table every run folder holds: ``trials.csv``, one row per finished trial (B0's file is the search's).

Columns (:data:`~nas.store.records.COLUMNS`): ``trial, status, reward, accuracy, macs, params, ...``,
then the ``score_<name>`` and ``param_<decision>`` columns of the records, sorted. A search keeps the
file current by appending each new record's row (:class:`TrialsCsv`), so a trial costs the same to
write at the 10,000th as at the 10th; the whole file is written, atomically, only when it must be.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from nas.fileio import atomic_write_text
from nas.store.records import COLUMNS, TrialLog, TrialRecord

TRIALS_FILE = "trials.csv"


def trials_frame(records: Sequence[TrialRecord]) -> Any:
    """The records as a DataFrame with trials.csv's columns (empty records: the columns only)."""
    import pandas as pd  # pandas: imported when a table is made

    frame = pd.DataFrame([r.row() for r in records])
    if frame.empty:
        frame = pd.DataFrame(columns=list(COLUMNS))
    return frame.reindex(columns=_columns(frame.columns))


def _columns(names: Iterable[str]) -> list[str]:
    return list(COLUMNS) + sorted(c for c in set(names) if c not in COLUMNS)


def _cell(value: Any) -> Any:
    """A value as trials.csv shows it: missing (None, NaN) as an empty cell, anything else as Python prints it."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return value


def _csv_text(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], header: bool) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(columns)
    writer.writerows([_cell(row.get(c)) for c in columns] for row in rows)
    return buffer.getvalue()


def write_trials_csv(run_dir: str | Path, records: Sequence[TrialRecord]) -> Path:
    """The whole table, written atomically."""
    path = Path(run_dir) / TRIALS_FILE
    rows = [r.row() for r in records]
    atomic_write_text(path, _csv_text(rows, _columns(c for row in rows for c in row), header=True))
    return path


class TrialsCsv:
    """``trials.csv`` kept current by appending the rows of the records that joined a :class:`TrialLog`.

    The whole file is written (atomically) the first time in a process, since a resumed run's file
    may miss the trials its killed process finished; again when a record brings a column the file
    lacks (a stage with other decisions, a score); and, when asked for the ``final`` table (a stage
    ended), if rows were appended out of trial order (several workers, or another process sharing the
    study). An append is one ``write`` of whole rows: a kill cannot leave half a row.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / TRIALS_FILE
        self._columns: list[str] | None = None
        self._known: set[str] = set()
        self._written = 0  # how many of the log's arrived records the file holds
        self._last = -1  # the highest trial number in the file
        self._in_order = True

    def update(self, log: TrialLog, final: bool = False) -> Path:
        new = log.arrived[self._written:]
        rows = [r.row() for r in new]
        fresh = self._columns is None or any(c not in self._known for row in rows for c in row)
        if fresh or (final and not self._in_order):
            return self._rewrite(log)
        if rows:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(_csv_text(rows, self._columns, header=False))
            numbers = [r.number for r in new]
            self._in_order = self._in_order and numbers == sorted(numbers) and numbers[0] > self._last
            self._last = max(self._last, *numbers)
            self._written += len(new)
        return self.path

    def _rewrite(self, log: TrialLog) -> Path:
        records = log.records
        rows = [r.row() for r in records]
        self._columns = _columns(c for row in rows for c in row)
        self._known = set(self._columns)
        atomic_write_text(self.path, _csv_text(rows, self._columns, header=True))
        self._written = len(log.arrived)
        self._last = max((r.number for r in records), default=-1)
        self._in_order = True
        return self.path


__all__ = ["TRIALS_FILE", "TrialsCsv", "trials_frame", "write_trials_csv"]
