"""The search loop end to end: real proxy training on digits, a real SQLite study, kill and resume."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import pytest
import torch
from cli_processes import kill_when, nas_cli, nas_here, trials_stored, wait_for

from nas.api import load_spec
from nas.cli import main
from nas.controllers.base import Controller, Proposal
from nas.jobs.search import Search, SearchConfig
from nas.store import COLUMNS, open_run

FAST = dict(epochs=1, proxy_width=0.25, proxy_depth=0.25, proxy_resolution=16)
FAST_FLAGS = ["--epochs", "1", "--proxy-width", "0.25", "--proxy-depth", "0.25", "--proxy-resolution", "16"]
REPO = Path(__file__).resolve().parents[1]


class SplitReadRefused(Exception):
    """Raised by :func:`instrumented_test_split` when anything asks digits for its test split."""


@contextlib.contextmanager
def instrumented_test_split():
    """Every read of digits' test split recorded (the list yielded) and refused with :class:`SplitReadRefused`.

    It sits under every path to the images: ``load_dataset``'s test reader and the data cache both
    call the dataset's ``read`` of ``nas.data.digits``, looked up when they read."""
    import nas.data.digits

    real, reads = nas.data.digits.read, []

    def read(name, data_dir, split, **options):
        if split == "test":
            reads.append(split)
            raise SplitReadRefused(f"{name}: the test split was read")
        return real(name, data_dir, split, **options)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(nas.data.digits, "read", read)
        yield reads


class FinishedRun(NamedTuple):
    out: Path
    console: str  # what nas search printed, unwrapped (rich wraps long lines at 120 columns)
    test_reads: list[str]  # reads of the test split the search made (instrumented_test_split)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> FinishedRun:
    """``nas search`` in this process: 4 trials of 1 epoch, with every read of the test split recorded.

    Seed 3 gives B0 two candidates statistically tied with it and one that is not, so the ties are
    checked both ways."""
    out = tmp_path_factory.mktemp("runs") / "random4"
    console = io.StringIO()
    with instrumented_test_split() as reads, contextlib.redirect_stdout(console):
        code = main(["search", "--out", str(out), "--trials", "4", "--controller", "random", "--seed", "3",
                     "--quiet", *FAST_FLAGS])
    assert code == 0, console.getvalue()
    return FinishedRun(out, " ".join(console.getvalue().split()), reads)


def test_search_writes_every_output(finished_run):
    out = finished_run.out
    for name in ("study.db", "trials.csv", "b0.json", "controller.pt", "run.json"):
        assert (out / name).exists(), name
    frame = pd.read_csv(out / "trials.csv")
    assert len(frame) == 4
    assert list(frame.columns[: len(COLUMNS)]) == list(COLUMNS)
    assert any(c.startswith("param_s1_") for c in frame.columns)
    ok = frame[frame.status == "ok"]
    assert len(ok) >= 3 and (ok.macs > 0).all()
    assert (ok.accuracy > 0.25).all()  # chance is 0.1; one epoch reached 0.32-0.77 (30 trials, seeds 4-8)
    assert (ok.step_time_ms > 0).all() and (ok.latency_ms > 0).all()
    b0 = json.loads((out / "b0.json").read_text())
    assert b0["reward"] == pytest.approx(ok.reward.max())
    spec = load_spec(str(out / "b0.json"))
    assert spec.key() == b0["key"] and spec.resolution == 224 and spec.num_classes == 10 and spec.in_chans == 1
    assert f"B0: trial {b0['trial']}, reward {b0['reward']:.4f}," in finished_run.console


def test_reward_is_the_mnasnet_reward_of_full_size_cost(finished_run):
    out = finished_run.out
    frame = pd.read_csv(out / "trials.csv")
    row = frame[frame.status == "ok"].iloc[0]
    assert row.reward == pytest.approx(row.accuracy * (row.macs / 400e6) ** -0.07, rel=1e-9)
    # the cost is the full-size network at 224 px, not the 16 px proxy that trained
    assert row.macs > 50 * row.proxy_macs


