"""The Ray runner on a real local Ray (2 CPUs): search, worker loss, ASHA, SIGKILL + resume.

The in-process runs share one local Ray that this module starts (the runner then joins the instance
its process already runs, and leaves it running); the SIGKILL test's driver runs as a command in a
process of its own and starts its own local Ray, which is the path a user's `nas search --runner ray`
takes. Every Ray process a test starts is stopped by the test: the shared instance at the end of the
module; CLI runs start in their own session, and whatever is left in that session is killed by session
id (never by name, so other people's Ray instances on this machine are safe).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import ray  # noqa: E402,F401 - Ray is a core dependency: if it does not import, these tests must fail
from cluster import kill_session, session_pids  # noqa: E402

from nas.errors import ConfigError  # noqa: E402
from nas.jobs.search import SearchConfig, run_search  # noqa: E402
from nas.store import COLUMNS, open_run  # noqa: E402
from runners.ray_cluster import EVENT_LOG  # noqa: E402
from runners.ray_support import temp_root  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FAST = dict(epochs=1, proxy_width=0.25, proxy_depth=0.25, proxy_resolution=16)
FAST_FLAGS = ["--epochs", "1", "--proxy-width", "0.25", "--proxy-depth", "0.25", "--proxy-resolution", "16"]
RAY2 = {"workers": 2, "num_cpus": 2}


def events(out: Path) -> list[dict]:
    path = out / EVENT_LOG
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


RUN_DIRS: list[Path] = []


@pytest.fixture(scope="module", autouse=True)
def remove_ray_temp_folders():
    """Each local Ray of these tests keeps its sessions in /tmp/nas-ray-<hash of RUN>: remove them."""
    yield
    for out in RUN_DIRS:
        shutil.rmtree(temp_root(out), ignore_errors=True)


@pytest.fixture(scope="module")
def shared_ray(tmp_path_factory):
    """One local Ray with 2 CPUs for the in-process runs of this module (starting one costs ~5 s)."""
    folder = tmp_path_factory.mktemp("shared-ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             _temp_dir=str(temp_root(folder)))
    yield
    ray.shutdown()
    shutil.rmtree(temp_root(folder), ignore_errors=True)


# ------------------------------------------------------------------------------ searches
@pytest.fixture(scope="module")
def ray_and_local_runs(shared_ray, tmp_path_factory):
    base = tmp_path_factory.mktemp("ray")
    config = dict(controller="random", trials=6, seed=5, **FAST)
    RUN_DIRS.append(base / "ray")
    ray_result = run_search(SearchConfig(runner="ray", runner_options=RAY2, **config), base / "ray")
    local_result = run_search(SearchConfig(**config), base / "local")
    return base / "ray", ray_result, base / "local", local_result


@pytest.mark.slow(reason="a search on a local Ray with two workers, against the same search in process")
def test_six_trials_on_two_workers_fill_the_store(ray_and_local_runs):
    out, result, _, _ = ray_and_local_runs
    records = open_run(out).records()
    assert len(records) == 6 and sorted(r.number for r in records) == list(range(6))
    assert result.trained + result.reused == 6
    log = events(out)
    start = next(e for e in log if e["event"] == "start")
    assert start["workers"] == 2 and start["resources"]["CPU"] == 2
    # each worker's torch threads are its share of the cores: 2 CPUs / 2 workers
    assert start["cpus_per_trial"] == 1 and next(e for e in log if e["event"] == "workers")["threads"] == [1, 1]
    # both workers trained, and at one moment two candidates were in flight
    submits = [e for e in log if e["event"] == "submit"]
    assert {e["worker"] for e in submits} == {0, 1}
    in_flight, most = 0, 0
    for e in log:
        in_flight += {"submit": 1, "done": -1}.get(e["event"], 0)
        most = max(most, in_flight)
    assert most == 2
    # both workers got a job at the start, before the first trial finished
    first_done = next(i for i, e in enumerate(log) if e["event"] == "done")
    assert sum(1 for e in log[:first_done] if e["event"] == "submit") == 2


@pytest.mark.slow(reason="a search on a local Ray with two workers, against the same search in process")
def test_ray_run_writes_the_same_outputs_as_a_local_run(ray_and_local_runs):
    out, _, local_out, _ = ray_and_local_runs
    for name in ("study.db", "trials.csv", "b0.json", "controller.pt", "run.json"):
        assert (out / name).exists(), name
    ray_frame, local_frame = pd.read_csv(out / "trials.csv"), pd.read_csv(local_out / "trials.csv")
    assert list(ray_frame.columns) == list(local_frame.columns)
    assert list(ray_frame.columns[: len(COLUMNS)]) == list(COLUMNS)
    # the random controller proposes the same networks whatever order they finish in, and a
    # candidate trains to the same accuracy on a 1-thread Ray worker as in the driver
    by_key = lambda f: f.sort_values("key").set_index("key")  # noqa: E731
    ray_sorted, local_sorted = by_key(ray_frame), by_key(local_frame)
    assert list(ray_sorted.index) == list(local_sorted.index)
    assert (ray_sorted.status == "ok").all()
    pd.testing.assert_series_equal(ray_sorted.accuracy, local_sorted.accuracy, atol=0.02, check_exact=False)
    pd.testing.assert_series_equal(ray_sorted.macs, local_sorted.macs)
    b0_ray = json.loads((out / "b0.json").read_text())
    assert b0_ray["reward"] == pytest.approx(ray_frame.reward.max())


@pytest.mark.slow(reason="a Ray worker process killed mid-trial and replaced")
def test_worker_killed_mid_trial_is_retried(shared_ray, tmp_path):
    out = tmp_path / "kill"
    RUN_DIRS.append(out)
    killed: dict = {}

    def killer() -> None:
        deadline = time.time() + 240
        while time.time() < deadline and not killed:
            submits = [e for e in events(out) if e["event"] == "submit" and e["job"] == 1]
            if submits:
                # At once: on a fast machine a proxy trains in about a second. A task the actor had not
                # started yet is lost with the actor just the same.
                if not any(e["event"] == "done" and e["job"] == 1 for e in events(out)):
                    os.kill(submits[0]["pid"], signal.SIGKILL)
                    killed.update(job=1, pid=submits[0]["pid"])
                return
            time.sleep(0.01)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    config = SearchConfig(controller="random", trials=4, seed=2, runner="ray",
                          runner_options={**RAY2, "retries": 2, "data": "load"}, **{**FAST, "epochs": 3})
    result = run_search(config, out)
    thread.join()
    assert killed, "job 1 finished before the test could kill its worker"
    frame = pd.read_csv(out / "trials.csv")
    assert len(frame) == 4 and (frame.status == "ok").all()
    assert result.trained + result.reused == 4
    log = events(out)
    retry = [e for e in log if e["event"] == "retry"]
    assert len(retry) == 1 and retry[0]["job"] == 1 and retry[0]["lost_pid"] == killed["pid"]
    assert retry[0]["retry"] == 1 and "Actor" in retry[0]["reason"]
    replacement = [e for e in log if e["event"] == "worker" and e["worker"] == retry[0]["worker"]
                   and e["generation"] == 1]
    assert len(replacement) == 1 and replacement[0]["pid"] != killed["pid"]
    resubmitted = [e for e in log if e["event"] == "submit" and e["job"] == 1]
    assert [e["attempt"] for e in resubmitted] == [0, 1]
    assert [e["status"] for e in log if e["event"] == "done" and e["job"] == 1] == ["ok"]


def check_asha_decisions(log: list[dict], records: list, max_t: int, grace: int, rf: float) -> None:
    """Replay every ASHA decision of the run against the rule of the ASHA paper (Li et al. 2020):
    at each rung (epochs grace * rf^k below max_t) a trial continues only if its accuracy is not
    below the top-1/rf quantile of the accuracies recorded at that rung before it."""
    import numpy as np

    rungs = [grace * rf ** k for k in range(64) if grace * rf ** k < max_t]
    recorded: dict[float, list[float]] = {m: [] for m in rungs}
    decisions = [e for e in log if e["event"] == "asha"]
    assert decisions, "the run logged no ASHA decision"
    stopped_at = {}
    for e in decisions:
        milestone = next((m for m in reversed(rungs) if e["epoch"] >= m), None)
        expected = False
        if milestone is not None and e["epoch"] == milestone:
            values = recorded[milestone]
            cutoff = np.nanpercentile(values, (1 - 1 / rf) * 100) if values else None
            expected = cutoff is not None and e["accuracy"] < cutoff
            values.append(e["accuracy"])
        assert e["stopped"] == expected, (e, recorded)
        if e["stopped"]:
            stopped_at[e["job"]] = e["epoch"]
    pruned = {r.number: r for r in records if r.metrics.status == "pruned"}
    assert set(pruned) == set(stopped_at)  # every pruned trial was stopped by a logged rung decision
    for number, epoch in stopped_at.items():
        assert len(pruned[number].metrics.history) == epoch


@pytest.mark.slow(reason="Ray Tune's ASHA deciding on real per-epoch accuracies")
def test_asha_stops_weak_candidates_and_records_them_pruned(shared_ray, tmp_path):
    out = tmp_path / "asha"
    RUN_DIRS.append(out)
    config = SearchConfig(controller="random", trials=8, seed=4, runner="ray", epochs=3, proxy_width=0.25,
                          proxy_depth=0.25, proxy_resolution=16,
                          runner_options={**RAY2, "scheduler": "asha", "asha_reduction_factor": 2})
    run_search(config, out)
    records = open_run(out).records()
    assert len(records) == 8
    pruned = [r for r in records if r.metrics.status == "pruned"]
    finished = [r for r in records if r.metrics.status == "ok"]
    assert pruned and finished
    for r in pruned:  # stopped at a rung (epoch 1 or 2 of 3), with what it had measured by then
        assert 1 <= len(r.metrics.history) < 3
        assert r.metrics.accuracy == pytest.approx(r.metrics.history[-1])
        assert r.reward is None and r.metrics.params > 0
    for r in finished:
        assert len(r.metrics.history) == 3
    frame = pd.read_csv(out / "trials.csv")
    assert (frame.status == "pruned").sum() == len(pruned)
    check_asha_decisions(events(out), records, max_t=3, grace=1, rf=2)
    import torch

    told = torch.load(out / "controller.pt", weights_only=True)["told"]
    assert sorted(told) == list(range(8))  # the controller heard about the stopped ones too


def test_bad_runner_options_are_one_line_errors(tmp_path):
    from nas.data.ref import DatasetRef
    from runners import make_runner

    for options, message in [({"scheduler": "hyperband"}, "unknown scheduler 'hyperband'"),
                             ({"workers": 0}, "workers must be an integer >= 1"),
                             ({"retries": -1}, "retries must be an integer >= 0"),
                             ({"cpus_per_trial": 0}, "cpus_per_trial must be > 0"),
                             ({"node_ip_address": "head"}, "node_ip_address 'head': expected an IP address")]:
        with pytest.raises(ConfigError, match=message) as error:
            make_runner("ray", dataset=None, data_ref=DatasetRef(), run_dir=tmp_path, **options)
        assert error.value.field == next(iter(options))
    assert not (tmp_path / EVENT_LOG).exists()  # refused before Ray started


@pytest.mark.slow(reason="failures reported from Ray workers")
def test_a_run_in_which_every_trial_fails_says_why_and_exits_non_zero(shared_ray, tmp_path, capsys):
    """--device cuda passes the driver (the workers of a cluster may have GPUs) but fails on every worker."""
    from nas.cli import main

    out = tmp_path / "nogpu"
    RUN_DIRS.append(out)
    code = main(["search", "--runner", "ray", "--workers", "2", "--device", "cuda", "--trials", "3", "--controller",
                 "random", "--out", str(out), "--quiet", *FAST_FLAGS])
    captured = capsys.readouterr()
    assert code == 1
    assert "CUDA is not available" in captured.out  # the first error of its kind, shown while searching
    assert captured.err.startswith("error: all 3 trials failed") and "CUDA is not available" in captured.err
    assert captured.err.count("\n") == 1
    assert (pd.read_csv(out / "trials.csv").status == "failed").all()


# -------------------------------------------------------------------------- kill + resume
@pytest.mark.slow(reason="kill -9 of a Ray search's driver, then --resume")
def test_ray_run_killed_with_sigkill_resumes_without_losing_a_trial(tmp_path):
    out = tmp_path / "resume"
    RUN_DIRS.append(out)
    args = [sys.executable, "-m", "nas", "search", "--runner", "ray", "--workers", "2", "--controller", "random",
            "--trials", "6", "--seed", "7", "--out", str(out), "--quiet", *FAST_FLAGS]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    sessions = [proc.pid]
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            if (out / "trials.csv").exists() and len(pd.read_csv(out / "trials.csv")) >= 2:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the Ray search never finished two trials")
        os.kill(proc.pid, signal.SIGKILL)  # the driver only, as a crash would
        proc.wait()
        before = open_run(out).dataframe()
        assert 2 <= len(before) < 6
        resume = subprocess.Popen([*args, "--resume"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, start_new_session=True)
        sessions.append(resume.pid)
        _, stderr = resume.communicate(timeout=300)
        assert resume.returncode == 0, stderr[-2000:]
        # the resumed driver cleared what the killed driver's Ray left running in this run's folder
        leftover = session_pids(proc.pid)
    finally:
        for sid in sessions:
            kill_session(sid)
    assert not leftover
    after = open_run(out).dataframe()
    assert len(after) == 6 and list(after.trial) == list(range(6))
    cols = ["trial", "key", "accuracy", "wall_time_s", "reward"]
    # two workers finish out of order: under load trials 1 and 2 were done and 0 still running at the kill
    kept = after[after.trial.isin(before.trial)].sort_values("trial")
    pd.testing.assert_frame_equal(kept[cols].reset_index(drop=True),
                                  before.sort_values("trial")[cols].reset_index(drop=True))
    assert sum(1 for e in events(out) if e["event"] == "start") == 2
    # the command started a local Ray of its own, whose logs the run folder links to
    assert (out / "ray-logs").is_symlink() and (out / "ray-logs").resolve() == temp_root(out)
