"""``nas search --runner ray`` against a real multi-node Ray cluster started on this machine.

The cluster (tests/cluster.py) is a head on 127.0.0.2 and a second raylet on 127.0.0.3, each with
one CPU, token authentication and temp dirs of their own; the search runs in a third process, as a
user would run it. A third node (127.0.0.4) then joins declaring two GPUs (Ray's logical
resources); its workers fake CUDA's availability check (``NAS_FAKE_GPUS``, nas/device.py), which
checks GPU scheduling on a machine without GPUs. Every process these tests start is stopped by them, by
session id, even when a test fails.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from cluster import free_port, kill_session, start_cluster
from nas.device import FAKE_GPUS_ENV
from nas.errors import ConfigError
from runners.ray_cluster import EVENT_LOG
from runners.ray_support import check_node_ip, probe_cluster

REPO = Path(__file__).resolve().parents[1]
TINY = ["--controller", "random", "--proxy-width", "0.25", "--proxy-depth", "0.25", "--proxy-resolution", "16",
        "--quiet"]


def events(out: Path) -> list[dict]:
    path = out / EVENT_LOG
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def search(cluster, out: Path, *flags: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``nas search --runner ray --address <cluster>`` in a process (and session) of its own."""
    args = [sys.executable, "-m", "nas", "search", "--runner", "ray", "--address", cluster.address,
            "--node-ip-address", cluster.head.ip, "--out", str(out), *TINY, *flags]
    proc = subprocess.Popen(args, cwd=REPO, env=env or cluster.driver_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        kill_session(proc.pid)
    return subprocess.CompletedProcess(args, proc.returncode, stdout, stderr)


def most_at_once(done: list[dict]) -> int:
    """The largest number of trials whose [started, ended] intervals (worker clocks) overlap."""
    edges = sorted([(e["started"], 1) for e in done] + [(e["ended"], -1) for e in done], key=lambda x: (x[0], x[1]))
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


# ----------------------------------------------------------------------- two nodes, one lost
@pytest.fixture(scope="module")
def two_nodes():
    with start_cluster("127.0.0.2", num_cpus=1) as cluster:
        cluster.add_node("127.0.0.3", num_cpus=1)
        yield cluster


@pytest.fixture(scope="module")
def node_loss_run(two_nodes, tmp_path_factory):
    """Four trials on both nodes; the second node's raylet is killed while it trains its second trial (the
    head then trains the rest: four trials are the fewest that give each node one and the lost node a second)."""
    out = tmp_path_factory.mktemp("cluster") / "run"
    second = two_nodes.nodes[1]
    killed: dict = {}

    def killer() -> None:
        deadline = time.time() + 240
        while time.time() < deadline:
            log = events(out)
            on_second = {e["node"] for e in log if e["event"] == "worker" and e["ip"] == second.ip}
            finished = {e["job"] for e in log if e["event"] == "done"}
            if any(e["event"] == "done" and e["node"] in on_second for e in log):
                busy = [e for e in log if e["event"] == "submit" and e["node"] in on_second
                        and e["job"] not in finished]
                if busy:  # the second node has just been given a trial (training takes seconds): lose it now
                    killed.update(job=busy[-1]["job"], node=busy[-1]["node"], raylet=second.kill_raylet())
                    return
            time.sleep(0.02)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    # 15 epochs: 8-13 s a trial on the slower 2-core machine alone, 1-2 s on the faster one; the killer polls every 20 ms
    result = search(two_nodes, out, "--trials", "4", "--epochs", "15", "--seed", "3")
    thread.join(timeout=5)
    return out, result, killed


@pytest.mark.slow(reason="a real two-node `ray start` cluster on loopback with token auth; no fast test starts one")
def test_trials_land_on_both_nodes(node_loss_run, two_nodes):
    out, result, _ = node_loss_run
    assert result.returncode == 0, result.stderr[-3000:]
    log = events(out)
    workers = [e for e in log if e["event"] == "worker"]
    ip_of = {e["node"]: e["ip"] for e in workers}
    assert set(ip_of.values()) == {"127.0.0.2", "127.0.0.3"}
    done = [e for e in log if e["event"] == "done"]
    assert {ip_of[e["node"]] for e in done} == {"127.0.0.2", "127.0.0.3"}
    assert all(e["status"] == "ok" for e in done)
    start = next(e for e in log if e["event"] == "start")
    assert start["node_ip_address"] == "127.0.0.2" and start["resources"]["CPU"] == 2


@pytest.mark.slow(reason="a raylet killed mid-trial on a real cluster")
def test_losing_a_node_retries_its_trial_on_the_head_and_keeps_the_exact_count(node_loss_run, two_nodes):
    out, result, killed = node_loss_run
    assert result.returncode == 0, result.stderr[-3000:]
    assert killed, "the second node finished its trials before the test could kill it"
    log = events(out)
    retry = [e for e in log if e["event"] == "retry"]
    assert [(e["job"], e["lost_node"]) for e in retry] == [(killed["job"], killed["node"])]
    head = {e["node"] for e in log if e["event"] == "worker" and e["ip"] == two_nodes.head.ip}
    final = [e for e in log if e["event"] == "done" and e["job"] == killed["job"]]
    assert len(final) == 1 and final[0]["node"] in head and final[0]["status"] == "ok"
    assert [e["attempt"] for e in log if e["event"] == "submit" and e["job"] == killed["job"]] == [0, 1]
    frame = pd.read_csv(out / "trials.csv")
    assert list(frame.trial) == list(range(4)) and (frame.status == "ok").all()
    assert sorted(e["job"] for e in log if e["event"] == "done") == list(range(4))
    assert not two_nodes.nodes[1].raylet_pid()


# ----------------------------------------------------------------------------- bad addresses
def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-3000:]
    return lines[0]


