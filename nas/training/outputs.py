"""The output folder of ``nas train`` and the rules that protect what it holds.

A folder that already holds a training (``model.pt`` or ``last.pt``) is never overwritten: a new
start there is refused, ``resume`` continues it. Nothing is created before every check has passed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.errors import StorageError
from nas.training.config import TrainConfig
from nas.training.resume import load_train_state

MODEL_FILE, STATE_FILE, HISTORY_FILE, CURVES_FILE = "model.pt", "last.pt", "history.csv", "curves.png"


@dataclass
class RunFolder:
    """The output folder of one training and the rules that protect what it holds."""

    path: Path

    def __post_init__(self) -> None:
        self.path = Path(self.path).expanduser()

    def file(self, name: str) -> Path:
        return self.path / name

    def refuse_a_file(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise StorageError(f"{self.path}: exists and is not a folder", field="out")

    def check(self, resume: bool) -> dict[str, Any] | None:
        """The stored state when resuming; otherwise make sure nothing would be overwritten."""
        self.refuse_a_file()
        state = self.file(STATE_FILE)
        if resume:
            if not state.is_file():
                raise StorageError(f"{state}: nothing to resume (no such file)", field="resume")
            return load_train_state(state)
        held = [name for name in (MODEL_FILE, STATE_FILE) if self.file(name).exists()]
        if held:
            raise StorageError(f"{self.path} already holds a training ({', '.join(held)}); resume it or choose "
                               "another output folder", field="out")
        return None

    def create(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"{self.path}: cannot create the output folder ({exc.strerror or exc})",
                               field="out") from None


def stored_config(out: str | Path) -> TrainConfig | None:
    """The configuration a ``last.pt`` in ``out`` was written with (None when there is none)."""
    path = RunFolder(Path(out)).file(STATE_FILE)
    if not path.is_file():
        return None
    return TrainConfig.from_flat(load_train_state(path)["config"]["flat"])


__all__ = ["CURVES_FILE", "HISTORY_FILE", "MODEL_FILE", "RunFolder", "STATE_FILE", "stored_config"]
