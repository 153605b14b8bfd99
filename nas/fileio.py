"""Atomic file writes: a reader never sees half a file, and a kill never leaves one behind."""

from __future__ import annotations

import errno
import io
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from nas.errors import NasError, StorageError

# The process's umask, read once: mkstemp creates files readable by their owner only, and a
# finished file should get the permissions an ordinary open() would have given it.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


# A write that fails for one of these is the machine's state (a full disk, a quota, a read-only
# mount), not a bug: one StorageError line naming the file, and the file as it was before.
FULL = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def _atomic(path: str | Path, write: Callable[[str], None]) -> None:
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        if exc.errno in FULL:
            raise StorageError(f"{path}: cannot write ({exc.strerror}); nothing was changed") from None
        raise
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno in FULL:
            raise StorageError(f"{path}: cannot write ({exc.strerror}); the file is as it was before, free some "
                               "space or write elsewhere") from None
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())

    _atomic(path, write)


def atomic_write_json(path: str | Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    import torch  # torch: imported when used, not at module import

    buffer = io.BytesIO()  # serialized first: a full disk is then an OSError of the write, which torch's
    torch.save(obj, buffer)  # own file writer reports as an unspecific RuntimeError
    atomic_write_bytes(path, buffer.getvalue())


class Paced:
    """Rewrites a file whose cost grows with the run (b0.json ranks every record) at most ``share`` of the time.

    After a run that took ``t`` seconds, the next waits until ``t / share`` seconds have passed since
    it started, so the output takes at most that share of the wall time however large the run grows,
    and while it is cheap (a small run, or trials that train for seconds) it runs after every trial.
    ``force`` runs it now (a stage ended: the file must be complete). A rename over an existing file
    costs milliseconds here (ext4 writes the new file's data first), so even a small file rewritten
    after every instant trial would be most of the trial's cost.
    """

    def __init__(self, share: float = 0.1) -> None:
        self.share = share
        self._next = 0.0

    def run(self, output: Callable[[], None], force: bool = False) -> bool:
        start = time.perf_counter()
        if not force and start < self._next:
            return False
        output()
        self._next = start + (time.perf_counter() - start) / self.share
        return True



def _json_default(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    raise TypeError(f"cannot serialize {type(value).__name__}")


def atomic_write_with(path: str | Path, write: Callable[[str], None]) -> None:
    """Write ``path`` through ``write(tmp_name)``, any writer that takes a file name (an exporter,
    a quantizer), then move the finished file into place."""
    _atomic(path, write)


def check_output_file(path: str | Path, field: str = "out") -> Path:
    """Make sure a file can be written at ``path`` before any long work: create its folder, then
    create and remove a probe file there. Root bypasses permission bits, so only a real write tells.

    Raises StorageError on ``field`` (its message starts with the field's name): the path is a
    folder, its folder cannot be created (a regular file in the way) or is not writable.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise StorageError(f"{field} {path}: is a folder, expected a file name", field=field)
    blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise StorageError(f"{field} {path}: cannot write there ({blocker} is a file, not a folder)", field=field)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=path.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise StorageError(f"{field} {path}: cannot write there ({exc.strerror or exc})", field=field) from None
    return path


def read_json_object(path: str | Path, what: str, shown: str | None = None,
                     error: type[NasError] = StorageError) -> dict[str, Any]:
    """The JSON object in ``path``; one line ``<shown>: unreadable <what> (...)`` otherwise (``shown``
    defaults to the path; an option names its flag there)."""
    name = shown or str(path)
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise error(f"{name}: unreadable {what} ({exc})") from None
    if not isinstance(data, dict):
        raise error(f"{name}: not a {what} (a JSON object was expected)")
    return data

