"""A controller that proposes a fixed list of points in order: the grid and the re-ranking stages.

The compound-scaling grid (every α/β/γ point), a re-ranking stage (the top K candidates, once per
seed) and a fidelity check (K candidates spread over the rewards) are not searched: their points
are known in advance. Driving them through the same engine as a search needs only a controller
that hands the points out one by one. It learns nothing, so its state is just where it is; the
stage builders pass only the points the store does not hold yet, so a resumed stage continues
where it stopped without a checkpoint.
"""

from __future__ import annotations

from typing import Any, Callable, Collection, Mapping, Sequence

from nas.controllers.base import Controller
from nas.decisions import Decision, Proposal
from nas.errors import ConfigError


class SequenceController(Controller):
    """Proposes ``points`` (tuples of option indices) in order; asking past the end is an error.

    ``held()``, when given, returns the points someone holds now (another process of a shared study
    reserved or finished them since the list was made): those are passed over, so
    processes sharing a stage divide its points instead of proposing the same ones in the same order.
    When every point left is held, the next one is proposed all the same (the engine then reuses it).
    """

    name = "sequence"

    def __init__(self, decisions: Sequence[Decision], seed: int = 0, *, points: Sequence[Sequence[int]] = (),
                 held: Callable[[], Collection[tuple[int, ...]]] | None = None) -> None:
        super().__init__(decisions, seed)
        self.points = [self.check_choices(p) for p in points]
        self.position = 0
        self.held = held

    def ask(self) -> Proposal:
        if self.position >= len(self.points):
            raise ConfigError(f"all {len(self.points)} points of this stage have been proposed")
        if self.held is not None:
            held = set(self.held())
            free = next((i for i in range(self.position, len(self.points)) if self.points[i] not in held), None)
            if free is not None:
                self.points.insert(self.position, self.points.pop(free))  # the passed-over ones stay for later
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
