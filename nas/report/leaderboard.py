"""The leaderboard: the run's best distinct candidates (:func:`nas.ranking.ranked`), with what says how
far to trust each number: the accuracy's 95% Wilson interval, the candidates an exact McNemar test
cannot separate from B0 (:func:`nas.ranking.ties_with_b0`), and accuracies at chance level.
Latency is the measured one, or the table's prediction (marked) when the search predicted it."""

from __future__ import annotations

from typing import Any

from nas.ranking import RERANK, accuracy_interval, ranked, rung
from nas.report.html import Cell, count, note, number, table
from nas.report.run import RunView


def _latency(r: Any) -> Cell:
    measured = r.values.get("latency_ms", r.metrics.latency_ms)
    predicted = r.values.get("predicted_latency_ms")
    if measured is not None and predicted is None:
        return number(measured, 2)
    if predicted is not None:
        return Cell(f"{predicted:.2f} (predicted)", float(predicted))
    return Cell("-")


def _trust(view: RunView, r: Any) -> Cell:
    choice = view.choice
    if choice is not None and r.key == choice.candidate.key:
        return Cell("B0", 0, title=f"chosen by its {choice.ranked_by} reward")
    if r.key in view.ties:
        p = view.ties[r.key]
        return Cell(f"tied with B0 (p = {p:.2f})", p, css="tied",
                    title="exact McNemar test on the same minival images cannot separate it from B0")
    return Cell("")


def leaderboard_rows(view: RunView, top: int) -> tuple[list[Any], list[list[Cell]]]:
    """The top ``top`` records of the run's main stage and their rows."""
    reranked = view.choice is not None and view.choice.ranked_by == RERANK
    by_key = {c.key: c for c in view.choice.candidates} if view.choice is not None else {}
    leaders = ranked(view.records, view.main_stage)[:top]
    rows = []
    for rank, r in enumerate(leaders, 1):
        interval = accuracy_interval(r)
        level = rung(r)
        accuracy = number(r.metrics.accuracy)
        if r.row().get("at_chance"):
            accuracy = Cell(f"{accuracy.text} (at chance)", accuracy.sort, css="chance",
                            title="its 95% interval includes 1/classes: indistinguishable from guessing")
        row = [Cell(str(rank), rank), Cell(str(r.number), r.number),
               Cell(r.stage, r.stage) if level is None else Cell(str(level), level), number(r.reward)]
        if reranked:
            candidate = by_key.get(r.key)
            row.append(number(None if candidate is None else candidate.rerank_reward))
        row += [accuracy,
                Cell("-") if interval is None else Cell(f"{interval[0]:.3f}-{interval[1]:.3f}", interval[0]),
                count(r.values.get("macs", r.metrics.macs)), count(r.values.get("params", r.metrics.params)),
                _latency(r), _trust(view, r), Cell(r.arch, r.arch, css="arch")]
        rows.append(row)
    return leaders, rows


def leaderboard_body(view: RunView, top: int) -> str:
    leaders, rows = leaderboard_rows(view, top)
    if not rows:
        return note("no candidate has finished with a reward yet")
    reranked = view.choice is not None and view.choice.ranked_by == RERANK
    headers = ["rank", "trial", "rung" if view.main_stage == "search" else "stage", "reward"]
    headers += ["re-ranked reward"] if reranked else []
    headers += ["accuracy", "95% interval", "MACs", "params", "latency ms", "B0 and ties", "block strings"]
    b0 = view.choice.candidate.key if view.choice is not None else None
    order = ("the highest rung each reached, then its reward there" if view.config.get("rungs")
             else f"{view.main_stage} reward")
    return table(headers, rows, css="leaderboard", sortable=True,
                 row_css=["b0" if r.key == b0 else "" for r in leaders],
                 caption=f"top {len(rows)} distinct candidates by {order} (click a heading to sort)")


__all__ = ["leaderboard_body", "leaderboard_rows"]
