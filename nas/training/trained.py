"""A finished ``nas train`` output read back: one model, trained under one or more seeds.

``nas train --out DIR`` writes one training into ``DIR`` (``DIR/model.pt``); ``nas train --seeds N
--out DIR`` writes N trainings into ``DIR/seed-0`` ... ``DIR/seed-<N-1>``. :func:`read_trained` reads
either layout into a :class:`TrainedModel`, from the ``model.pt`` files only (the source of truth:
``summary.json`` is derived from them), so ``nas compare`` and the seeds' summary see the same numbers.

What a seed reports is the *final* evaluation of each weight set (``raw``, ``ema``): after the
FixRes fine-tuning when the training had one (``finetune_at``), else at the training resolution.

The **recipe** of a training is everything that decides how it was trained except the seed: the
dataset and its classes, the training resolution and every setting of its configuration but
:data:`NOT_RECIPE` (where the data lives, evaluation-only and speed-only settings). A training
with a ``resolution_scale`` (each network at its own resolution times that factor, as a scaled
family is compared) has the factor in its recipe instead of the resolution. Seeds of one
model must share architecture and recipe; two models are comparable when their recipes agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from nas.checkpoint import load_model_checkpoint
from nas.errors import StorageError
from nas.metrics import unpack_correct

SEED_FOLDER = "seed-{}"
SEED_FOLDER_RE = re.compile(r"^seed-(\d+)$")
SUMMARY_FILE = "summary.json"
# Settings that do not change what is trained: where the data is read from, the seed (what varies
# between seeds), what is evaluated besides (test split, FixRes sizes) and how fast it runs.
NOT_RECIPE = ("seed", "data_dir", "test", "test_resolutions", "compile", "eval_batch_size")
WEIGHTS = ("raw", "ema")


def seed_folder(out: str | Path, index: int) -> Path:
    """``out/seed-<index>``: where the ``index``-th seed of ``nas train --seeds`` trains."""
    return Path(out) / SEED_FOLDER.format(index)


def seed_folders(out: str | Path) -> list[Path]:
    """The ``seed-K`` folders in ``out``, by K."""
    out = Path(out)
    if not out.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in out.iterdir() if p.is_dir() and (m := SEED_FOLDER_RE.match(p.name))]
    return [p for _, p in sorted(found)]


@dataclass(frozen=True)
class TrainedSeed:
    """One finished training (one ``model.pt``): its seed, cost, recipe and final evaluations."""

    folder: Path
    seed: int
    name: str
    key: str
    recipe: Mapping[str, Any]
    macs: int
    params: int
    latency_ms: float | None
    evaluations: Mapping[str, Mapping[str, Any]]  # weights -> {minival_accuracy, test_accuracy, ...}

    def accuracy(self, weights: str, split: str) -> float | None:
        value = self.evaluations.get(weights, {}).get(f"{split}_accuracy")
        return None if value is None else float(value)

    def correct(self, weights: str, split: str) -> np.ndarray | None:
        """Which images of ``split`` the weights got right (None when the file does not hold it)."""
        evaluation = self.evaluations.get(weights, {})
        text, size = evaluation.get(f"{split}_correct"), evaluation.get(f"{split}_images")
        return None if not text or not size else unpack_correct(text, int(size))


@dataclass(frozen=True)
class TrainedModel:
    """One architecture trained under one recipe with one or more seeds (in seed order)."""

    folder: Path
    seeds: tuple[TrainedSeed, ...]

    @property
    def first(self) -> TrainedSeed:
        return self.seeds[0]

    def by_seed(self) -> dict[int, TrainedSeed]:
        return {s.seed: s for s in self.seeds}

    def accuracies(self, weights: str, split: str) -> list[float] | None:
        """Every seed's accuracy, or None when a seed lacks it (trained without the test split)."""
        values = [s.accuracy(weights, split) for s in self.seeds]
        return None if any(v is None for v in values) else [float(v) for v in values]


