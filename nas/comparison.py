"""Trained models side by side, with the uncertainty the seeds and the test images leave.

:func:`summarize` reduces one :class:`~nas.training.trained.TrainedModel` to what a table shows: the
mean accuracy over its seeds with the 95% Student-t interval (:func:`nas.stats.mean_interval`), the
multiply-adds, parameters and the latency measured at the end of training.

:func:`compare_models` first refuses models whose recipes differ (the first difference, named:
a comparison is only fair under one recipe), then takes every pair (A, B) of the models given:

* **seeds pair up** by their value: seed s of A and seed s of B saw the same minival split, batch
  order and augmentation draws, so their difference is free of that noise;
* the **paired t-test** over the common seeds (:func:`nas.stats.paired_difference`, scipy's
  ``ttest_rel``) with the 95% interval of the mean difference A - B;
* the **exact McNemar** test (:func:`nas.stats.mcnemar`) of each seed pair on the same test images.

The verdict, at 95%:

* two or more seeds in common: *better* when the interval of the mean difference lies above 0,
  *worse* when below, *not distinguishable* when it holds 0 (the architectures are compared:
  seed-to-seed variation counts);
* one seed in common: McNemar on that pair's test images (the two trained models are compared,
  not the architectures: say so);
* no seed in common: *not distinguishable* (nothing is paired; train both with the same ``--seed``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, Mapping, Sequence

from nas.errors import ConfigError
from nas.stats import MeanInterval, PairedDifference, mcnemar, mean_interval, paired_difference
from nas.training.trained import WEIGHTS, TrainedModel, first_recipe_difference

CONFIDENCE = 0.95
SPLITS = ("test", "minival")
BETTER, WORSE, TIED = "better", "worse", "not distinguishable"


@dataclass(frozen=True)
class ModelSummary:
    """One model's row: seeds, cost, and per weight set and split the mean accuracy with its interval."""

    label: str
    name: str
    key: str
    seeds: tuple[int, ...]
    macs: int
    params: int
    latency_ms: float | None  # mean over the seeds of the batch-1 latency measured after training
    accuracy: Mapping[str, Mapping[str, MeanInterval]] = field(default_factory=dict)  # weights -> split -> mean

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "name": self.name, "key": self.key, "seeds": list(self.seeds),
                "macs": self.macs, "params": self.params, "latency_ms": self.latency_ms, "confidence": CONFIDENCE,
                "accuracy": {w: {s: m.to_dict() for s, m in splits.items()} for w, splits in self.accuracy.items()}}


def summarize(model: TrainedModel, label: str | None = None) -> ModelSummary:
    """The mean accuracy (with its t-interval) of every weight set and split the seeds all report."""
    first = model.first
    accuracy: dict[str, dict[str, MeanInterval]] = {}
    for weights in WEIGHTS:
        for split in SPLITS:
            values = model.accuracies(weights, split)
            if values is not None:
                accuracy.setdefault(weights, {})[split] = mean_interval(values, CONFIDENCE)
    latencies = [s.latency_ms for s in model.seeds if s.latency_ms is not None]
    return ModelSummary(label=label or model.folder.name, name=first.name, key=first.key,
                        seeds=tuple(s.seed for s in model.seeds), macs=first.macs, params=first.params,
                        latency_ms=sum(latencies) / len(latencies) if latencies else None, accuracy=accuracy)


@dataclass(frozen=True)
class SeedMcNemar:
    """The exact McNemar test of one seed pair on the test images."""

    seed: int
    only_a: int
    only_b: int
    p_value: float

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "only_a": self.only_a, "only_b": self.only_b, "p_value": self.p_value}


@dataclass(frozen=True)
class PairComparison:
    """A against B: the seeds in common, the paired test, McNemar per seed pair and the verdict for A."""

    a: str
    b: str
    seeds: tuple[int, ...]
    difference: PairedDifference | None  # None with fewer than 2 seeds in common
    mcnemar: tuple[SeedMcNemar, ...]
    verdict: str  # BETTER, WORSE or TIED (A relative to B)
    basis: str  # what the verdict rests on, in words

    def sentence(self) -> str:
        """The one line of verdict."""
        if self.verdict == TIED:
            head = f"{self.a} and {self.b} are not distinguishable at 95%"
        else:
            head = f"{self.a} is {self.verdict} than {self.b} at 95%"
        return f"{head} ({self.basis})"

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "seeds": list(self.seeds),
                "difference": None if self.difference is None else self.difference.to_dict(),
                "mcnemar": [m.to_dict() for m in self.mcnemar], "verdict": self.verdict, "basis": self.basis,
                "sentence": self.sentence()}


