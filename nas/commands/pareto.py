"""``nas pareto``: the accuracy/cost frontier of one or several runs; pick a model off it."""

from __future__ import annotations

import argparse
from contextlib import ExitStack
from typing import Any

from rich.console import Console
from rich.table import Table

from nas.commands.console import fmt_count, fmt_float
from nas.errors import ConfigError
from nas.fileio import atomic_write_json, atomic_write_text
from nas.jobs import run_axes
from nas.pareto import Axes, analyze, common_reference, ideal_point, normalized_hypervolume
from nas.pareto_plots import save_html, save_png
from nas.ranking import trial_document
from nas.store import open_run, run_labels


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "pareto", help="Pareto frontier of a run: table, hypervolume, plots, pick a model",
        description="Non-dominated candidates of one or several search runs over any objectives (columns of "
                    "trials.csv, each :max or :min). Failed and pruned trials are excluded and counted; an "
                    "architecture proposed twice counts once (its first trial). Several runs share one plot "
                    "and one hypervolume reference point, so their hypervolumes compare.")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folder(s) (the --out of nas search)")
    p.add_argument("--objectives", default=None,
                   help="comma-separated NAME:max|min over trials.csv columns, e.g. accuracy:max,latency_ms:min "
                        "(default: the raw values of the first run's objective, e.g. accuracy:max,macs:min for "
                        "mnas, accuracy:max,step_time_ms:min,params:min for v2)")
    p.add_argument("--reference", default=None, metavar="V1,V2[,V3]",
                   help="hypervolume reference point, one value per objective (default: 0 for maximized "
                        "objectives such as accuracy, 1.1 x the worst value for minimized costs, over all runs)")
    p.add_argument("--png", default=None, metavar="FILE", help="write a static plot (matplotlib)")
    p.add_argument("--html", default=None, metavar="FILE", help="write an interactive plot (plotly; hover shows "
                                                                 "block strings and metrics)")
    p.add_argument("--csv", default=None, metavar="FILE", help="write the frontier rows (trials.csv columns; a "
                                                                "last 'run' column when several runs are given)")
    pick = p.add_mutually_exclusive_group()
    pick.add_argument("--pick", type=int, default=None, metavar="TRIAL",
                      help="write this trial's full-size spec to --out")
    pick.add_argument("--knee", action="store_true", help="write the knee of the frontier's full-size spec to --out")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="with --pick or --knee: JSON file for nas show / train / scale")
    p.add_argument("--storage", default=None, help="storage URL, when the (single) run used --storage")
    p.set_defaults(func=run)


def _reference(text: str | None, k: int):
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise ConfigError(f"--reference {text!r}: expected {k} comma-separated numbers") from None
    if len(values) != k:
        raise ConfigError(f"--reference {text!r}: expected {k} values, one per objective, got {len(values)}")
    return values


def default_objectives(run_dir: str, storage: str | None = None) -> str:
    """The raw values and directions of the objective ``run_dir`` was searched with."""
    with open_run(run_dir, storage) as store:
        return run_axes(store.config)


def _frontier_table(result, is_knee: int, b0: int | None):
    names = result.objectives.names
    shown = ("accuracy", "macs", "params", "latency_ms", "reward")
    extra = [n for n in names if n not in shown]
    frame = result.frontier
    table = Table(title=f"{result.label}: frontier over {result.objectives} ({len(frame)} of "
                        f"{len(result.candidates)} distinct candidates)")
    for name, justify in (("trial", "right"), ("accuracy", "right"), ("MACs", "right"), ("params", "right"),
                          ("latency ms", "right"), ("reward", "right"), *((n, "right") for n in extra),
                          ("", "left"), ("block strings", "left")):
        table.add_column(name, justify=justify, overflow="fold")

    def num(row, column):
        value = row.get(column)
        try:
            return float(value)
        except (TypeError, ValueError):
            return None

    for _, row in frame.iterrows():
        trial = int(row["trial"])
        mark = ", ".join(m for m, t in (("B0", b0), ("knee", is_knee)) if t == trial)
        table.add_row(str(trial), fmt_float(num(row, "accuracy")), fmt_count(num(row, "macs")),
                      fmt_count(num(row, "params")), fmt_float(num(row, "latency_ms"), 2),
                      fmt_float(num(row, "reward")), *(f"{num(row, n):.6g}" for n in extra), mark,
                      str(row.get("arch") or ""))
    return table


