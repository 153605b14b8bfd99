"""A registry of kinds by name, each loaded from its module on first use.

Why lazy: :mod:`nas.spec` validates names against the registries and must stay importable without
torch (the CLI and the analytic counter never need it). A kind that defines its own torch layer
imports torch at the top of its module; only a spec that names that kind loads it.
"""

from __future__ import annotations

import importlib
from typing import Generic, Iterator, TypeVar

from nas.errors import SpecError, unknown_name

K = TypeVar("K")


class Registry(Generic[K]):
    """``name -> kind`` where each entry is the text ``"module:attribute"`` of the kind object.

    Iterating yields the names in registration order; ``registry[name]`` loads and returns the kind,
    or raises :class:`~nas.errors.SpecError` listing the valid names.
    """

    def __init__(self, what: str, entries: dict[str, str]) -> None:
        self.what = what
        self._entries = dict(entries)
        self._loaded: dict[str, K] = {}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def register(self, name: str, target: str) -> None:
        """Add a kind from outside this package: ``register("mynorm", "mypackage.norms:MYNORM")``."""
        if name in self._entries:
            raise SpecError(f"{self.what} {name!r} is registered already", field=self.what)
        if ":" not in target:
            raise SpecError(f"{self.what} {name!r}: target must read 'module:attribute', got {target!r}",
                            field=self.what)
        self._entries[name] = target

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, name: str) -> K:
        if name not in self:
            raise unknown_name(self.what, str(name), self.names, error=SpecError)
        if name not in self._loaded:
            module, attribute = self._entries[name].split(":")
            self._loaded[name] = getattr(importlib.import_module(module), attribute)
        return self._loaded[name]

    def kinds(self) -> list[K]:
        """Every kind, loaded, in registration order."""
        return [self[name] for name in self._entries]

    def __repr__(self) -> str:
        return f"Registry({self.what!r}, {list(self._entries)})"


__all__ = ["Registry"]
