"""Which candidate is B0, how sure we are, and the leaderboard that shows both rankings.

A search ranks distinct networks by their proxy reward. When the run re-ranked its leaders
(``rerank`` trials: the top K trained again at a higher fidelity, possibly with several seeds),
B0 is the best by the *mean re-ranked reward*, and both rankings are kept side by side.
Candidates statistically tied with B0 are found with the exact McNemar test on the same minival
images (:func:`nas.stats.mcnemar`).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from nas.stats import mcnemar, wilson_interval

SEARCH, RERANK = "search", "rerank"


@dataclass(frozen=True)
class Candidate:
    """One distinct network with its search trial and its re-rank trials."""

    key: str
    search: Any  # TrialRecord of its first successful search trial
    search_rank: int
    rerank: tuple[Any, ...] = ()
    rerank_rank: int | None = None

    @property
    def rerank_reward(self) -> float | None:
        rewards = [r.reward for r in self.rerank if r.metrics.ok and r.reward is not None]
        return statistics.fmean(rewards) if rewards else None

    @property
    def rerank_reward_sd(self) -> float | None:
        rewards = [r.reward for r in self.rerank if r.metrics.ok and r.reward is not None]
        return statistics.stdev(rewards) if len(rewards) > 1 else None

    @property
    def rerank_accuracy(self) -> float | None:
        accs = [r.metrics.accuracy for r in self.rerank if r.metrics.ok and r.metrics.accuracy is not None]
        return statistics.fmean(accs) if accs else None


@dataclass(frozen=True)
class Choice:
    """B0 and how it was chosen."""

    candidate: Candidate
    ranked_by: str  # SEARCH or RERANK
    candidates: tuple[Candidate, ...] = field(default=(), repr=False)

    @property
    def record(self) -> Any:
        return self.candidate.search

    @property
    def reward(self) -> float:
        if self.ranked_by == RERANK:
            return float(self.candidate.rerank_reward)
        return float(self.candidate.search.reward)


def rung(record: Any) -> int | None:
    """The rung of successive halving a search record was trained at (0 for a search without rungs);
    None for a record of another stage (re-rank, fidelity, grid...)."""
    if "rung" in record.values:
        return int(record.values["rung"])
    return 0 if record.stage == SEARCH else None


def candidates(records: Sequence[Any]) -> list[Candidate]:
    """Distinct networks best first, each with its re-rank trials and rank: by the highest rung they
    reached, then by their reward there (a search without rungs: by search reward)."""
    ok = [r for r in records if rung(r) is not None and r.metrics.ok and r.reward is not None]
    best: dict[str, Any] = {}
    for r in sorted(ok, key=lambda r: (-rung(r), -r.reward, r.number)):
        best.setdefault(r.key, r)
    reranked: dict[str, list[Any]] = {}
    for r in records:
        if r.stage == RERANK:
            reranked.setdefault(r.key, []).append(r)
    out = [Candidate(key, record, rank, tuple(reranked.get(key, ())))
           for rank, (key, record) in enumerate(best.items(), 1)]
    scored = sorted((c for c in out if c.rerank_reward is not None), key=lambda c: (-c.rerank_reward, c.search_rank))
    ranks = {c.key: i for i, c in enumerate(scored, 1)}
    return [Candidate(c.key, c.search, c.search_rank, c.rerank, ranks.get(c.key)) for c in out]


def ranked(records: Sequence[Any], stage: str = SEARCH, unique: bool = True) -> list[Any]:
    """Successful candidates by reward, best first; repeats of one network appear once. For the search
    stage with rungs: every rung's records, the highest rung first (a network at its highest rung)."""
    seen, out = set(), []
    if stage == SEARCH:
        ok = [r for r in records if rung(r) is not None and r.metrics.ok and r.reward is not None]
    else:
        ok = [r for r in records if r.stage == stage and r.metrics.ok and r.reward is not None]
    for r in sorted(ok, key=lambda r: (-(rung(r) or 0), -r.reward, r.number)):
        if unique and r.key in seen:
            continue
        seen.add(r.key)
        out.append(r)
    return out


