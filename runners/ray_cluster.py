"""The Ray runner: each candidate trains on one of ``workers`` reusable Ray actors.

Why actors and not ``tune.Tuner``: our search loop (nas/search.py) already owns the ask/tell cycle,
the store and resume, and it talks to every runner through ``submit`` / ``wait``. A pool of actors
is exactly that shape: one actor per concurrent trial, holding the dataset once, with its own CPU /
GPU share. Tune would own the loop instead, and a lost worker, a resumed run and the Optuna store
would each need a second path. Tune's pieces are still used where they fit: ASHA early stopping is
Ray Tune's ``AsyncHyperBandScheduler`` (held by a small coordinator actor), and
``nas.controllers.tune_adapter`` puts our controllers into ``tune.Tuner`` for users who want Tune.

Worker loss (an actor process killed, a node gone) is retried on a fresh actor up to ``retries``
times; after that the trial is recorded as failed with the reason. Every start, retry and loss is
appended to ``RUN/ray_runner.jsonl``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.errors import ConfigError, unknown_name
from nas.metrics import Metrics
from runners.base import DatasetRef, Runner, TrainJob

SCHEDULERS = ("fifo", "asha")
EVENT_LOG = "ray_runner.jsonl"


@dataclass
class _Slot:
    """One worker actor and what it is doing."""

    actor: Any
    pid: int | None = None
    job: TrainJob | None = None


@dataclass
class RunnerStats:
    """What the runner measured, for the benchmark and the logs."""

    startup_s: float = 0.0  # ray.init (0 when joining a running instance)
    actors_s: float = 0.0  # creating the workers until each answered (includes shipping the data)
    retries: dict[int, int] = field(default_factory=dict)  # job -> retries after worker loss
    lost: list[dict[str, Any]] = field(default_factory=list)


class RayRunner(Runner):
    """Train candidates on Ray actors; see the module docstring for the design.

    Options (the CLI's ``--address --workers --gpus-per-trial --cpus-per-trial --retries --scheduler``):

    - ``address``: ``None`` starts a local Ray on this machine (``num_cpus`` of it, default all),
      ``"auto"`` or ``"ray://HOST:PORT"`` joins a running cluster and leaves it running at the end.
    - ``workers``: concurrent trials (default: as many as the cluster's CPUs / GPUs allow).
    - ``gpus_per_trial``: default 1 when the cluster has GPUs, else 0. ``cpus_per_trial``: default 1;
      it is also the worker's torch thread count.
    - ``retries``: how often a trial whose worker died is started again (default 2).
    - ``scheduler``: ``fifo`` (every candidate trains its whole budget) or ``asha`` (Ray Tune's
      asynchronous successive halving on per-epoch minival accuracy; ``asha_grace_period`` epochs,
      ``asha_reduction_factor``).
    - ``data``: ``"put"`` ships the driver's loaded dataset once with ``ray.put``; ``"load"`` makes each
      worker read ``data_ref`` (``--dataset`` / ``--data-dir``) from its own disk.
    """

    def __init__(self, *, device: str = "auto", dataset: Any = None, data_ref: DatasetRef | None = None,
                 run_dir: str | Path | None = None, address: str | None = None, workers: int | None = None,
                 gpus_per_trial: float | None = None, cpus_per_trial: float | None = None,
                 retries: int | None = None, scheduler: str | None = None, num_cpus: int | None = None,
                 data: str = "put", asha_grace_period: int = 1, asha_reduction_factor: float = 3,
                 actor_timeout_s: float = 600.0) -> None:
        self.device = device
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.scheduler = scheduler or "fifo"
        self.retries = 2 if retries is None else retries
        self.cpus_per_trial = 1.0 if cpus_per_trial is None else float(cpus_per_trial)
        self._check_options(workers, gpus_per_trial, data, asha_reduction_factor, num_cpus)
        if dataset is None and data_ref is None:
            raise ConfigError("the ray runner needs a dataset or a dataset reference")
        self._asha = (asha_grace_period, asha_reduction_factor)
        self._data_ref = data_ref
        self._data_mode = data if dataset is not None else "load"
        self.stats = RunnerStats()
        self._slots: list[_Slot] = []
        self._running: dict[Any, int] = {}  # object ref -> slot index
        self._queue: deque[TrainJob] = deque()
        self._coordinator = None
        self._owns_connection = False
        self._closed = False

        import ray

        self._ray = ray
        self._connect(address, num_cpus)
        try:
            resources = ray.cluster_resources()
            self.gpus_per_trial = self._default_gpus(gpus_per_trial, resources)
            self.capacity = self._default_workers(workers, resources)
            self._log("start", address=address or "local", workers=self.capacity, cpus_per_trial=self.cpus_per_trial,
                      gpus_per_trial=self.gpus_per_trial, scheduler=self.scheduler, retries=self.retries,
                      resources={k: v for k, v in resources.items() if k in ("CPU", "GPU")},
                      startup_s=round(self.stats.startup_s, 3))
            self._start_workers(dataset, actor_timeout_s)
        except BaseException:
            self.close()
            raise

    # --------------------------------------------------------------------------- setup
    def _check_options(self, workers: int | None, gpus: float | None, data: str, rf: float,
                       num_cpus: int | None) -> None:
        if self.scheduler not in SCHEDULERS:
            raise unknown_name("scheduler", self.scheduler, SCHEDULERS)
        if workers is not None and (not isinstance(workers, int) or workers < 1):
            raise ConfigError(f"--workers must be an integer >= 1, got {workers!r}")
        if not self.cpus_per_trial > 0:
            raise ConfigError(f"--cpus-per-trial must be > 0, got {self.cpus_per_trial!r}")
        if gpus is not None and not gpus >= 0:
            raise ConfigError(f"--gpus-per-trial must be >= 0, got {gpus!r}")
        if not isinstance(self.retries, int) or self.retries < 0:
            raise ConfigError(f"--retries must be an integer >= 0, got {self.retries!r}")
        if data not in ("put", "load"):
            raise unknown_name("data mode", data, ("put", "load"))
        if not rf > 1:
            raise ConfigError(f"asha_reduction_factor must be > 1, got {rf!r}")
        if num_cpus is not None and (not isinstance(num_cpus, int) or num_cpus < 1):
            raise ConfigError(f"num_cpus must be an integer >= 1, got {num_cpus!r}")

    def _connect(self, address: str | None, num_cpus: int | None) -> None:
        ray = self._ray
        start = time.perf_counter()
        if ray.is_initialized():
            self._log("connect", note="using the Ray instance this process already started")
            return
        if address:
            try:
                ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise ConfigError(f"--address {address}: cannot join a Ray cluster there "
                                  f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
        else:
            from runners.ray_support import link_logs, reap_stale_sessions, temp_root

            root = temp_root(self.run_dir)
            reaped = reap_stale_sessions(root)
            if reaped:
                self._log("reaped", pids=reaped, note="processes left by a killed driver of this run")
            ray.init(address="local", num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False,
                     log_to_driver=False, logging_level=logging.WARNING, _temp_dir=str(root))
            if self.run_dir is not None:
                link_logs(self.run_dir, root)
        self._owns_connection = True
        self.stats.startup_s = time.perf_counter() - start

    def _default_gpus(self, gpus: float | None, resources: dict[str, float]) -> float:
        available = float(resources.get("GPU", 0))
        if gpus is None:
            return 1.0 if available >= 1 else 0.0
        if gpus > available:
            raise ConfigError(f"--gpus-per-trial {gpus:g} but the Ray cluster has {available:g} GPUs")
        return float(gpus)

    def _default_workers(self, workers: int | None, resources: dict[str, float]) -> int:
        cpus = float(resources.get("CPU", 0))
        if self.cpus_per_trial > cpus:
            raise ConfigError(f"--cpus-per-trial {self.cpus_per_trial:g} but the Ray cluster has {cpus:g} CPUs")
        fit = math.floor(cpus / self.cpus_per_trial + 1e-9)
        if self.gpus_per_trial > 0:
            fit = min(fit, math.floor(float(resources.get("GPU", 0)) / self.gpus_per_trial + 1e-9))
        if workers is None:
            return max(1, fit)
        if workers > fit:
            # A cluster may grow (autoscaling); here the extra workers just wait for room.
            self._log("warning", note=f"--workers {workers} but the cluster fits {fit} trials now")
        return workers

    def _start_workers(self, dataset: Any, timeout_s: float) -> None:
        ray = self._ray
        from runners.ray_support import AshaCoordinator, TrainWorker

        start = time.perf_counter()
        self._worker_cls = ray.remote(TrainWorker)
        self._data_obj = ray.put(dataset) if self._data_mode == "put" else None
        self._slots = [_Slot(actor=self._new_actor()) for _ in range(self.capacity)]
        pids = [slot.actor.pid.remote() for slot in self._slots]
        ready, _ = ray.wait(pids, num_returns=len(pids), timeout=timeout_s)
        if len(ready) < len(pids):
            raise ConfigError(f"only {len(ready)} of {len(pids)} Ray workers started within {timeout_s:.0f} s; "
                              f"the cluster lacks the CPUs/GPUs asked per trial")
        for slot, pid in zip(self._slots, ray.get(pids)):
            slot.pid = pid
        if self.scheduler == "asha":
            grace, rf = self._asha
            self._coordinator_cls = ray.remote(num_cpus=0)(AshaCoordinator)
            self._coordinator_args = (grace, rf)
        self.stats.actors_s = time.perf_counter() - start
        self._log("workers", pids=[s.pid for s in self._slots], actors_s=round(self.stats.actors_s, 3))

    def _new_actor(self) -> Any:
        options = {"num_cpus": self.cpus_per_trial, "num_gpus": self.gpus_per_trial, "max_restarts": 0}
        return self._worker_cls.options(**options).remote(
            self._data_obj, self._data_ref if self._data_mode == "load" else None, self.cpus_per_trial)

    def _ensure_coordinator(self, job: TrainJob) -> Any:
        if self.scheduler != "asha":
            return None
        if self._coordinator is None:
            epochs = getattr(job.budget, "epochs", None) or 1
            max_t = max(1, math.ceil(float(epochs)))
            grace, rf = self._coordinator_args
            self._coordinator = self._coordinator_cls.remote(max_t, grace, rf)
        return self._coordinator

    # ------------------------------------------------------------------------------ jobs
    def submit(self, job: TrainJob) -> None:
        self._queue.append(job)
        self._dispatch()

    def _dispatch(self) -> None:
        for index, slot in enumerate(self._slots):
            if not self._queue:
                return
            if slot.job is None:
                self._launch(index, self._queue.popleft())

    def _launch(self, index: int, job: TrainJob) -> None:
        slot = self._slots[index]
        slot.job = job
        ref = slot.actor.train.remote(job, self._ensure_coordinator(job))
        self._running[ref] = index
        self._log("submit", job=job.trial, worker=index, pid=slot.pid, attempt=self.stats.retries.get(job.trial, 0))

    def wait(self) -> list[tuple[TrainJob, Metrics]]:
        ray = self._ray
        finished: list[tuple[TrainJob, Metrics]] = []
        while not finished and self._running:
            ready, _ = ray.wait(list(self._running), num_returns=1)
            ready, _ = ray.wait(list(self._running), num_returns=len(self._running), timeout=0) if len(
                self._running) > 1 else (ready, [])
            for ref in ready:
                index = self._running.pop(ref)
                slot = self._slots[index]
                job = slot.job
                slot.job = None
                assert job is not None
                result = self._collect(ref, index, job)
                if result is not None:
                    finished.append((job, result))
            self._dispatch()
        return finished

    def _collect(self, ref: Any, index: int, job: TrainJob) -> Metrics | None:
        """The job's metrics, or ``None`` when it was started again after its worker died."""
        ray = self._ray
        from ray.exceptions import ObjectLostError, RayActorError, RayTaskError, WorkerCrashedError

        try:
            metrics = ray.get(ref)
        except (RayActorError, WorkerCrashedError, ObjectLostError) as exc:
            return self._worker_lost(index, job, exc)
        except RayTaskError as exc:  # a bug outside run_job's guard (e.g. an unpicklable job)
            cause = exc.cause if getattr(exc, "cause", None) is not None else exc
            self._log("error", job=job.trial, error=f"{type(cause).__name__}: {cause}")
            return Metrics(status="failed", error=f"{type(cause).__name__}: {cause}")
        if not isinstance(metrics, Metrics):
            return Metrics(status="failed", error=f"worker returned {type(metrics).__name__}, not Metrics")
        self._log("done", job=job.trial, worker=index, status=metrics.status, accuracy=metrics.accuracy,
                  epochs=metrics.epochs, train_time_s=metrics.train_time_s, wall_time_s=metrics.wall_time_s)
        return metrics

    def _worker_lost(self, index: int, job: TrainJob, exc: BaseException) -> Metrics | None:
        slot = self._slots[index]
        reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}".strip()
        attempts = self.stats.retries.get(job.trial, 0)
        lost_pid = slot.pid
        self.stats.lost.append({"job": job.trial, "pid": lost_pid, "reason": reason})
        self._replace_actor(index)
        if attempts < self.retries:
            self.stats.retries[job.trial] = attempts + 1
            self._log("retry", job=job.trial, lost_pid=lost_pid, new_pid=slot.pid,
                      retry=attempts + 1, of=self.retries, reason=reason)
            self._queue.appendleft(job)
            return None
        self._log("failed", job=job.trial, retries=attempts, reason=reason)
        return Metrics(status="failed", error=f"worker lost {attempts + 1} times, last: {reason}")

    def _replace_actor(self, index: int) -> None:
        ray = self._ray
        slot = self._slots[index]
        try:
            ray.kill(slot.actor, no_restart=True)
        except Exception:  # noqa: BLE001 - it is already gone
            pass
        slot.actor = self._new_actor()
        try:
            slot.pid = ray.get(slot.actor.pid.remote(), timeout=600)
        except Exception as exc:  # noqa: BLE001 - the job will fail on this actor and be counted again
            slot.pid = None
            self._log("warning", note=f"replacement worker {index} did not start: {type(exc).__name__}")

    # --------------------------------------------------------------------------- the rest
    def worker_pids(self) -> list[int | None]:
        """Process ids of the current workers (for monitoring, and for tests that kill one)."""
        return [slot.pid for slot in self._slots]

    def asha_history(self) -> list[tuple[int, int, float, bool]]:
        """(job, epoch, accuracy, stopped) for each report the ASHA coordinator answered."""
        if self._coordinator is None:
            return []
        return self._ray.get(self._coordinator.history.remote())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        ray = getattr(self, "_ray", None)
        if ray is None or not ray.is_initialized():
            return
        for slot in self._slots:
            try:
                ray.kill(slot.actor, no_restart=True)
            except Exception:  # noqa: BLE001
                pass
        if self._coordinator is not None:
            try:  # keep every early-stopping decision in the run's log, where it can be checked
                for job, epoch, accuracy, stopped in self.asha_history():
                    self._log("asha", job=job, epoch=epoch, accuracy=accuracy, stopped=stopped)
            except Exception:  # noqa: BLE001 - the coordinator is gone with its node
                self._log("warning", note="the ASHA decisions could not be read back")
            try:
                ray.kill(self._coordinator, no_restart=True)
            except Exception:  # noqa: BLE001
                pass
        self._slots, self._running = [], {}
        self._log("close", retries=sum(self.stats.retries.values()))
        if self._owns_connection:
            ray.shutdown()  # stops a local instance we started; only disconnects from a cluster

    def describe(self) -> str:
        return (f"ray ({self.capacity} workers, {self.cpus_per_trial:g} CPU / {self.gpus_per_trial:g} GPU per trial, "
                f"{self.scheduler})")

    def _log(self, event: str, **fields: Any) -> None:
        if self.run_dir is None:
            return
        line = json.dumps({"t": round(time.time(), 3), "event": event, **fields}, default=str)
        try:
            with open(self.run_dir / EVENT_LOG, "a") as handle:
                handle.write(line + "\n")
        except OSError:
            pass


__all__ = ["RayRunner", "RunnerStats", "SCHEDULERS"]
