"""The flags that say where trainings run: ``--runner`` and the Ray runner's options.

``nas search``, ``nas scale grid`` and ``nas train --seeds`` send their trainings through the same
runners (``runners/``), so they take the same flags with the same meaning, defined here once.
"""

from __future__ import annotations

import argparse
from typing import Any

from nas.errors import ConfigError

# The Ray runner's options that have a flag (argparse dests, the RayRunner keyword names).
RUNNER_OPTIONS = ("address", "node_ip_address", "workers", "gpus_per_trial", "cpus_per_trial", "retries",
                  "scheduler")


def add_runner_flags(group: Any, *, what: str = "trial", scheduler: bool = True) -> None:
    """``--runner`` and the Ray flags, on ``group``; ``what`` names the unit of work in the help
    (a search's trial, a seed of ``nas train``); ``scheduler``: also ``--scheduler`` (early stopping)."""
    group.add_argument("--runner", default="local", help="local (in-process) or ray")
    group.add_argument("--address", default=None, help="ray: cluster address (HOST:PORT of the head, auto or "
                                                       "ray://HOST:PORT); default starts a local Ray")
    group.add_argument("--node-ip-address", default=None,
                       help="ray: this machine's Ray node address the driver attaches to (multi-homed hosts)")
    group.add_argument("--workers", type=int, default=None, help=f"ray: concurrent {what}s (default: what fits)")
    group.add_argument("--gpus-per-trial", type=float, default=None,
                       help=f"ray: GPUs per {what} (default 1 when the cluster has GPUs, else 0)")
    group.add_argument("--cpus-per-trial", type=float, default=None,
                       help=f"ray: CPUs per {what}, also its torch threads (default 1)")
    group.add_argument("--retries", type=int, default=None,
                       help=f"ray: retries of a {what} whose worker died (default 2)")
    if scheduler:
        group.add_argument("--scheduler", default=None, help="ray: fifo or asha (early stopping on minival accuracy)")


def runner_options(args: argparse.Namespace) -> dict[str, Any]:
    """The Ray options the flags gave (those left unset are left out)."""
    return {n: getattr(args, n) for n in RUNNER_OPTIONS if getattr(args, n, None) is not None}


def check_runner_flags(args: argparse.Namespace) -> dict[str, Any]:
    """:func:`runner_options`, refusing a Ray flag given without ``--runner ray`` (it would be ignored)."""
    options = runner_options(args)
    if args.runner != "ray" and options:
        raise ConfigError(f"--{next(iter(options)).replace('_', '-')} applies to --runner ray only")
    return options


__all__ = ["RUNNER_OPTIONS", "add_runner_flags", "check_runner_flags", "runner_options"]
