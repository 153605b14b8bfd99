"""The one shape of every plug-in registry: a name -> entry table, loaded on first use.

Block and norm kinds, presets, datasets, spaces, controllers, objectives, runners, runtimes and
jobs are each a :class:`Registry`. Why one shape: the CLI's choices, the "unknown name" error that
lists the valid names, the option check and the way outside code adds an entry are then written
once. Why lazy: an entry is the text ``"module:attribute"`` and its module is imported when the
entry is first asked for, so importing a registry never imports torch, ray or onnxruntime (the
analytic counter and the command line stay fast), and an entry whose dependency is missing fails
only when it is used, with a one-line error naming what did not import.

::

    RUNNERS = Registry("runner", {"local": "runners.local:LocalRunner"}, error=ConfigError, field="runner")
    RUNNERS.register("mine", "my_package.runner:MyRunner")     # from outside the package
    runner = RUNNERS.create("local", device="cpu")               # options checked against the signature
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Generic, Iterator, Mapping, TypeVar

from nas.errors import ConfigError, NasError, unknown_name

T = TypeVar("T")


class Registry(Generic[T]):
    """``name -> entry``; each entry is ``"module:attribute"`` text or the object itself.

    Iterating yields the names in registration order; ``registry[name]`` loads and returns the
    entry, or raises ``error`` (a :class:`~nas.errors.NasError` subclass, with ``field``) listing the
    valid names.
    """

    def __init__(self, what: str, entries: Mapping[str, str | T] | None = None, *,
                 error: type[NasError] = ConfigError, field: str | None = None) -> None:
        self.what = what
        self.error = error
        self.field = field
        self._entries: dict[str, str | T] = {}
        self._loaded: dict[str, T] = {}
        for name, target in (entries or {}).items():
            self.register(name, target)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def register(self, name: str, target: str | T) -> None:
        """Add an entry: ``register("mynorm", "mypackage.norms:MYNORM")`` or the object itself."""
        if name in self._entries:
            raise self.error(f"{self.what} {name!r} is registered already", field=self.field)
        if isinstance(target, str) and target.count(":") != 1:
            raise self.error(f"{self.what} {name!r}: target must read 'module:attribute', got {target!r}",
                             field=self.field)
        self._entries[name] = target

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def check(self, name: str) -> None:
        """Raise the registry's error, listing the valid names, unless ``name`` is registered."""
        if name not in self:
            raise unknown_name(self.what, str(name), self.names, error=self.error, field=self.field)

    def __getitem__(self, name: str) -> T:
        self.check(name)
        if name not in self._loaded:
            target = self._entries[name]
            if isinstance(target, str):
                module, attribute = target.split(":")
                try:
                    target = getattr(importlib.import_module(module), attribute)
                except ImportError as exc:
                    raise self.error(f"{self.what} {name!r} is not available in this installation: {exc}",
                                     field=self.field) from None
            self._loaded[name] = target  # type: ignore[assignment]
        return self._loaded[name]

    def entries(self) -> list[T]:
        """Every entry, loaded, in registration order."""
        return [self[name] for name in self._entries]

    def options(self, name: str) -> dict[str, Any]:
        """The keyword options the entry's factory accepts, with their defaults (the one signature check)."""
        parameters = inspect.signature(self[name]).parameters  # type: ignore[arg-type]
        return {key: p.default for key, p in parameters.items()
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}

    def check_options(self, name: str, options: Mapping[str, Any], positional: tuple[str, ...] = ()) -> None:
        """Refuse option names the factory does not take (``positional``: names the caller passes itself)."""
        valid = set(self.options(name)) - set(positional)
        bad = sorted(set(options) - valid)
        if bad:
            raise self.error(f"{self.what} {name!r}: unknown option(s) {', '.join(bad)}; "
                             f"valid: {', '.join(sorted(valid)) or 'none'}", field=self.field)

    def create(self, name: str, *args: Any, **options: Any) -> Any:
        """Call the entry's factory with ``args`` and the checked keyword ``options``."""
        self.check_options(name, options)
        return self[name](*args, **options)  # type: ignore[operator]

    def __repr__(self) -> str:
        return f"Registry({self.what!r}, {list(self._entries)})"


__all__ = ["Registry"]
