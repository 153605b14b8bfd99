"""The controller contract: what a search strategy sees of a space, and how it is asked and told.

A controller never sees networks, only a flat list of categorical :class:`Decision` and integer
choices (indices into each decision's options). That keeps every strategy (random, RL, Optuna's
samplers) independent of search spaces, specs and training, and lets a test drive one with a
synthetic reward computed from the choices alone.

The loop may keep several proposals in flight and tell them in any order, may tell a proposal the
controller never asked (a resumed run replays stored trials), and saves ``state_dict()`` with
``torch.save``; ``torch.load(weights_only=True)`` must read it back, so states hold only tensors,
lists, dicts, numbers, strings and None.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, Mapping, Sequence

import numpy as np

from nas.decisions import Decision, Proposal
from nas.errors import ConfigError


class Controller(ABC):
    """Base class: ask for a proposal, tell its reward (None = the candidate failed).

    Subclasses call ``super().__init__(decisions, seed)`` and implement the four methods. Proposal
    ids are assigned from a counter kept in the state, so a resumed controller never reuses an id.
    """

    name = "controller"

    def __init__(self, decisions: Sequence[Decision], seed: int = 0) -> None:
        decisions = tuple(decisions)
        if not decisions:
            raise ConfigError("a controller needs at least one decision")
        names = [d.name for d in decisions]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f"duplicate decision name(s): {', '.join(duplicates)}")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ConfigError(f"seed must be an integer, got {seed!r}")
        self.decisions = decisions
        self.sizes = tuple(d.size for d in decisions)
        self.seed = seed
        self._next_id = 0

    # ------------------------------------------------------------------------ the contract
    @abstractmethod
    def ask(self) -> Proposal:
        """Propose one candidate."""

    @abstractmethod
    def tell(self, proposal: Proposal, reward: float | None, values: Mapping[str, float] | None = None) -> None:
        """Report a candidate's reward (None when it failed) and, optionally, its raw objective values."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: weights, counters and RNG states."""

    @abstractmethod
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`; proposals asked but not yet told are forgotten."""

    # ---------------------------------------------------------------------------- helpers
    def _new_proposal(self, choices: Sequence[int]) -> Proposal:
        proposal = Proposal(self._next_id, tuple(int(c) for c in choices))
        self._next_id += 1
        return proposal

    def check_choices(self, choices: Sequence[int]) -> tuple[int, ...]:
        """Validate a told proposal's choices against the decisions (a replay may come from a stale store)."""
        choices = tuple(int(c) for c in choices)
        if len(choices) != len(self.decisions):
            raise ConfigError(f"proposal has {len(choices)} choices but the controller has "
                              f"{len(self.decisions)} decisions")
        for decision, choice in zip(self.decisions, choices):
            if not 0 <= choice < decision.size:
                raise ConfigError(f"{decision.name}: choice {choice} outside 0..{decision.size - 1}")
        return choices

    def check_state(self, state: Mapping[str, Any]) -> None:
        """Refuse a checkpoint written by another controller kind or for another space."""
        kind = state.get("controller")
        if kind != self.name:
            raise ConfigError(f"checkpoint belongs to controller {kind!r}, not {self.name!r}")
        sizes = tuple(int(s) for s in state.get("sizes", ()))
        if sizes != self.sizes:
            raise ConfigError("checkpoint was written for a different search space "
                              f"({len(sizes)} decisions, this one has {len(self.sizes)})")

    def base_state(self) -> dict[str, Any]:
        return {"controller": self.name, "sizes": list(self.sizes), "seed": self.seed, "next_id": self._next_id}


def proposal_seed(seed: int, process: int = 0) -> int:
    """The seed of the proposals of process number ``process`` of a search whose seed is ``seed``.

    Process 0 (the first or only process of a search) draws from ``seed`` itself, so a lone search
    proposes what it always did. Every other process sharing the study gets a stream of its own,
    derived from both numbers by NumPy's ``SeedSequence`` (statistically independent streams), below
    2^32 because Optuna's samplers seed a legacy ``RandomState``. Two processes with one stream would
    propose the same networks in the same order, and the second would only ever reuse the first's.
    """
    if process == 0:
        return seed
    return int(np.random.SeedSequence([seed, process]).generate_state(1)[0])


def clean_reward(reward: float | None) -> float | None:
    """None for a failure, else a finite float (NaN or inf rewards count as failures)."""
    if reward is None:
        return None
    reward = float(reward)
    return reward if math.isfinite(reward) else None


__all__ = ["Decision", "Proposal", "Controller", "clean_reward", "proposal_seed"]
