"""How many intra-op threads each training process uses, and whether the machine's cores are free.

Two torch processes that each take every core oversubscribe them: on a 2-core machine a trial that took
15-17 s alone took 50-178 s beside a second process (issue 22). So every process that trains takes its
share and no more: the local runner's one process plans the cores this process may run on and, before
each trial, leaves out the cores other work keeps busy (:func:`fair_threads`); a Ray worker takes the
CPUs Ray reserved for it (``--cpus-per-trial``, or the cluster's CPUs over ``--workers``).
A search states that plan in its first line, and says once, at the start, when other work already keeps
the cores busy (its trials will then run slower and their times compare badly with another run's).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Any, Mapping

# GNU OpenMP (torch's CPU build links libgomp) spins a thread that waits for work 300,000 times before it
# sleeps. Beside another torch process those spinning threads take the cores the other one computes on
# (two digits searches: 13-14x each trial's time alone); 3,000 spins keep a search alone as fast (10.7 s
# against 13.1 s a trial) and hurt a neighbour far less; sleeping at once (OMP_WAIT_POLICY=PASSIVE) costs
# 1.2-1.5x alone. Set before torch loads OpenMP (read once); a user's own setting wins. BENCHMARKS.md.
SPIN_COUNT = ("GOMP_SPINCOUNT", "3000")


def short_spin_waits() -> None:
    """Make OpenMP's idle threads sleep soon instead of spinning; the CLI calls it before torch loads."""
    if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
        os.environ[SPIN_COUNT[0]] = SPIN_COUNT[1]


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, which a container or ``taskset`` narrows)."""
    return max(1, len(_affinity()))


def omp_threads() -> int | None:
    """The thread count the user fixed with ``OMP_NUM_THREADS`` (their choice wins), if any."""
    try:
        value = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        return None
    return value if value > 0 else None


def set_threads(threads: int) -> None:
    """Give this process ``threads`` intra-op threads (global to the process: the caller owns it)."""
    import torch  # torch: imported when a process is about to train

    if torch.get_num_threads() != threads:
        torch.set_num_threads(max(1, int(threads)))


@dataclass(frozen=True)
class ThreadPlan:
    """Processes that train at once on this machine (None: as many as the Ray cluster fits) and threads each."""

    runner: str
    processes: int | None
    threads: int
    cores: int
    why: str

    def describe(self) -> str:
        who = "1 process" if self.processes == 1 else (
            f"{self.processes} Ray workers" if self.processes else "a Ray worker per free CPU share")
        return f"threads: {who} x {self.threads} intra-op thread(s) on {self.cores} core(s) ({self.why})"


def plan_threads(runner: str, options: Mapping[str, Any], cores: int | None = None) -> ThreadPlan:
    """The plan a search follows; for Ray, what :func:`ray_cpus_per_trial` will give each worker."""
    cores = cores or usable_cores()
    if runner != "ray":
        asked = omp_threads()
        if asked is not None:
            return ThreadPlan(runner, 1, asked, cores, "OMP_NUM_THREADS")
        return ThreadPlan(runner, 1, cores, cores, "one candidate at a time takes every core")
    cpus = options.get("cpus_per_trial")
    workers = options.get("workers")
    if cpus is not None:
        return ThreadPlan(runner, workers, max(1, int(cpus)), cores, "--cpus-per-trial")
    if workers is not None and options.get("address") is None:
        return ThreadPlan(runner, workers, int(ray_cpus_per_trial(None, workers, cores)), cores, "cores / workers")
    if workers is not None:
        return ThreadPlan(runner, workers, 1, cores, "the cluster's CPUs / workers, set when it answers")
    return ThreadPlan(runner, None, 1, cores, "one CPU per trial")


def ray_cpus_per_trial(cpus_per_trial: float | None, workers: int | None, cluster_cpus: float) -> float:
    """The CPUs each Ray worker reserves, which is also its thread count: as asked, else a fair share."""
    if cpus_per_trial is not None:
        return float(cpus_per_trial)
    if workers is None:
        return 1.0
    return float(max(1, math.floor(cluster_cpus / workers + 1e-9)))


def _cpu_times() -> tuple[float, float, int] | None:
    """(busy, total) jiffies since boot of the cores this process may run on, and their number, from
    /proc/stat (a container's /proc/stat lists the host's cores: only ours count); None where there is none."""
    mine = {f"cpu{n}" for n in _affinity()}
    busy = total = 0.0
    cores = 0
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            for line in stat:
                name, *values = line.split() or [""]
                if name not in mine:
                    continue
                ticks = [float(v) for v in values[:8]]
                idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0.0)  # idle + iowait
                busy, total, cores = busy + sum(ticks) - idle, total + sum(ticks), cores + 1
    except (OSError, ValueError):
        return None
    return (busy, total, cores) if cores else None


def _affinity() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return set(range(os.cpu_count() or 1))


Snapshot = tuple[tuple[float, float, int] | None, float, float]  # (/proc/stat, own CPU s, monotonic s)


def _snapshot() -> Snapshot:
    return _cpu_times(), time.process_time(), time.monotonic()


def _busy_between(first: Snapshot, second: Snapshot) -> float | None:
    """Cores other work kept busy between two snapshots: all busy time less this process's own."""
    (a, own_a, wall_a), (b, own_b, wall_b) = first, second
    if a is None or b is None or b[1] <= a[1] or wall_b <= wall_a:
        return None
    share = (b[0] - a[0]) / (b[1] - a[1])
    own = (own_b - own_a) / (wall_b - wall_a)  # this process's own use (every thread) does not count
    return max(0.0, share * b[2] - own)


