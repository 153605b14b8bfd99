"""Console output: the progress bar, the leaderboard and the tables of trained seeds (rich)."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Mapping, Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from nas.engine import error_kind
from nas.ranking import accuracy_interval
from nas.threads import ThreadPlan, busy_cores, busy_warning


def make_console() -> Console:
    """A rich console; 120 columns when writing to a file or pipe so that wide tables are not cut."""
    console = Console()
    return console if console.is_terminal else Console(width=120)


def warn_if_busy(console: Console, plan: ThreadPlan) -> None:
    """Say once, right after a job's first line, when other work keeps the cores its plan wants busy."""
    warning = busy_warning(plan, busy_cores(sample_s=0.2))  # 0.2 s: 20 ticks of each core, a moment at the start
    if warning:
        console.print(warning, style="yellow", markup=False, highlight=False)


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
    """Trials done / total, elapsed, ETA and the best reward so far; the first failure of each kind."""

    def __init__(self, console: Console, enabled: bool = True) -> None:
        self.console = console
        self.enabled = enabled
        self.best: float | None = None
        self.errors_seen: set[str] = set()
        self._progress: Progress | None = None
        self._task: Any = None

    @contextlib.contextmanager
    def running(self, total: int, completed: int = 0) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        self._progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("elapsed"), TimeElapsedColumn(), TextColumn("ETA"),
                                  TimeRemainingColumn(), TextColumn("best reward {task.fields[best]}"),
                                  console=self.console, transient=False)
        with self._progress:
            self._task = self._progress.add_task("search", total=total, completed=completed, best="-")
            try:
                yield
            except BaseException:
                # An error ends the command with one line: take the bar off the screen first.
                self._progress.live.transient = True
                raise
        self._progress = None

    def update(self, record: Any, done: int, total: int) -> None:
        m = record.metrics
        if m.status in ("failed", "diverged"):
            kind = error_kind(m.error or m.status)
            if kind not in self.errors_seen:
                self.errors_seen.add(kind)
                self.console.print(f"[red]trial {record.number} {m.status}:[/red] {m.error or m.status}  "
                                   "(later failures of this kind are not shown; see trials.csv)")
        if record.reward is not None and record.metrics.ok and (self.best is None or record.reward > self.best):
            self.best = record.reward
        if self._progress is not None:
            self._progress.update(self._task, completed=done, total=total, description=record.stage,
                                  best=fmt_float(self.best))
        elif self.enabled:
            self.console.print(f"trial {record.number}: {record.metrics.status} reward {fmt_float(record.reward)}")


def interval_text(record: Any) -> str:
    """``0.962-0.981`` (the accuracy's 95% Wilson interval), ``-`` when unknown."""
    interval = accuracy_interval(record)
    return "-" if interval is None else f"{interval[0]:.3f}-{interval[1]:.3f}"


def leaderboard_table(records: Sequence[Any], title: str = "Leaderboard") -> Table:
    """Ranked records with the accuracy's 95% interval; ``chance`` marks accuracies indistinguishable from guessing."""
    table = Table(title=title)
    for name, justify in (("rank", "right"), ("trial", "right"), ("reward", "right"), ("accuracy", "right"),
                          ("95% CI", "right"), ("MACs", "right"), ("params", "right"), ("block strings", "left")):
        table.add_column(name, justify=justify, overflow="fold")
    for rank, r in enumerate(records, 1):
        chance = r.row().get("at_chance")
        table.add_row(str(rank), str(r.number), fmt_float(r.reward),
                      fmt_float(r.metrics.accuracy) + (" chance" if chance else ""), interval_text(r),
                      fmt_count(r.values.get("macs")), fmt_count(r.values.get("params")), r.arch)
    return table


def rerank_table(choice: Any, title: str = "Re-ranked leaders") -> Table:
    """Both rankings side by side: search rank and reward, re-ranked rank and mean reward over seeds."""
    table = Table(title=title)
    for name in ("search rank", "trial", "search reward", "search acc", "rerank rank", "rerank reward",
                 "sd", "rerank acc", "seeds", "block strings"):
        table.add_column(name, justify="left" if name == "block strings" else "right", overflow="fold")
    reranked = sorted((c for c in choice.candidates if c.rerank), key=lambda c: c.rerank_rank or 10**9)
    for c in reranked:
        mark = " *" if c.key == choice.candidate.key else ""
        table.add_row(str(c.search_rank), str(c.search.number), fmt_float(c.search.reward),
                      fmt_float(c.search.metrics.accuracy), (str(c.rerank_rank) if c.rerank_rank else "-") + mark,
                      fmt_float(c.rerank_reward), fmt_float(c.rerank_reward_sd), fmt_float(c.rerank_accuracy),
                      str(len(c.rerank)), c.search.arch)
    return table


def mean_interval_text(mean: Mapping[str, Any] | None) -> str:
    """``0.954-0.968`` (a mean's 95% t-interval over seeds as :meth:`MeanInterval.to_dict` gives it),
    ``-`` for one seed."""
    if not mean or mean.get("low") is None:
        return "-"
    return f"{mean['low']:.4f}-{mean['high']:.4f}"


def seeds_table(summary: Mapping[str, Any], title: str = "Seeds") -> Table:
    """``nas train --seeds``: each weight set and split's mean accuracy, its interval and the seeds' values;
    then the cost."""
    table = Table(title=title)
    for name, justify in (("measure", "left"), ("mean", "right"), ("95% CI", "right"), ("sd", "right"),
                          ("per seed", "left")):
        table.add_column(name, justify=justify, overflow="fold")
    for weights, splits in summary["accuracy"].items():
        for split, mean in splits.items():
            key = f"{weights}_{split}_accuracy"
            values = " ".join(f"{row['seed']}: {row[key]:.4f}" for row in summary["per_seed"] if key in row)
            table.add_row(f"{split} accuracy ({weights} weights)", fmt_float(mean["mean"]), mean_interval_text(mean),
                          fmt_float(mean["sd"]), values)
    table.add_row("MACs (multiply-adds)", fmt_count(summary["macs"]), "", "", "")
    table.add_row("params", fmt_count(summary["params"]), "", "", "")
    table.add_row("latency ms, batch 1 (mean)", fmt_float(summary["latency_ms"], 2), "", "", "")
    return table
