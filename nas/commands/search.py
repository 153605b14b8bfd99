"""``nas search``: run or resume an architecture search."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from nas.commands.console import SearchProgress, leaderboard_table, make_console, rerank_table, warn_if_busy
from nas.commands.report import report_at_end
from nas.commands.runner_flags import RUNNER_OPTIONS, add_runner_flags, check_runner_flags, runner_options
from nas.errors import ConfigError
from nas.metrics import DEFAULT_SCORE
from nas.ranking import RERANK, choose_b0, ranked, ties_with_b0
from nas.threads import plan_threads


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "search", help="search a space of MBConv / Fused-MBConv networks",
        description="Search a factorized space: a controller proposes networks, each trains briefly as a "
                    "smaller proxy, and the reward combines accuracy with the full-size network's cost. "
                    "With no flags: the efficientnet space on the embedded digits data, the rl controller "
                    "and the MnasNet reward ACC*(MACs/400M)^-0.07.")
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
    g.add_argument("--latency-table", default=None, metavar="TABLE_JSON",
                   help="with --cost latency: predict each candidate's latency from this table (nas latency-table "
                        "build, made on the target device) instead of timing it on the training worker")
    add_training_flags(p)
    g = p.add_argument_group("re-ranking the leaders (a second stage of the same run)")
    g.add_argument("--rerank", type=int, default=None, metavar="K",
                   help="train the top K distinct candidates again at a higher fidelity and choose B0 on that "
                        "(default 0: no re-ranking)")
    g.add_argument("--rerank-epochs", type=float, default=None, help="re-rank epochs (default: twice the search's)")
    g.add_argument("--rerank-seeds", type=int, default=None, help="training seeds per re-ranked candidate (default 1)")
    g.add_argument("--rerank-width", type=float, default=None, help="re-rank proxy width (default: the search's)")
    g.add_argument("--rerank-depth", type=float, default=None, help="re-rank proxy depth (default: the search's)")
    g.add_argument("--rerank-resolution", type=int, default=None,
                   help="re-rank proxy resolution (default: the search's)")
    add_run_flags(p)
    p.add_argument("--study", default=None, dest="study_name",
                   help="name of the study in --storage; several processes given the same storage and study name "
                        "(each with its own --out) work on one search")
    p.set_defaults(func=run)


def add_training_flags(p: Any, search: bool = True) -> None:
    """Dataset and proxy-training flags, shared with ``nas scale grid`` (``search=False`` leaves out
    --trials and --target-resolution, which only a search has)."""
    g = p.add_argument_group("data and proxy training")
    g.add_argument("--dataset", default="digits",
                   help="digits (embedded), mnist, fashion-mnist, cifar10, cifar100, imagefolder")
    g.add_argument("--data-dir", default=None, help="folder with the dataset's files")
    g.add_argument("--train-subset", type=int, default=None, metavar="N",
                   help="train on about N of the training images (a seeded, stratified draw; minival unchanged)")
    if search:
        g.add_argument("--trials", type=int, default=None, help="number of candidates (default 16; on --resume: "
                                                                 "the stored value unless given)")
    g.add_argument("--epochs", type=float, default=None, help="proxy training epochs (default: trainer's budget)")
    g.add_argument("--batch-size", type=int, default=None, help="proxy training batch size (default: trainer's)")
    g.add_argument("--proxy-width", type=float, default=0.5, help="width multiplier of the trained proxy")
    g.add_argument("--proxy-depth", type=float, default=0.5, help="depth multiplier of the trained proxy")
    g.add_argument("--proxy-resolution", type=int, default=32, help="image size the proxy trains at")
    if search:
        g.add_argument("--rungs", default=None, metavar="E,E,...",
                       help="successive halving: epochs per rung, increasing (e.g. 1,3,9); every candidate trains "
                            "at the first rung and the best 1/eta of each rung go on to the next, continuing "
                            "their training (instead of --epochs)")
        g.add_argument("--eta", type=int, default=3, help="with --rungs: promote the best 1/eta of each rung")
    g.add_argument("--score", default=DEFAULT_SCORE,
                   help="what the reward's quality term is, from the training already paid for: bn_accuracy (minival "
                        "accuracy after the BatchNorm statistics are re-estimated; it ranked best in BENCHMARKS.md), "
                        "accuracy (minival), minival_loss or train_loss (the last half of the steps); losses enter "
                        "as exp(-loss)")
    if search:
        g.add_argument("--target-resolution", type=int, default=None,
                       help="resolution at which the full-size cost is counted (default: the space's, 224 for "
                            "efficientnet)")


def add_run_flags(p: Any) -> None:
    """Runner, device, storage, output folder, seed and resume flags, shared with ``nas scale grid``."""
    g = p.add_argument_group("where it runs and where it is stored")
    add_runner_flags(g)
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:i")
    g.add_argument("--data-cache", default=None, metavar="DIR",
                   help="decode the dataset once into memory-mapped files in DIR at the proxy resolution and "
                        "train from them (data larger than memory; shared by the workers of a node)")
    g.add_argument("--rebuild-cache", action="store_true", default=None,
                   help="rebuild the --data-cache files when they hold another dataset, resolution or source")
    g.add_argument("--storage", default=None, help="SQLAlchemy URL of the study (default sqlite:///RUN/study.db)")
    g.add_argument("--out", default=None, help="run folder (default runs/<timestamp>)")
    g.add_argument("--seed", type=int, default=0, help="seed of the controller, the data split and training")
    g.add_argument("--resume", action="store_true", help="continue the run in --out after a stop or a crash")
    g.add_argument("--quiet", action="store_true", help="no progress bar")


def _parse_options(items: list[str]) -> dict[str, Any]:
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


def epochs_list(text: str | None, flag: str) -> tuple[float, ...] | None:
    """``"1,3,9"`` -> ``(1.0, 3.0, 9.0)``; one line naming ``flag`` for anything else."""
    if text is None:
        return None
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: expected comma-separated numbers of epochs, e.g. 1,3,9") from None


RERANK_FLAGS = ("rerank", "rerank_epochs", "rerank_seeds", "rerank_width", "rerank_depth", "rerank_resolution")


def run(args: argparse.Namespace) -> int:
    from nas.jobs.search import Search, SearchConfig  # torch: the library loads when the command runs, not for --help

    if args.resume and not args.out:
        raise ConfigError("--resume needs --out RUN (the folder of the run to continue)")
    out = Path(args.out) if args.out else Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S")
    check_runner_flags(args)
    if args.study_name is not None and args.storage is None:
        raise ConfigError("--study names a study in a shared --storage; give --storage URL too (each process "
                          "keeps its own --out), or leave --study out")
    settings = search_settings(args)
    if args.resume:
        # The stored configuration is used. A setting typed again must equal the stored one, unless a
        # resume may change it (trials, re-ranking): Search refuses the others, naming them.
        config = SearchConfig()
        typed = getattr(args, "given", None)
        if typed is None:  # called without the CLI's record of the typed flags: the resumable ones set
            overrides = {n: v for n, v in settings.items() if n in Search.resumable and v is not None}
        else:
            overrides = {n: v for n, v in settings.items() if _typed(n, typed)}
    else:
        config = SearchConfig(**{k: v for k, v in settings.items() if v is not None or k not in NONE_MEANS_DEFAULT})
        overrides = None
    console = make_console()
    progress = SearchProgress(console, enabled=not args.quiet)
    search = Search(config, out, storage=args.storage, resume=args.resume, on_trial=progress.update,
                    study=args.study_name, overrides=overrides)
    return execute(search, out, console, progress, resumed=args.resume)


# Settings whose flag left unset means "the config's default" (the flag's default is None).
NONE_MEANS_DEFAULT = ("trials", *RERANK_FLAGS, "rebuild_cache")
# Config fields set by flags of another name.
FIELD_FLAGS = {"controller_options": ("controller_option",), "rungs": ("rungs",),
               "runner_options": RUNNER_OPTIONS}


def _typed(name: str, typed: frozenset[str]) -> bool:
    """Whether the user typed a flag that sets the config field ``name``."""
    return any(dest in typed for dest in FIELD_FLAGS.get(name, (name,)))


def search_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Every SearchConfig field the flags set (None where a flag was left at a None default)."""
    plain = ("space", "controller", "objective", "cost", "target", "constraint", "w", "v", "step_time_ref_ms",
             "params_ref", "dataset", "data_dir", "train_subset", "epochs", "batch_size", "proxy_width", "proxy_depth",
             "proxy_resolution", "target_resolution", "runner", "device", "seed", "latency_table", "data_cache",
             "score", "eta", "trials", *RERANK_FLAGS, "rebuild_cache")
    settings = {name: getattr(args, name) for name in plain}
    settings.update(runner_options=runner_options(args), controller_options=_parse_options(args.controller_option),
                    rungs=epochs_list(args.rungs, "--rungs"))
    return settings


