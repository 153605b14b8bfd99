"""One writing process per folder (nas/folder_lock.py): real processes racing for one folder, a holder
killed with SIGKILL, and the commands that write a run folder against those that only read it."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_processes import REPO
from test_pareto_cli import make_run, random_rows

from nas.cli import main
from nas.errors import StorageError
from nas.folder_lock import LOCK_FILE, FolderLock

# A child process that takes the lock of argv[1] when the file argv[2] appears, says what happened on
# one line, and (when it won) keeps the lock until its stdin closes.
CONTENDER = """
import os, sys, time
from nas.folder_lock import FolderLock
from nas.errors import StorageError
print("ready", flush=True)
while not os.path.exists(sys.argv[2]):
    time.sleep(0.001)
try:
    lock = FolderLock.take(sys.argv[1])
except StorageError as exc:
    print("refused", exc, flush=True)
    sys.exit(2)
print("won", os.getpid(), flush=True)
sys.stdin.read()
"""


def contender(folder: Path, go: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", CONTENDER, str(folder), str(go)], cwd=REPO, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    return proc


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_processes_started_at_one_moment_get_the_lock_once(tmp_path):
    folder, go = tmp_path / "run", tmp_path / "go"
    procs = [contender(folder, go) for _ in range(4)]
    go.touch()  # all four are waiting for this file: they reach the lock within a millisecond of each other
    lines = {proc.pid: proc.stdout.readline().strip() for proc in procs}
    winners = [pid for pid, line in lines.items() if line.startswith("won")]
    assert len(winners) == 1, lines
    for pid, line in lines.items():
        if pid != winners[0]:
            assert line.startswith("refused") and f"in use by pid {winners[0]} on host {socket.gethostname()}" in line
            assert str(folder) in line
    for proc in procs:
        proc.stdin.close()
        assert proc.wait() == (0 if proc.pid == winners[0] else 2)
    assert not (folder / LOCK_FILE).exists()  # the winner removed its lock file when it let go ...
    assert not folder.exists() or list(folder.iterdir()) == []  # ... and the folder, if it made it


def test_a_lock_left_by_a_killed_process_is_taken_over_saying_so(tmp_path):
    folder, go = tmp_path / "run", tmp_path / "go"
    go.touch()
    holder = contender(folder, go)
    assert holder.stdout.readline().startswith("won")
    with pytest.raises(StorageError, match=f"in use by pid {holder.pid} on host"):
        FolderLock.take(folder)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (folder / LOCK_FILE).exists()  # nothing cleaned up after kill -9 ...
    notes: list[str] = []
    lock = FolderLock.take(folder, note=notes.append)  # ... yet the kernel dropped its lock
    assert len(notes) == 1 and f"taking over the lock left by pid {holder.pid}" in notes[0]
    assert "no longer running" in notes[0]
    lock.release()
    assert not (folder / LOCK_FILE).exists()
    FolderLock.take(folder, note=notes.append).release()
    assert len(notes) == 1  # a lock released properly leaves nothing to take over


def test_reading_commands_work_on_a_folder_in_use_and_writing_ones_are_refused(tmp_path, capsys):
    run = make_run(tmp_path, "busy", random_rows(1, 6))
    before = digest(run)
    lock = FolderLock.take(run)  # as a running search holds it
    locked = digest(run)
    try:
        assert main(["results", str(run), "--top", "3"]) == 0
        assert main(["pareto", str(run)]) == 0
        capsys.readouterr()
        for argv in (["search", "--out", str(run), "--resume", "--quiet"], ["fidelity", str(run), "--top", "3"],
                     ["search", "--out", str(run), "--quiet"]):
            assert main(argv) == 2
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and err.startswith("error: "), err
            assert f"{run}: in use by pid {os.getpid()} on host {socket.gethostname()}" in err
            assert digest(run) == locked  # not a byte changed, the lock file included
    finally:
        lock.release()
    assert digest(run) == before


def test_a_finished_or_refused_job_leaves_no_lock_file(tmp_path, capsys):
    run = make_run(tmp_path, "done", random_rows(2, 4))
    assert not (run / LOCK_FILE).exists()
    assert main(["search", "--out", str(run), "--quiet"]) == 2  # a new search on a run: refused after the lock
    assert "already holds a run" in capsys.readouterr().err
    assert not (run / LOCK_FILE).exists()


FAST_FLAGS = ["--epochs", "1", "--proxy-width", "0.25", "--proxy-depth", "0.25", "--proxy-resolution", "16",
              "--controller", "random", "--quiet"]


@pytest.mark.slow(reason="two real nas search processes started at one moment on one --out")
def test_two_searches_started_together_on_one_out(tmp_path):
    out = tmp_path / "race"
    args = [sys.executable, "-m", "nas", "search", "--out", str(out), "--trials", "3", *FAST_FLAGS]
    procs = [subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    ended: dict[int, float] = {}
    deadline = time.time() + 300
    while len(ended) < 2 and time.time() < deadline:
        for proc in procs:
            if proc.pid not in ended and proc.poll() is not None:
                ended[proc.pid] = time.time()
        time.sleep(0.05)
    outputs = {proc.pid: (proc.returncode, *proc.communicate()) for proc in procs}
    codes = sorted(code for code, _, _ in outputs.values())
    assert codes == [0, 2], outputs
    (loser,) = [pid for pid, (code, _, _) in outputs.items() if code == 2]
    (winner,) = [pid for pid, (code, _, _) in outputs.items() if code == 0]
    err = outputs[loser][2]
    assert err.count("\n") == 1 and f"{out}: in use by pid {winner} on host {socket.gethostname()}" in err, err
    assert ended[loser] < ended[winner]  # refused at once, while the winner was still searching
    from nas.store import open_run

    frame = open_run(out).dataframe()
    assert len(frame) == 3 and frame.key.nunique() == 3 and list(frame.trial) == [0, 1, 2]
    assert not (out / LOCK_FILE).exists()
