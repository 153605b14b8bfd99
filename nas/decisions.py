"""What a search space offers and what a controller proposes: plain data below both.

A space exposes a flat tuple of categorical :class:`Decision`; a controller answers with a
:class:`Proposal` whose ``choices`` index each decision's options. Both packages import this module
and nothing else from each other, so a space never depends on a search strategy and a strategy
never depends on networks.
"""

from __future__ import annotations

from dataclasses import dataclass

from nas.errors import ConfigError

PLAIN = (int, float, str, bool)


@dataclass(frozen=True)
class Decision:
    """One categorical choice of a space, e.g. ``Decision("s3_kernel", (3, 5))``."""

    name: str
    options: tuple

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"decision name must be a non-empty string, got {self.name!r}")
        options = tuple(self.options)
        if not options:
            raise ConfigError(f"decision {self.name!r}: needs at least one option")
        for option in options:
            if not isinstance(option, PLAIN):
                raise ConfigError(f"decision {self.name!r}: option {option!r} is not an int, float, str or bool")
        object.__setattr__(self, "options", options)

    @property
    def size(self) -> int:
        return len(self.options)


@dataclass(frozen=True)
class Proposal:
    """One candidate: ``choices[i]`` indexes ``decisions[i].options``; ``id`` is the asker's handle."""

    id: int
    choices: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", int(self.id))
        object.__setattr__(self, "choices", tuple(int(c) for c in self.choices))


__all__ = ["Decision", "PLAIN", "Proposal"]
