"""``nas train --seeds N --runner ray``: the seeds train at once on a real local Ray's workers, equal to the
same seeds trained one after another here, survive a lost worker and a killed driver, and bad runner
flags are one line that writes nothing.

The Ray runs are commands in processes (and sessions) of their own, as a user runs them; each starts
its own local Ray in /tmp/nas-ray-<hash of OUT> (removed at the end), and whatever a session leaves is
killed by session id, never by name.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cli_processes import nas_here, wait_for
from cluster import kill_session, session_pids

from nas.cli import main
from nas.errors import StorageError
from nas.training.config import TrainConfig
from nas.training.seeds import DRIVER_FILE, SeedJob
from runners.ray_cluster import EVENT_LOG
from runners.ray_support import temp_root

REPO = Path(__file__).resolve().parents[1]
TINY = ["efficientnet-b0", "--width", "0.25", "--depth", "0.25", "--resolution", "16", "--epochs", "3",
        "--batch-size", "64", "--test", "--device", "cpu"]


def _rows(folder: Path) -> list[str]:
    """The epoch rows of a seed's history.csv (its last column is the epoch's measured time, so a row
    written again by a retrained epoch differs from the first one)."""
    path = folder / "history.csv"
    return path.read_text().splitlines()[1:] if path.is_file() else []


def _events(out: Path) -> list[dict]:
    path = out / EVENT_LOG
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def _per_seed(summary: dict) -> list[tuple]:
    return [(row["seed"], row["raw_minival_accuracy"], row["raw_test_accuracy"], row["ema_test_accuracy"])
            for row in summary["per_seed"]]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def _start(args: list[str], output: int = subprocess.PIPE) -> subprocess.Popen:
    """``nas ARGS`` in a process and session of its own (``output``: where its stdout and stderr go)."""
    return subprocess.Popen([sys.executable, "-m", "nas", *args], cwd=REPO, stdout=output, stderr=output, text=True,
                            start_new_session=True)


@pytest.mark.slow(reason="three seeds on a local two-worker Ray, a worker killed mid-seed, the driver killed, "
                         "--resume: the only run of the seeds through a runner")
def test_seeds_on_ray_equal_the_seeds_trained_here_through_a_lost_worker_and_a_killed_driver(tmp_path, ray_outs):
    threads = torch.get_num_threads()
    here = nas_here("train", *TINY, "--threads", "1", "--seeds", "3", "--out", str(tmp_path / "here"), "--json")
    torch.set_num_threads(threads)
    assert here.returncode == 0, here.stderr
    expected = _per_seed(json.loads(here.stdout))

    out = tmp_path / "ray"
    ray_outs.append(out)
    args = ["train", *TINY, "--seeds", "3", "--runner", "ray", "--workers", "2", "--out", str(out)]
    proc = _start(args, subprocess.DEVNULL)  # killed: its output is never read
    sessions = [proc.pid]
    try:
        # 1. A worker dies in seed 1's second epoch: the runner starts the seed again from its last.pt.
        wait_for(proc, lambda: len(_rows(out / "seed-1")) >= 1, "seed 1's first epoch", 240, poll_s=0.05)
        before_loss = _rows(out / "seed-1")
        worker = next(e["pid"] for e in reversed(_events(out)) if e["event"] == "submit" and e["job"] == 1)
        os.kill(worker, signal.SIGKILL)
        # 2. The driver dies while seed 2 trains (it started when a worker came free).
        wait_for(proc, lambda: len(_rows(out / "seed-2")) >= 1, "seed 2's first epoch", 240, poll_s=0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        finished = {p.name: _snapshot(p) for p in out.glob("seed-*") if (p / "model.pt").is_file()}
        partial = {p.name: _rows(p) for p in out.glob("seed-*") if not (p / "model.pt").is_file()}
        assert "seed-2" in partial, "seed 2 finished before the driver was killed"
        events = _events(out)

        resume = _start([*args, "--resume", "--json"])
        sessions.append(resume.pid)
        stdout, stderr = resume.communicate(timeout=300)
        assert resume.returncode == 0, stderr[-3000:]
        leftover = session_pids(proc.pid)  # what the killed driver's local Ray left running
    finally:
        for sid in sessions:
            kill_session(sid)
    assert not leftover, "the resumed driver did not stop what the killed driver's Ray left running"

    # the first run put two seeds on the two workers at once, and started seed 1 again after the loss
    submits = [e for e in events if e["event"] == "submit"]
    assert {e["job"] for e in submits[:2]} == {0, 1} and submits[1]["t"] < min(
        e["t"] for e in events if e["event"] == "done")
    assert any(e["event"] == "retry" and e["job"] == 1 for e in events)
    assert _rows(out / "seed-1")[:len(before_loss)] == before_loss  # continued, not trained again
    # the resume read the finished seeds (not a byte rewritten) and continued the others
    for name, files in finished.items():
        assert _snapshot(out / name) == files, f"{name} was written again"
    for name, rows in partial.items():
        assert _rows(out / name)[:len(rows)] == rows and len(_rows(out / name)) == 3
        # the driver printed each epoch the workers added, and none they had before (the killed driver's
        # worker may add one more before Ray stops it: those are not the resumed driver's to print)
        printed = [line.split()[4].rstrip(",") for line in stderr.splitlines()
                   if line.startswith(f"seed {name[-1]} ({name}): epoch ")]
        assert printed == [f"{e}/3" for e in range(4 - len(printed), 4)] and 4 - len(printed) > len(rows), printed
    # and every seed is the one trained here, to the last bit of its accuracies
    summary = json.loads(stdout)
    assert _per_seed(summary) == expected
    assert json.loads((out / "summary.json").read_text()) == summary
    assert not (out / DRIVER_FILE).exists() and not (out / ".lock").exists()


@pytest.mark.slow(reason="seeds that fail on real Ray workers (their data folder is missing there): the one error "
                         "path that crosses the runner")
def test_seeds_failing_on_the_workers_end_in_one_line_naming_them(tmp_path, ray_outs):
    out = tmp_path / "seeds"
    ray_outs.append(out)
    failed = _start(["train", *TINY, "--seeds", "2", "--runner", "ray", "--workers", "2", "--dataset", "fashion-mnist",
                     "--data-dir", str(tmp_path / "absent"), "--out", str(out)])
    try:
        _, stderr = failed.communicate(timeout=300)
    finally:
        kill_session(failed.pid)
    errors = [line for line in stderr.splitlines() if line.startswith("error")]
    assert failed.returncode == 2 and len(errors) == 1 and "Traceback" not in stderr, stderr[-3000:]
    assert errors[0].startswith(f"error: seed 0 (seed-0): {tmp_path / 'absent'}: data folder not found (and 1 more")
    assert not list(out.glob("seed-*/*.pt")) and not (out / DRIVER_FILE).exists() and not (out / ".lock").exists()


def test_a_seed_on_a_node_without_the_folder_fails_in_one_line_and_writes_nothing(tmp_path):
    """The shared-folder check a worker makes before training (on one machine every worker sees the
    driver's folder, so the other node is played by a token that is not the one the driver wrote)."""
    out = tmp_path / "seeds"
    out.mkdir()
    (out / DRIVER_FILE).write_text(json.dumps({"token": "the-driver's"}))
    job = SeedJob(0, "efficientnet-b0", TrainConfig(), str(out / "seed-0"), "cpu", driver_token="another")
    metrics = job.run()
    assert metrics.status == "failed" and "does not see the folder the driver writes" in metrics.error
    assert "\n" not in metrics.error and not (out / "seed-0").exists()
    (out / DRIVER_FILE).unlink()
    with pytest.raises(StorageError, match="one folder every node mounts"):
        job.execute()


@pytest.mark.parametrize("flags, message", [
    (["--workers", "2"], "error: --workers applies to --runner ray only"),
    (["--runner", "ray"], "error: --runner ray trains the seeds of --seeds N (N >= 2)"),
    (["--runner", "ray", "--seeds", "2", "--threads", "1"], "error: --threads applies to --runner local"),
    (["--runner", "ray", "--seeds", "2", "--workers", "0"], "error: --workers must be an integer >= 1, got 0"),
    (["--runner", "ray", "--seeds", "2", "--address", "127.0.0.2:9"], "error: --address 127.0.0.2:9"),
    (["--runner", "cloud", "--seeds", "2"], "error: --runner: unknown runner 'cloud'"),
])
def test_bad_runner_flags_are_one_line_and_write_nothing(capsys, tmp_path, flags, message):
    out = tmp_path / "seeds"
    assert main(["train", *TINY, *flags, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(message) and "\n" not in err, err
    assert not out.exists() and not temp_root(out).exists()
