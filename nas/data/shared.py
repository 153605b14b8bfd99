"""Where the development datasets live: the one place tests and benchmarks look for them.

Real Fashion-MNIST and MNIST IDX files sit beside the repository in ``../shared/data/<name>/`` on
the machines this project is developed on. They are never copied into the repository, and no
absolute path of any machine is written down: the folder is found relative to the repository, and
``SCALENAS_SHARED_DATA`` (a folder holding ``mnist/``, ``fashion-mnist/``...) overrides it.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "SCALENAS_SHARED_DATA"
REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_data_root() -> Path:
    """The folder holding the shared datasets (it may not exist on this machine)."""
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override).expanduser().resolve()
    return (REPO_ROOT.parent / "shared" / "data").resolve()


def shared_dataset_dir(name: str) -> Path | None:
    """``<root>/<name>`` when it exists and holds files, else None (callers skip with a reason)."""
    folder = shared_data_root() / name
    return folder if folder.is_dir() and any(folder.iterdir()) else None


def missing_reason(name: str) -> str:
    """One sentence for a skipped test or a benchmark that cannot run."""
    return (f"the shared {name} files are not at {shared_data_root() / name} "
            f"(set {ENV_VAR} to the folder holding {name}/)")


def require_shared_dataset(name: str, given: str | Path | None = None) -> Path:
    """``given`` (a ``--data-dir``), else the shared folder; a benchmark without either stops with one line."""
    if given:
        return Path(given)
    folder = shared_dataset_dir(name)
    if folder is None:
        raise SystemExit(f"error: {missing_reason(name)}")
    return folder


__all__ = ["ENV_VAR", "missing_reason", "require_shared_dataset", "shared_data_root", "shared_dataset_dir"]
