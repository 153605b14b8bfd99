"""``nas scale grid`` and ``nas scale apply``: EfficientNet's compound scaling on the user's own base.

``grid`` is step 1 (train the alpha/beta/gamma grid at phi = 1 and choose a point), ``apply`` is
step 2 (fix the coefficients and write B1..BN). The dataset, proxy and runner flags are those of
``nas search`` (imported from :mod:`nas.commands.search`, not repeated here).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import fields
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

from rich.table import Table

from nas.api import load_spec
from nas.commands.console import SearchProgress, fmt_count, fmt_float, make_console, warn_if_busy
from nas.commands.report import report_at_end
from nas.commands.runner_flags import check_runner_flags, runner_options
from nas.commands.search import add_run_flags, add_training_flags
from nas.compound import (
    Coefficients,
    apply_coefficients,
    apply_official,
    check_phi,
    enumerate_grid,
    model_document,
    ratio_table,
)
from nas.errors import ConfigError
from nas.fileio import atomic_write_json, read_json_object
from nas.threads import plan_threads


def add_parser(sub: Any) -> None:
    p = sub.add_parser("scale", help="compound scaling: grid-search alpha, beta, gamma; generate B1..BN",
                       description="EfficientNet's compound scaling: depth alpha^phi, width beta^phi, resolution "
                                   "gamma^phi with alpha*beta^2*gamma^2 ~ 2, so each phi step about doubles the "
                                   "FLOPs (multiply-adds).")
    scale_sub = p.add_subparsers(dest="scale_command", metavar="{grid,apply}", parser_class=type(p))
    scale_sub.required = True
    _add_grid(scale_sub)
    _add_apply(scale_sub)


# ------------------------------------------------------------------------------------------ grid
def _add_grid(sub: Any) -> None:
    p = sub.add_parser(
        "grid", help="train a small alpha/beta/gamma grid on a base network and choose a point",
        description="Enumerate alpha, beta, gamma >= 1 on a grid, keep the points whose cost ratio is within "
                    "--tol (relative) of 2^phi, always add the paper's (1.2, 1.1, 1.15) as the reference, train "
                    "each point's proxy briefly and rank them. Writes study.db, trials.csv, scaling.csv and "
                    "scaling.json (the chosen alpha, beta, gamma) into --out.")
    g = p.add_argument_group("the grid")
    g.add_argument("--base", default=None,
                   help="base network: a preset name, RUN/b0.json or a spec JSON file (not needed with --resume)")
    g.add_argument("--phi", type=float, default=1.0, help="compound coefficient of the grid (the paper fixes 1)")
    g.add_argument("--step", type=float, default=0.05, help="grid step of alpha, beta and gamma")
    g.add_argument("--max", type=float, default=1.5, help="largest alpha, beta, gamma (the grid starts at 1)")
    g.add_argument("--tol", type=float, default=0.1,
                   help="relative tolerance: keep points with |ratio / 2^phi - 1| <= tol")
    g.add_argument("--constraint", default="formula",
                   help="formula: filter by (alpha*beta^2*gamma^2)^phi; actual: by the counted multiply-add "
                        "ratio of the rounded network")
    g.add_argument("--dry-run", action="store_true", help="print the predicted vs actual table and stop")
    g = p.add_argument_group("ranking")
    g.add_argument("--objective", default="accuracy",
                   help="accuracy (the paper's criterion), mnas or v2 (the rewards of nas search)")
    g.add_argument("--cost", default="macs", help="mnas cost: macs, latency or params")
    g.add_argument("--target", default=None, help="mnas target T with its unit, e.g. 800M")
    g.add_argument("--w", type=float, default=None, help="override the cost exponent w")
    g.add_argument("--v", type=float, default=None, help="v2 objective: params exponent")
    add_training_flags(p, search=False)
    add_run_flags(p)
    p.set_defaults(func=run_grid)


def _grid_table(frame: Any, title: str, trained: bool = True, reward: bool = False) -> Any:
    """Predicted vs actual cost ratio per point; with ``trained``, the accuracy and rank too."""
    table = Table(title=title)
    columns = ["", "alpha", "beta", "gamma", "predicted", "actual", "res", "MACs"]
    columns += ["accuracy"] + (["reward"] if reward else []) + ["rank"] if trained else ["params"]
    for name in columns:
        table.add_column(name, justify="left" if name == "" else "right")
    for row in frame.to_dict("records"):
        mark = ("*" if row.get("chosen") else "") + ("ref" if row["reference"] else "")
        if not row["in_constraint"]:
            mark += " out"
        cells = [mark, f"{row['alpha']:g}", f"{row['beta']:g}", f"{row['gamma']:g}", f"{row['predicted']:.3f}",
                 f"{row['actual']:.3f}", str(row["resolution"]), fmt_count(row["macs"])]
        if trained:
            rank = row.get("rank")
            status = row.get("status")
            cells.append(fmt_float(row.get("accuracy")) if status == "ok" else str(status))
            if reward:
                cells.append(fmt_float(row.get("reward")))
            cells.append("-" if rank is None or rank != rank else str(int(rank)))
        else:
            cells.append(fmt_count(row["params"]))
        table.add_row(*cells)
    return table


def run_grid(args: argparse.Namespace) -> int:
    import optuna  # optuna: imported when a study is used

    # torch: the library loads when the command runs, not for --help
    from nas.jobs.scale_grid import ScaleGrid, ScaleGridConfig

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    console = make_console()
    if args.resume and not args.out:
        raise ConfigError("--resume needs --out RUN (the folder of the grid run to continue)")
    check_runner_flags(args)
    overrides = None
    if args.resume:
        base: Any = None
        config = None
        overrides = _typed_settings(args, ScaleGridConfig)
    else:
        if args.base is None:
            raise ConfigError("--base is required: a preset name, RUN/b0.json or a spec JSON file")
        base = load_spec(args.base)
        config = ScaleGridConfig(
            base=base.to_dict(), base_source=str(args.base), phi=args.phi, step=args.step, max=args.max,
            tol=args.tol, constraint=args.constraint, objective=args.objective, cost=args.cost, target=args.target,
            w=args.w, v=args.v, dataset=args.dataset, data_dir=args.data_dir, train_subset=args.train_subset,
            epochs=args.epochs,
            batch_size=args.batch_size, proxy_width=args.proxy_width, proxy_depth=args.proxy_depth,
            proxy_resolution=args.proxy_resolution, runner=args.runner, runner_options=runner_options(args),
            device=args.device, seed=args.seed, data_cache=args.data_cache, rebuild_cache=bool(args.rebuild_cache),
            score=args.score)
    if args.dry_run:
        return _dry_run(console, config, base)
    out = Path(args.out) if args.out else Path("runs") / ("scale-" + datetime.now().strftime("%Y%m%d-%H%M%S"))
    progress = SearchProgress(console, enabled=not args.quiet)
    grid = ScaleGrid(config, out, storage=args.storage, resume=args.resume,  # type: ignore[arg-type]
                     on_point=progress.update, overrides=overrides)
    done = len(grid.store.records())
    c = grid.config
    threads = plan_threads(c.runner, c.runner_options)
    console.print(f"[bold]nas scale grid[/bold] -> {out}  (base {c.base_source or grid.base.name}; phi {c.phi:g}; "
                  f"{len(grid.points)} points, constraint {c.constraint} within {c.tol * 100:g}% of "
                  f"{2 ** c.phi:g}x; ranked by {c.objective}; dataset {c.dataset}; "
                  f"{'resuming at ' + str(done) if args.resume else 'new run'}; {threads.describe()})",
                  soft_wrap=True)  # one line in a log, however long
    warn_if_busy(console, threads)
    start = time.perf_counter()
    with progress.running(total=len(grid.points), completed=done):
        result = grid.run()
    with grid.store:  # run() closed it; the reads below open connections again, closed once they are done
        _print_outcome(grid, result, out, console, time.perf_counter() - start)
    return 0


def _print_outcome(grid: Any, result: Any, out: Path, console: Any, wall_s: float) -> None:
    """The finished grid's table, report and chosen point."""
    c = grid.config
    console.print(_grid_table(grid.dataframe(), f"Compound scaling grid of {out} (* chosen, ref: the paper's "
                                                f"point, out: outside the constraint)", reward=c.objective != "accuracy"))
    report = report_at_end(out, console, storage=grid.store.storage_url)
    console.print(f"{result.trained} trained, {result.reused} reused (same proxy), "
                  f"{wall_s:.0f} s.  Outputs: {out}/scaling.csv, {out}/scaling.json"
                  + (f", {report}" if report else ""))
    if result.chosen is not None:
        ch = result.chosen
        console.print(f"chosen: alpha {ch.choices['alpha']:g}, beta {ch.choices['beta']:g}, "
                      f"gamma {ch.choices['gamma']:g} (trial {ch.number}, accuracy {ch.metrics.accuracy:.4f}); "
                      f"next: nas scale apply --from {out}/scaling.json --phi 7")
    else:
        console.print("no point trained successfully: nothing chosen")


