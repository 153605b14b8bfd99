"""What one trained candidate reports: plain data shared by the trainer, runners, store and rewards."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

STATUSES = ("ok", "diverged", "failed", "pruned")


@dataclass(frozen=True)
class Metrics:
    """Measurements of one candidate after brief (proxy) training.

    ``accuracy`` is minival top-1 in [0, 1]. ``macs`` counts the spec at its own resolution and
    ``proxy_macs`` at the training resolution. Timings are medians over several steps after warm-up.
    A candidate that did not finish has ``status`` other than ``ok`` and says why in ``error``.
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

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        object.__setattr__(self, "history", tuple(self.history))

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["history"] = list(self.history)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Metrics":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def failure(cls, status: str, error: str, **known: Any) -> "Metrics":
        return cls(status=status, error=error, **known)
