"""Proxy fidelity and rungs, where a run has them.

Fidelity: ``nas fidelity``'s own scatter (:func:`nas.jobs.fidelity.scatter_figure`, or
:func:`~nas.jobs.fidelity.measurement_figure` for a ``--sample`` check) drawn as SVG from
``RUN/fidelity.json``, with Kendall's tau and Spearman's rho and their 95% bootstrap intervals.
Rungs: how many candidates each rung of successive halving held and how many it promoted.
"""

from __future__ import annotations

from typing import Any, Mapping

from nas.jobs.fidelity import measurement_figure, scatter_figure
from nas.jobs.rungs import rung_stage
from nas.report.html import Cell, note, number, svg_figure, table
from nas.report.run import RunView

AGREEMENTS = (("kendall_tau", "Kendall's tau"), ("spearman_rho", "Spearman's rho"))


def _agreement_cells(found: Mapping[str, Any] | None) -> list[Cell]:
    cells = []
    for name, _ in AGREEMENTS:
        a = (found or {}).get(name)
        if not a:
            cells += [Cell("-"), Cell("-")]
            continue
        cells += [number(a["value"], 3), Cell(f"{a['low']:.2f} to {a['high']:.2f}", a["low"])]
    return cells


def agreement_table(rows: list[tuple[str, Mapping[str, Any] | None]]) -> str:
    headers = ["against the higher fidelity"]
    for _, label in AGREEMENTS:
        headers += [label, "95% interval"]
    return table(headers, [[Cell(what, what), *_agreement_cells(found)] for what, found in rows])


def fidelity_body(view: RunView) -> str | None:
    """The run's fidelity check, or None when it has none."""
    data = view.fidelity
    if data is None:
        return None
    if "unreadable" in data:
        return note(f"fidelity.json cannot be read: {data['unreadable']}", css="warning")
    if data.get("mode") == "sample" and data.get("usable", 0) >= 3:
        budget = f"{min(data['budgets']):g}"
        rows = [(f"{name} at {budget} epoch(s)", found) for name, found in data["scores"].get(budget, {}).items()]
        rows += [(f"{name} (counted)", found) for name, found in data.get("baselines", {}).items()]
        return (svg_figure(measurement_figure(data)) + agreement_table(rows)
                + note(data.get("verdict", ""), css="intro"))
    pairs = data.get("candidates") or []
    usable = [p for p in pairs if p.get("fidelity_accuracy") is not None and p.get("fidelity_reward") is not None]
    if data.get("mode", "top") != "top" or not usable:  # files of earlier versions have no mode: top
        return note("a fidelity check was started and has not finished (nas fidelity RUN resumes it)")
    agreement = data.get("agreement") or {}
    body = svg_figure(scatter_figure(pairs, agreement))
    if agreement:
        body += agreement_table([(what, agreement.get(what)) for what in ("accuracy", "reward")])
    else:
        body += note(f"{len(usable)} of {len(pairs)} candidates measured: a rank agreement needs 3")
    settings = data.get("settings") or {}
    body += note(f"{len(usable)} candidates of the search trained again ("
                 + ", ".join(f"{k} {v}" for k, v in settings.items() if v not in (None, [], ())) + ")"
                 + ("" if data.get("complete") else "; not complete"))
    return body


def rungs_body(view: RunView) -> str | None:
    """Per rung: its epochs, how many candidates it held and promoted, its best reward; None without rungs."""
    epochs = view.config.get("rungs")
    if not epochs:
        return None
    rows = []
    for k, stop in enumerate(epochs):
        held = [r for r in view.records if r.stage == rung_stage(k)]
        running = sum(1 for r in view.reservations if r.stage == rung_stage(k))
        points = {tuple(r.indices) for r in held}
        above = {tuple(r.indices) for r in view.records if r.stage == rung_stage(k + 1)}
        above |= {tuple(r.indices) for r in view.reservations if r.stage == rung_stage(k + 1)}
        promoted = len(points & above) if k + 1 < len(epochs) else None
        rewards = [r.reward for r in held if r.reward is not None and r.metrics.ok]
        rows.append([Cell(str(k), k), number(float(stop), 3 if stop % 1 else 0), Cell(str(len(points)), len(points)),
                     Cell("-") if promoted is None else Cell(str(promoted), promoted),
                     Cell(str(running), running), number(max(rewards) if rewards else None)])
    eta = view.config.get("eta")
    return (table(("rung", "epochs", "candidates held", "promoted", "running", "best reward"), rows)
            + note(f"eta {eta}: the best 1/{eta} of each rung go on to the next, continuing their training"))


__all__ = ["agreement_table", "fidelity_body", "rungs_body"]
