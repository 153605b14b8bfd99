"""``nas report``: one self-contained HTML page that shows a run (or several) at a glance.

=====================  =========================================================================
``run.py``             :class:`RunView`: a run read once through the store and the ranking
``html.py``            escaping, sortable tables, figures (plotly, SVG), sections, the page
``settings.py``        the run's settings and what each stage cost
``progress.py``        reward of every trial and the best so far against the trial number
``leaderboard.py``     the top candidates with intervals, ties with B0, chance level
``frontier.py``        ``nas pareto``'s interactive figure
``fidelity.py``        the proxy-fidelity scatter and the rungs
``b0.py``              B0 drawn stage by stage with its counted costs
``failures.py``        failures by kind, trials still running
=====================  =========================================================================

The page opens offline: plotly.js is written into it, every figure's data inline, and nothing is
loaded from elsewhere. It reads a run in progress as it stands (finished trials, RUNNING ones).
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Sequence

from nas.errors import ConfigError
from nas.fileio import atomic_write_text
from nas.report.b0 import b0_body
from nas.report.failures import failures_body
from nas.report.fidelity import fidelity_body, rungs_body
from nas.report.frontier import frontier_body
from nas.report.html import page, plotly_figure, section, subsection
from nas.report.leaderboard import leaderboard_body
from nas.report.progress import progress_figure
from nas.report.run import RunView, read_runs
from nas.report.settings import settings_body
from nas.store import run_labels

REPORT_FILE = "report.html"
DEFAULT_TOP = 20


def _per_run(views: Sequence[RunView], body) -> str:
    """Each run's part of a section, under its name when there are several."""
    if len(views) == 1:
        return body(views[0])
    return "".join(subsection(v.label, body(v)) for v in views)


def render(views: Sequence[RunView], top: int = DEFAULT_TOP) -> str:
    """The page of ``views`` (the first run's objectives for the shared frontier)."""
    sections = [
        ("settings", "Settings", section("settings", "Settings", _per_run(views, settings_body))),
        ("progress", "Progress", section(
            "progress", "Search progress", plotly_figure(progress_figure(views), "plot-progress"),
            "Reward of every trial by stage and the best reward so far among the proposed candidates: a search "
            "that learns keeps raising it.")),
        ("leaderboard", "Leaderboard", section(
            "leaderboard", "Leaderboard", _per_run(views, lambda v: leaderboard_body(v, top)),
            "Accuracy with its 95% Wilson interval on the minival images; candidates an exact McNemar test on the "
            "same images cannot separate from B0 are marked tied; an interval that reaches 1/classes is at chance.")),
        ("frontier", "Frontier", section(
            "frontier", "Pareto frontier", frontier_body(views),
            "The figure of nas pareto: every distinct candidate, the frontier as a step line, B0 (star) and the "
            "knee (diamond); bars are 95% intervals; hover shows the block strings.")),
    ]
    fidelity = [(v, fidelity_body(v)) for v in views]
    if any(body is not None for _, body in fidelity):
        sections.append(("fidelity", "Fidelity", section("fidelity", "Proxy fidelity", "".join(
            body if len(views) == 1 else subsection(v.label, body) for v, body in fidelity if body is not None),
            "Does the proxy rank candidates as a longer training does? tau near 1: yes; near 0, or an interval "
            "that includes 0: the proxy's order, and so B0, is close to noise.")))
    rungs = [(v, rungs_body(v)) for v in views]
    if any(body is not None for _, body in rungs):
        sections.append(("rungs", "Rungs", section("rungs", "Rungs (successive halving)", "".join(
            body if len(views) == 1 else subsection(v.label, body) for v, body in rungs if body is not None))))
    sections += [
        ("b0", "B0", section("b0", "B0 drawn", _per_run(views, b0_body),
                             "Stage by stage, with the multiply-adds and parameters the counter gives each part "
                             "at the full size; the bars are each part's share of the multiply-adds.")),
        ("failures", "Failures", section("failures", "Failures", _per_run(views, failures_body))),
    ]
    names = ", ".join(v.label for v in views)
    subtitle = (f"{', '.join(str(v.store.run_dir) for v in views)}; written "
                f"{datetime.now().strftime('%Y-%m-%d %H:%M:%S')}")
    return page(f"scalenas report: {names}", subtitle, sections)


def check_writable(out: Path) -> None:
    """Refuse an output file that cannot be written, before the runs are read."""
    folder = out.parent
    if out.is_dir():
        raise ConfigError(f"out {out}: is a folder; give a file name such as {out / REPORT_FILE}", field="out")
    if not folder.is_dir():
        raise ConfigError(f"out {out}: no folder {folder}", field="out")
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"out {out}: the folder {folder} is not writable", field="out")


def write_report(run_dirs: Sequence[str | Path], out: str | Path | None = None, storage: str | None = None,
                 top: int = DEFAULT_TOP) -> Path:
    """Write the report of ``run_dirs`` to ``out`` (default ``RUN/report.html`` of the first run) and return
    its path. Nothing else in the run folders is touched."""
    if not run_dirs:
        raise ConfigError("report: give at least one run folder", field="runs")
    if storage is not None and len(run_dirs) != 1:
        raise ConfigError("storage applies to a single run", field="storage")
    if top < 1:
        raise ConfigError(f"top must be at least 1, got {top}", field="top")
    path = Path(out) if out is not None else Path(run_dirs[0]) / REPORT_FILE
    if out is not None:
        check_writable(path)
    with ExitStack() as opened:  # the runs' stores closed once the page is made, however that ends
        views = read_runs(list(run_dirs), run_labels(run_dirs), storage)
        for view in views:
            opened.callback(view.store.close)
        text = render(views, top)
    try:
        atomic_write_text(path, text)
    except OSError as exc:
        raise ConfigError(f"out {path}: cannot write ({exc.strerror or exc})", field="out") from None
    return path


__all__ = ["DEFAULT_TOP", "REPORT_FILE", "RunView", "render", "write_report"]
