"""Several `nas search` processes on one study (``--storage URL --study NAME``), each with its own --out.

Runs on a real SQLite file and on a real PostgreSQL server (tests/postgres.py).
Both processes use the same seed, so they propose the same networks in the same order: one trains,
the other must wait for it and reuse its result.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from nas.store import open_run

REPO = Path(__file__).resolve().parents[1]
FAST = ["--epochs", "1", "--proxy-width", "0.25", "--proxy-depth", "0.25", "--proxy-resolution", "16"]
# Short heartbeats so that a killed process's reservation goes stale within seconds.
ENV = {**os.environ, "SCALENAS_HEARTBEAT_S": "1", "SCALENAS_GRACE_S": "5", "OMP_NUM_THREADS": "1"}


def search_args(storage: str, out: Path, trials: int = 4) -> list[str]:
    return [sys.executable, "-m", "nas", "search", "--storage", storage, "--study", "shared", "--out", str(out),
            "--trials", str(trials), "--controller", "random", "--seed", "0", "--quiet", *FAST]


def start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)


def finished_trials(storage: str) -> list[optuna.trial.FrozenTrial]:
    try:
        study = optuna.load_study(study_name="shared", storage=storage)
    except KeyError:  # not created yet
        return []
    return [t for t in study.get_trials() if "metrics" in t.user_attrs]


def check_shared_study(storage: str, runs: list[Path], trials: int = 4, reuse_across: bool = True) -> None:
    """Exact total, unique numbers, no network trained twice, and (``reuse_across``) at least one network
    trained by one process reused by the other."""
    done = finished_trials(storage)
    assert len(done) == trials, [(t.number, t.state.name) for t in done]
    numbers = [t.number for t in done]
    assert len(set(numbers)) == len(numbers)
    owners = {t.number: t.user_attrs["owner"] for t in done}
    reuses = [t for t in done if t.user_attrs.get("reused_from") is not None]
    if reuse_across:
        assert any(owners[t.user_attrs["reused_from"]] != owners[t.number] for t in reuses), \
            "no network trained by one process was reused by the other"
    keys_trained = [t.user_attrs["train_key"] for t in done if t.user_attrs.get("reused_from") is None]
    assert len(keys_trained) == len(set(keys_trained)), "a network was trained twice"
    for run in runs:  # each process's folder reads the whole shared study
        assert len(open_run(run, storage).records()) == trials


def run_two_processes(storage: str, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    # Both at once: they create the study together (the schema race is handled) and propose the same
    # first network together, so one of them waits for the other's training and reuses it. Started a
    # second apart on a loaded machine, the first could use the whole budget before the second began.
    first = start(search_args(storage, a))
    second = start(search_args(storage, b))
    outputs = [p.communicate(timeout=600) for p in (first, second)]
    for proc, (out, err) in zip((first, second), outputs):
        assert proc.returncode == 0, err
        assert "database is locked" not in err + out
    check_shared_study(storage, [a, b])


def run_with_a_kill(storage: str, tmp_path: Path) -> None:
    a, b = tmp_path / "ka", tmp_path / "kb"
    survivor = start(search_args(storage, a, trials=6))
    time.sleep(1.0)
    victim = start(search_args(storage, b, trials=6))
    deadline = time.time() + 300
    try:
        while time.time() < deadline and len(finished_trials(storage)) < 2:
            time.sleep(0.2)
        assert len(finished_trials(storage)) >= 2, "the processes never finished two trials"
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait()
    out, err = survivor.communicate(timeout=600)
    assert survivor.returncode == 0, err
    resumed = subprocess.run([*search_args(storage, b, trials=6), "--resume"], cwd=REPO, capture_output=True,
                             text=True, env=ENV, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    check_shared_study(storage, [a, b], trials=6, reuse_across=False)  # the victim may die before reusing


@pytest.mark.slow(reason="two search processes on one SQLite study")
def test_two_processes_share_one_sqlite_study(tmp_path):
    run_two_processes(f"sqlite:///{tmp_path / 'shared.db'}", tmp_path)


@pytest.mark.slow(reason="kill -9 of one of two processes on one SQLite study, heartbeats going stale")
def test_killing_one_process_leaves_the_other_and_resume_completes(tmp_path):
    run_with_a_kill(f"sqlite:///{tmp_path / 'shared.db'}", tmp_path)


@pytest.mark.slow(reason="two search processes on one study in a real PostgreSQL server")
def test_two_processes_share_one_postgresql_study(postgres_url, tmp_path):
    run_two_processes(postgres_url, tmp_path)


@pytest.mark.slow(reason="kill -9 of one of two processes on a PostgreSQL study")
def test_killing_one_postgresql_process_leaves_the_other_and_resume_completes(postgres_url, tmp_path):
    run_with_a_kill(postgres_url, tmp_path)


def test_joining_a_study_of_another_search_is_refused(tmp_path, capsys):
    from nas.cli import main

    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    assert main(["search", "--storage", storage, "--study", "shared", "--out", str(tmp_path / "x"), "--trials", "1",
                 "--controller", "random", "--quiet", *FAST]) == 0
    code = main(["search", "--storage", storage, "--study", "shared", "--out", str(tmp_path / "y"), "--trials", "1",
                 "--controller", "random", "--space", "mnasnet", "--quiet", *FAST])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "another search (space is 'efficientnet' there" in err, err
    assert not (tmp_path / "y" / "run.json").exists()


def _open_at_once(url: str, barrier) -> str:
    from nas.store.study import open_storage

    barrier.wait()
    try:
        open_storage(url)
        return "ok"
    except Exception as exc:  # noqa: BLE001 - the message is the result
        return str(exc)


@pytest.mark.slow(reason="four processes racing to create one study's schema")
def test_processes_opening_one_new_sqlite_file_at_once_all_succeed(tmp_path):
    """Each process creates the schema of a new database; the ones that lose the race open it again."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    # One pool of four processes for every round (spawning costs a second or more each): each round's four
    # tasks go one to each idle process (chunksize 1), which all wait at the round's barrier.
    with context.Manager() as manager, context.Pool(4) as pool:
        for round_ in range(6):
            url = f"sqlite:///{tmp_path / f'new-{round_}.db'}"
            barrier = manager.Barrier(4)
            results = pool.starmap(_open_at_once, [(url, barrier)] * 4, chunksize=1)
            assert results == ["ok"] * 4, results


