"""One family of user-facing errors.

Anything a user can get wrong (a spec, a space file, a data file, a storage URL, a flag) raises a
subclass of :class:`NasError`. The CLI prints such errors as one line ``error: ...`` and exits 2;
every other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class NasError(Exception):
    """Base class of every error caused by user input rather than by a bug.

    ``field`` names the library argument or config field at fault (``trials``, ``proxy_width``).
    Messages use the library's names; the CLI maps ``field`` to its flag (``--trials``), so a
    Python user never reads about flags and a CLI user always does.
    """

    def __init__(self, message: str = "", *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


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


class TrainingError(NasError):
    """A training that ran elsewhere (a seed on a Ray worker) did not finish; the message names it and
    why. What the other trainings wrote is kept and resumable."""


def unknown_name(kind: str, name: str, valid: "list[str] | tuple[str, ...]", error=ConfigError,
                 field: str | None = None) -> NasError:
    """Build the standard 'unknown X' error that lists the valid names (the message names X already)."""
    return error(f"unknown {kind} {name!r}; valid: {', '.join(sorted(valid))}", field=field)


def with_flag(error: NasError, flags: "dict[str, str]") -> str:
    """The CLI's wording of ``error``: its field replaced by the flag that sets it.

    ``trials must be > 0`` with field ``trials`` and flags ``{"trials": "--trials"}`` reads
    ``--trials must be > 0``; a message that does not start with the field gets the flag in front
    (``--space: unknown space 'x'...``). Errors without a mapped field are printed as they are.
    """
    message = str(error)
    flag = flags.get(error.field or "")
    if not flag or flag in message:
        return message
    if message.startswith(f"{error.field} ") or message.startswith(f"{error.field}:"):
        return flag + message[len(error.field):]
    return f"{flag}: {message}"
