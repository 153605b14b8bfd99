"""``nas report``: one self-contained HTML page of one or several runs (see :mod:`nas.report`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from nas.report import DEFAULT_TOP, REPORT_FILE, write_report


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "report", help="one HTML page of a run: settings, progress, leaderboard, frontier, fidelity, B0, failures",
        description="Write one self-contained HTML file (opens offline: scripts and data inline) showing a run at a "
                    "glance: its settings and what each stage cost, the reward of every trial and the best so far, "
                    "the leaderboard with accuracy intervals and ties with B0, the Pareto frontier, proxy fidelity "
                    "and rungs where the run has them, B0 drawn stage by stage, and its failures. Several runs "
                    "share the progress and frontier plots. A run still in progress is shown as it stands.")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folder(s) (the --out of nas search or nas scale grid)")
    p.add_argument("--out", default=None, metavar="FILE.html",
                   help=f"where to write the page (default: RUN/{REPORT_FILE} of the first run)")
    p.add_argument("--top", type=int, default=DEFAULT_TOP, help="candidates in each leaderboard")
    p.add_argument("--storage", default=None, help="storage URL, when the (single) run used --storage")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    path = write_report(args.runs, args.out, storage=args.storage, top=args.top)
    print(f"wrote {path}")
    return 0


def report_at_end(out: Path, console: Any, storage: str | None = None) -> Path | None:
    """The report a search or grid writes when it ends (and rebuilds on resume): its path, or None after
    one line saying why it was not written. The run is stored already; a report that fails loses nothing."""
    try:
        return write_report([out], storage=storage)
    except Exception as exc:  # noqa: BLE001 - whatever went wrong, the run itself is complete
        console.print(f"warning: {out / REPORT_FILE} not written ({type(exc).__name__}: {exc}); the run is complete, "
                      f"nas report {out} writes it", style="yellow", markup=False, highlight=False, soft_wrap=True)
        return None