def _typed_settings(args: argparse.Namespace, config_class: Any) -> dict[str, Any]:
    """The grid settings typed on a resume: each must equal the stored one (the job refuses others)."""
    typed = getattr(args, "given", frozenset())
    names = {f.name for f in fields(config_class)}
    settings = {dest: getattr(args, dest) for dest in typed if dest in names and dest != "base"}
    if "base" in typed:
        settings["base_source"] = str(args.base)
    if runner_options(args):
        settings["runner_options"] = runner_options(args)
    if "rebuild_cache" in settings:
        settings["rebuild_cache"] = bool(settings["rebuild_cache"])
    return settings


def _dry_run(console: Any, config: Any, base: Any) -> int:
    if config is None:
        raise ConfigError("--dry-run needs --base (it does not read a run)")
    points = enumerate_grid(base, phi=config.phi, step=config.step, high=config.max, tol=config.tol,
                            constraint=config.constraint)
    console.print(_grid_table(ratio_table(points), f"{len(points)} grid points for {config.base_source} "
                                                   f"(phi {config.phi:g}, {config.constraint} constraint)",
                              trained=False))
    return 0


# ----------------------------------------------------------------------------------------- apply
def _add_apply(sub: Any) -> None:
    p = sub.add_parser(
        "apply", help="write b1.json .. bN.json of a base scaled by fixed alpha, beta, gamma",
        description="Scale a base by depth alpha^phi, width beta^phi and resolution gamma^phi for phi = 1..N and "
                    "write bN.json files (loadable wherever a spec is: nas show, nas train). Resolutions round "
                    "to the nearest multiple of 4 (every published EfficientNet resolution is one).")
    p.add_argument("--base", default=None,
                   help="base network: a preset name, RUN/b0.json or a spec JSON file (default with --from: the "
                        "grid's base)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--alpha", type=float, default=None, help="depth coefficient (with --beta and --gamma)")
    src.add_argument("--from", dest="from_", default=None, metavar="SCALING_JSON",
                     help="RUN/scaling.json of nas scale grid (or its RUN folder)")
    src.add_argument("--official", action="store_true",
                     help="the published EfficientNet B1..B7 (width, depth, resolution, dropout)")
    p.add_argument("--beta", type=float, default=None, help="width coefficient")
    p.add_argument("--gamma", type=float, default=None, help="resolution coefficient")
    p.add_argument("--phi", type=int, default=7, help="write b1..bN up to this phi")
    p.add_argument("--out", default=".", help="folder for b1.json .. bN.json")
    p.set_defaults(func=run_apply)


