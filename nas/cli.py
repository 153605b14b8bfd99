"""The ``nas`` command line: parses arguments and calls the library, nothing more.

Each subcommand lives in ``nas/commands/<name>.py`` and exposes ``add_parser(subparsers)`` which
registers its parser and sets ``func`` (a callable taking the parsed namespace and returning an exit
code). A :class:`~nas.errors.NasError` becomes one line ``error: ...`` and exit code 2; Ctrl-C and
SIGTERM become ``error: interrupted`` (130) and ``error: terminated`` (143) after the command cleaned up.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Any, Sequence

from nas.errors import NasError, with_flag
from nas.interrupts import exit_code, message, stop_signals
from nas.threads import short_spin_waits

# Subcommand modules, in the order `nas --help` lists them.
COMMANDS = ("search", "results", "report", "fidelity", "show", "train", "compare", "scale", "pareto", "export",
            "bench", "latency_table")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default once: appended only when its help does not already speak of one,
    and never for a default of None (no value) or a flag's False."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text.lower() or action.default is None or action.default is False:
            return text
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad flags in the same one-line form, with exit code 2; every parser of the
    command line (subcommands included) shows defaults through :class:`HelpFormatter` unless it asks
    for another formatter."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

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


def given_dests(argv: Sequence[str]) -> frozenset[str]:
    """The dests of the flags ``argv`` gives explicitly (a default, even an equal one, is not given).

    A resume keeps the run's stored settings: it must know which settings the user typed, to refuse
    one that differs instead of ignoring it. argparse fills every default in, so ``argv`` is parsed
    once more by a parser whose defaults are all suppressed.
    """
    parser = build_parser()
    parsers = [parser]
    while parsers:
        current = parsers.pop()
        current._defaults = {}
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
            elif action.option_strings:
                action.default = argparse.SUPPRESS
    return frozenset(vars(parser.parse_args(argv)))


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; Ctrl-C and SIGTERM stop it cleanly with one line (:mod:`nas.interrupts`)."""
    short_spin_waits()  # before torch loads OpenMP: waiting threads soon sleep instead of taking cores
    with stop_signals():
        try:
            return _run(argv)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (Terminated): the command has cleaned up
            sys.stderr.write(message(exc) + "\n")
            return exit_code(exc)
        except BrokenPipeError:  # `nas show ... | head`: the reader left; what it read is what it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
            return 141  # as a shell reports a process ended by SIGPIPE


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a bad flag (2, already reported in one line)
        return int(exc.code or 0)
    args.given = given_dests(argv)
    import optuna  # optuna: imported when a study is used

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial would drown the progress bar
    try:
        return int(args.func(args) or 0)
    except NasError as exc:
        sys.stderr.write(f"error: {with_flag(exc, flag_names(parser, args))}\n")
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
