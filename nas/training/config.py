"""What ``nas train`` does beyond the budget: :class:`TrainConfig`, validated plain data.

The budget (:class:`~nas.training.budget.TrainBudget`) says how the steps run; the config adds the
data, the recipes around the loop (progressive learning, FixRes, transfer) and the test split.
It round-trips through a flat dict whose keys are the library's field names (``epochs``,
``progressive``, ``test_resolutions``...), the names the CLI's flags map to, and it is stored in
``last.pt`` and ``model.pt`` so a resume repeats it and a trained model says how it was trained.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any, Mapping

from nas.compound import proxy_resolution
from nas.errors import ConfigError
from nas.training.budget import TrainBudget
from nas.training.progressive import Progressive
from nas.training.transfer import FREEZE

DEFAULT_EMA_DECAY = 0.999
PROGRESSIVE_FIELDS = {"progressive": "stages", "ibase": "ibase", "min_magnitude": "min_magnitude"}
# Fields a resume may change: where the data lives is not part of what is trained.
RESUME_MAY_CHANGE = ("data_dir",)


def _default_budget() -> TrainBudget:
    return TrainBudget(ema_decay=DEFAULT_EMA_DECAY)


@dataclass(frozen=True)
class TrainConfig:
    """``budget`` (default: the search's budget with an EMA of decay :data:`DEFAULT_EMA_DECAY`),
    ``dataset`` / ``data_dir``, ``progressive`` (None: fixed size and regularization), ``test``
    (also evaluate the test split after every epoch), ``test_resolutions`` (FixRes: evaluate the
    trained model at these sizes), ``finetune_at`` / ``finetune_epochs`` (FixRes fine-tuning of the
    classifier and BatchNorm statistics at that size), ``init`` (a model.pt to start from),
    ``freeze`` (``none`` or ``backbone``) and ``resolution_scale``.

    ``resolution_scale`` trains the spec at its own resolution times this factor
    (:func:`nas.compound.proxy_resolution`) instead of at a fixed size. A scaled family (B0, B1...)
    differs in resolution as much as in width and depth; one fixed proxy size for all of them would
    erase that, while one factor (32/224: B0 at 32 px, B1 at 34) keeps it. The factor, not the pixel
    count, is then the recipe two trainings must share (:func:`nas.training.trained.recipe_of`)."""

    budget: TrainBudget = field(default_factory=_default_budget)
    dataset: str = "digits"
    data_dir: str | None = None
    progressive: Progressive | None = None
    test: bool = False
    test_resolutions: tuple[int, ...] = ()
    finetune_at: int | None = None
    finetune_epochs: float = 1.0
    init: str | None = None
    freeze: str = "none"
    resolution_scale: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "test_resolutions", tuple(self.test_resolutions))
        for r in self.test_resolutions:
            if not (isinstance(r, int) and not isinstance(r, bool) and 8 <= r <= 4096):
                raise ConfigError(f"test_resolutions must be integers between 8 and 4096 (pixels), got {r!r}",
                                  field="test_resolutions")
        if self.finetune_at is not None and not (isinstance(self.finetune_at, int) and 8 <= self.finetune_at <= 4096):
            raise ConfigError(f"finetune_at must be an integer between 8 and 4096 (pixels), got {self.finetune_at!r}",
                              field="finetune_at")
        epochs = self.finetune_epochs
        if not (isinstance(epochs, (int, float)) and not isinstance(epochs, bool) and math.isfinite(epochs)
                and epochs > 0):
            raise ConfigError(f"finetune_epochs must be a number > 0, got {epochs!r}", field="finetune_epochs")
        if self.freeze not in FREEZE:
            raise ConfigError(f"freeze: unknown value {self.freeze!r}; valid: {', '.join(FREEZE)}", field="freeze")
        if self.freeze == "backbone" and self.init is None:
            raise ConfigError("freeze backbone needs init (a trained model.pt): a random backbone is no feature "
                              "extractor", field="freeze")
        scale = self.resolution_scale
        if scale is not None and not (isinstance(scale, (int, float)) and not isinstance(scale, bool)
                                      and math.isfinite(scale) and 0 < scale <= 16):
            raise ConfigError(f"resolution_scale must be a number in (0, 16], got {scale!r}", field="resolution_scale")
        if not isinstance(self.budget, TrainBudget):
            raise ConfigError(f"budget must be a TrainBudget, got {type(self.budget).__name__}")

    def flat(self) -> dict[str, Any]:
        """Every setting under its field name (budget fields, progressive's as in :data:`PROGRESSIVE_FIELDS`)."""
        data = self.budget.to_dict()
        for name, attr in PROGRESSIVE_FIELDS.items():
            data[name] = getattr(self.progressive, attr) if self.progressive is not None else None
        for f in fields(self):
            if f.name not in ("budget", "progressive"):
                data[f.name] = getattr(self, f.name)
        data["test_resolutions"] = list(self.test_resolutions)
        return data

    @classmethod
    def from_flat(cls, data: Mapping[str, Any]) -> "TrainConfig":
        """The inverse of :meth:`flat`; missing keys take the defaults, unknown keys are an error."""
        budget_names = {f.name for f in fields(TrainBudget)}
        own = {f.name for f in fields(cls)} - {"budget", "progressive"}
        unknown = sorted(set(data) - budget_names - own - set(PROGRESSIVE_FIELDS))
        if unknown:
            raise ConfigError(f"train config: unknown field(s) {', '.join(unknown)}")
        budget = replace(_default_budget(), **{k: v for k, v in data.items() if k in budget_names})
        progressive = None
        if data.get("progressive") is not None:
            progressive = Progressive(**{attr: data[name] for name, attr in PROGRESSIVE_FIELDS.items()
                                         if data.get(name) is not None})
        else:
            for name in ("ibase", "min_magnitude"):
                if data.get(name) is not None:
                    raise ConfigError(f"{name} applies to progressive learning only (set progressive)", field=name)
        options = {k: v for k, v in data.items() if k in own}
        if "test_resolutions" in options:
            options["test_resolutions"] = tuple(options["test_resolutions"] or ())
        return cls(budget=budget, progressive=progressive, **options)

    def scaled(self, spec: Any) -> Any:
        """``spec`` (an :class:`~nas.spec.ArchSpec`) at the resolution it trains at: its own, or
        times ``resolution_scale``. ConfigError when that leaves 8..4096 px."""
        if self.resolution_scale is None:
            return spec
        resolution = proxy_resolution(spec.resolution, self.resolution_scale)
        if resolution > 4096:
            raise ConfigError(f"resolution_scale {self.resolution_scale:g} makes {spec.name or 'the spec'}'s "
                              f"{spec.resolution} px {resolution} px, above 4096", field="resolution_scale")
        return spec.with_(resolution=resolution)

    def first_difference(self, other: "TrainConfig") -> tuple[str, Any, Any] | None:
        """(field, this value, other value) of the first setting that differs, ignoring
        :data:`RESUME_MAY_CHANGE`."""
        mine, theirs = self.flat(), other.flat()
        for name, value in mine.items():
            if name not in RESUME_MAY_CHANGE and theirs.get(name) != value:
                return name, value, theirs.get(name)
        return None


__all__ = ["DEFAULT_EMA_DECAY", "PROGRESSIVE_FIELDS", "TrainConfig"]
