"""Search strategies behind one ask/tell interface, and their registry.

``CONTROLLERS`` maps a name to a factory ``(decisions, seed, **options) -> Controller``; the CLI's
``--controller`` choices come from it. Factories import their module lazily so that ``random``
never pays for torch or optuna imports.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Sequence

from nas.controllers.base import Controller, Decision, Proposal
from nas.errors import ConfigError, unknown_name


def _random() -> type:
    from nas.controllers.random import RandomController

    return RandomController


def _rl() -> type:
    from nas.controllers.rl import RLController

    return RLController


def _tpe() -> type:
    from nas.controllers.optuna_samplers import TPEController

    return TPEController


def _nsga2() -> type:
    from nas.controllers.optuna_samplers import NSGA2Controller

    return NSGA2Controller


# name -> zero-argument function returning the controller class (its constructor is the factory)
_CLASSES: dict[str, Callable[[], type]] = {"random": _random, "rl": _rl, "tpe": _tpe, "nsga2": _nsga2}


def _factory(name: str) -> Callable[..., Controller]:
    def make(decisions: Sequence[Decision], seed: int = 0, **options: Any) -> Controller:
        return _CLASSES[name]()(decisions, seed=seed, **options)

    make.__name__ = f"make_{name}"
    return make


CONTROLLERS: dict[str, Callable[..., Controller]] = {name: _factory(name) for name in _CLASSES}


def controller_options(name: str) -> dict[str, Any]:
    """The options a controller accepts, with their defaults (for ``--controller-option`` help)."""
    if name not in _CLASSES:
        raise unknown_name("controller", name, list(CONTROLLERS))
    params = inspect.signature(_CLASSES[name]()).parameters
    return {k: p.default for k, p in params.items() if k not in ("decisions", "seed")}


def make_controller(name: str, decisions: Sequence[Decision], seed: int = 0, **options: Any) -> Controller:
    """Build a registered controller; an unknown name or option is a one-line ConfigError."""
    if name not in CONTROLLERS:
        raise unknown_name("controller", name, list(CONTROLLERS))
    valid = controller_options(name)
    bad = sorted(set(options) - set(valid))
    if bad:
        raise ConfigError(f"controller {name!r}: unknown option(s) {', '.join(bad)}; "
                          f"valid: {', '.join(sorted(valid)) or 'none'}")
    return CONTROLLERS[name](decisions, seed=seed, **options)


__all__ = ["CONTROLLERS", "Controller", "Decision", "Proposal", "controller_options", "make_controller"]
