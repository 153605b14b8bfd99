"""Learning curves on disk: ``history.csv`` (one row per epoch) and ``curves.png``.

Columns, in order (those of a feature that is off are left out: ``ema_*`` without a weight
average, ``*test*`` without ``test``): ``epoch, step, train_loss, minival_accuracy, minival_loss,
ema_minival_accuracy, ema_minival_loss, test_accuracy, test_loss, ema_test_accuracy, ema_test_loss,
lr, image_size, magnitude, mixup_alpha, cutmix_alpha, epoch_time_s``. ``lr`` is the learning rate of
the epoch's last step; ``image_size``, ``magnitude`` and the alphas are those of that step (they
change between stages of progressive learning); ``epoch_time_s`` is the training time of the epoch
without its evaluation.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Sequence

from nas.fileio import atomic_write_bytes, atomic_write_text
from nas.training.loop import EpochSummary

COLUMNS = ("epoch", "step", "train_loss", "minival_accuracy", "minival_loss", "ema_minival_accuracy",
           "ema_minival_loss", "test_accuracy", "test_loss", "ema_test_accuracy", "ema_test_loss", "lr",
           "image_size", "magnitude", "mixup_alpha", "cutmix_alpha", "epoch_time_s")


def history_row(summary: EpochSummary) -> dict[str, Any]:
    """One row from the loop's summary of an epoch and the values its evaluation hooks added."""
    aug = summary.settings.augment
    row: dict[str, Any] = {"epoch": summary.epoch, "step": summary.step, "train_loss": summary.train_loss,
                           **summary.values, "lr": summary.lr, "image_size": summary.settings.resolution,
                           "magnitude": aug.magnitude, "mixup_alpha": aug.mixup_alpha,
                           "cutmix_alpha": aug.cutmix_alpha, "epoch_time_s": summary.seconds}
    return {k: row[k] for k in COLUMNS if k in row}


def write_history(path: str | Path, rows: Sequence[dict[str, Any]]) -> None:
    """Write every row (atomically: a reader sees the previous file or the new one)."""
    columns = [c for c in COLUMNS if any(c in row for row in rows)]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in columns})
    atomic_write_text(path, buffer.getvalue())


def _cell(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else ("" if value is None else value)


def plot_curves(path: str | Path, rows: Sequence[dict[str, Any]], title: str = "") -> None:
    """Loss, accuracy and schedule against the epoch, three panels, written atomically as a PNG."""
    import matplotlib  # plotting: imported only to draw

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # plotting: imported only to draw

    epochs = [row["epoch"] for row in rows]

    def series(key: str) -> list[float] | None:
        values = [row.get(key) for row in rows]
        return values if any(v is not None for v in values) else None

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    loss_ax, acc_ax, sched_ax = axes
    for key, label in (("train_loss", "train (with augmentation)"), ("minival_loss", "minival"),
                       ("ema_minival_loss", "minival, EMA")):
        if series(key):
            loss_ax.plot(epochs, series(key), marker=".", label=label)
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    for key, label in (("minival_accuracy", "minival"), ("ema_minival_accuracy", "minival, EMA"),
                       ("test_accuracy", "test"), ("ema_test_accuracy", "test, EMA")):
        if series(key):
            acc_ax.plot(epochs, series(key), marker=".", label=label)
    acc_ax.set(xlabel="epoch", ylabel="top-1 accuracy", title="accuracy")
    sched_ax.plot(epochs, series("lr"), color="tab:blue", marker=".", label="learning rate")
    sched_ax.set(xlabel="epoch", ylabel="learning rate (last step)", title="schedule")
    size_ax = sched_ax.twinx()
    size_ax.step(epochs, series("image_size"), where="mid", color="tab:orange", label="image size (px)")
    for key, label, color in (("magnitude", "RandAugment magnitude", "tab:green"),
                              ("mixup_alpha", "mixup alpha x 10", "tab:red"),
                              ("cutmix_alpha", "cutmix alpha x 10", "tab:purple")):
        values = series(key)
        if values and any(values):
            scale = 10.0 if "alpha" in key else 1.0
            size_ax.step(epochs, [v * scale for v in values], where="mid", color=color, label=label)
    size_ax.set_ylabel("image size / regularization")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    handles = sched_ax.get_legend_handles_labels()[0] + size_ax.get_legend_handles_labels()[0]
    sched_ax.legend(handles, [h.get_label() for h in handles], fontsize=8, loc="center right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    image = io.BytesIO()
    fig.savefig(image, format="png", dpi=100)
    atomic_write_bytes(path, image.getvalue())
    plt.close(fig)


__all__ = ["COLUMNS", "history_row", "plot_curves", "write_history"]
