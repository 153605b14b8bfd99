"""What one trained candidate reports: plain data shared by the trainer, runners, store and rewards."""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

import numpy as np

STATUSES = ("ok", "diverged", "failed", "pruned")

# What a trained candidate can be ranked by, each measured from the training already paid for
# (nas.training.scores). Losses are lower-is-better; score_quality() turns every score into a
# quality in (0, 1], higher is better, which is what a reward multiplies by its cost term.
SCORES = {
    "accuracy": "minival top-1 accuracy",
    "minival_loss": "minival cross-entropy (as a quality: exp(-loss), the geometric-mean probability of "
                    "the right class)",
    "train_loss": "mean training loss over the last half of the steps (as a quality: exp(-loss)); the "
                  "training-speed estimate",
    "bn_accuracy": "minival accuracy after re-estimating the BatchNorm statistics on training images "
                   "(the accuracy itself for networks without BatchNorm)",
}
LOSS_SCORES = ("minival_loss", "train_loss")
# The score a reward uses unless told: the one that ranked 50 sampled candidates best against a 5-epoch,
# two-seed reference at 0.5 and 1 epoch (Kendall tau 0.41 and 0.50, against 0.37 and 0.47 for plain
# accuracy; BENCHMARKS.md, "Proxy fidelity"). It costs nothing more: every trial measures every score.
DEFAULT_SCORE = "bn_accuracy"
# Runs stored before scores existed ranked by plain accuracy; they resume as they ran.
STORED_WITHOUT_SCORE = "accuracy"


def score_quality(name: str, value: float) -> float:
    """A score as a quality in (0, 1], higher is better: accuracies as they are, losses as exp(-loss)."""
    return math.exp(-value) if name in LOSS_SCORES else value


@dataclass(frozen=True)
class Metrics:
    """Measurements of one candidate after brief (proxy) training.

    ``accuracy`` is minival top-1 in [0, 1]. ``macs`` counts the spec at its own resolution and
    ``proxy_macs`` at the training resolution. Timings are medians over several steps after warm-up.
    A candidate that did not finish has ``status`` other than ``ok`` and says why in ``error``.

    ``minival_size`` is the number of images ``accuracy`` was measured on and ``correct`` which of
    them the candidate got right (:func:`pack_correct`: a bitmap in base64, 750 bytes for 6,000
    images), so two candidates can be compared image by image on the same minival split.
    """

    status: str = "ok"
    accuracy: float | None = None
    loss: float | None = None
    params: int = 0
    macs: int = 0
    proxy_macs: int = 0
    step_time_ms: float | None = None
    latency_ms: float | None = None
    latency_batch_ms: float | None = None
    wall_time_s: float = 0.0
    train_time_s: float = 0.0
    epochs: float = 0
    peak_memory_mb: float | None = None
    history: tuple[float, ...] = ()
    error: str = ""
    minival_size: int = 0
    correct: str = ""
    scores: Mapping[str, float] = field(default_factory=dict, hash=False)  # SCORES name -> raw value
    # The training state at the end (bytes), when the job asked to keep it (a rung a promotion may
    # continue); it travels back from the worker and is never stored with the trial.
    checkpoint: bytes | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        object.__setattr__(self, "history", tuple(self.history))
        object.__setattr__(self, "scores", {str(k): float(v) for k, v in dict(self.scores or {}).items()})

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "checkpoint"}
        data["history"] = list(self.history)
        data["scores"] = dict(self.scores)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Metrics":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def correct_mask(self) -> "np.ndarray | None":
        """The per-image correctness as a bool array of ``minival_size``, or None when not stored."""
        if not self.correct or not self.minival_size:
            return None
        return unpack_correct(self.correct, self.minival_size)


def pack_correct(mask: Any) -> str:
    """A bool vector (numpy or torch) as a compact base64 bitmap (numpy's big-endian bit order)."""
    bits = np.packbits(np.asarray(mask, dtype=bool).reshape(-1))
    return base64.b64encode(bits.tobytes()).decode("ascii")


def unpack_correct(text: str, size: int) -> "np.ndarray":
    """The inverse of :func:`pack_correct`; ``size`` drops the padding bits of the last byte."""
    bits = np.unpackbits(np.frombuffer(base64.b64decode(text), dtype=np.uint8))
    if bits.shape[0] < size:
        raise ValueError(f"correctness bitmap holds {bits.shape[0]} bits, expected {size}")
    return bits[:size].astype(bool)


__all__ = ["DEFAULT_SCORE", "LOSS_SCORES", "STORED_WITHOUT_SCORE", "Metrics", "SCORES", "STATUSES", "pack_correct", "score_quality", "unpack_correct"]
