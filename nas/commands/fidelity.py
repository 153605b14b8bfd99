"""``nas fidelity``: does the search's proxy rank candidates like a higher-fidelity training?"""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table

from nas.commands.console import SearchProgress, fmt_float, make_console


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "fidelity", help="check the proxy: re-train K candidates at a higher fidelity and compare rankings",
        description="Train TOP completed candidates of a search again at a higher fidelity (more epochs, a larger "
                    "proxy), spread over the range of rewards, and report Kendall's tau and Spearman's rho "
                    "between the two rankings with bootstrap intervals. Writes RUN/fidelity.json and "
                    "RUN/fidelity.png; the trials are a 'fidelity' stage of the run (resumable).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run", help="run folder of a finished search")
    p.add_argument("--top", type=int, required=True, metavar="K", help="how many candidates to train again")
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

    settings = FidelitySettings(top=args.top, epochs=args.epochs, width=args.width, depth=args.depth,
                                resolution=args.resolution)
    console = make_console()
    progress = SearchProgress(console, enabled=not args.quiet)
    with progress.running(total=args.top):
        result = run_fidelity(args.run, settings, storage=args.storage, on_trial=progress.update)
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
