"""Pictures of Pareto analyses: a static PNG (matplotlib) and an interactive HTML page (plotly).

Both draw one or several runs on shared axes, one colour per run: every analysed candidate, the
run's frontier as a step line (the edge of the region its candidates dominate), B0 (the best
reward) as a star and the knee as a diamond. The cost axis is logarithmic when every value is
positive, since searched networks span more than a decade of multiply-adds.

With more than two objectives the plot shows two of them and its step line is the frontier of that
pair; the table printed by ``nas pareto`` stays the reference for the full frontier.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from nas.errors import ConfigError
from nas.fileio import atomic_write_text
from nas.pareto import Axis, ParetoResult, non_dominated_mask

AXIS_LABELS = {
    "accuracy": "minival top-1 accuracy",
    "reward": "reward",
    "macs": "FLOPs (multiply-adds)",
    "proxy_macs": "proxy FLOPs (multiply-adds)",
    "params": "parameters",
    "latency_ms": "latency (ms, batch 1)",
    "step_time_ms": "train step time (ms)",
}
HOVER_COLUMNS = ("accuracy", "macs", "params", "latency_ms", "step_time_ms", "reward")


def plot_axes(results: Sequence[ParetoResult]) -> tuple[Axis, Axis]:
    """(x, y): the first minimized objective across, the first maximized one up.

    When all objectives share a direction the second goes across and the first up.
    """
    if not results:
        raise ConfigError("nothing to plot: no run given")
    items = results[0].objectives.items
    if len(items) < 2:
        raise ConfigError("a Pareto plot needs at least two objectives")
    x = next((o for o in items if o.direction == "min"), None)
    y = next((o for o in items if o.direction == "max"), None)
    if x is None or y is None:
        x, y = items[1], items[0]
    return x, y


def axis_label(objective: Axis) -> str:
    better = "higher" if objective.direction == "max" else "lower"
    return f"{AXIS_LABELS.get(objective.name, objective.name)} ({better} is better)"


def staircase(result: ParetoResult, x: Axis, y: Axis) -> tuple[np.ndarray, np.ndarray, str]:
    """Frontier of the plotted pair sorted by x, and the step mode that traces its dominated edge.

    With x minimized the level of a point holds to its right until the next point ("post"); with x
    maximized it holds to its left ("pre").
    """
    values = result.candidates[[x.name, y.name]].to_numpy(dtype=float)
    front = values[non_dominated_mask(values, [x.direction, y.direction])]
    front = np.unique(front, axis=0)  # sorted by x, duplicates drawn once
    return front[:, 0], front[:, 1], "post" if x.direction == "min" else "pre"


def _use_log(results: Sequence[ParetoResult], x: Axis, log_x: bool | None) -> bool:
    if log_x is not None:
        return log_x
    return all((r.candidates[x.name].astype(float) > 0).all() for r in results)


def _marked(result: ParetoResult) -> dict[str, int]:
    """{'B0': trial, 'knee': trial}, or {'B0, knee': trial} when one candidate is both."""
    b0, knee = result.best_reward(), result.knee()
    if b0 == knee:
        return {"B0, knee": knee}
    return {**({"B0": b0} if b0 is not None else {}), "knee": knee}


def accuracy_errors(frame, objective: Axis) -> tuple[np.ndarray, np.ndarray] | None:
    """(below, above) distances to the 95% Wilson interval when ``objective`` is the accuracy."""
    if objective.name != "accuracy" or not {"accuracy_low", "accuracy_high"} <= set(frame.columns):
        return None
    value = frame["accuracy"].to_numpy(dtype=float)
    low = frame["accuracy_low"].to_numpy(dtype=float)
    high = frame["accuracy_high"].to_numpy(dtype=float)
    if np.isnan(low).all():
        return None
    return np.nan_to_num(value - low), np.nan_to_num(high - value)


def _labels(results: Sequence[ParetoResult]) -> list[str]:
    return [r.label or f"run {i + 1}" for i, r in enumerate(results)]


def save_png(results: Sequence[ParetoResult], path: str | Path, title: str | None = None,
             log_x: bool | None = None) -> Path:
    """Write the static plot; the figure is built without pyplot, so no global state is touched."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # plotting: imported only to draw
    from matplotlib.figure import Figure

    x, y = plot_axes(results)
    fig = Figure(figsize=(8.5, 5.5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    palette = [f"C{i % 10}" for i in range(len(results))]
    for result, label, colour in zip(results, _labels(results), palette):
        frame = result.candidates
        on_front = (frame["front"] == 0).to_numpy()
        xs, ys = frame[x.name].to_numpy(dtype=float), frame[y.name].to_numpy(dtype=float)
        xerr, yerr = accuracy_errors(frame, x), accuracy_errors(frame, y)
        if xerr is not None or yerr is not None:
            ax.errorbar(xs, ys, xerr=None if xerr is None else np.vstack(xerr),
                        yerr=None if yerr is None else np.vstack(yerr), fmt="none", ecolor=colour, alpha=0.3,
                        elinewidth=0.8, capsize=1.5)
        ax.scatter(xs[~on_front], ys[~on_front], s=14, color=colour, alpha=0.35, linewidths=0)
        ax.scatter(xs[on_front], ys[on_front], s=30, color=colour, edgecolors="black", linewidths=0.5,
                   label=f"{label}: {len(frame)} candidates, {int(on_front.sum())} on the frontier")
        fx, fy, where = staircase(result, x, y)
        ax.step(fx, fy, where=where, color=colour, linewidth=1.6)
        for name, trial in _marked(result).items():
            row = frame[frame["trial"] == trial].iloc[0]
            px, py = float(row[x.name]), float(row[y.name])
            if name.startswith("B0"):
                ax.scatter([px], [py], marker="*", s=260, color=colour, edgecolors="black", linewidths=1.0,
                           zorder=5)
            if name.endswith("knee"):
                ax.scatter([px], [py], marker="D", s=110 if name == "knee" else 240, facecolors="none",
                           edgecolors="black", linewidths=1.0, zorder=6)
            prefix = f"{label} " if len(results) > 1 else ""
            ax.annotate(f"{prefix}{name} (trial {trial})", (px, py), textcoords="offset points", xytext=(7, -12),
                        fontsize=8, color=colour if len(results) > 1 else "black")
    if _use_log(results, x, log_x):
        ax.set_xscale("log")
    ax.set_xlabel(axis_label(x))
    ax.set_ylabel(axis_label(y))
    ax.set_title(title or f"Pareto frontier: {y.name} against {x.name}")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(loc="best", fontsize=8, title="star: B0 (best reward), diamond: knee; bars: 95% interval",
              title_fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, format="png")
    return path


def _hover(row, label: str, objectives: Sequence[str]) -> str:
    lines = [f"<b>{label}: trial {int(row['trial'])}</b>", f"front {int(row['front'])}"]
    for name in dict.fromkeys(list(HOVER_COLUMNS) + list(objectives)):
        if name in row.index:
            value = row[name]
            if value is None or (isinstance(value, float) and value != value):
                continue
            lines.append(f"{name}: {float(value):.6g}")
    arch = row.get("arch")
    if isinstance(arch, str) and arch:
        lines.append("")
        lines.extend(arch.split())
    return "<br>".join(lines)


def figure_html(results: Sequence[ParetoResult], title: str | None = None, log_x: bool | None = None):
    """The plotly figure (hover: block strings and metrics of each candidate)."""
    import plotly.graph_objects as go  # plotting: imported only to draw

    x, y = plot_axes(results)
    fig = go.Figure()
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
               "#bcbd22", "#17becf"]
    names = results[0].objectives.names
    for i, (result, label) in enumerate(zip(results, _labels(results))):
        colour = palette[i % len(palette)]
        frame = result.candidates
        on_front = frame["front"] == 0
        for part, subset in (("frontier", frame[on_front]), ("dominated", frame[~on_front])):
            xerr, yerr = accuracy_errors(subset, x), accuracy_errors(subset, y)
            fig.add_trace(go.Scatter(
                x=subset[x.name].astype(float), y=subset[y.name].astype(float), mode="markers",
                error_x=None if xerr is None else dict(type="data", array=xerr[1], arrayminus=xerr[0],
                                                       thickness=0.8, width=2),
                error_y=None if yerr is None else dict(type="data", array=yerr[1], arrayminus=yerr[0],
                                                       thickness=0.8, width=2),
                name=f"{label}: {part} ({len(subset)})", legendgroup=label,
                marker=dict(color=colour, size=10 if part == "frontier" else 6,
                            opacity=1.0 if part == "frontier" else 0.4,
                            line=dict(width=1 if part == "frontier" else 0, color="black")),
                text=[_hover(row, label, names) for _, row in subset.iterrows()], hoverinfo="text"))
        fx, fy, where = staircase(result, x, y)
        fig.add_trace(go.Scatter(x=fx, y=fy, mode="lines", line=dict(color=colour, shape="hv" if where == "post"
                                                                     else "vh"),
                                 name=f"{label}: frontier", legendgroup=label, hoverinfo="skip"))
        for mark, trial in _marked(result).items():
            row = frame[frame["trial"] == trial].iloc[0]
            fig.add_trace(go.Scatter(
                x=[float(row[x.name])], y=[float(row[y.name])], mode="markers+text", text=[mark],
                textposition="top right", name=f"{label}: {mark} (trial {trial})", legendgroup=label,
                marker=dict(symbol="star" if mark.startswith("B0") else "diamond-open",
                            size=18 if mark.startswith("B0") else 14,
                            color=colour, line=dict(width=1, color="black")),
                hovertext=[_hover(row, label, names)], hoverinfo="text"))
    fig.update_layout(title=title or f"Pareto frontier: {y.name} against {x.name}",
                      xaxis_title=axis_label(x), yaxis_title=axis_label(y), template="plotly_white",
                      hoverlabel=dict(font_family="monospace"))
    if _use_log(results, x, log_x):
        fig.update_xaxes(type="log")
    return fig


def save_html(results: Sequence[ParetoResult], path: str | Path, title: str | None = None,
              log_x: bool | None = None, include_plotlyjs: bool | str = True) -> Path:
    """Write the interactive page; by default plotly.js is embedded so the file works offline."""
    fig = figure_html(results, title, log_x)
    path = Path(path)
    atomic_write_text(path, fig.to_html(include_plotlyjs=include_plotlyjs, full_html=True))
    return path


__all__ = ["plot_axes", "staircase", "save_png", "save_html", "figure_html", "axis_label"]
