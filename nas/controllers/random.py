"""Uniform random search: the baseline every other controller has to beat."""

from __future__ import annotations

import copy
from typing import Any, Mapping, Sequence

import numpy as np

from nas.controllers.base import Controller, Decision, Proposal


class RandomController(Controller):
    """Each decision drawn uniformly and independently from a seeded ``numpy.random.Generator``.

    Tells are ignored (random search learns nothing), so order, failures and replays do not matter.
    The state is the generator's bit-generator state and the id counter.
    """

    name = "random"

    def __init__(self, decisions: Sequence[Decision], seed: int = 0) -> None:
        super().__init__(decisions, seed)
        self.rng = np.random.default_rng(seed)

    def ask(self) -> Proposal:
        return self._new_proposal(int(self.rng.integers(n)) for n in self.sizes)

    def tell(self, proposal: Proposal, reward: float | None, values: Mapping[str, float] | None = None) -> None:
        self.check_choices(proposal.choices)

    def state_dict(self) -> dict[str, Any]:
        return {**self.base_state(), "rng": copy.deepcopy(self.rng.bit_generator.state)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.check_state(state)
        self.rng.bit_generator.state = dict(state["rng"])
        self._next_id = int(state["next_id"])


__all__ = ["RandomController"]