def busy_cores(sample_s: float = 0.5) -> float | None:
    """How many of this process's cores other work keeps busy now, sampled over ``sample_s`` (None: unknown)."""
    first = _snapshot()
    time.sleep(sample_s)
    return _busy_between(first, _snapshot())


class BusyMeter:
    """Cores other work kept busy since the last reading, so a reading between two trials costs no wait:
    the interval is the trial just trained, and this process's own CPU time is taken out of it. The
    first reading samples ``first_sample_s``."""

    def __init__(self, first_sample_s: float = 0.2) -> None:
        self._first_sample_s = first_sample_s
        self._last: Snapshot | None = None

    def read(self) -> float | None:
        if self._last is None:
            self._last = _snapshot()
            time.sleep(self._first_sample_s)
        now = _snapshot()
        busy, self._last = _busy_between(self._last, now), now
        return busy


def fair_threads(planned: int, meter: BusyMeter | None = None, sample_s: float = 0.2) -> int:
    """The threads to train with now: the planned share, less the cores other work keeps busy (at least 1).

    Two searches started together on 2 cores each plan 2 threads; measured before each trial, each
    sees the other's and takes 1, so each computes on a core of its own instead of both fighting over
    both (a digits trial took 13-14x its time alone that way; BENCHMARKS.md). Alone again, it takes 2.
    ``meter``: read over the time since its last reading (the local runner's, once per trial); without
    one, sampled over ``sample_s``.
    """
    if planned <= 1:
        return 1
    busy = meter.read() if meter is not None else busy_cores(sample_s)
    if busy is None:
        return planned
    return max(1, min(planned, int(usable_cores() - busy + 0.5)))


def busy_warning(plan: ThreadPlan, busy: float | None) -> str | None:
    """One line when other work leaves fewer free cores than the plan's threads, by half a core or more."""
    if busy is None:
        return None
    cores = plan.cores
    wanted = min(cores, plan.threads * plan.processes) if plan.processes else cores
    if cores - busy > wanted - 0.5:
        return None
    return (f"warning: {busy:.1f} of {cores} cores are already busy with other work and this search wants "
            f"{wanted}; its trials will run slower than alone and their times compare badly with another run's")