@pytest.mark.slow(reason="the whole command line in a subprocess against a closed port")
def test_unreachable_address_is_one_line_and_exit_2(tmp_path):
    port = free_port("127.0.0.2")
    args = [sys.executable, "-m", "nas", "search", "--runner", "ray", "--address", f"127.0.0.2:{port}",
            "--trials", "1", "--out", str(tmp_path / "r"), *TINY]
    result = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert one_line_error(result) == (f"error: --address 127.0.0.2:{port}: cannot connect (connection refused); "
                                      f"start the head there with `ray start --head --port {port}`")
    assert not (tmp_path / "r").exists()  # checked before the run folder is created


@pytest.mark.slow(reason="the probe against a real cluster's GCS (wrong node, wrong token)")
def test_node_ip_address_of_no_node_and_a_wrong_token_are_config_errors(two_nodes):
    """What the runner checks before ``ray.init`` (which would retry either for a minute or more);
    the CLI words these like any ConfigError (one line, exit 2, as the test above shows)."""
    with pytest.raises(ConfigError) as error:
        probe_cluster(two_nodes.address, node_ip_address="127.0.0.9", env=two_nodes.driver_env())
    assert error.value.field == "node_ip_address"
    assert str(error.value).startswith(f"node_ip_address 127.0.0.9: no live node of the Ray cluster at "
                                       f"{two_nodes.address} has this address (its nodes: 127.0.0.2")
    with pytest.raises(ConfigError, match=r"refused this process's token \(InvalidAuthToken\)") as error:
        probe_cluster(two_nodes.address, env=two_nodes.driver_env(RAY_AUTH_TOKEN="0" * 64))
    assert error.value.field == "address"


def test_a_server_that_is_no_ray_head_is_answered_in_bounded_time():
    """A listener that accepts and never speaks (a wrong port): the probe gives up after its timeout
    instead of Ray's minutes of retries."""
    with socket.socket() as server:
        server.bind(("127.0.0.2", 0))
        server.listen()
        address = f"127.0.0.2:{server.getsockname()[1]}"
        with pytest.raises(ConfigError, match="a server answers there but no Ray cluster"):
            probe_cluster(address, timeout_s=1)


def test_node_ip_address_must_be_an_ip_address():
    check_node_ip("127.0.0.2")
    with pytest.raises(ConfigError, match="expected an IP address") as error:
        check_node_ip("head-node")
    assert error.value.field == "node_ip_address"


# ------------------------------------------------------------------------- GPUs without GPUs
@pytest.fixture(scope="module")
def gpu_node(two_nodes):
    """A node declaring 2 GPUs and 4 CPUs (logical) joins the cluster; its workers fake CUDA's
    availability check. GPU trials can only go there."""
    two_nodes.add_node("127.0.0.4", num_cpus=4, num_gpus=2, env={FAKE_GPUS_ENV: "2"})
    return two_nodes


@pytest.mark.slow(reason="GPU scheduling on a real node declaring two logical GPUs")
def test_one_gpu_per_trial_runs_at_most_two_trials_on_two_gpus(gpu_node, tmp_path):
    out = tmp_path / "gpu1"
    result = search(gpu_node, out, "--trials", "3", "--epochs", "1", "--gpus-per-trial", "1", "--workers", "3")
    assert result.returncode == 0, result.stderr[-3000:]
    log = events(out)
    workers = [e for e in log if e["event"] == "worker"]
    assert sorted(e["cuda_visible_devices"] for e in workers) == ["0", "1"]  # the third never fits
    done = [e for e in log if e["event"] == "done"]
    assert len(done) == 3 and all(e["status"] == "ok" for e in done)
    assert most_at_once(done) <= 2
    for e in done:  # Ray's GPU is the worker's only visible one: CUDA calls it cuda:0
        assert e["cuda_visible_devices"] in ("0", "1")
        assert e["device"] == "cuda:0" and e["computes_on"] == "cpu"


@pytest.mark.slow(reason="fractional GPUs on a real node declaring two logical GPUs")
def test_half_a_gpu_per_trial_packs_two_trials_per_gpu(gpu_node, tmp_path):
    """Also through the data cache: the workers get the MappedDataset by reference and map its file."""
    out = tmp_path / "gpu05"
    result = search(gpu_node, out, "--trials", "3", "--epochs", "1", "--gpus-per-trial", "0.5",
                    "--data-cache", str(tmp_path / "cache"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "cache" / "train.nasdata").is_file()
    log = events(out)
    assert next(e for e in log if e["event"] == "start")["workers"] == 4
    workers = [e for e in log if e["event"] == "worker"]
    assert Counter(e["cuda_visible_devices"] for e in workers) == {"0": 2, "1": 2}
    done = [e for e in log if e["event"] == "done"]
    assert len(done) == 3 and all(e["device"] == "cuda:0" and e["status"] == "ok" for e in done)
