"""A pytest killed with SIGKILL while its PostgreSQL server and Ray node run leaves neither behind
(tests/server_watchdog.py), checked on a real pytest process, a real server and a real raylet."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cluster import pids_naming
from postgres import find_pg_bindir, missing_reason

TESTS = Path(__file__).resolve().parent

# The test the killed pytest runs: start the servers, say where they are, and wait to be killed.
HOLDER = """
import contextlib, json, os, time
from pathlib import Path

from cluster import start_cluster
from postgres import start_postgres


def test_hold_servers_until_killed():
    with contextlib.ExitStack() as stack:
        info = {}
        if os.environ["WITH_POSTGRES"] == "1":
            server = stack.enter_context(start_postgres())
            info["postgres"] = int((server.data_dir / "postmaster.pid").read_text().split()[0])
            info["postgres_dir"] = str(server.data_dir)
        if os.environ["WITH_RAY"] == "1":
            cluster = stack.enter_context(start_cluster("127.0.0.7"))
            info["raylet"] = cluster.head.raylet_pid()
            info["ray_pids"] = cluster.head.pids()
            info["ray_dir"] = str(cluster.root)
        Path(os.environ["INFO"]).write_text(json.dumps(info))
        time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def kill_pytest_holding(tmp_path: Path, postgres: bool, ray: bool) -> dict:
    """Start a pytest that starts the servers, SIGKILL it once they run; returns what it said they are."""
    (tmp_path / "test_hold.py").write_text(HOLDER)
    info = tmp_path / "info.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)]), "INFO": str(info),
           "WITH_POSTGRES": str(int(postgres)), "WITH_RAY": str(int(ray))}
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-c", os.devnull, "-p", "no:cacheprovider", "-q",
                             str(tmp_path / "test_hold.py")], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 180
    while not info.exists():
        if proc.poll() is not None:
            pytest.fail(f"the pytest holding the servers ended first:\n{proc.stdout.read()[-3000:]}")
        if time.time() > deadline:
            proc.kill()
            pytest.fail("the servers did not start within 180 s")
        time.sleep(0.1)
    time.sleep(0.2)  # the file is written in one call, but give the writer a moment to close it
    started = json.loads(info.read_text())
    # Running while pytest holds them; after the kill only the watchdog can stop them (checking that after
    # the kill raced with the watchdog, which may already have stopped them: it failed under load).
    for name in ("postgres", "raylet"):
        assert name not in started or (started[name] and _alive(started[name])), (name, started)
    proc.send_signal(signal.SIGKILL)  # no finally, no fixture teardown runs
    proc.wait()
    return started


def wait_until_gone(pids: list[int], folders: list[str], timeout: float = 60) -> None:
    """Until the processes, any process naming the folders, and the folders themselves are gone."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        left = [p for p in pids if _alive(p)] + [p for f in folders for p in pids_naming(f)]
        kept = [f for f in folders if Path(f).exists()]
        if not left and not kept:
            return
        time.sleep(0.2)
    pytest.fail(f"{timeout:.0f} s after pytest was killed, still running: {sorted(set(left))}, still there: {kept}")


def test_a_killed_pytest_leaves_no_postgres_server(tmp_path):
    if find_pg_bindir() is None:
        pytest.skip(missing_reason())
    started = kill_pytest_holding(tmp_path, postgres=True, ray=False)
    wait_until_gone([started["postgres"]], [started["postgres_dir"]])  # its folder removed too


@pytest.mark.slow(reason="a real Ray head and PostgreSQL server outliving a SIGKILLed pytest (seconds to start)")
def test_a_killed_pytest_leaves_no_raylet_and_no_postgres(tmp_path):
    postgres = find_pg_bindir() is not None
    started = kill_pytest_holding(tmp_path, postgres=postgres, ray=True)
    pids = [started["raylet"], *started["ray_pids"]] + ([started["postgres"]] if postgres else [])
    wait_until_gone(pids, [started["ray_dir"]] + ([started["postgres_dir"]] if postgres else []))
