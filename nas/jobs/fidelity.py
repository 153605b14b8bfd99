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
from nas.jobs.setup import fixed_points_stage, higher_fidelity, is_int
from nas.ranking import Candidate, candidates
from nas.stats import rank_agreement

STAGE = "fidelity"
SEED_OFFSET = 2000  # the fidelity runs' training seed is the search's + 2000: a fresh training
RESULT_FILE = "fidelity.json"
PLOT_FILE = "fidelity.png"


@dataclass(frozen=True)
class FidelitySettings:
    """The higher fidelity: None keeps the search's value (epochs: twice the search's)."""

    top: int
    epochs: float | None = None
    width: float | None = None
    depth: float | None = None
    resolution: int | None = None

    def __post_init__(self) -> None:
        if not is_int(self.top) or self.top < 3:
            raise ConfigError(f"top must be at least 3 candidates (a rank agreement needs 3), got {self.top!r}",
                              field="top")
        if self.epochs is not None and not self.epochs > 0:
            raise ConfigError(f"epochs must be > 0, got {self.epochs!r}", field="epochs")


@dataclass
class FidelityResult:
    run_dir: Path
    pairs: list[dict[str, Any]]  # one per candidate: trial, proxy and high-fidelity accuracy and reward
    agreement: dict[str, dict[str, Any]]  # "accuracy" / "reward" -> kendall_tau / spearman_rho
    trained: int = 0
    reused: int = 0
    settings: Mapping[str, Any] = field(default_factory=dict)


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
    """Re-train ``settings.top`` candidates of a finished search at a higher fidelity and compare the rankings."""
    run_dir = Path(run_dir)
    search = Search(SearchConfig(), run_dir, storage=storage, resume=True, overrides={}, on_trial=on_trial)
    stage, chosen = fidelity_stage(search, settings)
    stored = _stored_settings(run_dir)
    if stored is not None and stored != asdict(settings):
        given = ", ".join(f"{k} {v}" for k, v in stored.items() if v is not None)
        raise ConfigError(f"{run_dir} already holds a fidelity check with other settings ({given}); repeat "
                          f"them to resume it, or copy the run folder to check another fidelity")
    atomic_write_json(run_dir / RESULT_FILE, {"settings": asdict(settings), "complete": False})
    engine = search.make_engine(latency=search.latency)
    try:
        outcome = engine.run(stage)
    finally:
        engine.close()
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
    result = FidelityResult(run_dir, pairs, agreement, outcome.trained, outcome.reused, asdict(settings))
    cfg = search.config
    atomic_write_json(run_dir / RESULT_FILE, {
        "settings": asdict(settings), "complete": len(usable) == len(pairs), "candidates": pairs,
        "agreement": agreement, "pairs_used": len(usable),
        "search": {"epochs": search.parts.budget.epochs, "proxy_width": cfg.proxy_width,
                   "proxy_depth": cfg.proxy_depth, "proxy_resolution": cfg.proxy_resolution},
        "how_to_read": "tau near 1: the proxy ranks candidates as the higher fidelity does; tau near 0 (or an "
                       "interval containing 0): the proxy's ranking, and so the search's B0, is close to noise."})
    if plot and usable:
        save_scatter(result, run_dir / PLOT_FILE)
    return result


def _stored_settings(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / RESULT_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text()).get("settings")
    except (OSError, ValueError):
        return None


def save_scatter(result: FidelityResult, path: Path) -> Path:
    """Proxy against higher fidelity, for accuracy and reward, with tau and rho in the titles."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # matplotlib: imported only to draw
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.5), dpi=120)
    FigureCanvasAgg(fig)
    usable = [p for p in result.pairs if p["fidelity_accuracy"] is not None and p["fidelity_reward"] is not None]
    for i, what in enumerate(("accuracy", "reward")):
        ax = fig.add_subplot(1, 2, i + 1)
        xs = [p[f"proxy_{what}"] for p in usable]
        ys = [p[f"fidelity_{what}"] for p in usable]
        ax.scatter(xs, ys, s=28, color="C0", edgecolors="black", linewidths=0.5)
        for p, x, y in zip(usable, xs, ys):
            ax.annotate(str(p["trial"]), (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7)
        stats = result.agreement.get(what)
        if stats:
            tau, rho = stats["kendall_tau"], stats["spearman_rho"]
            ax.set_title(f"{what}: Kendall tau {tau['value']:.2f} [{tau['low']:.2f}, {tau['high']:.2f}], "
                         f"Spearman rho {rho['value']:.2f}", fontsize=9)
        ax.set_xlabel(f"proxy {what} (search stage)")
        ax.set_ylabel(f"higher-fidelity {what}")
        ax.grid(True, alpha=0.25)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


__all__ = ["FidelityResult", "FidelitySettings", "PLOT_FILE", "RESULT_FILE", "STAGE", "fidelity_stage",
           "run_fidelity", "save_scatter", "spread"]
