"""A synthetic search problem with a known optimum, for testing and benchmarking controllers.

Training real candidates is far too slow to show that a controller learns, so tests and
``benchmarks/controllers.py`` use a reward computed from the choices alone: the similarity to a
hidden target architecture drawn from a seeded generator. The optimum (the target itself) scores
exactly 1.0, and a uniform random proposal scores about the mean of 1/len(options).
"""

from __future__ import annotations

import json
import math
import sys
from typing import Callable, Sequence

import numpy as np

from nas.controllers import make_controller
from nas.controllers.base import Controller, Decision

# One stage of the EfficientNet space: op (4), kernel (2), SE (2), skip (2), filters (3), layers (3).
STAGE_AXES = (("op", 4), ("kernel", 2), ("se", 2), ("skip", 2), ("filters", 3), ("layers", 3))


def factorized_decisions(stages: int = 7, axes: Sequence[tuple[str, int]] = STAGE_AXES) -> tuple[Decision, ...]:
    """Decisions shaped like a factorized space: ``stages`` x ``axes``, options are plain indices."""
    return tuple(Decision(f"s{i + 1}_{name}", tuple(range(n))) for i in range(stages) for name, n in axes)


class HiddenTarget:
    """Reward = mean over groups of (fraction of the group's decisions equal to the target) ** coupling.

    With ``coupling`` 1 every decision counts independently (a separable problem); above 1 the
    decisions of one group (a stage) interact: a single match is worth little until its neighbours
    match too, which punishes controllers that treat decisions independently. The optimum is 1.0.
    """

    def __init__(self, decisions: Sequence[Decision], seed: int = 0, group: int = len(STAGE_AXES),
                 coupling: float = 1.0) -> None:
        rng = np.random.default_rng(seed)
        self.sizes = tuple(d.size for d in decisions)
        self.target = tuple(int(rng.integers(n)) for n in self.sizes)
        self.group = max(1, min(group, len(self.sizes)))
        self.coupling = float(coupling)
        self.optimum = 1.0

    def __call__(self, choices: Sequence[int]) -> float:
        matches = np.asarray(choices) == np.asarray(self.target)
        groups = [matches[i:i + self.group] for i in range(0, len(matches), self.group)]
        return float(np.mean([g.mean() ** self.coupling for g in groups]))

    @property
    def random_mean(self) -> float:
        """Expected reward of one uniform proposal when coupling is 1 (a sanity reference)."""
        return float(np.mean([1.0 / n for n in self.sizes]))


def drive(controller: Controller, reward: Callable[[Sequence[int]], float], samples: int, in_flight: int = 1,
          seed: int = 0, values: Callable[[Sequence[int], float], dict] | None = None) -> list[float]:
    """Ask/tell ``samples`` times, keeping ``in_flight`` proposals out and telling a random one first.

    Returns the rewards in the order they were told. ``in_flight`` > 1 imitates parallel workers
    whose results come back out of order; the order is drawn from ``seed`` (not the controller's).
    """
    rng = np.random.default_rng(seed)
    out: list = []
    told: list[float] = []
    asked = 0
    while len(told) < samples:
        while len(out) < in_flight and asked < samples:
            out.append(controller.ask())
            asked += 1
        proposal = out.pop(int(rng.integers(len(out))))
        r = reward(proposal.choices)
        controller.tell(proposal, r, values(proposal.choices, r) if values else {"accuracy": r})
        told.append(r)
    return told


def best_so_far(rewards: Sequence[float]) -> list[float]:
    """Running maximum, the usual curve for comparing search strategies at equal sample counts."""
    best, curve = -math.inf, []
    for r in rewards:
        best = max(best, r)
        curve.append(best)
    return curve


def run_experiment(controller: str, stages: int = 7, samples: int = 2000, seeds: Sequence[int] = (0, 1, 2, 3, 4),
                   in_flight: int = 1, coupling: float = 1.0, options: dict | None = None) -> dict:
    """One controller on the hidden-target problem for several seeds: rewards in tell order per seed.

    Seed ``s`` drives the controller's seed, the tell order and (offset by 100) the hidden target,
    so every controller faces the same targets.
    """
    decisions = factorized_decisions(stages)
    runs = []
    for seed in seeds:
        target = HiddenTarget(decisions, seed=100 + seed, coupling=coupling)
        ctrl = make_controller(controller, decisions, seed=seed, **(options or {}))
        runs.append(drive(ctrl, target, samples, in_flight=in_flight, seed=seed))
    return {"controller": controller, "stages": stages, "samples": samples, "seeds": list(seeds),
            "in_flight": in_flight, "coupling": coupling, "options": options or {}, "rewards": runs}


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m nas.controllers.synthetic '{"controller": "rl", "samples": 600}'`` prints JSON.

    A separate process lets a test or benchmark choose the thread environment (``OMP_NUM_THREADS``)
    of the experiment without the library ever calling ``torch.set_num_threads``. Several argument
    objects (one per argument) run one after another in that process and print a JSON list.
    """
    given = list(argv if argv is not None else sys.argv[1:])
    results = [run_experiment(**json.loads(text)) for text in given]
    print(json.dumps(results[0] if len(results) == 1 else results))


__all__ = ["STAGE_AXES", "factorized_decisions", "HiddenTarget", "drive", "best_so_far", "run_experiment"]


if __name__ == "__main__":
    main()
