"""A controller that proposes a fixed list of points in order: the grid and the re-ranking stages.

The compound-scaling grid (every α/β/γ point), a re-ranking stage (the top K candidates, once per
seed) and a fidelity check (K candidates spread over the rewards) are not searched: their points
are known in advance. Driving them through the same engine as a search needs only a controller
that hands the points out one by one. It learns nothing, so its state is just where it is; the
stage builders pass only the points the store does not hold yet, so a resumed stage continues
where it stopped without a checkpoint.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from nas.controllers.base import Controller
from nas.decisions import Decision, Proposal
from nas.errors import ConfigError


class SequenceController(Controller):
    """Proposes ``points`` (tuples of option indices) in order; asking past the end is an error."""

    name = "sequence"

    def __init__(self, decisions: Sequence[Decision], seed: int = 0, *, points: Sequence[Sequence[int]] = ()) -> None:
        super().__init__(decisions, seed)
        self.points = [self.check_choices(p) for p in points]
        self.position = 0

    def ask(self) -> Proposal:
        if self.position >= len(self.points):
            raise ConfigError(f"all {len(self.points)} points of this stage have been proposed")
        proposal = self._new_proposal(self.points[self.position])
        self.position += 1
        return proposal

    def tell(self, proposal: Proposal, reward: float | None, values: Mapping[str, float] | None = None) -> None:
        self.check_choices(proposal.choices)

    def state_dict(self) -> dict[str, Any]:
        return {**self.base_state(), "position": self.position, "points": [list(p) for p in self.points]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.check_state(state)
        self.points = [tuple(int(c) for c in p) for p in state["points"]]
        self.position = int(state["position"])
        self._next_id = int(state["next_id"])


__all__ = ["SequenceController"]
