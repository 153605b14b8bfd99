"""A real multi-node Ray cluster on this machine, for the tests and the scaling benchmark.

Each node is a ``ray start --block`` process (its own raylet, object store and agents) started in a
session of its own, on its own loopback address and with its own ``--temp-dir``, so that:

- the tests never touch anybody else's Ray: every process a node owns is in that node's session
  (or names the node's temp dir) and is killed by that, never by name;
- Ray keeps the address as given (it rewrites ``127.0.0.1`` / ``localhost`` to the machine's
  external interface, which these machines do not route): use ``127.0.0.2``, ``127.0.0.3``...;
- head, nodes and drivers share one random ``RAY_AUTH_TOKEN`` with ``RAY_AUTH_MODE=token`` (this
  Ray turns token authentication on; a driver without the token fails with ``InvalidAuthToken``).

Usage::

    with start_cluster(head_ip="127.0.0.2") as cluster:      # a head with 1 CPU
        node = cluster.add_node("127.0.0.3")                   # a second raylet
        subprocess.run([... "nas", "search", "--address", cluster.address, "--node-ip-address",
                        cluster.head.ip, ...], env=cluster.driver_env())
        node.kill_raylet()                                     # lose the node mid-search

``start_cluster`` stops every node when the block ends, however it ends, and when pytest itself is
killed (a :class:`server_watchdog.Watchdog` guards the nodes).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from server_watchdog import Watchdog

RAY = str(Path(sys.executable).with_name("ray"))
START_TIMEOUT_S = 90.0
OBJECT_STORE_BYTES = 150 * 2**20  # Ray's minimum is 75 MB; the default (30% of RAM) is far more than tests need


# ------------------------------------------------------------------------------ processes
def session_pids(sid: int) -> list[int]:
    """Live (not zombie) processes of session ``sid``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if os.getsid(int(entry.name)) == sid and state != "Z":
                    pids.append(int(entry.name))
            except (OSError, IndexError):
                pass
    return pids


def kill_session(sid: int, grace_s: float = 0.0) -> None:
    """Stop every process of a session a test started: SIGTERM, ``grace_s`` to exit, then SIGKILL."""
    if grace_s > 0:
        for pid in session_pids(sid):
            _signal(pid, signal.SIGTERM)
        deadline = time.time() + grace_s
        while session_pids(sid) and time.time() < deadline:
            time.sleep(0.1)
    for pid in session_pids(sid):
        _signal(pid, signal.SIGKILL)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass


def pids_naming(folder: Path | str) -> list[int]:
    """Processes whose command line names ``folder`` (Ray passes a node's session dir to its processes)."""
    text = str(folder)
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def free_port(ip: str) -> int:
    """A TCP port nothing listens on at ``ip`` now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind((ip, 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------------------- the nodes
@dataclass
class RayNode:
    """One raylet of the cluster: the ``ray start --block`` process leading its own session."""

    ip: str
    temp_dir: Path
    process: subprocess.Popen
    log: Path

    def pids(self) -> list[int]:
        """Every live process of this node: its session, plus any that names its temp dir."""
        return sorted(set(session_pids(self.process.pid)) | set(pids_naming(self.temp_dir)))

    def raylet_pid(self) -> int | None:
        for pid in self.pids():
            try:
                argv0 = (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0")[0]
            except OSError:
                continue
            if argv0.endswith(b"/raylet/raylet"):
                return pid
        return None

    def kill_raylet(self) -> int:
        """SIGKILL this node's raylet (the node is lost, as when its machine dies); return its pid."""
        pid = self.raylet_pid()
        if pid is None:
            raise RuntimeError(f"node {self.ip} has no raylet running")
        os.kill(pid, signal.SIGKILL)
        return pid

    def stop(self) -> None:
        kill_session(self.process.pid, grace_s=1.0)
        for pid in pids_naming(self.temp_dir):
            _signal(pid, signal.SIGKILL)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


