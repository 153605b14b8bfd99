"""The jobs layer: one set-up for every job, runner options checked before a folder exists, runs of the
previous version still working, references measured where candidates train, records decoded once."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from nas.cli import main
from nas.jobs import JOBS, run_objective
from nas.store import open_run
from nas.threads import usable_cores

DATA = Path(__file__).parent / "data" / "runs-v1"
FAST = ["--epochs", "3", "--quiet"]
TINY = ["--epochs", "1", "--proxy-width", "0.25", "--proxy-depth", "0.25", "--proxy-resolution", "16", "--quiet"]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("flags, message", [
    (["--scheduler", "foo"], "error: --scheduler: unknown scheduler 'foo'; valid: asha, fifo"),
    (["--workers", "0"], "error: --workers must be an integer >= 1, got 0"),
])
def test_a_runner_option_typo_leaves_no_run_folder(tmp_path, capsys, flags, message):
    out = tmp_path / "r1"
    assert main(["search", "--runner", "ray", *flags, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err == message + "\n"
    assert not out.exists()


def test_every_run_kind_is_a_job_and_rebuilds_its_objective():
    assert list(JOBS) == ["search", "scale-grid"]
    assert run_objective(json.loads((DATA / "search" / "run.json").read_text())).describe() == \
        "mnas: ACC x (MACs/400M)^-0.07"
    assert run_objective(json.loads((DATA / "grid" / "run.json").read_text())).describe() == "accuracy: ACC"
    v2 = run_objective(json.loads((DATA / "v2" / "run.json").read_text()))
    assert v2.missing_references() == () and v2.describe().startswith("v2: ACC x (step time/")


@pytest.fixture
def old_runs(tmp_path) -> Path:
    """A copy of the run folders written before the jobs layer (their run.json names an absolute
    study file of a folder that no longer exists)."""
    copy = tmp_path / "old"
    shutil.copytree(DATA, copy)
    return copy


def test_runs_of_the_previous_version_give_results_and_feed_pareto(old_runs, capsys):
    before = {p: digest(p) for p in DATA.rglob("study.db")}
    assert main(["results", str(old_runs / "search")]) == 0
    out = capsys.readouterr().out
    assert "B0: trial 4 (re-ranked reward 0.9530)" in out
    assert main(["pareto", str(old_runs / "search"), str(old_runs / "v2")]) == 0
    assert "frontier" in capsys.readouterr().out
    assert {p: digest(p) for p in DATA.rglob("study.db")} == before  # read in place of the copy only


@pytest.mark.slow(reason="a search, a v2 search and a scale grid stored by the previous version continued by "
                         "this one, and nas fidelity on them (four trainings)")
def test_runs_of_the_previous_version_resume_in_their_own_folder(old_runs, capsys):
    before = {p: digest(p) for p in DATA.rglob("*") if p.is_file()}
    search = old_runs / "search"
    assert json.loads((search / "run.json").read_text())["storage"].startswith("sqlite:////")
    capsys.readouterr()
    assert main(["search", "--out", str(search), "--resume", "--trials", "6", *FAST[2:]]) == 0
    first = capsys.readouterr().out.splitlines()[0]  # the thread plan is in the first line (the suite fixes 1)
    assert first.startswith("nas search -> ") and first.endswith(
        "threads: 1 process x 1 intra-op thread(s) on %d core(s) (OMP_NUM_THREADS))" % usable_cores())
    records = open_run(search).records("search")
    assert len(records) == 6 and len({r.number for r in records}) == 6
    assert json.loads((search / "run.json").read_text())["storage"] is None  # now found wherever the folder is

    v2 = old_runs / "v2"
    assert main(["search", "--out", str(v2), "--resume", "--trials", "4", "--quiet"]) == 0
    stages = [r.stage for r in open_run(v2).records()]
    assert stages == ["search"] * 4  # its stored references were used: no reference network trained

    assert main(["scale", "grid", "--out", str(old_runs / "grid"), "--resume", "--quiet"]) == 0
    grid_out = capsys.readouterr().out
    assert "0 trained" in grid_out and "threads: 1 process x 1" in grid_out.splitlines()[0]
    assert main(["fidelity", str(search), "--top", "3", "--epochs", "3", "--quiet"]) == 0
    assert {p: digest(p) for p in DATA.rglob("*") if p.is_file()} == before


def test_v2_references_are_measured_once_as_a_stage_where_candidates_train(tmp_path):
    out = tmp_path / "v2"
    assert main(["search", "--out", str(out), "--objective", "v2", "--controller", "random", "--trials", "2",
                 *TINY]) == 0
    store = open_run(out)
    reference = store.records("reference")
    assert len(reference) == 1 and reference[0].metrics.ok and reference[0].reward is None
    config = json.loads((out / "run.json").read_text())
    assert config["step_time_ref_ms"] == reference[0].metrics.step_time_ms
    assert config["params_ref"] == reference[0].values["params"]
    assert main(["search", "--out", str(out), "--resume", "--trials", "3", "--quiet"]) == 0
    assert [r.stage for r in open_run(out).records()].count("reference") == 1


def test_records_are_decoded_once_however_often_they_are_read(tmp_path, monkeypatch):
    from nas.decisions import Decision
    from nas.metrics import Metrics
    from nas.presets import preset
    from nas.store import RunStore, TrialRecord
    from nas.store import records as records_module

    spec = preset("efficientnet-b0")
    decisions = (Decision("k", (3, 5, 7)),)
    store = RunStore.create(tmp_path / "run", {"space": "test"})
    for k in range(3):
        store.record(TrialRecord(choices={"k": (3, 5, 7)[k]}, indices=(k,), metrics=Metrics(accuracy=0.5 + k / 10),
                                 spec=spec, arch="b0", key=f"n{k}", reward=0.5, train_key=f"t{k}"), decisions)
    calls = []
    original = records_module.decode
    monkeypatch.setattr(records_module, "decode", lambda trial: calls.append(trial.number) or original(trial))
    reader = open_run(tmp_path / "run")
    for _ in range(5):
        assert [r.metrics.accuracy for r in reader.records()] == [0.5, 0.6, 0.7]
    assert reader.trained_record("t1").number == 1
    assert sorted(calls) == [0, 1, 2]
    store.record(TrialRecord(choices={"k": 3}, indices=(0,), metrics=Metrics(accuracy=0.9), spec=spec, arch="b0",
                             key="n3", reward=0.9, train_key="t3"), decisions)
    assert len(reader.records()) == 4 and sorted(calls) == [0, 1, 2, 3]  # the new one only


def test_a_stage_of_fixed_points_passes_over_points_another_process_took(tmp_path):
    """Two processes of one study build the same re-ranking stage; points the other reserves or finishes
    after this one built its list are passed over, so the two divide the points instead of proposing the
    same ones in the same order. A point the other held and gave back comes round again."""
    from nas.decisions import Decision
    from nas.jobs.setup import fixed_points_stage
    from nas.presets import preset
    from nas.store import RunStore

    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    here = RunStore.create(tmp_path / "a", {"space": "test"}, storage, study_name="shared")
    there = RunStore.create(tmp_path / "b", {"space": "test"}, storage, study_name="shared")
    decisions = (Decision("point", (0, 1, 2, 3)),)
    stage = fixed_points_stage("rerank", decisions, [(0,), (1,), (2,), (3,)], 4, lambda choices: None, here)
    spec = preset("efficientnet-b0")

    def reserve(store: RunStore, point: int) -> int:
        return store.reserve("rerank", {"point": point}, (point,), decisions, spec, "b0", f"t{point}")

    reserve(there, 0)
    given_back = reserve(there, 1)
    assert stage.controller.ask().choices == (2,)  # 0 and 1 are the other process's
    there.give_up(given_back, "stopped")
    assert [stage.controller.ask().choices for _ in range(2)] == [(1,), (3,)]
    assert stage.controller.ask().choices == (0,)  # all held: the next one all the same (the engine reuses it)