def test_study_opens_with_optuna_as_the_dashboard_would(finished_run):
    import optuna

    out = finished_run.out
    summaries = optuna.get_all_study_summaries(f"sqlite:///{out / 'study.db'}")
    assert len(summaries) == 1 and summaries[0].n_trials == 4
    study = optuna.load_study(study_name=summaries[0].study_name, storage=f"sqlite:///{out / 'study.db'}")
    trial = study.trials[0]
    assert {"arch", "key", "status", "metrics", "spec"} <= set(trial.user_attrs)
    assert len(trial.params) == 42


def test_nas_results_prints_and_exports(finished_run, tmp_path, capsys):
    out = finished_run.out
    csv = tmp_path / "all.csv"
    assert main(["results", str(out), "--top", "2", "--csv", str(csv)]) == 0
    text = capsys.readouterr().out
    assert "reward" in text and "top 2" in text
    assert len(pd.read_csv(csv)) == 4


class SameNetworkController(Controller):
    """Proposes one fixed point of the space forever: every proposal after the first is a repeat."""

    def __init__(self, decisions, seed=0, **_):
        self.decisions = decisions
        self.n = 0

    def ask(self):
        self.n += 1
        return Proposal(self.n, tuple(0 for _ in self.decisions))

    def tell(self, proposal, reward, values=None):
        pass

    def state_dict(self):
        return {"n": self.n}

    def load_state_dict(self, state):
        self.n = state["n"]


def test_a_repeated_network_is_trained_once(tmp_path):
    search = Search(SearchConfig(controller="random", trials=3, **FAST), tmp_path / "dup")
    search.controller = SameNetworkController(search.decisions)
    result = search.run()
    assert result.trained == 1 and result.reused == 2
    frame = pd.read_csv(tmp_path / "dup" / "trials.csv")
    assert len(frame) == 3 and frame.key.nunique() == 1
    assert frame.reused_from.isna().sum() == 1 and (frame.reused_from.dropna() == 0).all()
    assert frame.accuracy.nunique() == 1


_nas = nas_cli


@pytest.mark.slow(reason="kill -9 of the search command mid-run, then --resume twice (three processes)")
def test_kill_and_resume_loses_and_retrains_nothing(tmp_path):
    out = tmp_path / "killed"
    args = ["search", "--out", str(out), "--trials", "6", "--controller", "rl", "--quiet", *FAST_FLAGS]
    kill_when(args, trials_stored(out, 2), "two finished trials")
    before = open_run(out).dataframe()
    assert 2 <= len(before) < 6
    resumed = nas_here(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    after = open_run(out).dataframe()
    assert len(after) == 6 and list(after.trial) == list(range(6))
    # every trial finished before the kill is still there, unchanged (same metrics, same timings)
    cols = ["trial", "key", "accuracy", "wall_time_s", "reward"]
    pd.testing.assert_frame_equal(after[cols].iloc[: len(before)].reset_index(drop=True),
                                  before[cols].reset_index(drop=True))
    trained_after = after.iloc[len(before):].reused_from.isna().sum()
    assert f"{trained_after} trained" in resumed.stdout
    # a second resume has nothing left to do
    again = nas_here(*args, "--resume")
    assert again.returncode == 0 and "0 trained" in again.stdout
    assert len(open_run(out).dataframe()) == 6


def test_an_interrupted_trial_resumes_under_its_own_number(tmp_path, monkeypatch, capsys):
    """Ctrl-C while trial 0 trains: ``error: interrupted`` (130), its reservation released (not left
    RUNNING), the lock let go; the resume trains that network as trial 0, not as a new trial."""
    import runners.local

    real, calls = runners.local.run_job, []

    def interrupted_the_first_time(job):
        calls.append(job.trial)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return real(job)

    monkeypatch.setattr(runners.local, "run_job", interrupted_the_first_time)
    out = tmp_path / "stopped"
    args = ["search", "--out", str(out), "--trials", "1", "--controller", "random", "--quiet", *FAST_FLAGS]
    assert main(args) == 130
    assert capsys.readouterr().err == "error: interrupted\n"
    (released,) = open_run(out).reservations()
    assert released.number == 0 and released.released  # free at once for a resume or another process
    assert (out / "trials.csv").exists() and not (out / ".lock").exists()
    assert main([*args, "--resume"]) == 0
    frame = open_run(out).dataframe()
    assert list(frame.trial) == [0] and frame.status[0] == "ok"
    assert open_run(out).trial(0).train_key == released.train_key  # the interrupted network, under its number
    assert calls == [0, 0] and open_run(out).reservations() == []


@pytest.mark.slow(reason="SIGTERM to a nas search process mid-trial, then --resume (two processes)")
def test_sigterm_releases_writes_the_outputs_and_resumes_under_the_same_numbers(tmp_path):
    out = tmp_path / "terminated"
    args = ["search", "--out", str(out), "--trials", "3", "--controller", "random", "--quiet", *FAST_FLAGS]
    proc = subprocess.Popen([sys.executable, "-m", "nas", *args], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)

    def training_after_one_finished() -> bool:
        if not trials_stored(out, 1)():
            return False
        return bool(open_run(out).reservations())

    wait_for(proc, training_after_one_finished, "a trial training after the first", 300, poll_s=0.05)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 143 and err == "error: terminated\n", err
    store = open_run(out)
    done = store.dataframe()
    held = store.reservations()
    assert held and all(r.released for r in held)  # no trial left RUNNING
    assert list(pd.read_csv(out / "trials.csv").trial) == list(done.trial) and (out / "b0.json").exists()
    resumed = nas_here(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    after = open_run(out).dataframe()
    assert list(after.trial) == [0, 1, 2] and after.key.nunique() == 3  # as many networks as trials
    for r in held:
        assert open_run(out).trial(r.number).train_key == r.train_key
    assert f"{3 - len(done)} trained" in resumed.stdout  # only what had not finished


def _digest(folder: Path) -> dict[str, str]:
    """The folder's files by content. study.db is in SQLite's write-ahead mode: what is committed may still
    be in study.db-wal, moved into study.db when a connection (of an earlier test, say) closes. So the
    log is moved in first, and the log and its index (-wal, -shm: there while any connection is open) are
    left out: a write is then a change of study.db."""
    with contextlib.closing(sqlite3.connect(folder / "study.db")) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())
            if p.is_file() and not p.name.endswith(("-wal", "-shm"))}


