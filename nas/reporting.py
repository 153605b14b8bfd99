"""Console output of searches: the progress bar and the leaderboard (rich)."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table


def fmt_count(value: float | None, unit: str = "") -> str:
    """1234567 -> '1.23M' (multiply-adds, params)."""
    if value is None or value != value:
        return "-"
    for threshold, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= threshold:
            return f"{value / threshold:.3g}{suffix}{unit}"
    return f"{value:.3g}{unit}"


def fmt_float(value: float | None, digits: int = 4) -> str:
    return "-" if value is None or value != value else f"{value:.{digits}f}"


class SearchProgress:
    """Trials done / total, elapsed, ETA and the best reward so far."""

    def __init__(self, console: Console, enabled: bool = True) -> None:
        self.console = console
        self.enabled = enabled
        self.best: float | None = None
        self._progress: Progress | None = None
        self._task: Any = None

    @contextlib.contextmanager
    def running(self, total: int, completed: int = 0) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        self._progress = Progress(TextColumn("[bold]trials"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("elapsed"), TimeElapsedColumn(), TextColumn("ETA"),
                                  TimeRemainingColumn(), TextColumn("best reward {task.fields[best]}"),
                                  console=self.console, transient=False)
        with self._progress:
            self._task = self._progress.add_task("search", total=total, completed=completed, best="-")
            yield
        self._progress = None

    def update(self, record: Any, done: int, total: int) -> None:
        if record.reward is not None and record.metrics.ok and (self.best is None or record.reward > self.best):
            self.best = record.reward
        if self._progress is not None:
            self._progress.update(self._task, completed=done, best=fmt_float(self.best))
        elif self.enabled:
            self.console.print(f"trial {record.number}: {record.metrics.status} reward {fmt_float(record.reward)}")


def leaderboard_table(records: Sequence[Any], title: str = "Leaderboard") -> Table:
    table = Table(title=title)
    for name, justify in (("rank", "right"), ("trial", "right"), ("reward", "right"), ("accuracy", "right"),
                          ("MACs", "right"), ("params", "right"), ("block strings", "left")):
        table.add_column(name, justify=justify, overflow="fold")
    for rank, r in enumerate(records, 1):
        table.add_row(str(rank), str(r.number), fmt_float(r.reward), fmt_float(r.metrics.accuracy),
                      fmt_count(r.values.get("macs")), fmt_count(r.values.get("params")), r.arch)
    return table
