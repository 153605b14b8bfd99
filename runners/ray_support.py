"""Pieces the Ray runner puts on the cluster: the reusable training actor and the ASHA coordinator.

Also the checks made before joining a cluster (:func:`probe_cluster`: a bounded answer for an
address where no Ray cluster answers, a refused token, or a node address that is no node of the
cluster; ``ray.init`` itself would retry for minutes), and the housekeeping of a local Ray
instance: a short temporary folder per run (Ray's unix sockets live under it and a socket path may
not exceed 107 bytes) and the removal of processes left behind by a driver that was killed, found
only inside that folder so that no other Ray is touched.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from nas.data.ref import DatasetRef, cached_dataset
from nas.errors import ConfigError
from nas.metrics import Metrics
from runners.base import Job, run_job


# ------------------------------------------------------------------------------ actors
class TrainWorker:
    """A reusable Ray actor: keeps the dataset and trains one job (a candidate, a seed) per call.

    ``data`` arrives as the value of the single ``ray.put`` the driver made (Ray resolves an object
    reference passed to an actor constructor), so the images cross the cluster once per worker and
    never with a job. Without it the worker loads ``data_ref`` from its own disk.
    """

    def __init__(self, data: Any, data_ref: DatasetRef | None, threads: int) -> None:
        import torch  # torch: imported when used, not at module import

        torch.set_num_threads(max(1, int(threads)))  # this process's CPU share, not the driver's
        self._data = data
        self._data_ref = data_ref

    def where(self) -> dict[str, Any]:
        """Where this worker lives: process id, Ray node id and address, and the GPUs Ray gave it."""
        import ray  # ray: imported only by a Ray run

        import torch  # torch: imported when used, not at module import

        return {"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id(), "threads": torch.get_num_threads(),
                "ip": ray.util.get_node_ip_address(), "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}

    def train(self, job: Job, coordinator: Any = None) -> "WorkerResult":
        import ray  # ray: imported only by a Ray run

        started = time.time()
        where = _placement(job.device)
        if job.needs_data and self._data is None and self._data_ref is not None:
            try:
                self._data = cached_dataset(self._data_ref)
            except Exception as exc:  # noqa: BLE001 - a worker without the files fails this trial only
                metrics = Metrics(status="failed", error=f"worker could not load the data: {type(exc).__name__}: {exc}")
                return WorkerResult(metrics, started, time.time(), where)
        on_epoch = None
        if coordinator is not None:
            def on_epoch(epoch: int, accuracy: float) -> bool:
                return bool(ray.get(coordinator.report.remote(job.trial, epoch, accuracy)))
        metrics = run_job(job, on_epoch=on_epoch, data=self._data)
        return WorkerResult(metrics, started, time.time(), where)


@dataclass(frozen=True)
class WorkerResult:
    """A trial's metrics with when (unix times, on the worker's clock) and where it trained.

    ``placement`` holds the device the trial selected, the device it computed on and the
    ``CUDA_VISIBLE_DEVICES`` Ray gave the worker (:func:`nas.device.placement`); the runner writes
    it all to ``RUN/ray_runner.jsonl``, so GPU scheduling can be checked from the log.
    """

    metrics: Metrics
    started: float
    ended: float
    placement: dict[str, Any] = field(default_factory=dict)


def _placement(device: str) -> dict[str, Any]:
    from nas.device import placement  # torch: imported when used, not at module import

    try:
        return placement(device)
    except Exception as exc:  # noqa: BLE001 - a bad device fails the trial in run_job, with this reason
        return {"device": f"unusable: {exc}", "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}


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
        from ray.tune.schedulers import AsyncHyperBandScheduler  # ray: imported only by a Ray run

        self.max_t = max(1, int(max_t))
        grace_period = min(max(1, int(grace_period)), self.max_t)
        self._scheduler = AsyncHyperBandScheduler(time_attr="epoch", metric="accuracy", mode="max",
                                                  max_t=self.max_t, grace_period=grace_period,
                                                  reduction_factor=reduction_factor, brackets=1)
        self._added: set[str] = set()
        self.decisions: list[tuple[int, int, float, bool]] = []

    def report(self, trial: int, epoch: int, accuracy: float) -> bool:
        from ray.tune.schedulers import TrialScheduler  # ray: imported only by a Ray run

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


# ----------------------------------------------------------------------- joining a cluster
@dataclass(frozen=True)
class ClusterNode:
    """One node of a running cluster as its GCS lists it."""

    node_id: str
    ip: str
    alive: bool
    head: bool


def _split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"address {address!r}: expected HOST:PORT of a Ray head (e.g. 10.0.0.5:6379), "
                          "auto, or ray://HOST:PORT", field="address")
    return host.strip("[]"), int(port)


def tcp_check(address: str, timeout_s: float, shown: str | None = None) -> None:
    """A TCP connection to ``HOST:PORT`` within ``timeout_s``, or a :class:`ConfigError` saying why
    not (``shown`` is the address as the user wrote it, e.g. with ``ray://``)."""
    shown = shown or address
    host, port = _split_address(address)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except socket.gaierror:
        raise ConfigError(f"address {shown}: unknown host {host!r}", field="address") from None
    except socket.timeout:
        raise ConfigError(f"address {shown}: no answer within {timeout_s:g} s (is a Ray head running there, "
                          "and reachable from this machine?)", field="address") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"address {shown}: cannot connect ({reason.lower()}); start the head there with "
                          f"`ray start --head --port {port}`", field="address") from None