def choose_b0(records: Sequence[Any]) -> Choice | None:
    """B0: the best by mean re-ranked reward when any candidate was re-ranked, else by search reward."""
    found = candidates(records)
    if not found:
        return None
    reranked = [c for c in found if c.rerank_rank is not None]
    if reranked:
        return Choice(min(reranked, key=lambda c: c.rerank_rank), RERANK, tuple(found))
    return Choice(found[0], SEARCH, tuple(found))


def _comparable(candidate: Candidate, ranked_by: str) -> Any:
    """The trial whose per-image results stand for a candidate in the ranking used."""
    if ranked_by == RERANK:
        ok = [r for r in candidate.rerank if r.metrics.ok and r.metrics.correct_mask() is not None]
        return min(ok, key=lambda r: r.number) if ok else None
    return candidate.search if candidate.search.metrics.correct_mask() is not None else None


def ties_with_b0(choice: Choice, top: int = 10, alpha: float = 0.05) -> list[tuple[Candidate, Any]]:
    """The leading candidates (in B0's ranking) not significantly different from B0 on the same
    minival images, with their :class:`~nas.stats.PairedTest` (exact McNemar)."""
    ranked = ([c for c in choice.candidates if c.rerank_rank is not None] if choice.ranked_by == RERANK
              else list(choice.candidates))
    ranked.sort(key=lambda c: c.rerank_rank if choice.ranked_by == RERANK else c.search_rank)
    if choice.ranked_by != RERANK:  # with rungs, only networks trained as long as B0 compare with it
        ranked = [c for c in ranked if rung(c.search) == rung(choice.candidate.search)]
    reference = _comparable(choice.candidate, choice.ranked_by)
    if reference is None:
        return []
    ref_mask = reference.metrics.correct_mask()
    out = []
    for c in ranked[:top]:
        if c.key == choice.candidate.key:
            continue
        other = _comparable(c, choice.ranked_by)
        if other is None or other.metrics.minival_size != reference.metrics.minival_size:
            continue
        test = mcnemar(ref_mask, other.metrics.correct_mask())
        if test.tied(alpha):
            out.append((c, test))
    return out


def accuracy_interval(record: Any) -> tuple[float, float] | None:
    m = record.metrics
    if m.accuracy is None or not m.minival_size:
        return None
    return wilson_interval(round(m.accuracy * m.minival_size), m.minival_size)


def trial_document(record: Any, config: Mapping[str, Any]) -> dict[str, Any]:
    """One trial as a JSON document loadable by ``load_spec`` (the shape of ``b0.json``)."""
    interval = accuracy_interval(record)
    return {
        "trial": record.number, "reward": record.reward, "arch": record.arch, "key": record.key,
        "spec": record.spec.to_dict(), "metrics": record.metrics.to_dict(), "values": dict(record.values),
        "choices": dict(record.choices),
        "accuracy_interval": None if interval is None else {"low": interval[0], "high": interval[1],
                                                            "level": 0.95, "method": "wilson",
                                                            "images": record.metrics.minival_size},
        "search": {k: config.get(k) for k in ("space", "dataset", "objective", "controller", "proxy")},
    }


def b0_document(choice: Choice, records: Sequence[Any], config: Mapping[str, Any]) -> dict[str, Any]:
    """``b0.json``: the chosen network, its metrics, how it was chosen and who is tied with it."""
    doc = trial_document(choice.record, config)
    doc.update(reward=choice.reward, ranked_by=choice.ranked_by, search_reward=choice.record.reward,
               search_rank=choice.candidate.search_rank)
    if choice.ranked_by == RERANK:
        c = choice.candidate
        doc["rerank"] = {"reward_mean": c.rerank_reward, "reward_sd": c.rerank_reward_sd,
                         "accuracy_mean": c.rerank_accuracy, "trials": [r.number for r in c.rerank],
                         "rank": c.rerank_rank}
    doc["tied_with"] = [{"trial": c.search.number, "key": c.key, "p_value": t.p_value,
                         "test": "exact McNemar on the same minival images"}
                        for c, t in ties_with_b0(choice)]
    return doc


__all__ = ["Candidate", "Choice", "RERANK", "SEARCH", "accuracy_interval", "b0_document", "candidates",
           "choose_b0", "ranked", "rung", "ties_with_b0", "trial_document"]
