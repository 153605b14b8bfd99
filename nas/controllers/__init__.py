"""Search strategies behind one ask/tell interface, and their registry.

``CONTROLLERS`` maps a name to a controller class, called as ``(decisions, seed, **options)``; the CLI's
``--controller`` choices come from it. Each module is imported when its controller is first asked
for, so ``random`` never pays for torch or optuna imports.
"""

from __future__ import annotations

from typing import Any, Sequence

from nas.controllers.base import Controller, Decision, Proposal, proposal_seed
from nas.registry import Registry

# name -> the controller class (its constructor is the factory: ``(decisions, seed=0, **options)``)
CONTROLLERS: Registry = Registry("controller", {
    "random": "nas.controllers.random:RandomController",
    "rl": "nas.controllers.rl:RLController",
    "tpe": "nas.controllers.optuna_samplers:TPEController",
    "nsga2": "nas.controllers.optuna_samplers:NSGA2Controller",
})


def controller_options(name: str) -> dict[str, Any]:
    """The options a controller accepts, with their defaults (for ``--controller-option`` help)."""
    return {k: v for k, v in CONTROLLERS.options(name).items() if k not in ("decisions", "seed")}


def make_controller(name: str, decisions: Sequence[Decision], seed: int = 0, **options: Any) -> Controller:
    """Build a registered controller; an unknown name or option is a one-line ConfigError."""
    CONTROLLERS.check_options(name, options, positional=("decisions", "seed"))
    return CONTROLLERS[name](decisions, seed=seed, **options)


__all__ = ["CONTROLLERS", "Controller", "Decision", "Proposal", "controller_options", "make_controller",
           "proposal_seed"]
