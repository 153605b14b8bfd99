"""Pieces the Ray runner puts on the cluster: the reusable training actor and the ASHA coordinator.

Also the housekeeping of a local Ray instance: a short temporary folder per run (Ray's unix
sockets live under it and a socket path may not exceed 107 bytes) and the removal of processes left
behind by a driver that was killed, found only inside that folder so that no other Ray is touched.
"""

from __future__ import annotations

import hashlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from nas.metrics import Metrics
from runners.base import DatasetRef, TrainJob, cached_dataset, run_job


# ------------------------------------------------------------------------------ actors
class TrainWorker:
    """A reusable Ray actor: keeps the dataset and trains one candidate per call.

    ``data`` arrives as the value of the single ``ray.put`` the driver made (Ray resolves an object
    reference passed to an actor constructor), so the images cross the cluster once per worker and
    never with a job. Without it the worker loads ``data_ref`` from its own disk.
    """

    def __init__(self, data: Any, data_ref: DatasetRef | None, threads: int) -> None:
        import torch

        torch.set_num_threads(max(1, int(threads)))  # this process's CPU share, not the driver's
        self._data = data
        self._data_ref = data_ref

    def pid(self) -> int:
        return os.getpid()

    def train(self, job: TrainJob, coordinator: Any = None) -> Metrics:
        import ray

        if self._data is None and self._data_ref is not None:
            try:
                self._data = cached_dataset(self._data_ref)
            except Exception as exc:  # noqa: BLE001 - a worker without the files fails this trial only
                return Metrics(status="failed", error=f"worker could not load the data: {type(exc).__name__}: {exc}")
        on_epoch = None
        if coordinator is not None:
            def on_epoch(epoch: int, accuracy: float) -> bool:
                return bool(ray.get(coordinator.report.remote(job.trial, epoch, accuracy)))
        return run_job(job, on_epoch=on_epoch, data=self._data)


@dataclass(frozen=True)
class _TrialHandle:
    """What Tune's schedulers read of a trial: its id."""

    trial_id: str


class AshaCoordinator:
    """A Ray actor holding Ray Tune's ``AsyncHyperBandScheduler`` for runs outside ``tune.run``.

    Workers report ``(trial, completed epochs, minival accuracy)`` after each epoch and stop the
    candidate when the scheduler answers STOP. Only the scheduler's public hooks are called
    (``on_trial_add`` / ``on_trial_result``); Tune's trial object is replaced by a handle carrying the
    id, which is all that ASHA looks at. The last epoch is never a stop: the candidate has finished.
    """

    def __init__(self, max_t: int, grace_period: int = 1, reduction_factor: float = 3) -> None:
        from ray.tune.schedulers import AsyncHyperBandScheduler

        self.max_t = max(1, int(max_t))
        grace_period = min(max(1, int(grace_period)), self.max_t)
        self._scheduler = AsyncHyperBandScheduler(time_attr="epoch", metric="accuracy", mode="max",
                                                  max_t=self.max_t, grace_period=grace_period,
                                                  reduction_factor=reduction_factor, brackets=1)
        self._added: set[str] = set()
        self.decisions: list[tuple[int, int, float, bool]] = []

    def report(self, trial: int, epoch: int, accuracy: float) -> bool:
        from ray.tune.schedulers import TrialScheduler

        handle = _TrialHandle(str(trial))
        if handle.trial_id not in self._added:
            self._scheduler.on_trial_add(None, handle)
            self._added.add(handle.trial_id)
        if epoch >= self.max_t:
            stop = False
        else:
            action = self._scheduler.on_trial_result(None, handle, {"epoch": epoch, "accuracy": float(accuracy)})
            stop = action == TrialScheduler.STOP
        self.decisions.append((int(trial), int(epoch), float(accuracy), stop))
        return stop

    def history(self) -> list[tuple[int, int, float, bool]]:
        """Every report and its answer, for logs and tests."""
        return list(self.decisions)


# -------------------------------------------------------------------------- local Ray
def temp_root(run_dir: str | Path | None) -> Path:
    """A short, per-run folder for a local Ray's sessions (sockets need paths under 107 bytes)."""
    seed = str(Path(run_dir).resolve()) if run_dir is not None else f"pid{os.getpid()}"
    return Path("/tmp") / f"nas-ray-{hashlib.sha1(seed.encode()).hexdigest()[:10]}"


def link_logs(run_dir: str | Path, root: Path) -> None:
    """Point ``RUN/ray-logs`` at the local Ray's folder, whose ``session_latest/logs`` are the logs."""
    link = Path(run_dir) / "ray-logs"
    tmp = Path(run_dir) / ".ray-logs.tmp"
    try:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        tmp.symlink_to(root, target_is_directory=True)
        os.replace(tmp, link)
    except OSError:
        pass  # logs stay reachable under root; the link is a convenience


def _session_driver_pid(session: Path) -> int | None:
    try:
        return int(session.name.rsplit("_", 1)[1])
    except (IndexError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _processes_using(folder: Path) -> Iterator[int]:
    """Processes whose command line names ``folder`` or that hold a file open inside it."""
    prefix = str(folder)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if prefix in (entry / "cmdline").read_bytes().decode(errors="replace"):
                yield int(entry.name)
                continue
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd).startswith(prefix):
                    yield int(entry.name)
                    break
        except OSError:
            continue


def stale_sessions(root: Path) -> list[Path]:
    """Sessions under ``root`` whose driver process is gone (a run killed with SIGKILL)."""
    if not root.is_dir():
        return []
    sessions = []
    for session in sorted(root.glob("session_2*")):
        pid = _session_driver_pid(session)
        if session.is_dir() and pid is not None and not _alive(pid):
            sessions.append(session)
    return sessions


def reap_stale_sessions(root: Path) -> list[int]:
    """Kill what a dead driver's local Ray left running under ``root``; return the pids killed.

    A driver killed with SIGKILL takes its raylet and GCS with it, but some agents survive it. They
    would not block a new instance (it gets new ports and a new session folder) but they hold memory,
    so a resumed run clears them first. Only processes tied to this run's own folder are touched.
    """
    killed = []
    for session in stale_sessions(root):
        for pid in set(_processes_using(session)):
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except OSError:
                pass
    return killed


__all__ = ["TrainWorker", "AshaCoordinator", "temp_root", "link_logs", "stale_sessions", "reap_stale_sessions"]
