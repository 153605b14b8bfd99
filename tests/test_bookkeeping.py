"""The search's own bookkeeping (issue 22): trials.csv appended, b0.json paced, and a cost per trial that
does not grow with the run. The runner trains nothing (tests/instant_runner.py), so what is measured
and checked is the engine, the controller and the store.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest

from instant_runner import InstantRunner
from nas.fileio import Paced
from nas.jobs.search import Search, SearchConfig, run_search
from nas.ranking import b0_document, choose_b0
from nas.store import open_run, trials_frame
from runners import RUNNERS

if "instant" not in RUNNERS:
    RUNNERS.register("instant", InstantRunner)


def search(out: Path, trials: int, resume: bool = False, on_trial=None, **options) -> None:
    config = SearchConfig(runner="instant", controller="random", trials=trials, seed=0, **options)
    run_search(config, out, resume=resume, on_trial=on_trial)


def check_outputs(out: Path) -> None:
    """trials.csv reads as the store's table, in trial order; b0.json is B0 of every record."""
    store = open_run(out)
    records = store.records()
    written = pd.read_csv(out / "trials.csv")
    expected = trials_frame(records)
    assert list(written.columns) == list(expected.columns)
    assert list(written.trial) == [r.number for r in records]
    pd.testing.assert_frame_equal(written, pd.read_csv(pd.io.common.StringIO(expected.to_csv(index=False))),
                                  check_dtype=False)
    choice = choose_b0(records)
    assert json.loads((out / "b0.json").read_text()) == json.loads(json.dumps(
        b0_document(choice, records, store.config), default=str))


def test_trials_csv_is_appended_and_complete_after_resume_and_a_rerank(tmp_path):
    out = tmp_path / "run"
    search(out, 30)
    check_outputs(out)
    (out / "trials.csv").write_text("trial\n")  # a file the killed process left behind: rebuilt on resume
    search(out, 45, resume=True)
    check_outputs(out)
    assert len(pd.read_csv(out / "trials.csv")) == 45
    config = SearchConfig(runner="instant", controller="random", trials=45, seed=0)
    Search(config, out, resume=True, overrides={"rerank": 3}).run()  # a new column (param_rerank_seed): whole
    check_outputs(out)
    assert (pd.read_csv(out / "trials.csv").stage == "rerank").sum() == 3


def test_paced_output_takes_at_most_its_share_and_runs_when_forced():
    paced, runs = Paced(share=0.5), []

    def slow() -> None:
        runs.append(time.perf_counter())
        time.sleep(0.02)

    assert paced.run(slow)
    assert not paced.run(slow)  # 0.02 s spent: the next one waits until 0.04 s after the first started
    assert paced.run(slow, force=True)
    time.sleep(0.05)
    assert paced.run(slow) and len(runs) == 3


@pytest.mark.slow(reason="2,000 instant trials: the only check that the engine's cost per trial does not grow "
                         "with the run (issue 22's acceptance); the fast tests check the pieces")
def test_the_second_thousand_trials_cost_no_more_than_the_first(tmp_path):
    # CPU time of this process (user + system), not wall time: other processes on the machine do not
    # count, and everything the bookkeeping does (queries, SQLite, file writes) is counted.
    marks: dict[int, float] = {}

    def on_trial(record, done, total) -> None:
        if done in (1, 1001, 2000):
            marks[done] = time.process_time()

    search(tmp_path / "run", 2000, on_trial=on_trial)
    first, second = marks[1001] - marks[1], marks[2000] - marks[1001]
    assert second <= 1.5 * first, f"first thousand {first:.1f} s of CPU, second {second:.1f} s"
    check_outputs(tmp_path / "run")