_GCS_QUERY = """
import json, os, sys, threading
address, timeout_s = sys.argv[1], float(sys.argv[2])
answer = {}
def ask():
    try:
        from ray._raylet import GcsClient  # the client Ray's own CLI uses (`ray status`)
        infos = GcsClient(address=address).get_all_node_info(timeout=max(1, int(timeout_s)))
        answer["nodes"] = [{"node_id": i.node_id.hex(), "ip": i.node_manager_address, "alive": i.state == 0,
                            "head": bool(i.is_head_node)} for i in infos.values()]
    except BaseException as exc:
        answer["error"] = type(exc).__name__ + ": " + str(exc)
thread = threading.Thread(target=ask, daemon=True)
thread.start()
thread.join(timeout_s)
print(json.dumps(answer if not thread.is_alive() else {"silent": True}), flush=True)
os._exit(0)
"""


def _gcs_nodes(address: str, timeout_s: float, env: Mapping[str, str] | None = None) -> list[ClusterNode]:
    """The cluster's nodes, as its GCS lists them, asked by a child process.

    Why a child: a server that accepts connections but is no GCS would keep Ray's client retrying
    for minutes (here it costs ``timeout_s``); Ray's client logs its failures on the process's
    stderr (the CLI's answer must stay one line); and it reads the auth token once per process.
    """
    try:
        child = subprocess.run([sys.executable, "-c", _GCS_QUERY, address, str(timeout_s)], capture_output=True,
                               text=True, timeout=timeout_s + 60, stdin=subprocess.DEVNULL,
                               env=dict(env) if env is not None else None)
        answer = json.loads(child.stdout.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, json.JSONDecodeError, IndexError) as exc:
        raise ConfigError(f"address {address}: could not ask the Ray cluster ({type(exc).__name__})",
                          field="address") from None
    if answer.get("silent"):
        raise ConfigError(f"address {address}: a server answers there but no Ray cluster (no answer from a Ray "
                          f"GCS within {timeout_s:g} s; is it the port the head was started with?)", field="address")
    if "nodes" in answer:
        return [ClusterNode(**node) for node in answer["nodes"]]
    text = answer.get("error", "")
    if "InvalidAuthToken" in text or text.startswith("AuthenticationError"):
        raise ConfigError(f"address {address}: the cluster refused this process's token (InvalidAuthToken); set "
                          "RAY_AUTH_MODE=token and the cluster's RAY_AUTH_TOKEN in this environment",
                          field="address")
    raise ConfigError(f"address {address}: the Ray cluster did not answer ({text.splitlines()[0] if text else '?'})",
                      field="address")


def probe_cluster(address: str, timeout_s: float = 10.0, node_ip_address: str | None = None,
                  env: Mapping[str, str] | None = None) -> list[ClusterNode]:
    """Check, within about ``timeout_s`` per step, that a Ray cluster answers at ``address``
    (``HOST:PORT`` of its head) and that ``node_ip_address`` (the address this driver attaches as)
    is one of its live nodes; return its nodes.

    Why: ``ray.init`` retries an unreachable address for ten minutes and a wrong node address for
    one, then says only "Failed to connect". Every failure here is a :class:`ConfigError` naming the
    argument at fault. ``env`` is the environment the cluster is asked from (default this process's;
    it must hold the cluster's ``RAY_AUTH_TOKEN``).
    """
    tcp_check(address, timeout_s)
    nodes = _gcs_nodes(address, timeout_s, env)
    if node_ip_address is not None:
        live = sorted({n.ip for n in nodes if n.alive})
        if node_ip_address not in live:
            raise ConfigError(f"node_ip_address {node_ip_address}: no live node of the Ray cluster at {address} "
                              f"has this address (its nodes: {', '.join(live) or 'none'}); the driver must run on "
                              "one of them and name its address", field="node_ip_address")
    return nodes


def check_address(address: str, node_ip_address: str | None = None,
                  timeout_s: float = 10.0) -> tuple[str, list[ClusterNode]]:
    """Check a runner ``address`` as the Ray runner will use it, in bounded time: ``HOST:PORT`` and
    ``auto`` (resolved as Ray resolves it) with :func:`probe_cluster`, ``ray://HOST:PORT`` (Ray
    Client) by a TCP connection. Returns the resolved address and the nodes (none for Ray Client).

    Callers that write something before the runner starts (a run folder) call it first, so that a
    wrong address stops them before anything is written."""
    check_node_ip(node_ip_address)
    if address.startswith("ray://"):  # Ray Client: a gRPC proxy on the head, not the GCS
        tcp_check(address[len("ray://"):], timeout_s, shown=address)
        return address, []
    target = address
    if address == "auto":
        try:
            from ray._private.services import canonicalize_bootstrap_address  # ray: imported only by a Ray run

            target = canonicalize_bootstrap_address(address)
        except ConnectionError:
            raise ConfigError("address auto: no Ray cluster was started on this machine (run `ray start --head`, "
                              "or give the head's HOST:PORT)", field="address") from None
        except Exception:  # noqa: BLE001 - Ray's own lookup changed: let ray.init find it
            return address, []
        if not target:
            return address, []
    return target, probe_cluster(target, timeout_s, node_ip_address)


def check_node_ip(node_ip_address: str | None) -> None:
    """A node address must be an IP address (Ray compares it with the nodes' addresses as text)."""
    if node_ip_address is None:
        return
    try:
        ipaddress.ip_address(node_ip_address)
    except ValueError:
        raise ConfigError(f"node_ip_address {node_ip_address!r}: expected an IP address such as 10.0.0.5 "
                          "(the address of this machine's Ray node)", field="node_ip_address") from None


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


__all__ = ["TrainWorker", "WorkerResult", "AshaCoordinator", "ClusterNode", "probe_cluster", "check_address",
           "check_node_ip", "tcp_check", "temp_root", "link_logs", "stale_sessions", "reap_stale_sessions"]