def _read_scaling_json(value: str) -> dict[str, Any]:
    path = Path(value)
    if path.is_dir():
        path = path / "scaling.json"
    if not path.is_file():
        raise ConfigError(f"--from {value}: no such file (expected RUN/scaling.json of nas scale grid)")
    data = read_json_object(path, "scaling.json", shown=f"--from {value}", error=ConfigError)
    if not all(k in data for k in ("alpha", "beta", "gamma")):
        raise ConfigError(f"--from {value}: holds no alpha, beta, gamma (is it a scaling.json?)")
    return data


def resolve_apply(args: argparse.Namespace) -> tuple[Any, Any, str]:
    """(base spec, Coefficients or None for --official, source label) from the apply flags."""
    if args.official:
        if args.beta is not None or args.gamma is not None:
            raise ConfigError("--beta / --gamma go with --alpha, not with --official")
        if args.base is None:
            raise ConfigError("--base is required: a preset name, RUN/b0.json or a spec JSON file")
        return load_spec(args.base), None, "official EfficientNet B1..B7"
    if args.from_ is not None:
        if args.beta is not None or args.gamma is not None:
            raise ConfigError("--beta / --gamma go with --alpha, not with --from")
        data = _read_scaling_json(args.from_)
        coefficients = Coefficients(data["alpha"], data["beta"], data["gamma"])
        if args.base is not None:
            base = load_spec(args.base)
        elif "base" in data:
            base = load_spec(data["base"])
        else:
            raise ConfigError(f"--from {args.from_}: holds no base; pass --base")
        return base, coefficients, f"{args.from_}"
    if args.beta is None or args.gamma is None:
        raise ConfigError("--alpha needs --beta and --gamma too")
    if args.base is None:
        raise ConfigError("--base is required: a preset name, RUN/b0.json or a spec JSON file")
    coefficients = Coefficients(args.alpha, args.beta, args.gamma)
    return load_spec(args.base), coefficients, "coefficients"


