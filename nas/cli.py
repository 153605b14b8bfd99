"""The ``nas`` command line: parses arguments and calls the library, nothing more.

Each subcommand lives in ``nas/commands/<name>.py`` and exposes ``add_parser(subparsers)`` which
registers its parser and sets ``func`` (a callable taking the parsed namespace and returning an exit
code). A :class:`~nas.errors.NasError` becomes one line ``error: ...`` and exit code 2; Ctrl-C and
SIGTERM become ``error: interrupted`` (130) and ``error: terminated`` (143) after the command cleaned up.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from nas.errors import NasError, with_flag
from nas.interrupts import exit_code, message, stop_signals

# Subcommand modules, in the order `nas --help` lists them.
COMMANDS = ("search", "results", "fidelity", "show", "train", "scale", "pareto", "export", "bench",
            "latency_table")


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad flags in the same one-line form, with exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"error: {message}\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nas", description="Neural architecture search for MBConv / Fused-MBConv networks.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"nas.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"nas.commands.{name}":
                continue  # command not built yet
            raise
        module.add_parser(sub)
    return parser


def flag_names(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, str]:
    """``dest -> --long-flag`` for the command that ran (and its sub-command), to word library errors."""
    names: dict[str, str] = {}
    current: argparse.ArgumentParser | None = parser
    while current is not None:
        chosen = None
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                chosen = action.choices.get(getattr(args, action.dest, None) or "")
            elif action.option_strings:
                names.setdefault(action.dest, max(action.option_strings, key=len))
        current = chosen
    return names


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; Ctrl-C and SIGTERM stop it cleanly with one line (:mod:`nas.interrupts`)."""
    with stop_signals():
        try:
            return _run(argv)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (Terminated): the command has cleaned up
            sys.stderr.write(message(exc) + "\n")
            return exit_code(exc)


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a bad flag (2, already reported in one line)
        return int(exc.code or 0)
    import optuna  # optuna: imported when a study is used

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial would drown the progress bar
    try:
        return int(args.func(args) or 0)
    except NasError as exc:
        sys.stderr.write(f"error: {with_flag(exc, flag_names(parser, args))}\n")
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