def execute(search: Any, out: Path, console: Any, progress: Any, resumed: bool) -> int:
    """Run a prepared search with a progress bar, then print its leaderboard, B0 and what to trust."""
    done = len(search.store.records("search"))
    cfg = search.config
    threads = plan_threads(cfg.runner, cfg.runner_options)
    console.print(f"[bold]nas search[/bold] -> {out}  ({search.space.describe()}; "
                  f"{search.parts.objective.describe()}; controller {cfg.controller}; dataset {cfg.dataset}; "
                  f"{'resuming at ' + str(done) if resumed else 'new run'}; {threads.describe()})",
                  soft_wrap=True)  # one line in a log, however long
    warn_if_busy(console, threads)
    with progress.running(total=cfg.trials, completed=done):
        result = search.run()
    # run() closed the store; the reads below open connections again, closed here once they are done, not
    # whenever the garbage collector frees them (that checkpoints study.db under a later command)
    with result.store:
        return _print_outcome(result, out, console)


def _print_outcome(result: Any, out: Path, console: Any) -> int:
    """The finished search's leaderboard, report, B0 and ties; 1 when every trial failed."""
    store = result.store
    console.print(leaderboard_table(ranked(store.records())[:10], title=f"Top candidates of {out} (search stage)"))
    choice = choose_b0(store.records())
    if choice is not None and choice.ranked_by == RERANK:
        console.print(rerank_table(choice, title="Re-ranked leaders (* B0: best mean re-ranked reward)"))
    report = report_at_end(out, console, storage=store.storage_url)
    outputs = ", ".join(str(out / name) for name in ("trials.csv", "b0.json")) + \
        (f", {out / 'study.db'}" if store.storage_url.startswith("sqlite") else "") + (f", {report}" if report else "")
    console.print(f"{result.trained} trained, {result.reused} repeats reused, {result.failed} failed, "
                  f"{result.wall_time_s:.0f} s.  Outputs: {outputs}")
    _warn_about_chance(console, store)
    if choice is None:
        records = store.records()
        first = next(iter(result.first_errors.values()), None)
        reason = f"first error (trial {first[0]}): {first[1]}" if first else "no candidate finished"
        sys.stderr.write(f"error: all {len(records)} trials failed; {reason}\n")
        return 1
    b0 = choice.record
    how = (f"mean re-ranked reward {choice.reward:.4f} over {len(choice.candidate.rerank)} trial(s)"
           if choice.ranked_by == RERANK else f"reward {choice.reward:.4f}")
    console.print(f"B0: trial {b0.number}, {how}, accuracy {b0.metrics.accuracy:.4f}: {b0.arch}")
    ties = ties_with_b0(choice)
    if ties:
        names = ", ".join(f"trial {c.search.number} (p = {t.p_value:.2f})" for c, t in ties)
        console.print(f"Statistically tied with B0 (exact McNemar test on the same minival images, p >= 0.05): "
                      f"{names}. Re-rank with more seeds or epochs (--rerank, --rerank-seeds) or use more "
                      f"minival data to separate them.")
    return 0


def _warn_about_chance(console: Any, store: Any) -> None:
    """Say so when most candidates cannot be told from guessing, and name the flag that helps."""
    frame = store.dataframe()
    scored = frame[frame["at_chance"].notna() & frame["stage"].eq("search")] if len(frame) else frame
    if len(scored) and scored["at_chance"].astype(bool).mean() > 0.5:
        console.print(f"warning: {int(scored['at_chance'].astype(bool).sum())} of {len(scored)} candidates are at "
                      f"chance level (their accuracy's 95% interval includes 1/classes): the proxy budget is too "
                      f"small to learn; raise --epochs (or --proxy-width / --proxy-resolution)", style="yellow",
                      markup=False, highlight=False)
