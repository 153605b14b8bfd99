"""Proxy fidelity: does the cheap proxy rank candidates the way a longer, larger training does?

Affordable NAS trains each candidate as a proxy (a smaller network, fewer epochs, smaller images).
That is only worth it if the proxy *ranks* candidates like the real training would. This check
measures it on the user's own run:

1. take ``top`` completed candidates spread evenly over the range of search rewards (not only the
   best: a ranking is about the whole order);
2. train them again at a higher fidelity (:func:`nas.jobs.setup.higher_fidelity`), as a
   ``fidelity`` stage of the same run (same engine, store, runner and resume as the search);
3. report Kendall's tau and Spearman's rho between the proxy's and the higher fidelity's accuracies
   and rewards, with bootstrap intervals (:func:`nas.stats.rank_agreement`), a scatter plot and
   ``RUN/fidelity.json``.

How to read it: tau near 1, the proxy orders candidates as the longer training does and the
search's ranking can be trusted; tau near 0 (or an interval that straddles 0), the proxy's order
says little about the real one, so the search's B0 is close to a random pick among the candidates
it trained; raise the proxy's epochs, width or resolution, or re-rank the leaders (``--rerank``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from nas.engine import Plan, Stage
from nas.errors import ConfigError
from nas.fileio import atomic_write_json
from nas.jobs.search import Search, SearchConfig
from nas.jobs.proxy_measurement import analyse, measurement_stages, sampled_points
from nas.jobs.setup import fixed_points_stage, higher_fidelity, is_int
from nas.ranking import Candidate, candidates
from nas.stats import rank_agreement

STAGE = "fidelity"
SEED_OFFSET = 2000  # the fidelity runs' training seed is the search's + 2000: a fresh training
MAX_SAMPLE = 10_000
MAX_SEEDS = 10
RESULT_FILE = "fidelity.json"
PLOT_FILE = "fidelity.png"


@dataclass(frozen=True)
class FidelitySettings:
    """What to check. ``top``: that many completed candidates of the search, spread over its rewards,
    trained again once (does the search's own ranking hold?). ``sample``: that many candidates drawn
    uniformly from the space, each scored at the proxy fidelity (``proxy_epochs``: one or more
    budgets, default the search's) and trained at the reference fidelity ``seeds`` times (the
    measurement of the proxy: every score of :data:`nas.metrics.SCORES` and the cost counts against
    the reference, and the seeds against each other). The reference fidelity: ``epochs`` (default
    twice the search's), ``width`` / ``depth`` / ``resolution`` (default the search's proxy)."""

    top: int | None = None
    epochs: float | None = None
    width: float | None = None
    depth: float | None = None
    resolution: int | None = None
    sample: int | None = None
    seeds: int = 1
    proxy_epochs: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if (self.top is None) == (self.sample is None):
            raise ConfigError("give either top (candidates of the search) or sample (candidates drawn from the "
                              "space)", field="top")
        if self.top is not None and (not is_int(self.top) or self.top < 3):
            raise ConfigError(f"top must be at least 3 candidates (a rank agreement needs 3), got {self.top!r}",
                              field="top")
        if self.sample is not None and (not is_int(self.sample) or not 3 <= self.sample <= MAX_SAMPLE):
            raise ConfigError(f"sample must be between 3 and {MAX_SAMPLE} candidates, got {self.sample!r}",
                              field="sample")
        if not is_int(self.seeds) or not 1 <= self.seeds <= MAX_SEEDS:
            raise ConfigError(f"seeds must be between 1 and {MAX_SEEDS}, got {self.seeds!r}", field="seeds")
        if self.epochs is not None and not self.epochs > 0:
            raise ConfigError(f"epochs must be > 0, got {self.epochs!r}", field="epochs")
        object.__setattr__(self, "proxy_epochs", tuple(float(e) for e in self.proxy_epochs))
        if self.proxy_epochs and self.sample is None:
            raise ConfigError("proxy_epochs scores sampled candidates: give sample too", field="proxy_epochs")
        if any(not e > 0 for e in self.proxy_epochs) or len(set(self.proxy_epochs)) != len(self.proxy_epochs):
            raise ConfigError(f"proxy_epochs must be distinct budgets > 0, got {list(self.proxy_epochs)}",
                              field="proxy_epochs")


@dataclass
class FidelityResult:
    run_dir: Path
    pairs: list[dict[str, Any]]  # one per candidate: trial, proxy and high-fidelity accuracy and reward
    agreement: dict[str, dict[str, Any]]  # "accuracy" / "reward" -> kendall_tau / spearman_rho
    trained: int = 0
    reused: int = 0
    settings: Mapping[str, Any] = field(default_factory=dict)
    measurement: dict[str, Any] | None = None  # with sample: see nas.jobs.proxy_measurement.analyse


def spread(n: int, k: int) -> list[int]:
    """``k`` distinct positions evenly spread over ``0..n-1`` (both ends included)."""
    return sorted({int(round(x)) for x in np.linspace(0, n - 1, k)})


def fidelity_stage(search: Search, settings: FidelitySettings) -> tuple[Stage, list[Candidate]]:
    """The fidelity stage of a resumed search, and the candidates it re-trains (best reward first)."""
    found = candidates(search.store.records())
    if len(found) < 3:
        raise ConfigError(f"a fidelity check needs at least 3 completed candidates; this run has {len(found)}",
                          field="run")
    if settings.top > len(found):
        raise ConfigError(f"top {settings.top} is more than the {len(found)} completed candidates of this run",
                          field="top")
    chosen = [found[i] for i in spread(len(found), settings.top)]
    while len(chosen) < settings.top:  # rounding merged two positions: fill with the next unused ones
        chosen.append(next(f for f in found if f not in chosen))
    chosen.sort(key=lambda cand: cand.search_rank)
    proxy, budget = higher_fidelity(search.config, search.parts.budget, epochs=settings.epochs,
                                    seed=search.config.seed + SEED_OFFSET, width=settings.width,
                                    depth=settings.depth, resolution=settings.resolution)

    def plan(choices: tuple[int, ...]) -> Plan:
        full, proxy_spec = search.full_and_proxy(tuple(choices), proxy)
        return Plan(full, proxy_spec, budget)

    points = [tuple(cand.search.indices) for cand in chosen]
    return fixed_points_stage(STAGE, search.decisions, points, len(chosen), plan, search.store), chosen


def run_fidelity(run_dir: str | Path, settings: FidelitySettings, storage: str | None = None,
                 on_trial: Callable[[Any, int, int], None] | None = None, plot: bool = True) -> FidelityResult:
    """Check a finished search's proxy: its own candidates again (``top``), or a measurement on
    candidates drawn from the space (``sample``; :mod:`nas.jobs.proxy_measurement`)."""
    run_dir = Path(run_dir)
    search = Search(SearchConfig(), run_dir, storage=storage, resume=True, overrides={}, on_trial=on_trial)
    try:
        return _check(search, run_dir, settings, plot)
    finally:
        search.close()  # the run folder's lock


def _check(search: Search, run_dir: Path, settings: FidelitySettings, plot: bool) -> FidelityResult:
    if settings.sample is not None:
        points = sampled_points(search, settings.sample)
        stages: list[Stage] = list(measurement_stages(search, settings, points))
        chosen: list[Candidate] = []
    else:
        stage, chosen = fidelity_stage(search, settings)
        stages = [stage]
    stored = _stored_settings(run_dir)
    if stored is not None and stored != settings:
        given = ", ".join(f"{k} {v}" for k, v in asdict(stored).items() if v not in (None, (), 1))
        raise ConfigError(f"{run_dir} already holds a fidelity check with other settings ({given}); repeat "
                          f"them to resume it, or copy the run folder to check another fidelity")
    atomic_write_json(run_dir / RESULT_FILE, {"settings": asdict(settings), "complete": False})
    trained = reused = 0
    with search.running(latency=search.latency) as engine:
        for stage in stages:
            outcome = engine.run(stage)
            trained, reused = trained + outcome.trained, reused + outcome.reused
    cfg = search.config
    about_search = {"epochs": search.parts.budget.epochs, "proxy_width": cfg.proxy_width,
                    "proxy_depth": cfg.proxy_depth, "proxy_resolution": cfg.proxy_resolution,
                    "dataset": cfg.dataset, "train_subset": cfg.train_subset}
    if settings.sample is not None:
        measured = analyse(search, settings, points)
        atomic_write_json(run_dir / RESULT_FILE, {"settings": asdict(settings), "mode": "sample",
                                                  "complete": measured["usable"] == len(points),
                                                  "search": about_search, **measured})
        result = FidelityResult(run_dir, [], {}, trained, reused, asdict(settings), measurement=measured)
        if plot and measured["usable"] >= 3:
            save_measurement_scatter(measured, run_dir / PLOT_FILE)
        return result
    high = {tuple(r.indices): r for r in search.store.records(STAGE)}
    pairs = []
    for cand in chosen:
        again = high.get(tuple(cand.search.indices))
        pairs.append({"trial": cand.search.number, "search_rank": cand.search_rank, "key": cand.key,
                      "proxy_accuracy": cand.search.metrics.accuracy, "proxy_reward": cand.search.reward,
                      "fidelity_trial": None if again is None else again.number,
                      "fidelity_accuracy": None if again is None or not again.metrics.ok else again.metrics.accuracy,
                      "fidelity_reward": None if again is None else again.reward})
    usable = [p for p in pairs if p["fidelity_accuracy"] is not None and p["fidelity_reward"] is not None]
    agreement: dict[str, dict[str, Any]] = {}
    if len(usable) >= 3:
        for what in ("accuracy", "reward"):
            found = rank_agreement([p[f"proxy_{what}"] for p in usable], [p[f"fidelity_{what}"] for p in usable])
            agreement[what] = {name: asdict(a) for name, a in found.items()}
    result = FidelityResult(run_dir, pairs, agreement, trained, reused, asdict(settings))
    atomic_write_json(run_dir / RESULT_FILE, {
        "settings": asdict(settings), "mode": "top", "complete": len(usable) == len(pairs), "candidates": pairs,
        "agreement": agreement, "pairs_used": len(usable), "search": about_search,
        "how_to_read": "tau near 1: the proxy ranks candidates as the higher fidelity does; tau near 0 (or an "
                       "interval containing 0): the proxy's ranking, and so the search's B0, is close to noise."})
    if plot and usable:
        save_scatter(result, run_dir / PLOT_FILE)
    return result


def _stored_settings(run_dir: Path) -> FidelitySettings | None:
    """The settings of the check the run already holds (a file written before a setting existed takes its
    default), or None."""
    path = run_dir / RESULT_FILE
    if not path.exists():
        return None
    try:
        stored = json.loads(path.read_text()).get("settings") or {}
        known = {f for f in FidelitySettings.__dataclass_fields__}
        return FidelitySettings(**{k: (tuple(v) if k == "proxy_epochs" else v) for k, v in stored.items()
                                   if k in known})
    except (OSError, ValueError, TypeError, ConfigError):
        return None


def save_scatter(result: FidelityResult, path: Path) -> Path:
    """Proxy against higher fidelity, for accuracy and reward, with tau and rho in the titles."""
    scatter_figure(result.pairs, result.agreement).savefig(path, format="png")
    return path


def scatter_figure(pairs: list[dict[str, Any]], agreement: Mapping[str, Any]) -> Any:
    """The figure of :func:`save_scatter` from ``fidelity.json``'s ``candidates`` and ``agreement``
    (a matplotlib Figure, built without pyplot; ``nas report`` draws it as SVG)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # matplotlib: imported only to draw
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.5), dpi=120)
    FigureCanvasAgg(fig)
    usable = [p for p in pairs if p["fidelity_accuracy"] is not None and p["fidelity_reward"] is not None]
    for i, what in enumerate(("accuracy", "reward")):
        ax = fig.add_subplot(1, 2, i + 1)
        xs = [p[f"proxy_{what}"] for p in usable]
        ys = [p[f"fidelity_{what}"] for p in usable]
        ax.scatter(xs, ys, s=28, color="C0", edgecolors="black", linewidths=0.5)
        for p, x, y in zip(usable, xs, ys):
            ax.annotate(str(p["trial"]), (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7)
        stats = agreement.get(what)
        if stats:
            tau, rho = stats["kendall_tau"], stats["spearman_rho"]
            ax.set_title(f"{what}: Kendall tau {tau['value']:.2f} [{tau['low']:.2f}, {tau['high']:.2f}], "
                         f"Spearman rho {rho['value']:.2f}", fontsize=9)
        ax.set_xlabel(f"proxy {what} (search stage)")
        ax.set_ylabel(f"higher-fidelity {what}")
        ax.grid(True, alpha=0.25)
    fig.tight_layout()
    return fig


def save_measurement_scatter(measured: dict[str, Any], path: Path) -> Path:
    """The sampled candidates' reference accuracy against each score at the smallest proxy budget, and
    against the parameter and multiply-add counts, with Kendall's tau in each title."""
    measurement_figure(measured).savefig(path, format="png")
    return path


def measurement_figure(measured: Mapping[str, Any]) -> Any:
    """The figure of :func:`save_measurement_scatter` from ``fidelity.json`` of a ``sample`` check."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # matplotlib: imported only to draw
    from matplotlib.figure import Figure

    budget = f"{min(measured['budgets']):g}"
    usable = [c for c in measured["candidates"] if None not in c["reference_accuracy"]]
    target = [float(np.mean(c["reference_accuracy"])) for c in usable]
    panels = [(f"{name} at {budget} epoch(s)", [c["proxy_scores"].get(budget, {}).get(name) for c in usable],
               measured["scores"][budget].get(name)) for name in measured["scores"][budget]]
    panels += [(f"{name} (count)", [float(c[name]) for c in usable], measured["baselines"].get(name))
               for name in measured["baselines"]]
    fig = Figure(figsize=(4 * 3, 3.6 * ((len(panels) + 2) // 3)), dpi=110)
    FigureCanvasAgg(fig)
    for i, (title, xs, stats) in enumerate(panels):
        ax = fig.add_subplot((len(panels) + 2) // 3, 3, i + 1)
        points = [(x, y) for x, y in zip(xs, target) if x is not None]
        ax.scatter([x for x, _ in points], [y for _, y in points], s=16, color="C0", edgecolors="black",
                   linewidths=0.4)
        if "count" in title:
            ax.set_xscale("log")
        tau = "" if not stats else (f": tau {stats['kendall_tau']['value']:.2f} "
                                    f"[{stats['kendall_tau']['low']:.2f}, {stats['kendall_tau']['high']:.2f}]")
        ax.set_title(title + tau, fontsize=8)
        ax.set_ylabel("reference accuracy (mean of seeds)", fontsize=7)
        ax.grid(True, alpha=0.25)
    fig.tight_layout()
    return fig


__all__ = ["FidelityResult", "FidelitySettings", "PLOT_FILE", "RESULT_FILE", "STAGE", "fidelity_stage",
           "measurement_figure", "run_fidelity", "save_measurement_scatter", "save_scatter", "scatter_figure", "spread"]

