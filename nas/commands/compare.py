"""``nas compare DIR_A DIR_B [...]``: trained models side by side, with intervals, paired tests and a verdict."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

from rich.table import Table

from nas.commands.console import fmt_count, fmt_float, make_console, mean_interval_text
from nas.errors import ConfigError

EXAMPLES = """examples:
  nas compare models/searched-b0 models/efficientnet-b0                    # each trained with --test --seeds 3
  nas compare models/a models/b models/c --png compare.png --json
  nas compare models/a models/b --weights ema
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "compare", help="compare trained models: accuracy with 95%% intervals, cost, paired tests and a verdict",
        description=textwrap.fill(
            "Compare models trained by nas train (a folder holding model.pt, or the seed-K folders of nas train "
            "--seeds) under one recipe: models trained on other data or with other settings are refused. "
            "The table shows each model's mean accuracy over its seeds with the 95% t-interval, its "
            "multiply-adds, parameters and the latency measured after training. Every pair gets the paired "
            "t-test over the seeds both have (seed s against seed s) with the 95% interval of the mean "
            "difference, the exact McNemar test of each seed pair on the same images, and one line of "
            "verdict: better, worse, or not distinguishable at 95%.", 100),
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+", metavar="DIR", help="nas train output folders (two or more)")
    p.add_argument("--weights", default="raw", choices=("raw", "ema"),
                   help="compare the raw weights or their moving average (default raw)")
    p.add_argument("--split", default="test", choices=("test", "minival"),
                   help="the images compared (default test: train with --test)")
    p.add_argument("--png", default=None, metavar="FILE", help="write accuracy against multiply-adds with error bars")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.set_defaults(func=run_command)


def _labels(folders: list[str]) -> list[str]:
    """Each folder's name, or the path as given where two names collide."""
    names = [Path(f).name or f for f in folders]
    return [name if names.count(name) == 1 else folder for name, folder in zip(names, folders)]


def run_command(args: argparse.Namespace) -> int:
    from nas.comparison import compare_models  # torch (reading model.pt): loaded when the command runs
    from nas.fileio import check_output_file
    from nas.training.trained import read_trained

    if len(args.folders) < 2:
        raise ConfigError(f"compare needs at least two trained models, got {len(args.folders)}", field="folders")
    models = [(label, read_trained(folder)) for label, folder in zip(_labels(args.folders), args.folders)]
    comparison = compare_models(models, weights=args.weights, split=args.split)
    png = check_output_file(args.png, field="png") if args.png else None
    if png is not None:
        from nas.comparison_plots import save_png  # plotting: imported only to draw

        save_png(comparison.models, png, comparison.weights, comparison.split)
    if args.json:
        json.dump(comparison.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    console = make_console()
    console.print(models_table(comparison))
    console.print(pairs_table(comparison))
    for pair in comparison.pairs:
        console.print(pair.sentence())
    if png is not None:
        console.print(f"wrote {png}")
    return 0


def models_table(comparison: Any) -> Table:
    """One row per model: seeds, mean accuracy and its interval, minival mean, cost, latency."""
    split, weights = comparison.split, comparison.weights
    table = Table(title=f"Models ({weights} weights; mean over seeds, 95% t-interval)")
    for name in ("model", "spec", "seeds", f"{split} acc", "95% CI", "minival acc" if split == "test" else "",
                 "MACs", "params", "latency ms"):
        if name:
            table.add_column(name, justify="left" if name in ("model", "spec", "seeds") else "right", overflow="fold")
    for m in comparison.models:
        accuracy = m.accuracy[weights]
        row = [m.label, m.name, " ".join(str(s) for s in m.seeds), fmt_float(accuracy[split].mean),
               mean_interval_text(accuracy[split].to_dict())]
        if split == "test":
            row.append(fmt_float(accuracy["minival"].mean) if "minival" in accuracy else "-")
        row += [fmt_count(m.macs), fmt_count(m.params), fmt_float(m.latency_ms, 2)]
        table.add_row(*row)
    return table


def pairs_table(comparison: Any) -> Table:
    """One row per pair: seeds paired, mean difference and its interval, t, p, McNemar per seed, verdict."""
    table = Table(title=f"Pairs (A - B, {comparison.split} accuracy in points)")
    for name in ("A", "B", "paired seeds", "mean diff", "95% CI", "t", "p", "McNemar per seed (A only/B only, p)",
                 "verdict for A"):
        table.add_column(name, justify="left" if name in ("A", "B", "verdict for A") else "right", overflow="fold")
    for pair in comparison.pairs:
        d = pair.difference
        tests = "; ".join(f"{t.seed}: {t.only_a}/{t.only_b}, {t.p_value:.3g}" for t in pair.mcnemar) or "-"
        table.add_row(pair.a, pair.b, " ".join(str(s) for s in pair.seeds) or "-",
                      "-" if d is None else f"{100 * d.mean:+.2f}",
                      "-" if d is None else f"{100 * d.low:+.2f} to {100 * d.high:+.2f}",
                      "-" if d is None else fmt_float(d.statistic, 3), "-" if d is None else f"{d.p_value:.3g}",
                      tests, pair.verdict)
    return table
