"""The frontier: ``nas pareto``'s interactive figure (:func:`nas.pareto_plots.figure_html`), all runs on one
plot over the first run's objectives, with the accuracy's error bars, B0, the knee and the block
strings on hover. A run with no completed candidate is left out and said so."""

from __future__ import annotations

from typing import Sequence

from nas.errors import NasError
from nas.jobs import run_axes
from nas.pareto import DEFAULT_OBJECTIVES, Axes, analyze
from nas.pareto_plots import figure_html
from nas.report.html import note, plotly_figure
from nas.report.run import RunView


def frontier_axes(view: RunView) -> Axes:
    """The run's objective's raw values (a plot needs two: accuracy and MACs for a single one)."""
    try:
        axes = Axes.parse(run_axes(view.config))
    except NasError:
        axes = Axes.parse(DEFAULT_OBJECTIVES)
    return axes if len(axes) >= 2 else Axes.parse(DEFAULT_OBJECTIVES)


def frontier_body(views: Sequence[RunView]) -> str:
    axes = frontier_axes(views[0])
    results, notes = [], []
    for view in views:
        try:
            results.append(analyze(view.store.dataframe(), axes, label=view.label))
        except NasError as exc:  # no completed candidate yet, or an objective the run has no column for
            text = str(exc) if str(exc).startswith(f"{view.label}: ") else f"{view.label}: {exc}"
            notes.append(note(f"{text}; nothing to draw"))
    if not results:
        return "".join(notes)
    for result in results:
        if result.excluded_text():
            notes.append(note(f"{result.label}: {result.excluded_text()}"))
    return plotly_figure(figure_html(results), "plot-frontier") + "".join(notes)


__all__ = ["frontier_axes", "frontier_body"]
