"""The Ray runner: each candidate trains on one of ``workers`` reusable Ray actors.

Why actors and not ``tune.Tuner``: our search loop (nas/search.py) already owns the ask/tell cycle,
the store and resume, and it talks to every runner through ``submit`` / ``wait``. A pool of actors
is exactly that shape: one actor per concurrent trial, holding the dataset once, with its own CPU /
GPU share. Tune would own the loop instead, and a lost worker, a resumed run and the Optuna store
would each need a second path. Tune's pieces are still used where they fit: ASHA early stopping is
Ray Tune's ``AsyncHyperBandScheduler`` (held by a small coordinator actor), and
``nas.controllers.tune_adapter`` puts our controllers into ``tune.Tuner`` for users who want Tune.

Worker loss (an actor process killed, a node gone) is retried up to ``retries`` times on the first
free worker, while a fresh actor replaces the lost one wherever Ray can place it (on a lost node's
cluster that may be later, or never); after that the trial is recorded as failed with the reason.
``RUN/ray_runner.jsonl`` gets one JSON line per event: each worker's start (process, node id and
address, ``CUDA_VISIBLE_DEVICES``), each trial's submission and result (node, start and end times
on the worker, the device it selected and computed on), retries and losses.
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

from nas.data.ref import DatasetRef
from nas.errors import ConfigError, unknown_name
from nas.interrupts import keep_signal_handlers
from nas.metrics import Metrics
from nas.threads import ray_cpus_per_trial
from runners.base import Job, Runner
from runners.ray_support import (
    AshaCoordinator,
    TrainWorker,
    WorkerResult,
    check_address,
    check_node_ip,
    link_logs,
    reap_stale_sessions,
    temp_root,
)

SCHEDULERS = ("fifo", "asha")
EVENT_LOG = "ray_runner.jsonl"


@dataclass
class _Slot:
    """One worker actor and what it is doing.

    A worker is *started* once it answered :meth:`TrainWorker.where` (``where`` holds the answer);
    until then ``ready_ref`` is that pending call. Only started workers get jobs: an actor Ray
    cannot place yet (its node is gone, or the cluster lacks room) must not hold a trial hostage.
    """

    actor: Any
    ready_ref: Any = None
    where: dict[str, Any] | None = None
    job: Job | None = None
    generation: int = 0  # how many actors this slot has had
    failed_starts: int = 0  # consecutive actors of this slot that died before answering

    @property
    def pid(self) -> int | None:
        return None if self.where is None else self.where.get("pid")

    @property
    def node(self) -> str | None:
        return None if self.where is None else self.where.get("node")


@dataclass
class RunnerStats:
    """What the runner measured, for the benchmark and the logs."""

    startup_s: float = 0.0  # ray.init (0 when joining a running instance)
    actors_s: float = 0.0  # creating the workers until each answered (includes shipping the data)
    retries: dict[int, int] = field(default_factory=dict)  # job -> retries after worker loss
    lost: list[dict[str, Any]] = field(default_factory=list)


MAX_FAILED_STARTS = 3  # a slot whose actors die this often in a row before answering is given up
START_GRACE_S = 5.0  # after the first worker answered, how long the others get before jobs start


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class RayRunner(Runner):
    """Train candidates on Ray actors; see the module docstring for the design.

    Options (the CLI's ``--address --node-ip-address --workers --gpus-per-trial --cpus-per-trial
    --retries --scheduler``):

    - ``address``: ``None`` starts a local Ray on this machine (``num_cpus`` of it, default all);
      ``HOST:PORT`` (a head started with ``ray start --head --port PORT``), ``"auto"`` (the cluster
      ``ray start`` left on this machine) or ``"ray://HOST:PORT"`` (Ray Client) join a running
      cluster and leave it running at the end. A cluster that does not answer within
      ``connect_timeout_s`` is a :class:`ConfigError`, never a hang.
    - ``node_ip_address``: the address of this machine's Ray node, which the driver attaches to
      (``ray.init(_node_ip_address=...)``); needed where the machine has several addresses.
    - ``workers``: concurrent trials (default: as many as the cluster's CPUs / GPUs allow). Workers
      the cluster cannot place yet join when it can (a node added later); trials never wait on them.
    - ``gpus_per_trial``: default 1 when the cluster has GPUs, else 0 (fractions pack several trials
      on one GPU). ``cpus_per_trial``: default the cluster's CPUs / ``workers`` (1 without ``workers``); it is
      also the worker's torch thread count.
    - ``retries``: how often a trial whose worker died is started again (default 2).
    - ``scheduler``: ``fifo`` (every candidate trains its whole budget) or ``asha`` (Ray Tune's
      asynchronous successive halving on per-epoch minival accuracy; ``asha_grace_period`` epochs,
      ``asha_reduction_factor``).
    - ``data``: ``"put"`` ships the driver's loaded dataset once with ``ray.put``; ``"load"`` makes each
      worker read ``data_ref`` (``--dataset`` / ``--data-dir``) from its own disk.
    """

    def __init__(self, *, device: str = "auto", dataset: Any = None, data_ref: DatasetRef | None = None,
                 run_dir: str | Path | None = None, address: str | None = None, node_ip_address: str | None = None,
                 workers: int | None = None, gpus_per_trial: float | None = None,
                 cpus_per_trial: float | None = None, retries: int | None = None, scheduler: str | None = None,
                 num_cpus: int | None = None, data: str = "put", asha_grace_period: int = 1,
                 asha_reduction_factor: float = 3, actor_timeout_s: float = 600.0,
                 connect_timeout_s: float = 10.0) -> None:
        self.check_options(workers=workers, gpus_per_trial=gpus_per_trial, cpus_per_trial=cpus_per_trial,
                           retries=retries, scheduler=scheduler, num_cpus=num_cpus, data=data,
                           asha_reduction_factor=asha_reduction_factor, node_ip_address=node_ip_address)
        self.device = device
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.scheduler = scheduler or "fifo"
        self.retries = 2 if retries is None else retries
        self.cpus_per_trial = 1.0 if cpus_per_trial is None else float(cpus_per_trial)
        if dataset is None and data_ref is None:
            raise ConfigError("the ray runner needs a dataset or a dataset reference", field="dataset")
        self._asha = (asha_grace_period, asha_reduction_factor)
        self._data_ref = data_ref
        self._data_mode = data if dataset is not None else "load"
        self._actor_timeout_s = float(actor_timeout_s)
        self.stats = RunnerStats()
        self._slots: list[_Slot] = []
        self._running: dict[Any, int] = {}  # object ref -> slot index
        self._queue: deque[Job] = deque()
        self._coordinator = None
        self._owns_connection = False
        self._closed = False

        import ray  # ray: imported only by a Ray run

        self._ray = ray
        self._connect(address, node_ip_address, num_cpus, float(connect_timeout_s))
        try:
            resources = ray.cluster_resources()
            self.cpus_per_trial = ray_cpus_per_trial(cpus_per_trial, workers, float(resources.get("CPU", 1)))
            self.gpus_per_trial = self._default_gpus(gpus_per_trial, resources)
            self.capacity = self._default_workers(workers, resources)
            self._log("start", address=address or "local", node_ip_address=node_ip_address, workers=self.capacity,
                      cpus_per_trial=self.cpus_per_trial, gpus_per_trial=self.gpus_per_trial,
                      scheduler=self.scheduler, retries=self.retries,
                      resources={k: v for k, v in resources.items() if k in ("CPU", "GPU")},
                      nodes=[{"node": n["NodeID"], "ip": n["NodeManagerAddress"]} for n in ray.nodes() if n["Alive"]],
                      startup_s=round(self.stats.startup_s, 3))
            self._start_workers(dataset)
        except BaseException:
            self.close()
            raise

    # --------------------------------------------------------------------------- setup
    @classmethod
    def check_options(cls, *, address: str | None = None, node_ip_address: str | None = None,
                      workers: int | None = None, gpus_per_trial: float | None = None,
                      cpus_per_trial: float | None = None, retries: int | None = None, scheduler: str | None = None,
                      num_cpus: int | None = None, data: str = "put", asha_reduction_factor: float = 3,
                      probe: bool = False, **_: Any) -> None:
        """Refuse every option value that cannot work, before anything starts or is written.

        ``probe`` also asks the cluster at ``address`` (within seconds): a search calls this before
        its run folder exists, so a typo or a wrong address leaves nothing behind.
        """
        if (scheduler or "fifo") not in SCHEDULERS:
            raise unknown_name("scheduler", scheduler, SCHEDULERS, field="scheduler")
        if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
            raise ConfigError(f"workers must be an integer >= 1, got {workers!r}", field="workers")
        if cpus_per_trial is not None and not (_finite(cpus_per_trial) and cpus_per_trial > 0):
            raise ConfigError(f"cpus_per_trial must be > 0, got {cpus_per_trial!r}", field="cpus_per_trial")
        if gpus_per_trial is not None and not (_finite(gpus_per_trial) and gpus_per_trial >= 0):
            raise ConfigError(f"gpus_per_trial must be >= 0, got {gpus_per_trial!r}", field="gpus_per_trial")
        if retries is not None and (not isinstance(retries, int) or isinstance(retries, bool) or retries < 0):
            raise ConfigError(f"retries must be an integer >= 0, got {retries!r}", field="retries")
        if data not in ("put", "load"):
            raise unknown_name("data mode", data, ("put", "load"))
        if not asha_reduction_factor > 1:
            raise ConfigError(f"asha_reduction_factor must be > 1, got {asha_reduction_factor!r}",
                              field="asha_reduction_factor")
        if num_cpus is not None and (not isinstance(num_cpus, int) or num_cpus < 1):
            raise ConfigError(f"num_cpus must be an integer >= 1, got {num_cpus!r}", field="num_cpus")

        check_node_ip(node_ip_address)
        if probe and address:
            check_address(str(address), node_ip_address)

    def _connect(self, address: str | None, node_ip_address: str | None, num_cpus: int | None,
                 timeout_s: float) -> None:
        ray = self._ray
        start = time.perf_counter()
        if ray.is_initialized():
            self._log("connect", note="using the Ray instance this process already started")
            return
        options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
        if node_ip_address is not None:
            options["_node_ip_address"] = node_ip_address
        if address:
            self._probe(address, node_ip_address, timeout_s)
            try:
                with keep_signal_handlers():  # SIGTERM stays a clean stop (nas.interrupts), not ray's sys.exit
                    ray.init(address=address, **options)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise ConfigError(f"address {address}: cannot join a Ray cluster there "
                                  f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})",
                                  field="address") from None
        else:
            root = temp_root(self.run_dir)
            reaped = reap_stale_sessions(root)
            if reaped:
                self._log("reaped", pids=reaped, note="processes left by a killed driver of this run")
            with keep_signal_handlers():
                ray.init(address="local", num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False,
                         _temp_dir=str(root), **options)
            if self.run_dir is not None:
                link_logs(self.run_dir, root)
        self._owns_connection = True
        self.stats.startup_s = time.perf_counter() - start

    def _probe(self, address: str, node_ip_address: str | None, timeout_s: float) -> None:
        """Answer a wrong address in bounded time, before ``ray.init`` retries it for minutes."""
        target, nodes = check_address(address, node_ip_address, timeout_s)
        if nodes:
            self._log("cluster", address=target, nodes=[{"node": n.node_id, "ip": n.ip, "alive": n.alive,
                                                         "head": n.head} for n in nodes])

    def _default_gpus(self, gpus: float | None, resources: dict[str, float]) -> float:
        available = float(resources.get("GPU", 0))
        if gpus is None:
            return 1.0 if available >= 1 else 0.0
        if gpus > available:
            raise ConfigError(f"gpus_per_trial {gpus:g} but the Ray cluster has {available:g} GPUs",
                              field="gpus_per_trial")
        return float(gpus)

    def _default_workers(self, workers: int | None, resources: dict[str, float]) -> int:
        cpus = float(resources.get("CPU", 0))
        if self.cpus_per_trial > cpus:
            raise ConfigError(f"cpus_per_trial {self.cpus_per_trial:g} but the Ray cluster has {cpus:g} CPUs",
                              field="cpus_per_trial")
        fit = math.floor(cpus / self.cpus_per_trial + 1e-9)
        if self.gpus_per_trial > 0:
            fit = min(fit, math.floor(float(resources.get("GPU", 0)) / self.gpus_per_trial + 1e-9))
        if workers is None:
            return max(1, fit)
        if workers > fit:
            # A cluster may grow (autoscaling, a node joining): the extra workers start when it does.
            self._log("warning", note=f"workers {workers} but the cluster fits {fit} trials now; the others "
                                      "start when room appears")
        return workers

    def _start_workers(self, dataset: Any) -> None:
        """Create every worker; return once the first answered and the others had a short grace.

        Workers created together that fit on the cluster answer within moments of each other; one
        that does not answer by then waits for room (see :class:`_Slot`) and joins when it starts.
        """
        ray = self._ray

        start = time.perf_counter()
        self._worker_cls = ray.remote(TrainWorker)
        self._data_obj = ray.put(dataset) if self._data_mode == "put" else None
        self._slots = [_Slot(actor=None) for _ in range(self.capacity)]
        for index in range(self.capacity):
            self._new_actor(index)
        refs = [slot.ready_ref for slot in self._slots]
        first, _ = ray.wait(refs, num_returns=1, timeout=self._actor_timeout_s)
        if not first:
            raise ConfigError(f"no Ray worker started within {self._actor_timeout_s:.0f} s: no node of the cluster "
                              f"has the {self.cpus_per_trial:g} CPU(s) and {self.gpus_per_trial:g} GPU(s) asked per "
                              "trial free", field="cpus_per_trial")
        ray.wait(refs, num_returns=len(refs), timeout=START_GRACE_S)
        self._poll_starts()
        if self.scheduler == "asha":
            grace, rf = self._asha
            self._coordinator_cls = ray.remote(num_cpus=0)(AshaCoordinator)
            self._coordinator_args = (grace, rf)
        self.stats.actors_s = time.perf_counter() - start
        self._log("workers", pids=[s.pid for s in self._slots], nodes=[s.node for s in self._slots],
                  threads=[s.where.get("threads") if s.where else None for s in self._slots],
                  started=sum(s.where is not None for s in self._slots), actors_s=round(self.stats.actors_s, 3))

    def _new_actor(self, index: int) -> None:
        """Give slot ``index`` a fresh actor (the first, or after a loss) and ask where it runs."""
        slot = self._slots[index]
        options = {"num_cpus": self.cpus_per_trial, "num_gpus": self.gpus_per_trial, "max_restarts": 0}
        slot.actor = self._worker_cls.options(**options).remote(
            self._data_obj, self._data_ref if self._data_mode == "load" else None, self.cpus_per_trial)
        slot.where = None
        slot.ready_ref = slot.actor.where.remote()

    def _poll_starts(self, refs: list[Any] | None = None) -> None:
        """Mark the workers whose ``where`` answered (all ready ones, or those among ``refs``) started."""
        ray = self._ray
        pending = {slot.ready_ref: i for i, slot in enumerate(self._slots) if slot.ready_ref is not None}
        if refs is None:
            refs, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0) if pending else ([], [])
        for ref in refs:
            if ref in pending:
                self._started(pending[ref], ref)

    def _started(self, index: int, ref: Any) -> None:
        ray = self._ray
        slot = self._slots[index]
        slot.ready_ref = None
        try:
            slot.where = ray.get(ref)
        except LOSS_ERRORS as exc:
            slot.failed_starts += 1
            reason = _first_line(exc)
            if slot.failed_starts >= MAX_FAILED_STARTS:
                self._log("warning", note=f"worker {index} given up: {slot.failed_starts} actors in a row died "
                                          f"before starting; last: {reason}")
                return
            self._log("warning", note=f"worker {index} died before starting ({reason}); starting another")
            self._kill(slot.actor)
            slot.generation += 1
            self._new_actor(index)
            return
        slot.failed_starts = 0
        self._log("worker", worker=index, generation=slot.generation, **slot.where)

    def _ensure_coordinator(self, job: Job) -> Any:
        if self.scheduler != "asha":
            return None
        if self._coordinator is None:
            epochs = getattr(job.budget, "epochs", None) or 1
            max_t = max(1, math.ceil(float(epochs)))
            grace, rf = self._coordinator_args
            self._coordinator = self._coordinator_cls.remote(max_t, grace, rf)
        return self._coordinator

    # ------------------------------------------------------------------------------ jobs
    def submit(self, job: Job) -> None:
        self._queue.append(job)
        self._dispatch()

    def _dispatch(self) -> None:
        for index, slot in enumerate(self._slots):
            if not self._queue:
                return
            if slot.job is None and slot.where is not None:
                self._launch(index, self._queue.popleft())

    def _launch(self, index: int, job: Job) -> None:
        slot = self._slots[index]
        slot.job = job
        ref = slot.actor.train.remote(job, self._ensure_coordinator(job))
        self._running[ref] = index
        self._log("submit", job=job.trial, worker=index, pid=slot.pid, node=slot.node,
                  attempt=self.stats.retries.get(job.trial, 0))

    def wait(self) -> list[tuple[Job, Metrics]]:
        ray = self._ray
        finished: list[tuple[Job, Metrics]] = []
        while not finished and (self._running or self._queue):
            starting = [slot.ready_ref for slot in self._slots if slot.ready_ref is not None]
            refs = list(self._running) + starting
            if not refs:
                finished += self._fail_queued("no Ray worker is left to train it (every worker failed to start)")
                break
            # With trials running, wait for them as long as they take; with none, a queued trial waits
            # for a worker to start for at most the actor timeout (its node may never come back).
            ready, _ = ray.wait(refs, num_returns=1, timeout=None if self._running else self._actor_timeout_s)
            if not ready:
                finished += self._fail_queued(f"no Ray worker could start within {self._actor_timeout_s:.0f} s")
                break
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
            self._poll_starts([ref for ref in ready if ref not in self._running])
            for ref in ready:
                if ref not in self._running:
                    continue
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

    def _fail_queued(self, reason: str) -> list[tuple[Job, Metrics]]:
        failed = [(job, Metrics(status="failed", error=reason)) for job in self._queue]
        for job, _ in failed:
            self._log("failed", job=job.trial, reason=reason)
        self._queue.clear()
        return failed

    def _collect(self, ref: Any, index: int, job: Job) -> Metrics | None:
        """The job's metrics, or ``None`` when it was started again after its worker died."""
        ray = self._ray
        from ray.exceptions import RayTaskError  # ray: imported only by a Ray run

        slot = self._slots[index]
        try:
            result = ray.get(ref)
        except LOSS_ERRORS as exc:
            return self._worker_lost(index, job, exc)
        except RayTaskError as exc:  # a bug outside run_job's guard (e.g. an unpicklable job)
            cause = exc.cause if getattr(exc, "cause", None) is not None else exc
            self._log("error", job=job.trial, error=f"{type(cause).__name__}: {cause}")
            return Metrics(status="failed", error=f"{type(cause).__name__}: {cause}")
        if not isinstance(result, WorkerResult) or not isinstance(result.metrics, Metrics):
            return Metrics(status="failed", error=f"worker returned {type(result).__name__}, not a WorkerResult")
        metrics = result.metrics
        self._log("done", job=job.trial, worker=index, pid=slot.pid, node=slot.node, status=metrics.status,
                  accuracy=metrics.accuracy, epochs=metrics.epochs, train_time_s=metrics.train_time_s,
                  wall_time_s=metrics.wall_time_s, started=round(result.started, 3), ended=round(result.ended, 3),
                  **result.placement)
        return metrics

    def _worker_lost(self, index: int, job: Job, exc: BaseException) -> Metrics | None:
        slot = self._slots[index]
        reason = _first_line(exc)
        attempts = self.stats.retries.get(job.trial, 0)
        lost_pid, lost_node = slot.pid, slot.node
        self.stats.lost.append({"job": job.trial, "pid": lost_pid, "node": lost_node, "reason": reason})
        self._kill(slot.actor)
        slot.generation += 1
        self._new_actor(index)  # starts when Ray can place it; the trial goes to the first free worker
        if attempts < self.retries:
            self.stats.retries[job.trial] = attempts + 1
            self._log("retry", job=job.trial, worker=index, lost_pid=lost_pid, lost_node=lost_node,
                      retry=attempts + 1, of=self.retries, reason=reason)
            self._queue.appendleft(job)
            return None
        self._log("failed", job=job.trial, retries=attempts, reason=reason)
        return Metrics(status="failed", error=f"worker lost {attempts + 1} times, last: {reason}")

    def _kill(self, actor: Any) -> None:
        try:
            self._ray.kill(actor, no_restart=True)
        except Exception:  # noqa: BLE001 - it is already gone
            pass

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
            self._kill(slot.actor)
        if self._coordinator is not None:
            try:  # keep every early-stopping decision in the run's log, where it can be checked
                for job, epoch, accuracy, stopped in self.asha_history():
                    self._log("asha", job=job, epoch=epoch, accuracy=accuracy, stopped=stopped)
            except Exception:  # noqa: BLE001 - the coordinator is gone with its node
                self._log("warning", note="the ASHA decisions could not be read back")
            self._kill(self._coordinator)
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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}".strip()


def _loss_errors() -> tuple[type[BaseException], ...]:
    """Ray's errors that mean "the worker or its node is gone" (the trial is retried elsewhere)."""
    # ray: imported only by a Ray run
    from ray.exceptions import NodeDiedError, ObjectLostError, RayActorError, WorkerCrashedError

    return (RayActorError, WorkerCrashedError, ObjectLostError, NodeDiedError)


LOSS_ERRORS = _loss_errors()

__all__ = ["RayRunner", "RunnerStats", "SCHEDULERS"]
