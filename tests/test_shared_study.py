"""Several `nas search` processes on one study (``--storage URL --study NAME``), each with its own --out.

Runs on a real SQLite file and on a real PostgreSQL server (tests/postgres.py). Every process has the
study's seed and draws its own proposals (its number in the study picks its stream), so two processes
divide the budget between them: different networks, none trained twice, the total exact.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest

from nas.store import open_run

REPO = Path(__file__).resolve().parents[1]
FAST = ["--epochs", "1", "--proxy-width", "0.25", "--proxy-depth", "0.25", "--proxy-resolution", "16"]
# Short heartbeats so that a killed process's reservation goes stale within seconds.
ENV = {**os.environ, "SCALENAS_HEARTBEAT_S": "1", "SCALENAS_GRACE_S": "5", "OMP_NUM_THREADS": "1"}


def search_args(storage: str, out: Path, trials: int = 4, fast: list[str] = FAST) -> list[str]:
    return [sys.executable, "-m", "nas", "search", "--storage", storage, "--study", "shared", "--out", str(out),
            "--trials", str(trials), "--controller", "random", "--seed", "0", "--quiet", *fast]


def start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)


def finished_trials(storage: str) -> list[optuna.trial.FrozenTrial]:
    try:
        study = optuna.load_study(study_name="shared", storage=storage)
    except KeyError:  # not created yet
        return []
    return [t for t in study.get_trials() if "metrics" in t.user_attrs]


def check_shared_study(storage: str, runs: list[Path], trials: int = 4) -> list[optuna.trial.FrozenTrial]:
    """Exact total, unique numbers, no network trained twice, every folder reading the whole study;
    returns the finished trials."""
    done = finished_trials(storage)
    assert len(done) == trials, [(t.number, t.state.name) for t in done]
    numbers = [t.number for t in done]
    assert len(set(numbers)) == len(numbers)
    keys_trained = [t.user_attrs["train_key"] for t in done if t.user_attrs.get("reused_from") is None]
    assert len(keys_trained) == len(set(keys_trained)), "a network was trained twice"
    for run in runs:  # each process's folder reads the whole shared study
        assert len(open_run(run, storage).records()) == trials
    return done


# Two processes dividing 8 trials: each trial trains long enough (a few seconds) that one process starting
# a few seconds before the other on a loaded machine cannot take most of the budget alone.
DIVIDED = ["--epochs", "2", "--proxy-width", "0.25", "--proxy-depth", "0.25", "--proxy-resolution", "24"]


def run_two_processes(storage: str, tmp_path: Path) -> None:
    """Two processes with the same settings, 8 trials in all: they draw different proposals, so at least 7
    distinct networks train (none twice), and each process trains at least 3 of them."""
    a, b = tmp_path / "a", tmp_path / "b"
    first = start(search_args(storage, a, trials=8, fast=DIVIDED))
    second = start(search_args(storage, b, trials=8, fast=DIVIDED))
    outputs = [p.communicate(timeout=600) for p in (first, second)]
    for proc, (out, err) in zip((first, second), outputs):
        assert proc.returncode == 0, err
        assert "database is locked" not in err + out
    done = check_shared_study(storage, [a, b], trials=8)
    trained = [t for t in done if t.user_attrs.get("reused_from") is None]
    assert len({t.user_attrs["train_key"] for t in trained}) >= 7
    owners = {json.loads((run / "run.json").read_text())["owner"]: run.name for run in (a, b)}
    by_process = Counter(owners[t.user_attrs["owner"]] for t in trained)
    assert min(by_process["a"], by_process["b"]) >= 3, by_process
    assert sorted(json.loads((run / "run.json").read_text())["process"] for run in (a, b)) == [0, 1]


def run_with_a_kill(storage: str, tmp_path: Path) -> None:
    a, b = tmp_path / "ka", tmp_path / "kb"
    survivor = start(search_args(storage, a, trials=6))
    time.sleep(1.0)
    victim = start(search_args(storage, b, trials=6))
    victim_run = b / "run.json"
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
    number = json.loads(victim_run.read_text())["process"]
    resumed = subprocess.run([*search_args(storage, b, trials=6), "--resume"], cwd=REPO, capture_output=True,
                             text=True, env=ENV, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    check_shared_study(storage, [a, b], trials=6)
    assert json.loads(victim_run.read_text())["process"] == number  # a resumed folder keeps its stream


@pytest.mark.slow(reason="two search processes dividing 8 trials of one SQLite study, each its own proposals")
def test_two_processes_share_one_sqlite_study(tmp_path):
    run_two_processes(f"sqlite:///{tmp_path / 'shared.db'}", tmp_path)


@pytest.mark.slow(reason="kill -9 of one of two processes on one SQLite study, heartbeats going stale")
def test_killing_one_process_leaves_the_other_and_resume_completes(tmp_path):
    run_with_a_kill(f"sqlite:///{tmp_path / 'shared.db'}", tmp_path)


@pytest.mark.slow(reason="two search processes dividing 8 trials of one study in a real PostgreSQL server")
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


def test_a_released_reservation_is_taken_over_at_once_under_its_number(tmp_path):
    """A process that stops (Ctrl-C, SIGTERM) releases its reservation: another process sharing the study
    claims it at once, not after the heartbeat's grace, keeps its number, and no one else can claim it."""
    from types import SimpleNamespace

    from nas.engine import Engine

    first, second, spec, a, b = two_processes_reserving_one_network(tmp_path)
    assert Engine._trains_elsewhere(SimpleNamespace(store=second), "same-network", b)  # a is training
    first.release(a)
    (held,) = [r for r in second.reservations() if r.number == a]
    assert held.released and held.owner == first.owner
    assert first.counted("search") == 2  # still counted against the budget: someone trains it
    assert not Engine._trains_elsewhere(SimpleNamespace(store=second), "same-network", b)  # no one trains it now
    assert second.claim(a)
    assert not first.claim(a) and not second.claim(a)  # claimed once
    (taken,) = [r for r in first.reservations() if r.number == a]
    assert not taken.released and taken.owner == second.owner