def _apply_table(models: Sequence[Any], title: str, official: bool) -> Any:
    table = Table(title=title)
    names = ["phi", "depth", "width", "res x", "resolution", "params", "MACs"]
    if official:
        names += ["1.2^phi", "1.1^phi", "res 1.15^phi"]
    for name in names:
        table.add_column(name, justify="right")
    for m in models:
        cells = [str(m.phi), f"{m.depth:.3f}", f"{m.width:.3f}", f"{m.resolution_factor:.3f}", str(m.resolution),
                 fmt_count(m.params), fmt_count(m.macs)]
        if official:
            cells += [f"{m.paper_depth:.3f}", f"{m.paper_width:.3f}", str(m.paper_resolution)]
        table.add_row(*cells)
    return table


def run_apply(args: argparse.Namespace) -> int:
    check_phi(args.phi, integer=True)
    base, coefficients, source = resolve_apply(args)
    models = apply_official(base, args.phi) if coefficients is None else \
        apply_coefficients(base, coefficients, args.phi)
    out = Path(args.out)
    if args.phi >= 1:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"--out {out}: cannot create folder ({exc.strerror})") from None
    written = []
    for m in models[1:]:
        path = out / f"b{m.phi}.json"
        try:
            atomic_write_json(path, model_document(m, base, coefficients, source))
        except OSError as exc:
            raise ConfigError(f"--out {out}: cannot write {path.name} ({exc.strerror})") from None
        written.append(path.name)
    if coefficients is None:
        title = "Official EfficientNet coefficients (left) and the powers of the paper's (1.2, 1.1, 1.15) (right)"
    else:
        title = (f"alpha {coefficients.alpha:g}, beta {coefficients.beta:g}, gamma {coefficients.gamma:g} "
                 f"(alpha*beta^2*gamma^2 = {coefficients.product:.3f})")
    console = make_console()
    console.print(_apply_table(models, title, official=coefficients is None))
    console.print(f"base {base.name or 'spec'} ({base.key()}); resolution rounded to the nearest multiple of 4; "
                  + (f"wrote {', '.join(written)} to {out}" if written else "nothing written (--phi 0)"))
    return 0
