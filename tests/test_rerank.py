"""Re-ranking the leaders as a second stage of a real digits search: B0 choice, kill and resume, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from nas.cli import main
from nas.ranking import choose_b0
from nas.store import open_run
from cli_processes import kill_when, nas_cli, nas_here, trials_stored

REPO = Path(__file__).resolve().parents[1]
FAST = ["--epochs", "2", "--proxy-width", "0.25", "--proxy-depth", "0.25", "--proxy-resolution", "16"]


_nas = nas_cli


@pytest.fixture(scope="module")
def killed_during_rerank(tmp_path_factory):
    """A 5-trial search with --rerank 3, SIGKILLed after its first re-rank trial, then resumed."""
    out = tmp_path_factory.mktemp("rerank") / "run"
    args = ["search", "--out", str(out), "--trials", "5", "--controller", "random", "--rerank", "3",
            "--rerank-epochs", "3", "--quiet", *FAST]
    kill_when(args, trials_stored(out, 1, stage="rerank"), "the first re-rank trial")
    before = open_run(out).dataframe()
    resumed = nas_here(*args, "--resume")
    return out, before, resumed


@pytest.mark.slow(reason="a search killed in its re-rank stage and resumed (three processes)")
def test_exactly_k_rerank_trials_of_the_top_k(killed_during_rerank):
    out, _, resumed = killed_during_rerank
    assert resumed.returncode == 0, resumed.stderr
    frame = open_run(out).dataframe()
    search, rerank = frame[frame.stage == "search"], frame[frame.stage == "rerank"]
    assert len(search) == 5 and len(rerank) == 3
    top3 = (search[search.status == "ok"].sort_values(["reward", "trial"], ascending=[False, True])
            .drop_duplicates("key").key.head(3))
    assert set(rerank.key) == set(top3)
    assert (rerank.epochs == 3).all() and (search.epochs == 2).all()
    assert list(frame.trial) == list(range(8))


@pytest.mark.slow(reason="a search killed in its re-rank stage and resumed")
def test_b0_is_the_best_by_reranked_reward_and_both_rankings_are_shown(killed_during_rerank):
    out, _, resumed = killed_during_rerank
    frame = open_run(out).dataframe()
    rerank = frame[(frame.stage == "rerank") & (frame.status == "ok")]
    best_key = rerank.groupby("key").reward.mean().idxmax()
    b0 = json.loads((out / "b0.json").read_text())
    assert b0["ranked_by"] == "rerank" and b0["key"] == best_key
    assert b0["reward"] == pytest.approx(rerank[rerank.key == best_key].reward.mean())
    assert b0["search_reward"] is not None and b0["accuracy_interval"]["method"] == "wilson"
    assert "Re-ranked" in resumed.stdout and "rerank" in resumed.stdout
    choice = choose_b0(open_run(out).records())
    assert choice.record.key == best_key and choice.ranked_by == "rerank"


@pytest.mark.slow(reason="a search killed in its re-rank stage and resumed")
def test_kill_in_the_rerank_stage_retrains_nothing_that_finished(killed_during_rerank):
    out, before, resumed = killed_during_rerank
    after = open_run(out).dataframe()
    cols = ["trial", "stage", "key", "accuracy", "wall_time_s", "reward"]
    pd.testing.assert_frame_equal(after[cols].iloc[: len(before)].reset_index(drop=True),
                                  before[cols].reset_index(drop=True))
    assert 1 <= (before.stage == "rerank").sum() < 3
    left = 3 - int((before.stage == "rerank").sum())
    assert f"{left} trained" in resumed.stdout


def test_rerank_bad_inputs_are_one_line(tmp_path, capsys):
    for flags, message in ((["--rerank", "0", "--rerank-seeds", "0"], "--rerank-seeds must be an integer >= 1"),
                           (["--rerank", "-1"], "--rerank must be a positive number"),
                           (["--trials", "2", "--rerank", "3"], "--rerank 3 is more than the 2 trials")):
        out = tmp_path / "bad"
        assert main(["search", "--out", str(out), "--quiet", *flags]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
        assert not out.exists()