def recipe_of(config: Mapping[str, Any]) -> dict[str, Any]:
    """The recipe in a ``model.pt``'s configuration (see the module's docstring), dataset first."""
    flat = dict(config.get("flat") or {})
    recipe = {"dataset": config.get("dataset", flat.get("dataset")), "classes": list(config.get("classes") or [])}
    if flat.get("resolution_scale") is None:  # else each model trains at its own size times the shared factor
        recipe["train_resolution"] = config.get("train_resolution")
    recipe.update((k, v) for k, v in flat.items() if k not in NOT_RECIPE and k not in recipe)
    return recipe


def first_recipe_difference(a: Mapping[str, Any], b: Mapping[str, Any]) -> tuple[str, Any, Any] | None:
    """(setting, value in a, value in b) of the first recipe setting that differs, or None."""
    for name in list(a) + [k for k in b if k not in a]:
        if a.get(name) != b.get(name):
            return name, a.get(name), b.get(name)
    return None


def read_seed(folder: Path) -> TrainedSeed:
    """The finished training in ``folder`` (StorageError when its ``model.pt`` is missing or unusable)."""
    path = folder / "model.pt"
    if not path.is_file():
        raise StorageError(f"{folder}: no finished training (no model.pt; an interrupted one continues with "
                           "nas train ... --resume)")
    checkpoint = load_model_checkpoint(path)
    config, metrics = checkpoint.config, dict(checkpoint.metrics)
    if not isinstance(config.get("flat"), Mapping):
        raise StorageError(f"{path}: not written by nas train (its configuration has no settings)")
    finetune = metrics.get("finetune")
    evaluations = finetune["after"] if isinstance(finetune, Mapping) else {w: metrics[w] for w in WEIGHTS
                                                                           if isinstance(metrics.get(w), Mapping)}
    spec = checkpoint.spec
    return TrainedSeed(folder=folder, seed=int(config["flat"].get("seed", 0)), name=spec.name or spec.key(),
                       key=spec.key(), recipe=recipe_of(config), macs=int(metrics.get("macs") or 0),
                       params=int(metrics.get("params") or 0), latency_ms=metrics.get("latency_ms"),
                       evaluations=evaluations)


def read_trained(folder: str | Path, count: int | None = None) -> TrainedModel:
    """The model trained in ``folder``: its ``model.pt``, or every ``seed-K/model.pt`` (the first
    ``count`` when given). StorageError when there is no finished training, a seed is unfinished, or
    the seeds disagree on the architecture or the recipe."""
    folder = Path(folder)
    if not folder.is_dir():
        raise StorageError(f"{folder}: no such folder")
    if (folder / "model.pt").is_file():
        seeds = [read_seed(folder)]
    else:
        folders = seed_folders(folder) if count is None else [seed_folder(folder, k) for k in range(count)]
        if not folders:
            raise StorageError(f"{folder}: no finished training (no model.pt, no seed-K folders)")
        seeds = [read_seed(f) for f in folders]
    first, seen = seeds[0], {}
    for seed in seeds:
        if seed.seed in seen:
            raise StorageError(f"{seed.folder}: trained with seed {seed.seed}, as {seen[seed.seed]} is: a seed "
                               "counted twice")
        seen[seed.seed] = seed.folder
    for other in seeds[1:]:
        if other.key != first.key:
            raise StorageError(f"{other.folder}: another architecture than {first.folder} ({other.name})")
        difference = first_recipe_difference(first.recipe, other.recipe)
        if difference is not None:
            name, was, now = difference
            raise StorageError(f"{other.folder}: trained with {name} {now!r}, {first.folder} with {was!r}")
    return TrainedModel(folder=folder, seeds=tuple(sorted(seeds, key=lambda s: s.seed)))


__all__ = ["NOT_RECIPE", "SUMMARY_FILE", "TrainedModel", "TrainedSeed", "first_recipe_difference", "read_seed",
           "read_trained", "recipe_of", "seed_folder", "seed_folders"]
