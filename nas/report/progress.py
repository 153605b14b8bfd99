"""Search progress: the reward of every trial and the best so far against the trial number.

One run: every rewarded trial as a point coloured by its stage (search, each rung, re-rank,
fidelity, grid), and the best reward so far among the candidates the controller proposed (the
search stage, or the grid), the curve a search that learns keeps raising. Several runs: each run's
best-so-far curve on one axis, its own trials faint behind it. Hovering a point shows the trial.
"""

from __future__ import annotations

from typing import Any, Sequence

from nas.report.run import RunView

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")


def best_so_far(records: Sequence[Any]) -> tuple[list[int], list[float]]:
    """(trial numbers, best reward up to each) over the rewarded records, in trial order."""
    xs, ys, best = [], [], None
    for r in sorted(records, key=lambda r: r.number):
        if r.reward is None or not r.metrics.ok:
            continue
        best = r.reward if best is None else max(best, r.reward)
        xs.append(r.number)
        ys.append(best)
    return xs, ys


def _hover(view: RunView, r: Any) -> str:
    accuracy = "-" if r.metrics.accuracy is None else f"{r.metrics.accuracy:.4f}"
    lines = [f"<b>{view.label}: trial {r.number}</b>", f"stage {r.stage}", f"reward {r.reward:.4f}",
             f"accuracy {accuracy}"]
    if r.reused_from is not None:
        lines.append(f"reused trial {r.reused_from}")
    return "<br>".join(lines + [""] + r.arch.split())


def progress_figure(views: Sequence[RunView]) -> Any:
    import plotly.graph_objects as go  # plotting: imported only to draw

    fig = go.Figure()
    single = len(views) == 1
    for i, view in enumerate(views):
        colour = PALETTE[i % len(PALETTE)]
        rewarded = [r for r in view.records if r.reward is not None and r.metrics.ok]
        stages = list(dict.fromkeys(r.stage for r in rewarded))
        for j, stage in enumerate(stages):
            subset = [r for r in rewarded if r.stage == stage]
            fig.add_trace(go.Scatter(
                x=[r.number for r in subset], y=[r.reward for r in subset], mode="markers",
                name=f"{stage} ({len(subset)})" if single else f"{view.label}: {stage} ({len(subset)})",
                legendgroup=view.label, hoverinfo="text", text=[_hover(view, r) for r in subset],
                marker=dict(size=8 if single else 5, opacity=0.85 if single else 0.3,
                            color=PALETTE[j % len(PALETTE)] if single else colour,
                            line=dict(width=0.5, color="black"))))
        xs, ys = best_so_far(view.candidates_of_main_stage())
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(shape="hv", width=2.5,
                                                                      color="black" if single else colour),
                                 name=f"best so far ({view.main_stage})" if single else f"{view.label}: best so far",
                                 legendgroup=view.label, hoverinfo="x+y"))
    fig.update_layout(title="Reward of every trial and the best so far", xaxis_title="trial number",
                      yaxis_title="reward", template="plotly_white", hoverlabel=dict(font_family="monospace"),
                      height=480)
    return fig


__all__ = ["best_so_far", "progress_figure"]
