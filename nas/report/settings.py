"""The run's settings and what each stage cost.

Compute time is the sum, over the trials that trained, of each one's wall time on its worker
(a trial answered by an earlier identical training cost nothing): the machine time the run used,
whatever the number of workers.
"""

from __future__ import annotations

import json
from typing import Any

from nas.report.html import Cell, esc, number, pairs, table
from nas.report.run import RunView
from nas.store import default_storage_url
from nas.training.budget import TrainBudget


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def compute_time(records: list[Any]) -> float:
    return sum(r.metrics.wall_time_s or 0.0 for r in records if r.reused_from is None)


def _proxy(config: dict[str, Any]) -> str:
    epochs = config.get("epochs")
    shown = f"{epochs:g} epoch(s)" if epochs is not None else f"{TrainBudget().epochs:g} epochs (the trainer's default)"
    if config.get("rungs"):
        shown = "see rungs"
    batch = config.get("batch_size")
    return (f"width x{config.get('proxy_width')}, depth x{config.get('proxy_depth')}, "
            f"{config.get('proxy_resolution')} px; {shown}" + (f"; batch {batch}" if batch else ""))


def _rungs_or_rerank(config: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    if config.get("rungs"):
        out.append(("rungs", f"{', '.join(f'{r:g}' for r in config['rungs'])} epochs, eta {config.get('eta')} "
                             f"(the best 1/{config.get('eta')} of each rung promoted)"))
    if config.get("rerank"):
        epochs = config.get("rerank_epochs")
        out.append(("re-rank", f"top {config['rerank']} again, {config.get('rerank_seeds', 1)} seed(s), "
                               + (f"{epochs:g} epochs" if epochs else "twice the search's epochs")))
    return out


def settings_items(view: RunView) -> list[tuple[str, str]]:
    config = view.config
    kind = config.get("kind", "search")
    items: list[tuple[str, str]] = [("run folder", str(view.store.run_dir)), ("kind", kind)]
    if kind == "scale-grid":
        items += [("base", str(config.get("base_source") or "-")),
                  ("grid", f"phi {config.get('phi')}, step {config.get('step')}, max {config.get('max')}, "
                           f"constraint {config.get('constraint')} within {config.get('tol')}")]
    else:
        controller = config.get("controller", "-")
        options = config.get("controller_options") or {}
        items += [("space", str(config.get("space", "-"))),
                  ("controller", controller + (f" {json.dumps(options)}" if options else ""))]
    dataset = str(config.get("dataset", "-")) + (f" ({config['data_dir']})" if config.get("data_dir") else "")
    if config.get("train_subset"):
        dataset += f", about {config['train_subset']} training images"
    items += [("objective", view.objective), ("score", str(config.get("score", "accuracy"))), ("dataset", dataset),
              ("proxy", _proxy(config))]
    if config.get("target_resolution"):
        items.append(("full-size cost counted at", f"{config['target_resolution']} px"))
    items += _rungs_or_rerank(config)
    runner = str(config.get("runner", "local"))
    if config.get("runner_options"):
        runner += f" {json.dumps(config['runner_options'])}"
    own = view.store.storage_url == default_storage_url(view.store.run_dir)
    items += [("runner", f"{runner}; device {config.get('device', 'auto')}"),
              ("storage", "the folder's own study.db" if own else str(config.get("storage"))),
              ("trials", _trials(view)),
              ("compute time in all", f"{_duration(compute_time(view.records))} (sum of each trained trial's "
                                      "wall time on its worker)")]
    if view.choice is not None:
        b0 = view.choice.record
        items.append(("B0", f"trial {b0.number}, ranked by its {view.choice.ranked_by} reward "
                            f"{view.choice.reward:.4f}"))
    return items


def _trials(view: RunView) -> str:
    done = len(view.candidates_of_main_stage())
    asked = view.config.get("trials")
    text = f"{done} {view.main_stage} trials finished" + (f" of {asked}" if asked else "")
    if view.reservations:
        text += f"; {len(view.reservations)} in progress (RUNNING in the study)"
    return text


def stage_costs(view: RunView) -> str:
    """One row per stage: trials, trained, reused, failed, compute time, mean per trained trial."""
    stages: dict[str, list[Any]] = {}
    for r in view.records:
        stages.setdefault(r.stage, []).append(r)
    rows = []
    for stage, records in stages.items():
        trained = [r for r in records if r.reused_from is None]
        seconds = compute_time(records)
        running = sum(1 for r in view.reservations if r.stage == stage)
        rows.append([Cell(stage, stage), Cell(str(len(records)), len(records)), Cell(str(len(trained)), len(trained)),
                     Cell(str(len(records) - len(trained)), len(records) - len(trained)),
                     Cell(str(sum(not r.metrics.ok for r in records))), Cell(str(running), running),
                     Cell(_duration(seconds), seconds), number(seconds / len(trained) if trained else None, 1)])
    return table(("stage", "trials", "trained", "reused", "not ok", "running", "compute time", "s per training"),
                 rows, sortable=True)


def settings_body(view: RunView) -> str:
    config = {k: v for k, v in view.config.items() if k != "owner"}
    return (pairs(settings_items(view)) + "<h4>What each stage cost</h4>" + stage_costs(view)
            + f"<details><summary>run.json</summary><pre>{esc(json.dumps(config, indent=2))}</pre></details>")


__all__ = ["compute_time", "settings_body", "settings_items", "stage_costs"]