def test_the_replay_before_a_proposal_goes_over_only_what_finished_since_the_last(tmp_path):
    """What the other processes finished is told before each proposal by going over the records that
    joined this process's log since the last replay, not the whole study: a replay costs the same at the
    10,000th trial as at the 10th. A resume (the controller as its checkpoint left it) goes over all."""
    from types import SimpleNamespace

    from nas.decisions import Decision
    from nas.engine import Engine
    from nas.metrics import Metrics
    from nas.store import TrialRecord

    first, second, spec, a, b = two_processes_reserving_one_network(tmp_path)
    decisions = (Decision("k", (3, 5)),)
    told, gone_over = [], []

    def finish_one(number: int) -> None:
        first.record(TrialRecord(choices={"k": 3}, indices=(0,), metrics=Metrics(accuracy=0.5), spec=spec,
                                 arch="b0", key=f"n{number}", reward=0.5, train_key=f"t{number}"), decisions)

    arrived = second.arrived
    second.arrived = lambda since=0, refresh=True: gone_over.append(arrived(since, refresh)) or gone_over[-1]
    engine = SimpleNamespace(store=second, _replayed={})
    stage = SimpleNamespace(name="search", decisions=decisions,
                            controller=SimpleNamespace(tell=lambda proposal, *_: told.append(proposal.choices)))
    seen: set[int] = set()
    for n in range(3):
        finish_one(n)
        second.counted("search")  # the budget check before a proposal reads the study
        Engine._replay(engine, stage, seen)
        assert len(gone_over[-1]) == 1 and len(told) == n + 1
    engine._replayed["search"] = 0  # as _restore does
    Engine._replay(engine, stage, set(), refresh=True)
    assert len(gone_over[-1]) == 3 and len(told) == 6


