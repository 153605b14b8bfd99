"""``nas search``: run or resume an architecture search."""

from __future__ import annotations

import argparse
import time
from datetime import datetime
from pathlib import Path
from typing import Any

DEFAULTS = {"space": "efficientnet", "controller": "rl", "objective": "mnas", "dataset": "digits", "trials": 16}


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "search", help="search a space of MBConv / Fused-MBConv networks",
        description="Search a factorized space: a controller proposes networks, each trains briefly as a "
                    "smaller proxy, and the reward combines accuracy with the full-size network's cost. "
                    "With no flags: the efficientnet space on the embedded digits data, the rl controller "
                    "and the MnasNet reward ACC*(MACs/400M)^-0.07.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("what to search")
    g.add_argument("--space", default="efficientnet",
                   help="search space: efficientnet, mnasnet, efficientnetv2, or a FILE.yaml")
    g.add_argument("--controller", default="rl", help="rl (LSTM + PPO), random, tpe or nsga2")
    g.add_argument("--controller-option", action="append", default=[], metavar="KEY=VALUE",
                   help="extra controller option, repeatable (e.g. batch_size=8)")
    g = p.add_argument_group("reward")
    g.add_argument("--objective", default="mnas",
                   help="mnas: ACC*(x/T)^w; v2: ACC*(step/ref)^w*(params/ref)^v")
    g.add_argument("--cost", default="macs", help="mnas cost x: macs, latency or params")
    g.add_argument("--target", default=None,
                   help="mnas target T with its unit: 400M (multiply-adds), 75ms (latency), 5M (params); "
                        "default 400M multiply-adds")
    g.add_argument("--constraint", default="soft", help="soft (w=-0.07) or hard (w=0 below T, -1 above)")
    g.add_argument("--w", type=float, default=None, help="override the cost exponent w")
    g.add_argument("--v", type=float, default=None, help="v2 objective: params exponent (default -0.05)")
    g.add_argument("--step-time-ref", type=float, default=None, dest="step_time_ref_ms",
                   help="v2 objective: reference step time in ms (default: measured on the backbone's proxy)")
    g.add_argument("--params-ref", type=float, default=None,
                   help="v2 objective: reference params (default: the backbone's)")
    add_training_flags(p)
    add_run_flags(p)
    p.set_defaults(func=run)


def add_training_flags(p: Any, search: bool = True) -> None:
    """Dataset and proxy-training flags, shared with ``nas scale grid`` (``search=False`` leaves out
    --trials and --target-resolution, which only a search has)."""
    g = p.add_argument_group("data and proxy training")
    g.add_argument("--dataset", default="digits",
                   help="digits (embedded), mnist, fashion-mnist, cifar10, cifar100, imagefolder")
    g.add_argument("--data-dir", default=None, help="folder with the dataset's files")
    if search:
        g.add_argument("--trials", type=int, default=None, help="number of candidates (default 16; on --resume: "
                                                                 "the stored value)")
    g.add_argument("--epochs", type=float, default=None, help="proxy training epochs (default: trainer's budget)")
    g.add_argument("--batch-size", type=int, default=None, help="proxy training batch size (default: trainer's)")
    g.add_argument("--proxy-width", type=float, default=0.5, help="width multiplier of the trained proxy")
    g.add_argument("--proxy-depth", type=float, default=0.5, help="depth multiplier of the trained proxy")
    g.add_argument("--proxy-resolution", type=int, default=32, help="image size the proxy trains at")
    if search:
        g.add_argument("--target-resolution", type=int, default=None,
                       help="resolution at which the full-size cost is counted (default: the space's, 224 for "
                            "efficientnet)")


def add_run_flags(p: Any) -> None:
    """Runner, device, storage, output folder, seed and resume flags, shared with ``nas scale grid``."""
    g = p.add_argument_group("where it runs and where it is stored")
    g.add_argument("--runner", default="local", help="local (in-process) or ray")
    g.add_argument("--address", default=None, help="ray: cluster address (HOST:PORT of the head, auto or "
                                                   "ray://HOST:PORT); default starts a local Ray")
    g.add_argument("--node-ip-address", default=None,
                   help="ray: this machine's Ray node address the driver attaches to (multi-homed hosts)")
    g.add_argument("--workers", type=int, default=None, help="ray: concurrent trials (default: what fits)")
    g.add_argument("--gpus-per-trial", type=float, default=None,
                   help="ray: GPUs per trial (default 1 when the cluster has GPUs, else 0)")
    g.add_argument("--cpus-per-trial", type=float, default=None, help="ray: CPUs per trial (default 1)")
    g.add_argument("--retries", type=int, default=None, help="ray: retries of a trial whose worker died (default 2)")
    g.add_argument("--scheduler", default=None, help="ray: fifo or asha (early stopping on minival accuracy)")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:i")
    g.add_argument("--storage", default=None, help="SQLAlchemy URL of the study (default sqlite:///RUN/study.db)")
    g.add_argument("--out", default=None, help="run folder (default runs/<timestamp>)")
    g.add_argument("--seed", type=int, default=0, help="seed of the controller, the data split and training")
    g.add_argument("--resume", action="store_true", help="continue the run in --out after a stop or a crash")
    g.add_argument("--quiet", action="store_true", help="no progress bar")


