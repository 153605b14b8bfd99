"""The figure of ``nas compare``: accuracy against multiply-adds, one point per model, with the 95%
interval over its seeds as the error bar."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from nas.comparison import ModelSummary


def save_png(models: Sequence[ModelSummary], path: str | Path, weights: str = "raw", split: str = "test") -> Path:
    """Write the plot; the figure is built without pyplot, so no global state is touched. A model with
    one seed has no interval and no bar."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # plotting: imported only to draw
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for i, model in enumerate(models):
        mean = model.accuracy[weights][split]
        error = None if mean.low is None else [[100 * (mean.mean - mean.low)], [100 * (mean.high - mean.mean)]]
        colour = f"C{i % 10}"
        ax.errorbar([model.macs / 1e6], [100 * mean.mean], yerr=error, fmt="o", color=colour, capsize=4,
                    label=f"{model.label}: {len(model.seeds)} seed{'s' if len(model.seeds) > 1 else ''}")
        ax.annotate(model.label, (model.macs / 1e6, 100 * mean.mean), textcoords="offset points", xytext=(7, 4),
                    fontsize=8, color=colour)
    macs = [m.macs for m in models if m.macs > 0]
    if macs and max(macs) > 10 * min(macs):
        ax.set_xscale("log")
    ax.set_xlabel("FLOPs (multiply-adds), millions")
    ax.set_ylabel(f"{split} accuracy, % ({weights} weights)")
    ax.set_title(f"{split} accuracy against cost; bars: 95% interval over the seeds")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, format="png")
    return path


__all__ = ["save_png"]