@dataclass
class RayCluster:
    """A head and any number of nodes; ``env`` is what head, nodes and drivers share (token auth)."""

    root: Path
    env: dict[str, str]
    head: RayNode | None = None
    nodes: list[RayNode] = field(default_factory=list)
    port: int = 0
    watchdog: Watchdog | None = None  # told the session of every node started

    @property
    def address(self) -> str:
        """What ``--address`` takes: the head's GCS as HOST:PORT."""
        assert self.head is not None
        return f"{self.head.ip}:{self.port}"

    def driver_env(self, **extra: str) -> dict[str, str]:
        """The environment of a driver process (``nas search``) joining this cluster."""
        return {**os.environ, **self.env, **extra}

    def _start(self, ip: str, args: list[str], num_cpus: int, num_gpus: int, env: dict[str, str] | None) -> RayNode:
        temp_dir = self.root / ip.replace(".", "_")
        temp_dir.mkdir()
        log = self.root / f"{ip}.log"
        command = [RAY, "start", "--block", "--node-ip-address", ip, "--temp-dir", str(temp_dir),
                   "--num-cpus", str(num_cpus), "--num-gpus", str(num_gpus), "--disable-usage-stats",
                   "--object-store-memory", str(OBJECT_STORE_BYTES),
                   "--dashboard-agent-listen-port", str(free_port(ip)), *args]
        with open(log, "wb") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       env={**os.environ, **self.env, **(env or {})}, start_new_session=True,
                                       cwd=self.root)
        node = RayNode(ip=ip, temp_dir=temp_dir, process=process, log=log)
        self.nodes.append(node)
        if self.watchdog is not None:
            self.watchdog.guard_session(process.pid)
        return node

    def start_head(self, ip: str, num_cpus: int = 1, num_gpus: int = 0, env: dict[str, str] | None = None) -> RayNode:
        self.port = free_port(ip)
        args = ["--head", "--port", str(self.port), "--include-dashboard", "false",
                "--dashboard-host", ip, "--dashboard-port", str(free_port(ip))]
        self.head = self._start(ip, args, num_cpus, num_gpus, env)
        self._wait_alive(self.head)
        return self.head

    def add_node(self, ip: str, num_cpus: int = 1, num_gpus: int = 0, env: dict[str, str] | None = None) -> RayNode:
        """Start a raylet on ``ip`` that joins the head; return once the head lists it alive."""
        node = self._start(ip, ["--address", self.address], num_cpus, num_gpus, env)
        self._wait_alive(node)
        return node

    def _wait_alive(self, node: RayNode) -> None:
        """Until the head's GCS lists ``node`` as alive (asked the way the runner asks it)."""
        from nas.errors import ConfigError
        from runners.ray_support import probe_cluster

        deadline = time.time() + START_TIMEOUT_S
        while True:
            if node.process.poll() is not None:
                raise RuntimeError(f"ray start on {node.ip} exited ({node.process.returncode}):\n"
                                   f"{node.log.read_text()[-3000:]}")
            try:
                probe_cluster(self.address, timeout_s=5, node_ip_address=node.ip, env=self.driver_env())
                return
            except ConfigError as exc:
                if time.time() > deadline:
                    raise RuntimeError(f"the Ray node on {node.ip} did not join within {START_TIMEOUT_S:.0f} s "
                                       f"({exc}):\n{node.log.read_text()[-3000:]}") from None
                time.sleep(0.25)

    def stop(self) -> None:
        """Stop every node, the nodes before the head."""
        for node in reversed(self.nodes):
            node.stop()


@contextmanager
def start_cluster(head_ip: str = "127.0.0.2", num_cpus: int = 1, num_gpus: int = 0,
                  env: dict[str, str] | None = None) -> Iterator[RayCluster]:
    """A running head on ``head_ip``; every node started through the cluster stops when the block ends.

    The temp dirs live under a short folder in /tmp (Ray's socket paths must stay under 107 bytes),
    removed at the end. ``env`` is extra environment for the head's processes (its workers inherit it).
    """
    root = Path(tempfile.mkdtemp(prefix="nasray-", dir="/tmp"))
    watchdog = Watchdog.start()  # stops every node if pytest dies before the finally below can
    watchdog.guard_folder(root)  # each node's processes name its temp dir, below root
    watchdog.remove(root)
    cluster = RayCluster(root=root, env={"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
                                         "RAY_USAGE_STATS_ENABLED": "0"}, watchdog=watchdog)
    try:
        cluster.start_head(head_ip, num_cpus=num_cpus, num_gpus=num_gpus, env=env)
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
        watchdog.close()


__all__ = ["RayCluster", "RayNode", "free_port", "kill_session", "session_pids", "start_cluster"]
