"""``nas results``: the table of a search run, ranked by reward."""

from __future__ import annotations

import argparse
from typing import Any

from nas.commands.console import leaderboard_table, make_console, rerank_table
from nas.errors import ConfigError
from nas.fileio import atomic_write_text
from nas.ranking import RERANK, choose_b0, ties_with_b0
from nas.ranking import ranked as rank
from nas.store import RunStore, open_run


def add_parser(sub: Any) -> None:
    p = sub.add_parser("results", help="print or export the trials of a run")
    p.add_argument("run", help="run folder (the --out of nas search)")
    p.add_argument("--top", type=int, default=10, help="how many ranked candidates to print")
    p.add_argument("--csv", default=None, help="write every trial to this CSV file (trials.csv columns)")
    p.add_argument("--storage", default=None, help="storage URL, when the run used --storage")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.top <= 0:
        raise ConfigError(f"--top must be a positive integer, got {args.top}")
    with open_run(args.run, args.storage) as store:
        return _print_results(args, store)


def _print_results(args: argparse.Namespace, store: RunStore) -> int:
    """The leaderboard, the trial counts, B0 and its ties; ``--csv`` writes every trial."""
    console = make_console()
    frame = store.dataframe()
    ranked = rank(store.records())
    counts = frame["status"].value_counts().to_dict() if len(frame) else {}
    console.print(leaderboard_table(ranked[: args.top], title=f"{args.run}: top {min(args.top, len(ranked))} "
                                                             f"of {len(ranked)} distinct networks"))
    console.print("trials: " + (", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"))
    choice = choose_b0(store.records())
    if choice is not None and choice.ranked_by == RERANK:
        console.print(rerank_table(choice, title="Re-ranked leaders (* B0: best mean re-ranked reward)"))
    if choice is not None:
        console.print(f"B0: trial {choice.record.number} ({'re-ranked' if choice.ranked_by == RERANK else 'search'} "
                      f"reward {choice.reward:.4f})")
        ties = ties_with_b0(choice)
        if ties:
            console.print("tied with B0 (exact McNemar test on the same minival images, p >= 0.05): "
                          + ", ".join(f"trial {c.search.number} (p = {t.p_value:.2f})" for c, t in ties))
    if args.csv:
        try:
            atomic_write_text(args.csv, frame.to_csv(index=False))
        except OSError as exc:
            raise ConfigError(f"--csv {args.csv}: cannot write ({exc.strerror})") from None
        console.print(f"wrote {len(frame)} rows to {args.csv}")
    return 0
