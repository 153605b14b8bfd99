"""Failures: the trials that did not finish well, counted by status and kind of error (the grouping the
search's progress bar uses, :func:`nas.engine.error_kind`), with the first message of each; and the
trials still RUNNING in the study."""

from __future__ import annotations

from nas.engine import error_kind
from nas.report.html import Cell, note, table
from nas.report.run import RunView

MESSAGE_CHARS = 400


def failure_rows(view: RunView) -> list[list[Cell]]:
    groups: dict[tuple[str, str], list] = {}
    for r in view.records:
        if r.metrics.ok:
            continue
        message = r.metrics.error or r.metrics.status
        groups.setdefault((r.metrics.status, error_kind(message)), []).append(r)
    rows = []
    for (status, kind), records in sorted(groups.items(), key=lambda item: -len(item[1])):
        first = records[0]
        message = (first.metrics.error or status).strip().splitlines()[0][:MESSAGE_CHARS]
        rows.append([Cell(status, status), Cell(kind, kind), Cell(str(len(records)), len(records)),
                     Cell(str(first.number), first.number), Cell(message, message, css="arch")])
    return rows


def failures_body(view: RunView) -> str:
    rows = failure_rows(view)
    body = (table(("status", "kind", "trials", "first trial", "first message"), rows, sortable=True) if rows
            else note(f"no failed, diverged or pruned trial among {len(view.records)}"))
    if view.reservations:
        numbers = ", ".join(str(r.number) for r in view.reservations[:20])
        body += note(f"{len(view.reservations)} trial(s) RUNNING in the study (training now, or left by a process "
                     f"that stopped): {numbers}" + (" ..." if len(view.reservations) > 20 else ""))
    return body


__all__ = ["failure_rows", "failures_body"]