@dataclass(frozen=True)
class Comparison:
    weights: str
    split: str
    models: tuple[ModelSummary, ...]
    pairs: tuple[PairComparison, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"weights": self.weights, "split": self.split, "confidence": CONFIDENCE,
                "models": [m.to_dict() for m in self.models], "pairs": [p.to_dict() for p in self.pairs]}


def check_comparable(models: Sequence[tuple[str, TrainedModel]]) -> None:
    """ConfigError naming the first recipe setting in which a model differs from the first one."""
    label, first = models[0]
    for other_label, other in models[1:]:
        difference = first_recipe_difference(first.first.recipe, other.first.recipe)
        if difference is not None:
            name, was, now = difference
            raise ConfigError(f"{other_label} was trained with {name} {now!r} but {label} with {was!r}: a "
                              "comparison is only fair under one recipe")


def compare_pair(label_a: str, a: TrainedModel, label_b: str, b: TrainedModel, weights: str = "raw",
                 split: str = "test") -> PairComparison:
    """A against B on ``split`` with ``weights`` (see the module's docstring for the verdict)."""
    seeds_a, seeds_b = a.by_seed(), b.by_seed()
    common = tuple(sorted(set(seeds_a) & set(seeds_b)))
    tests = []
    for seed in common:
        correct_a, correct_b = seeds_a[seed].correct(weights, split), seeds_b[seed].correct(weights, split)
        if correct_a is None or correct_b is None:
            continue
        if correct_a.shape != correct_b.shape:
            raise ConfigError(f"{label_a} and {label_b} were evaluated on different {split} images "
                              f"({correct_a.shape[0]} vs {correct_b.shape[0]})")
        test = mcnemar(correct_a, correct_b)
        tests.append(SeedMcNemar(seed, test.only_a, test.only_b, test.p_value))
    difference = None
    if len(common) >= 2:
        difference = paired_difference([seeds_a[s].accuracy(weights, split) for s in common],
                                       [seeds_b[s].accuracy(weights, split) for s in common], CONFIDENCE)
        verdict = BETTER if difference.low > 0 else WORSE if difference.high < 0 else TIED
        basis = (f"{split} accuracy {100 * difference.mean:+.2f} points, 95% interval {100 * difference.low:+.2f} to "
                 f"{100 * difference.high:+.2f}; paired t-test over {len(common)} seeds, p = {difference.p_value:.3g}")
    elif len(common) == 1 and tests:
        test = tests[0]
        verdict = TIED if test.p_value >= 1 - CONFIDENCE else BETTER if test.only_a > test.only_b else WORSE
        basis = (f"one seed: exact McNemar on the {split} images, {test.only_a} right only for {label_a}, "
                 f"{test.only_b} only for {label_b}, p = {test.p_value:.3g}; these trained models, not the "
                 "architectures: train more seeds")
    else:
        verdict = TIED
        basis = ("no seed in common: nothing to pair; train both with the same --seed and --seeds" if not common
                 else f"one seed and no per-image {split} results to test")
    return PairComparison(label_a, label_b, common, difference, tuple(tests), verdict, basis)


def compare_models(models: Sequence[tuple[str, TrainedModel]], weights: str = "raw",
                   split: str = "test") -> Comparison:
    """Summaries of ``(label, model)`` and every pair's comparison, after the recipe check."""
    if len(models) < 2:
        raise ConfigError(f"compare needs at least two trained models, got {len(models)}", field="folders")
    if weights not in WEIGHTS:
        raise ConfigError(f"weights must be one of {', '.join(WEIGHTS)}, got {weights!r}", field="weights")
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {split!r}", field="split")
    check_comparable(models)
    for label, model in models:
        if model.accuracies(weights, split) is None:
            if weights not in model.first.evaluations:
                why = "it has no such weights" + (": trained with ema_decay 0" if weights == "ema" else "")
            else:
                why = "trained without the test split (--test)" if split == "test" else "not recorded"
            raise ConfigError(f"{label}: no {split} accuracy of the {weights} weights ({why})")
    summaries = tuple(summarize(model, label) for label, model in models)
    pairs = tuple(compare_pair(la, a, lb, b, weights, split) for (la, a), (lb, b) in combinations(models, 2))
    return Comparison(weights, split, summaries, pairs)


__all__ = ["BETTER", "CONFIDENCE", "Comparison", "ModelSummary", "PairComparison", "SPLITS", "SeedMcNemar", "TIED",
           "WORSE", "check_comparable", "compare_models", "compare_pair", "summarize"]
