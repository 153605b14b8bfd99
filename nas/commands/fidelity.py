"""``nas fidelity``: does the search's proxy rank candidates like a higher-fidelity training?"""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table

from nas.commands.console import SearchProgress, fmt_float, make_console
from nas.errors import ConfigError


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "fidelity", help="check the proxy: re-train K candidates at a higher fidelity and compare rankings",
        description="--top K: train K completed candidates of a search again at a higher fidelity (more epochs, a "
                    "larger proxy), spread over the range of rewards, and report Kendall's tau and Spearman's rho "
                    "between the two rankings with bootstrap intervals. --sample N: measure the proxy on N "
                    "candidates drawn uniformly from the space: each scored at the proxy fidelity (every score: "
                    "accuracy, minival_loss, train_loss, bn_accuracy; at each --proxy-epochs budget) and trained "
                    "--seeds times at the reference fidelity; every score, and the parameter and multiply-add "
                    "counts, ranked against the reference, the seeds against each other (the noise ceiling). "
                    "Writes RUN/fidelity.json and RUN/fidelity.png; the trials are stages of the run "
                    "(resumable).")
    p.add_argument("run", help="run folder of a finished search")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--top", type=int, metavar="K", help="how many of the search's candidates to train again")
    what.add_argument("--sample", type=int, metavar="N", help="how many candidates to draw from the space")
    p.add_argument("--seeds", type=int, default=1, help="reference trainings per candidate (2 or more: the noise "
                                                      "ceiling)")
    p.add_argument("--proxy-epochs", default=None, metavar="E,E,...",
                   help="with --sample: the proxy budgets to score, e.g. 0.25,0.5,1 (default: the search's epochs)")
    p.add_argument("--epochs", type=float, default=None, help="higher-fidelity epochs (default: twice the search's)")
    p.add_argument("--width", type=float, default=None, help="higher-fidelity proxy width (default: the search's)")
    p.add_argument("--depth", type=float, default=None, help="higher-fidelity proxy depth (default: the search's)")
    p.add_argument("--resolution", type=int, default=None,
                   help="higher-fidelity proxy resolution (default: the search's)")
    p.add_argument("--storage", default=None, help="storage URL, when the run used --storage")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # torch: the library loads when the command runs, not for --help
    from nas.jobs.fidelity import PLOT_FILE, RESULT_FILE, FidelitySettings, run_fidelity

    if args.proxy_epochs is not None and args.sample is None:
        raise ConfigError("--proxy-epochs scores candidates drawn from the space: give --sample N too")
    settings = FidelitySettings(top=args.top, sample=args.sample, seeds=args.seeds, epochs=args.epochs,
                                width=args.width, depth=args.depth, resolution=args.resolution,
                                proxy_epochs=_budgets(args.proxy_epochs))
    console = make_console()
    progress = SearchProgress(console, enabled=not args.quiet)
    with progress.running(total=args.top or args.sample * (len(settings.proxy_epochs or (1,)) + settings.seeds)):
        result = run_fidelity(args.run, settings, storage=args.storage, on_trial=progress.update)
    if result.measurement is not None:
        console.print(measurement_table(result.measurement, args.run))
        console.print(result.measurement["verdict"])
        console.print(f"{result.trained} trained, {result.reused} reused. Outputs: {args.run}/{RESULT_FILE}, "
                      f"{args.run}/{PLOT_FILE}")
        return 0
    table = Table(title=f"Proxy against higher fidelity: {len(result.pairs)} candidates of {args.run}")
    for name in ("search rank", "trial", "proxy acc", "fidelity acc", "proxy reward", "fidelity reward"):
        table.add_column(name, justify="right")
    for p in result.pairs:
        table.add_row(str(p["search_rank"]), str(p["trial"]), fmt_float(p["proxy_accuracy"]),
                      fmt_float(p["fidelity_accuracy"]), fmt_float(p["proxy_reward"]), fmt_float(p["fidelity_reward"]))
    console.print(table)
    for what, stats in result.agreement.items():
        tau, rho = stats["kendall_tau"], stats["spearman_rho"]
        console.print(f"{what}: Kendall tau {tau['value']:.3f} (95% bootstrap {tau['low']:.2f} to {tau['high']:.2f}, "
                      f"p = {tau['p_value']:.3f}); Spearman rho {rho['value']:.3f} ({rho['low']:.2f} to "
                      f"{rho['high']:.2f})")
    if not result.agreement:
        console.print("fewer than 3 candidates finished at the higher fidelity: no rank agreement computed")
    elif result.agreement["reward"]["kendall_tau"]["low"] <= 0:
        console.print("The interval of tau reaches 0: this proxy's ranking is not distinguishable from noise at "
                      "this many candidates. Trust the search's order only loosely: raise --epochs or the proxy "
                      "size of the search, or re-rank its leaders (nas search --rerank K).")
    console.print(f"{result.trained} trained, {result.reused} reused. Outputs: {args.run}/{RESULT_FILE}, "
                  f"{args.run}/{PLOT_FILE}")
    return 0


def _budgets(text: str | None) -> tuple[float, ...]:
    if text is None:
        return ()
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"--proxy-epochs {text!r}: expected comma-separated numbers of epochs, e.g. 0.5,1") from None


def _agreement_cells(found: dict | None) -> list[str]:
    if not found:
        return ["-", "-"]
    tau, rho = found["kendall_tau"], found["spearman_rho"]
    return [f"{tau['value']:.2f} [{tau['low']:.2f}, {tau['high']:.2f}]",
            f"{rho['value']:.2f} [{rho['low']:.2f}, {rho['high']:.2f}]"]


def measurement_table(measured: dict, run: str) -> Table:
    """Every score at every budget, the cost counts and the noise ceiling against the reference."""
    table = Table(title=f"Proxy measurement of {run}: {measured['usable']} sampled candidates, reference = mean "
                        f"accuracy over {len(measured['seeds'])} seed(s)")
    for name in ("what", "budget (epochs)", "Kendall tau [95%]", "Spearman rho [95%]"):
        table.add_column(name, justify="left" if name == "what" else "right")
    for budget, scores in measured["scores"].items():
        for name, found in scores.items():
            table.add_row(name, budget, *_agreement_cells(found))
    for name, found in measured["baselines"].items():
        table.add_row(f"{name} (count)", "-", *_agreement_cells(found))
    if "noise_ceiling" in measured:
        table.add_row("reference seed 1 vs 2 (noise ceiling)", "-", *_agreement_cells(measured["noise_ceiling"]))
    return table