BAD = [
    (["--space", "hexagons"], "unknown space 'hexagons'; valid: FILE.yaml, efficientnet"),
    (["--controller", "genetic"], "unknown controller 'genetic'"),
    (["--objective", "speed"], "unknown objective 'speed'"),
    (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
    (["--target=-5M"], "target"),
    (["--target", "0"], "target"),
    (["--trials", "0"], "--trials"),
    (["--epochs", "0"], "--epochs"),
    (["--epochs", "-1"], "--epochs"),
    (["--storage", "nosuchdb://x/y"], "cannot open storage"),
    (["--proxy-resolution", "2"], "--proxy-resolution"),
    (["--workers", "2"], "applies to --runner ray only"),
    # impossible sizes, refused with the largest that makes sense (nas/limits.py) before anything runs
    (["--trials", "1000000000000"], "--trials must be at most 1,000,000"),
    (["--epochs", "1e9"], "--epochs must be at most 10,000"),
    (["--rerank", "1", "--rerank-epochs", "1e9"], "--rerank-epochs must be at most 10,000"),
    (["--rungs", "1,3,1e9"], "--rungs must be at most 10,000 epochs"),
    (["--seed", "9223372036854775808"], "--seed must be an integer between 0 and 9223372036854775807"),
    (["--seed", "-1"], "--seed must be an integer between 0"),
    (["--rerank", "1", "--rerank-resolution", "4"], "--rerank-resolution must be an integer between 8 and 1024"),
    # flags that would be ignored
    (["--study", "mine"], "--study names a study in a shared --storage"),
    (["--resume", "--epochs", "3"], "--epochs cannot change when a run resumes: the run keeps its stored value 1.0 (start"),
    (["--resume", "--controller", "rl"], "--controller cannot change when a run resumes"),
    (["--resume", "--proxy-width", "0.5"], "--proxy-width cannot change when a run resumes"),
]


@pytest.mark.parametrize("flags, message", BAD, ids=[" ".join(f) for f, _ in BAD])
def test_bad_inputs_give_one_line_and_leave_the_study_untouched(finished_run, capsys, flags, message):
    out = finished_run.out
    before = _digest(out)
    resume = ["--resume"] if flags[0] == "--storage" else []
    code = main(["search", "--out", str(out), "--quiet", *resume, *flags])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert _digest(out) == before


def test_a_resume_given_its_own_settings_again_runs(finished_run, tmp_path):
    """Typing the stored settings again with --resume changes nothing and is accepted (only a setting that
    differs is refused, above)."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(finished_run.out, copy)
    again = nas_here("search", "--out", str(copy), "--resume", "--controller", "random", "--trials", "4", "--seed",
                     "3", "--quiet", *FAST_FLAGS)
    assert again.returncode == 0 and "0 trained" in again.stdout, again.stderr


def test_a_copied_run_grows_on_its_own_and_both_resume(finished_run, tmp_path):
    """`cp -r` a finished run and resume the copy with one more trial: it writes its own study only,
    and the original still resumes."""
    import shutil

    original, copy = tmp_path / "original", tmp_path / "copy"
    shutil.copytree(finished_run.out, original)  # the module's run stays as it is for the other tests
    shutil.copytree(original, copy)
    before = _digest(original)
    grown = nas_here("search", "--out", str(copy), "--resume", "--trials", "5", "--quiet")
    assert grown.returncode == 0 and "1 trained" in grown.stdout, grown.stderr
    assert len(open_run(copy).records("search")) == 5
    assert _digest(original) == before  # not a byte of the original changed
    again = nas_here("search", "--out", str(original), "--resume", "--quiet")
    assert again.returncode == 0 and "0 trained" in again.stdout, again.stderr
    assert len(open_run(original).records("search")) == 4


def test_a_stored_storage_that_cannot_open_does_not_blame_a_storage_flag(finished_run, tmp_path, capsys):
    """A run that names an external storage, resumed without --storage: the error is the stored URL's,
    not a --storage the user never gave."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(finished_run.out, copy)
    config = json.loads((copy / "run.json").read_text())
    (copy / "run.json").write_text(json.dumps({**config, "storage": "nosuchdb://x/y"}))
    before = _digest(copy)
    assert main(["search", "--out", str(copy), "--resume", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot open storage 'nosuchdb://x/y'") and err.count("\n") == 1, err
    assert _digest(copy) == before


def test_existing_run_without_resume_is_refused(finished_run, capsys):
    out = finished_run.out
    before = _digest(out)
    assert main(["search", "--out", str(out), "--quiet", *FAST_FLAGS]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert _digest(out) == before


def test_malformed_yaml_space(tmp_path, capsys):
    bad = tmp_path / "space.yaml"
    bad.write_text("stages:\n  - {op: mbconv6, kernel: 4, stride: 1, filters: 16, layers: 1}\n")
    assert main(["search", "--out", str(tmp_path / "r"), "--space", str(bad), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "kernel" in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("where", ["below a regular file", "in /proc"])
def test_unwritable_out_is_refused_even_for_root(tmp_path, capsys, where):
    """Both places refuse a new folder whoever runs the test (root included)."""
    afile = tmp_path / "file"
    afile.write_text("x")
    out = afile / "run" if where == "below a regular file" else Path("/proc") / f"nas-run-{os.getpid()}"
    assert main(["search", "--out", str(out), "--quiet", *FAST_FLAGS]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --out") and err.count("\n") == 1, err
    assert afile.read_text() == "x" and not out.exists()


def test_resume_of_a_folder_without_a_run(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["search", "--out", str(tmp_path / "empty"), "--resume", "--quiet"]) == 2
    assert "no study here" in capsys.readouterr().err
    assert main(["search", "--resume", "--quiet"]) == 2
    assert "--resume needs --out" in capsys.readouterr().err


def test_cli_subprocess_error_is_one_line_without_traceback(tmp_path):
    proc = _nas("search", "--out", str(tmp_path / "x"), "--controller", "genetic")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr


def test_nsga2_on_the_v2_objective_stores_three_directions_and_pareto_uses_them(tmp_path, capsys):
    import optuna

    out = tmp_path / "v2"
    assert main(["search", "--out", str(out), "--objective", "v2", "--controller", "nsga2", "--trials", "3",
                 "--controller-option", "population_size=2", "--quiet", *FAST_FLAGS]) == 0
    storage = f"sqlite:///{out / 'study.db'}"
    study = optuna.load_study(study_name="nas-search", storage=storage)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE", "MINIMIZE"]
    assert study.metric_names == ["accuracy", "step_time_ms", "params"]
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert done and all(t.values == [t.user_attrs["values"][k] for k in ("accuracy", "step_time_ms", "params")]
                        for t in done)
    capsys.readouterr()
    assert main(["pareto", str(out)]) == 0
    text = capsys.readouterr().out
    assert "accuracy:max,step_time_ms:min,params:min" in text.replace(" ", "")


def test_a_device_that_does_not_exist_is_refused_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "gpu"
    assert main(["search", "--out", str(out), "--device", "cuda:7", "--quiet", *FAST_FLAGS]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --device cuda:7") and err.count("\n") == 1, err
    assert not out.exists()


def test_a_budget_too_small_to_learn_is_called_out(tmp_path, capsys):
    out = tmp_path / "tiny"
    assert main(["search", "--out", str(out), "--trials", "2", "--controller", "random", "--epochs", "0.15",
                 "--proxy-width", "0.25", "--proxy-depth", "0.25", "--proxy-resolution", "16", "--quiet"]) == 0
    text = capsys.readouterr().out
    frame = pd.read_csv(out / "trials.csv")
    assert frame.at_chance.astype(bool).all()  # one step of training: nothing learned
    assert "at chance level" in text and "raise --epochs" in text
    assert "chance" in text.split("Top candidates")[1]  # marked in the leaderboard too


def test_ties_with_b0_in_b0_json_and_on_the_console_are_mcnemars_on_the_stored_images(finished_run):
    """Recomputed here from the stored per-image bitmaps alone: B0 is the best distinct network by
    reward; each of the next nine is tied with it when the exact two-sided binomial test on the images
    exactly one of the two got right gives p >= 0.05 (scipy's binomtest, not nas.stats)."""
    from scipy.stats import binomtest

    from nas.metrics import unpack_correct

    out, console, _ = finished_run
    best: dict[str, object] = {}
    for r in sorted(open_run(out).records("search"), key=lambda r: (-r.reward, r.number)):
        if r.metrics.ok:
            best.setdefault(r.key, r)
    b0, *others = best.values()
    right = unpack_correct(b0.metrics.correct, b0.metrics.minival_size)
    expected, separated = [], []
    for r in others[:9]:
        other = unpack_correct(r.metrics.correct, r.metrics.minival_size)
        only_b0, only_other = int((right & ~other).sum()), int((~right & other).sum())
        p = 1.0 if only_b0 + only_other == 0 else binomtest(only_b0, only_b0 + only_other, 0.5).pvalue
        (expected if p >= 0.05 else separated).append((r.number, r.key, p))
    assert expected and separated, "seed 3 gave tied and separated candidates; pick another seed"

    doc = json.loads((out / "b0.json").read_text())
    assert doc["trial"] == b0.number and doc["ranked_by"] == "search"
    assert [(t["trial"], t["key"]) for t in doc["tied_with"]] == [(n, k) for n, k, _ in expected]
    assert [t["p_value"] for t in doc["tied_with"]] == pytest.approx([p for _, _, p in expected], rel=1e-12)
    names = ", ".join(f"trial {n} (p = {p:.2f})" for n, _, p in expected)
    assert f"Statistically tied with B0 (exact McNemar test on the same minival images, p >= 0.05): {names}." \
        in console
    for n, _, _ in separated:
        assert f"trial {n} (p =" not in console


def test_a_search_never_reads_the_test_split_and_nas_train_test_does(finished_run, capsys):
    """The README's promise: the test split is read only by ``nas train --test``. The search above ran
    with every test-split read recorded and refused; the control shows the instrument catches a read."""
    out, _, reads = finished_run
    assert reads == []
    assert (pd.read_csv(out / "trials.csv").status == "ok").all()  # a refused read would fail a trial
    threads = torch.get_num_threads()
    with instrumented_test_split() as reads, pytest.raises(SplitReadRefused):
        main(["train", "efficientnet-b0", "--width", "0.25", "--depth", "0.25", "--resolution", "16", "--steps", "2",
              "--batch-size", "64", "--threads", "1", "--test"])
    torch.set_num_threads(threads)
    assert reads == ["test"]
