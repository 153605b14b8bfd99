"""The driver's view of seeds training on a runner's workers: one line per epoch a seed finishes.

A seed on a Ray worker prints nothing the driver sees (a worker's output goes to Ray's logs), but it
rewrites ``history.csv`` in its folder after every epoch (atomically), and the driver shares that
folder. :class:`EpochWatcher` reads those files every few seconds in a thread of its own and prints
each new epoch, so an hour-long training is not an hour of silence. Epochs already in a file when the
watcher starts (a resumed seed's) are not printed again.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Mapping

from rich.console import Console

from nas.polling import Poller
from nas.training.outputs import HISTORY_FILE


class EpochWatcher(Poller):
    """Print ``seed S (seed-K): epoch E/N, minival accuracy A[, test T]`` for each epoch a watched
    folder's history gains, while the ``with`` block runs (and once more at its end); ``folders`` maps
    each seed to its folder, ``epochs`` is N (None: a budget in steps)."""

    def __init__(self, folders: Mapping[int, Path], epochs: float | None, console: Console,
                 every_s: float = 5.0) -> None:
        self._folders = {seed: Path(folder) for seed, folder in folders.items()}
        self._epochs = epochs
        self._console = console
        self._seen = {seed: len(_rows(folder)) for seed, folder in self._folders.items()}
        super().__init__(every_s, name="seed-epochs")

    def tick(self) -> None:
        """Print the epochs written since the last look."""
        for seed, folder in self._folders.items():
            rows = _rows(folder)
            for row in rows[self._seen[seed]:]:
                self._console.print(f"seed {seed} ({folder.name}): {self._describe(row)}", soft_wrap=True)
            self._seen[seed] = max(self._seen[seed], len(rows))

    def _describe(self, row: Mapping[str, str]) -> str:
        of = f"/{self._epochs:g}" if self._epochs else ""
        try:
            test = f", test {float(row['test_accuracy']):.4f}" if row.get("test_accuracy") else ""
            return f"epoch {row['epoch']}{of}, minival accuracy {float(row['minival_accuracy']):.4f}{test}"
        except (KeyError, TypeError, ValueError):  # a file of another version: say the epoch ended, no more
            return f"epoch {row.get('epoch', '?')}{of} done"


def _rows(folder: Path) -> list[dict[str, str]]:
    """The rows of ``folder/history.csv`` (none while it does not exist or cannot be read)."""
    try:
        text = (folder / HISTORY_FILE).read_text()
    except OSError:
        return []
    return list(csv.DictReader(io.StringIO(text)))


__all__ = ["EpochWatcher"]
