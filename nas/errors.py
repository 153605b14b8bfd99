"""One family of user-facing errors.

Anything a user can get wrong (a spec, a space file, a data file, a storage URL, a flag) raises a
subclass of :class:`NasError`. The CLI prints such errors as one line ``error: ...`` and exits 2;
every other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class NasError(Exception):
    """Base class of every error caused by user input rather than by a bug."""


class SpecError(NasError):
    """An architecture spec or block string is invalid; the message names the field."""


class SpaceError(NasError):
    """A search space (built-in or YAML) is invalid or a choice lies outside it."""


class DataError(NasError):
    """A dataset file is missing, truncated or not in the expected format."""


class StorageError(NasError):
    """A run folder or storage URL cannot be opened, or holds no run."""


class ConfigError(NasError):
    """A command-line flag or configuration value is out of range or unknown."""


def unknown_name(kind: str, name: str, valid: "list[str] | tuple[str, ...]", error=ConfigError) -> NasError:
    """Build the standard 'unknown X' error that lists the valid names."""
    return error(f"unknown {kind} {name!r}; valid: {', '.join(sorted(valid))}")
