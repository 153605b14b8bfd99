"""The measurement of a proxy (``nas fidelity RUN --sample N``): which cheap signal ranks like a real training?

A search's proxy ranks candidates after a brief training. Whether that ranking is worth following is
measured here on candidates the search did not choose, drawn uniformly from the space:

1. **Sample.** ``N`` distinct candidates drawn from the space with a seed of their own.
2. **Proxy.** Each trains at the search's proxy fidelity, at one or more budgets
   (``proxy_epochs``, e.g. 0.25, 0.5 and 1 epoch): stage ``fidelity-proxy``. Every score of
   :data:`nas.metrics.SCORES` comes out of each training (nothing is trained twice for them).
3. **Reference.** Each trains at the reference fidelity ``seeds`` times (stage ``fidelity-reference``).
   The reference ranking is the mean minival accuracy over the seeds. With two or more seeds, the
   Kendall tau between the first two seeds is the **noise ceiling**: no proxy can rank better than the
   reference agrees with itself.
4. **Baselines.** The full-size network's parameter and multiply-add counts, ranked against the
   reference: a score that does not beat them adds nothing over counting (zero-cost proxies often
   do not).
5. Every tau and rho has a 95% bootstrap interval (:func:`nas.stats.rank_agreement`).

All of it is stages of the one engine on the run's store: resumable, deduplicated (a sampled network
the search already trained with the same budget is not trained again), on the run's runner.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any, Sequence

import numpy as np

from nas.counting import count
from nas.decisions import Decision
from nas.engine import Plan, Stage
from nas.errors import ConfigError
from nas.jobs.setup import fixed_points_stage, higher_fidelity
from nas.metrics import SCORES, score_quality
from nas.stats import rank_agreement

PROXY_STAGE = "fidelity-proxy"
REFERENCE_STAGE = "fidelity-reference"
SAMPLE_OFFSET = 3000  # the sample is drawn with the search's seed + 3000
SEED_OFFSET = 2000  # reference seed r trains with the search's seed + 2000 + r: a fresh training
BASELINES = ("params", "macs")


def sampled_points(search: Any, n: int) -> list[tuple[int, ...]]:
    """``n`` distinct points of the search's space, drawn uniformly with the search's seed + SAMPLE_OFFSET."""
    rng = np.random.default_rng(search.config.seed + SAMPLE_OFFSET)
    seen: dict[tuple[int, ...], None] = {}
    for _ in range(100 * n):
        seen.setdefault(tuple(search.space.sample(rng)), None)
        if len(seen) == n:
            return list(seen)
    raise ConfigError(f"sample {n}: the space {search.space.name!r} holds only {len(seen)} distinct candidates",
                      field="sample")


def proxy_budgets(search: Any, settings: Any) -> tuple[float, ...]:
    return tuple(settings.proxy_epochs) or (float(search.parts.budget.epochs),)


def reference_seeds(search: Any, settings: Any) -> tuple[int, ...]:
    return tuple(search.config.seed + SEED_OFFSET + r for r in range(settings.seeds))


def measurement_stages(search: Any, settings: Any, points: Sequence[tuple[int, ...]]) -> tuple[Stage, Stage]:
    """The proxy stage (every point at every proxy budget, smallest budget first) and the reference stage
    (every point once per seed, first seed first)."""
    budgets = proxy_budgets(search, settings)
    proxy_decisions = (*search.decisions, Decision("proxy_epochs", budgets))

    def proxy_plan(choices: tuple[int, ...]) -> Plan:
        full, proxy = search.full_and_proxy(tuple(choices[:-1]), search.proxy)
        return Plan(full, proxy, replace(search.parts.budget, epochs=budgets[choices[-1]], steps=None))

    order = sorted(range(len(budgets)), key=lambda b: budgets[b])
    proxy_points = [(*p, b) for b in order for p in points]
    seeds = reference_seeds(search, settings)
    reference_proxy, reference_budget = higher_fidelity(
        search.config, search.parts.budget, epochs=settings.epochs, seed=seeds[0], width=settings.width,
        depth=settings.depth, resolution=settings.resolution)
    reference_decisions = (*search.decisions, Decision("fidelity_seed", seeds))

    def reference_plan(choices: tuple[int, ...]) -> Plan:
        full, proxy = search.full_and_proxy(tuple(choices[:-1]), reference_proxy)
        return Plan(full, proxy, replace(reference_budget, seed=seeds[choices[-1]]))

    reference_points = [(*p, r) for r in range(len(seeds)) for p in points]
    return (fixed_points_stage(PROXY_STAGE, proxy_decisions, proxy_points, len(proxy_points), proxy_plan,
                               search.store),
            fixed_points_stage(REFERENCE_STAGE, reference_decisions, reference_points, len(reference_points),
                               reference_plan, search.store))


def _agreement(x: Sequence[float], y: Sequence[float]) -> dict[str, Any] | None:
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    return {name: asdict(a) for name, a in rank_agreement(x, y).items()}


def analyse(search: Any, settings: Any, points: Sequence[tuple[int, ...]]) -> dict[str, Any]:
    """The candidates' proxy scores and reference accuracies, and every rank agreement (see the module)."""
    budgets = proxy_budgets(search, settings)
    seeds = reference_seeds(search, settings)
    proxy = {tuple(r.indices): r for r in search.store.records(PROXY_STAGE)}
    reference = {tuple(r.indices): r for r in search.store.records(REFERENCE_STAGE)}
    candidates = []
    for point in points:
        runs = [reference.get((*point, r)) for r in range(len(seeds))]
        accuracies = [r.metrics.accuracy if r is not None and r.metrics.ok else None for r in runs]
        full, _ = search.full_and_proxy(point, search.proxy)
        cost = count(full)
        scores = {}
        for b, epochs in enumerate(budgets):
            record = proxy.get((*point, b))
            if record is not None and record.metrics.ok:
                scores[f"{epochs:g}"] = {name: score_quality(name, value) for name, value in record.metrics.scores.items()}
        candidates.append({"indices": list(point), "arch": runs[0].arch if runs[0] is not None else None,
                           "params": cost.params, "macs": cost.macs, "reference_accuracy": accuracies,
                           "proxy_scores": scores})
    usable = [c for c in candidates if None not in c["reference_accuracy"]]
    target = [float(np.mean(c["reference_accuracy"])) for c in usable]
    result: dict[str, Any] = {"candidates": candidates, "usable": len(usable), "budgets": list(budgets),
                              "seeds": list(seeds), "scores": {}, "baselines": {}}
    if len(seeds) >= 2:
        result["noise_ceiling"] = _agreement([c["reference_accuracy"][0] for c in usable],
                                             [c["reference_accuracy"][1] for c in usable])
    for name in BASELINES:
        result["baselines"][name] = _agreement([float(c[name]) for c in usable], target)
    for epochs in budgets:
        key = f"{epochs:g}"
        result["scores"][key] = {}
        for name in SCORES:
            pairs = [(c["proxy_scores"][key][name], t) for c, t in zip(usable, target)
                     if name in c["proxy_scores"].get(key, {})]
            found = _agreement([p for p, _ in pairs], [t for _, t in pairs]) if pairs else None
            if found is not None:
                found["candidates"] = len(pairs)
            result["scores"][key][name] = found
    result["verdict"] = verdict(result)
    return result