def two_processes_reserving_one_network(tmp_path: Path):
    """Two stores on one SQLite study, each holding a reservation of the same network (B0): the
    stores, the spec and the two trial numbers."""
    from nas.presets import preset
    from nas.store import RunStore

    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    first = RunStore.create(tmp_path / "a", {"space": "test"}, storage, study_name="shared")
    second = RunStore.create(tmp_path / "b", {"space": "test"}, storage, study_name="shared")
    spec = preset("efficientnet-b0")
    a = first.reserve("search", {}, [], [], spec, "b0", "same-network")
    b = second.reserve("search", {}, [], [], spec, "b0", "same-network")
    return first, second, spec, a, b


def test_two_processes_reserving_one_network_at_once_neither_waits_for_the_other(tmp_path):
    """Both reservations exist when each process looks: the earlier trains, the later waits for it."""
    from types import SimpleNamespace

    from nas.engine import Engine

    first, second, spec, a, b = two_processes_reserving_one_network(tmp_path)
    assert a < b
    trains_elsewhere = Engine._trains_elsewhere
    assert not trains_elsewhere(SimpleNamespace(store=first), "same-network", a)  # the earlier trains
    assert trains_elsewhere(SimpleNamespace(store=second), "same-network", b)  # the later waits
    assert not trains_elsewhere(SimpleNamespace(store=second), "another-network", b)


def test_a_network_finished_elsewhere_between_the_two_reads_is_not_trained_again(tmp_path):
    """The other process completes the network right after this one read the finished records: it
    must still be seen (as training, then reused), never missed by both reads."""
    from types import SimpleNamespace

    from nas.engine import Engine
    from nas.metrics import Metrics
    from nas.store import TrialRecord

    first, second, spec, a, b = two_processes_reserving_one_network(tmp_path)
    read_records = second.trained_record

    def records_then_the_other_finishes(key: str, refresh: bool = True):
        found = read_records(key, refresh)
        first.complete(a, TrialRecord(choices={}, indices=(), metrics=Metrics(accuracy=0.5), spec=spec, arch="b0",
                                      key=spec.key(), reward=0.5, train_key="same-network"))
        return found

    second.trained_record = records_then_the_other_finishes
    engine = SimpleNamespace(store=second)
    engine._trains_elsewhere = lambda *args: Engine._trains_elsewhere(engine, *args)
    done, elsewhere = Engine._trained_or_training_elsewhere(engine, "same-network", b)
    assert done is None and elsewhere  # waits, then reuses what the first process stored
    assert read_records("same-network").number == a