def _write(path: str, flag: str, write) -> None:
    try:
        write(path)
    except OSError as exc:
        raise ConfigError(f"{flag} {path}: cannot write ({exc.strerror or exc})") from None


def pick_document(store, trial: int, result, how: str) -> dict[str, Any]:
    """b0.json's shape for the chosen trial, plus where it sits among the run's candidates."""
    record = store.trial(trial)
    if not record.metrics.ok:
        raise ConfigError(f"trial {trial} {record.metrics.status}; pick a completed trial")
    document = trial_document(record, store.config)
    rows = result.candidates[result.candidates["key"] == record.key] if "key" in result.candidates else []
    front = int(rows["front"].iloc[0]) if len(rows) else None
    document["pareto"] = {"picked_by": how, "objectives": str(result.objectives), "front": front,
                          "run": str(store.run_dir)}
    return document


def run(args: argparse.Namespace) -> int:
    objectives = Axes.parse(args.objectives or default_objectives(args.runs[0], args.storage))
    if (args.pick is not None or args.knee) and len(args.runs) != 1:
        raise ConfigError("--pick and --knee take exactly one RUN")
    if (args.pick is not None or args.knee) and not args.out:
        raise ConfigError("--pick and --knee need --out FILE for the chosen spec")
    if args.out and args.pick is None and not args.knee:
        raise ConfigError("--out goes with --pick TRIAL or --knee")
    if args.storage and len(args.runs) != 1:
        raise ConfigError("--storage applies to a single RUN")
    reference = _reference(args.reference, len(objectives))
    with ExitStack() as opened:  # every run's store closed when the command ends, however it ends
        return _frontiers(args, objectives, reference, opened)


def _frontiers(args: argparse.Namespace, objectives: Axes, reference: list[float] | None, opened: ExitStack) -> int:
    console = Console()
    stores, results = [], []
    for run_dir, label in zip(args.runs, run_labels(args.runs)):
        store = opened.enter_context(open_run(run_dir, args.storage))
        stores.append(store)
        results.append(analyze(store.dataframe(), objectives, label=label))

    hv_ok = len(objectives) <= 3
    if hv_ok and reference is None:
        reference = common_reference(results).tolist()
    ideal = ideal_point(results)
    ref_text = ", ".join(f"{n}={v:.6g}" for n, v in zip(objectives.names, reference or ()))
    for result in results:
        knee, b0 = result.knee(), result.best_reward()
        console.print(_frontier_table(result, knee, b0))
        if result.excluded_text():
            console.print(result.excluded_text())
        if hv_ok:
            hv = result.hypervolume(reference)
            share = normalized_hypervolume(hv, ideal, reference)
            console.print(f"hypervolume: {hv:.6g} (reference point {ref_text}); {share:.4f} of the "
                          f"ideal-to-reference box")
        else:
            console.print("hypervolume: not computed (exact for 1 to 3 objectives)")
        console.print(f"knee: trial {knee}" + (f"; B0 (best reward): trial {b0}" if b0 is not None else ""))

    if args.csv:
        import pandas as pd  # pandas: imported when a table is made

        parts = []
        for store, result in zip(stores, results):
            columns = list(store.dataframe().columns)
            rows = result.frontier.reindex(columns=columns)
            if len(results) > 1:
                rows = rows.assign(run=result.label)
            parts.append(rows)
        table = pd.concat(parts, ignore_index=True)
        _write(args.csv, "--csv", lambda p: atomic_write_text(p, table.to_csv(index=False)))
        console.print(f"wrote {len(table)} frontier rows to {args.csv}")
    if args.png:
        _write(args.png, "--png", lambda p: save_png(results, p))
        console.print(f"wrote {args.png}")
    if args.html:
        _write(args.html, "--html", lambda p: save_html(results, p))
        console.print(f"wrote {args.html}")
    if args.pick is not None or args.knee:
        trial = results[0].knee() if args.knee else args.pick
        how = "knee" if args.knee else "pick"
        document = pick_document(stores[0], trial, results[0], how)
        _write(args.out, "--out", lambda p: atomic_write_json(p, document))
        console.print(f"wrote trial {trial} ({how}, front {document['pareto']['front']}) to {args.out}")
    return 0