def best_score(result: dict[str, Any], budget: str) -> tuple[str, float] | None:
    scored = [(name, a["kendall_tau"]["value"]) for name, a in result["scores"][budget].items() if a]
    return max(scored, key=lambda item: item[1]) if scored else None


def verdict(result: dict[str, Any]) -> str:
    """One line: does the best score at the smallest budget beat counting parameters or multiply-adds?"""
    budget = f"{min(result['budgets']):g}"
    best = best_score(result, budget)
    baselines = [(name, a["kendall_tau"]["value"]) for name, a in result["baselines"].items() if a]
    if best is None or not baselines:
        return "too few candidates finished both fidelities to compare"
    name, tau = best
    base_name, base_tau = max(baselines, key=lambda item: item[1])
    ceiling = result.get("noise_ceiling")
    ceiling_text = "" if not ceiling else f"; the reference agrees with itself at tau {ceiling['kendall_tau']['value']:.2f}"
    if tau >= base_tau + 0.1:
        how = f"beats counting {base_name} (tau {base_tau:.2f}) by {tau - base_tau:.2f}"
    elif tau > base_tau:
        how = f"is barely above counting {base_name} (tau {base_tau:.2f}): within 0.1"
    else:
        how = f"does not beat counting {base_name} (tau {base_tau:.2f}): the proxy adds nothing over the cost count"
    return f"at {budget} epoch(s) the best score, {name} (tau {tau:.2f}), {how}{ceiling_text}"


__all__ = ["BASELINES", "PROXY_STAGE", "REFERENCE_STAGE", "analyse", "best_score", "measurement_stages",
           "proxy_budgets", "reference_seeds", "sampled_points", "verdict"]
