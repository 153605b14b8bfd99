"""``nas ... --help``: every option of every command shows its default once."""

from __future__ import annotations

import argparse
import re

from nas.cli import HelpFormatter, build_parser

DEFAULT = re.compile(r"default", re.IGNORECASE)


def every_parser(parser: argparse.ArgumentParser, name: str = "nas"):
    """``(name, parser)`` for the parser and each of its subcommands, at any depth."""
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from every_parser(sub, f"{name} {sub_name}")


def shown_help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The option's help as ``--help`` prints it (the formatter's additions and %-expansion included)."""
    return parser._get_formatter()._expand_help(action)


def test_no_option_of_any_command_shows_two_defaults():
    doubled, seen = [], 0
    for name, parser in every_parser(build_parser()):
        parser.format_help()  # every parser's help renders
        for action in parser._actions:
            if not action.help or action.help == argparse.SUPPRESS:
                continue
            seen += 1
            shown = shown_help(parser, action)
            if len(DEFAULT.findall(shown)) > max(1, len(DEFAULT.findall(action.help))):
                doubled.append(f"{name} {'/'.join(action.option_strings) or action.dest}: {shown}")
    assert seen > 100  # the walk reached the subcommands' options
    assert doubled == []


def test_a_default_not_mentioned_in_the_help_is_shown_once():
    parser = argparse.ArgumentParser(formatter_class=HelpFormatter)
    parser.add_argument("--epochs", type=int, default=3, help="training epochs")
    parser.add_argument("--size", default=None, help="image size (default: the dataset's)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    text = " ".join(parser.format_help().split())
    assert "training epochs (default: 3)" in text
    assert "image size (default: the dataset's)" in text and "None" not in text
    assert "no progress bar (default" not in text