def _parse_options(items: list[str]) -> dict[str, Any]:
    from nas.errors import ConfigError
    import json

    options: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--controller-option {item!r}: expected KEY=VALUE")
        key, value = item.split("=", 1)
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def runner_options(args: argparse.Namespace) -> dict[str, Any]:
    names = ("address", "node_ip_address", "workers", "gpus_per_trial", "cpus_per_trial", "retries", "scheduler")
    return {n: getattr(args, n) for n in names if getattr(args, n) is not None}


def run(args: argparse.Namespace) -> int:
    from nas.errors import ConfigError
    from nas.search import SearchConfig

    if args.resume and not args.out:
        raise ConfigError("--resume needs --out RUN (the folder of the run to continue)")
    out = Path(args.out) if args.out else Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S")
    if args.runner != "ray" and runner_options(args):
        raise ConfigError(f"--{next(iter(runner_options(args))).replace('_', '-')} applies to --runner ray only")
    config = SearchConfig(
        space=args.space, controller=args.controller, objective=args.objective, cost=args.cost, target=args.target,
        constraint=args.constraint, w=args.w, v=args.v, step_time_ref_ms=args.step_time_ref_ms,
        params_ref=args.params_ref, dataset=args.dataset, data_dir=args.data_dir,
        trials=args.trials if args.trials is not None else DEFAULTS["trials"], epochs=args.epochs,
        batch_size=args.batch_size, proxy_width=args.proxy_width, proxy_depth=args.proxy_depth,
        proxy_resolution=args.proxy_resolution, target_resolution=args.target_resolution, runner=args.runner,
        runner_options=runner_options(args), device=args.device, seed=args.seed,
        controller_options=_parse_options(args.controller_option))
    return execute(config, out, storage=args.storage, resume=args.resume, trials_given=args.trials is not None,
                   quiet=args.quiet)


def execute(config: Any, out: Path, storage: str | None, resume: bool, trials_given: bool, quiet: bool) -> int:
    import optuna
    from rich.console import Console

    from nas.search import Search
    from nas.store import RunStore
    from nas.reporting import SearchProgress, leaderboard_table

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    console = Console(stderr=False)
    if resume:
        stored = RunStore.open(out, storage).config
        if not trials_given:
            from dataclasses import replace

            config = replace(config, trials=int(stored.get("trials", config.trials)))
    progress = SearchProgress(console, enabled=not quiet)
    search = Search(config, out, storage=storage, resume=resume, on_trial=progress.update)
    done = len(search.store.records())
    if search.config.trials < done:
        from nas.errors import ConfigError

        raise ConfigError(f"--trials {search.config.trials} is below the {done} trials this run already holds")
    console.print(f"[bold]nas search[/bold] -> {out}  ({search.comps.space.describe()}; "
                  f"{search.comps.objective.describe()}; controller {search.config.controller}; "
                  f"dataset {search.config.dataset}; {'resuming at ' + str(done) if resume else 'new run'})")
    start = time.perf_counter()
    with progress.running(total=search.config.trials, completed=done):
        result = search.run()
    console.print(leaderboard_table(result.store.ranked()[:10], title=f"Top candidates of {out}"))
    console.print(f"{result.trained} trained, {result.reused} repeats reused, "
                  f"{time.perf_counter() - start:.0f} s.  Outputs: {out}/trials.csv, {out}/b0.json, "
                  f"{out}/study.db" if search.store.storage_url.startswith("sqlite") else
                  f"{result.trained} trained, {result.reused} repeats reused.  Outputs: {out}/trials.csv, {out}/b0.json")
    if result.best is not None:
        console.print(f"B0: trial {result.best.number}, reward {result.best.reward:.4f}, "
                      f"accuracy {result.best.metrics.accuracy:.4f}: {result.best.arch}")
    return 0