def test_processes_joining_one_study_are_numbered_in_order_and_keep_their_number(tmp_path):
    """The first process of a named study is 0 (it draws from the seed itself), the next 1, ...; a process
    refused for another seed takes no number; a reopened folder keeps its own; a folder's own study has no
    processes to number."""
    from nas.errors import StorageError
    from nas.store import RunStore
    from nas.store.processes import processes_study_name

    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    config = {"space": "test", "seed": 0}
    first = RunStore.create(tmp_path / "a", config, storage, study_name="shared")
    second = RunStore.create(tmp_path / "b", config, storage, study_name="shared")
    assert (first.process, second.process) == (0, 1)
    with pytest.raises(StorageError, match=r"seed is 0 there, 1 here\); each process of a study draws its own "
                                           r"proposals from the study's seed and its own number in the study, so "
                                           r"give this one seed 0 too"):
        RunStore.create(tmp_path / "c", {**config, "seed": 1}, storage, study_name="shared")
    third = RunStore.create(tmp_path / "d", config, storage, study_name="shared")
    assert third.process == 2  # the refused one took no number
    for store in (first, second, third):
        store.close()
    assert RunStore.open(tmp_path / "b", write=True).process == 1
    assert json.loads((tmp_path / "b" / "run.json").read_text())["process"] == 1
    tickets = optuna.load_study(study_name=processes_study_name("shared"), storage=storage).trials
    assert [(t.number, t.user_attrs["out"]) for t in tickets] == [(0, "a"), (1, "b"), (2, "d")]
    assert [t.user_attrs["owner"] for t in tickets] == [first.owner, second.owner, third.owner]
    own = RunStore.create(tmp_path / "own", config)
    assert own.process == 0 and "process" not in own.config
    assert [s.study_name for s in optuna.get_all_study_summaries(own.storage_url)] == ["nas-search"]


def test_processes_joining_at_the_same_moment_get_distinct_numbers(tmp_path):
    """Four storages on one new SQLite file take their numbers at once: 0, 1, 2 and 3, each once."""
    from nas.store.processes import join_study
    from nas.store.study import open_storage

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    optuna.create_study(storage=open_storage(url), study_name="shared")  # the schema, made once
    barrier = threading.Barrier(4)
    numbers: list[int] = []

    def join(owner: str) -> None:
        storage = open_storage(url)
        barrier.wait()
        numbers.append(join_study(storage, "shared", owner, owner))

    threads = [threading.Thread(target=join, args=(f"p{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(numbers) == [0, 1, 2, 3]


def test_a_process_is_told_what_the_others_finished_before_each_proposal(tmp_path):
    """Process 1 of a study (an rl controller, its own stream) learns from every finished trial of the
    study: before each proposal it is told the trials process 0 finished meanwhile, as a resume replays
    stored trials. The trials here are answered at once (tests/instant_runner.py)."""
    from instant_runner import InstantRunner

    from nas.controllers import proposal_seed
    from nas.engine import arch_string
    from nas.jobs.search import Search, SearchConfig
    from nas.metrics import Metrics
    from nas.store import TrialRecord

    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    config = SearchConfig(controller="rl", trials=6, epochs=1, proxy_width=0.25, proxy_depth=0.25,
                          proxy_resolution=16, controller_options={"batch_size": 2, "epochs": 1, "hidden": 8})

    def finished_by_the_other(record, done, total) -> None:  # process 0 finishes one after each of ours
        choices = other.controller.ask().choices
        full, _ = other.full_and_proxy(choices, other.proxy)
        other.store.record(TrialRecord(choices={d.name: d.options[i] for d, i in zip(other.decisions, choices)},
                                       indices=choices, metrics=Metrics(accuracy=0.9), spec=full,
                                       arch=arch_string(full), key=full.key(), reward=0.9,
                                       train_key=f"elsewhere-{done}"), other.decisions)

    other = Search(config, tmp_path / "a", storage=storage, study="shared")
    search = Search(config, tmp_path / "b", storage=storage, study="shared", on_trial=finished_by_the_other)
    assert (other.process, search.process) == (0, 1)
    assert (other.controller.seed, search.controller.seed) == (0, proposal_seed(0, 1))
    search.parts.runner = InstantRunner
    asked = []
    ask = search.controller.ask

    def ask_and_note():
        asked.append((search.controller.told, len(search.store.records("search"))))
        return ask()

    search.controller.ask = ask_and_note
    try:
        with search.running() as engine:
            engine.run(search.search_stage())
    finally:
        search.close()
        other.close()
    assert asked == [(0, 0), (2, 2), (4, 4)]  # every finished trial of the study told before each proposal
    owners = Counter(r.owner for r in search.store.records("search"))
    assert owners == {other.store.owner: 3, search.store.owner: 3}
