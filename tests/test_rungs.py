"""Successive halving on the engine (nas search --rungs): real digits trainings, the promotion rule replayed,
continued trainings, kill -9 and resume, the Ray runner, bad inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cli_processes import kill_when, nas_here, trials_stored

from nas.cli import main
from nas.jobs.rungs import best_first
from nas.ranking import choose_b0, rung
from nas.store import open_run

TINY = ["--proxy-width", "0.25", "--proxy-depth", "0.25", "--proxy-resolution", "16", "--controller", "random",
        "--quiet"]
RUNGS = ["--trials", "8", "--rungs", "1,2,4", "--eta", "2"]


def by_rung(records) -> dict[int, list]:
    out: dict[int, list] = {}
    for r in records:
        if rung(r) is not None:
            out.setdefault(rung(r), []).append(r)
    return out


def check_promotions(records, eta: int = 2) -> None:
    """Every promotion is among the best floor(n/eta) of the n networks its rung had finished before it
    was made (the local runner trains one at a time: those are the lower-numbered trials), and no rung
    promotes more than floor(n/eta) of its finished networks."""
    rungs = by_rung(records)
    for k in sorted(rungs)[1:]:
        for promoted in rungs[k]:
            before = [r for r in rungs[k - 1] if r.number < promoted.number]
            cap = len(before) // eta
            best = sorted(before, key=lambda r: (-r.reward, r.number))[:cap]
            assert promoted.indices in [r.indices for r in best], (k, promoted.number)
            assert sum(1 for r in rungs[k] if r.number <= promoted.number) <= cap


@pytest.fixture(scope="module")
def halving(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rungs") / "run"
    assert main(["search", "--out", str(out), *RUNGS, *TINY]) == 0
    return out


def test_eight_four_two_and_each_promotion_the_best_of_its_rung(halving):
    records = open_run(halving).records()
    rungs = by_rung(records)
    assert {k: len(v) for k, v in rungs.items()} == {0: 8, 1: 4, 2: 2}
    check_promotions(records)
    assert all(r.metrics.epochs == e for k, e in ((0, 1.0), (1, 2.0), (2, 4.0)) for r in rungs[k])
    frame = open_run(halving).dataframe()
    assert sorted(frame.rung.dropna().astype(int).tolist()) == [0] * 8 + [1] * 4 + [2] * 2
    assert frame.score.notna().all()
    assert not (halving / "checkpoints").exists()  # removed when the rungs were done


def test_b0_is_the_best_at_the_highest_rung_and_promotions_continue_the_training(halving):
    records = open_run(halving).records()
    rungs = by_rung(records)
    choice = choose_b0(records)
    assert choice.record.number == max(rungs[2], key=lambda r: r.reward).number
    first = {r.key: r for r in rungs[0]}
    for r in rungs[1]:  # continued from the rung-0 checkpoint: the same first epoch, then one more
        assert len(r.metrics.history) == 2 and r.metrics.history[0] == first[r.key].metrics.history[0]
    # the controller heard the first rung only
    import torch

    told = torch.load(halving / "controller.pt", weights_only=True)["told"]
    assert sorted(told) == sorted(r.number for r in rungs[0])


@pytest.mark.slow(reason="a search SIGKILLed after its first promotion to the middle rung, then resumed (two "
                         "processes): the only check that successive halving survives a kill")
def test_a_kill_in_the_middle_rung_then_resume_trains_nothing_twice(tmp_path):
    out = tmp_path / "killed"
    args = ["search", "--out", str(out), *RUNGS, *TINY]
    kill_when(args, trials_stored(out, 1, stage="rung1"), "the first promotion to rung 1")
    resumed = nas_here(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    records = open_run(out).records()
    assert {k: len(v) for k, v in by_rung(records).items()} == {0: 8, 1: 4, 2: 2}
    trained = [r.train_key for r in records if r.reused_from is None]
    assert len(trained) == len(set(trained))
    assert sorted(r.number for r in records) == list(range(len(records)))


@pytest.mark.slow(reason="successive halving on a local Ray with two workers: promotions while others train")
def test_the_same_rungs_on_the_ray_runner(tmp_path, ray_outs):
    out = tmp_path / "ray"
    ray_outs.append(out)
    assert main(["search", "--out", str(out), *RUNGS, *TINY, "--runner", "ray", "--workers", "2"]) == 0
    rungs = by_rung(open_run(out).records())
    assert {k: len(v) for k, v in rungs.items()} == {0: 8, 1: 4, 2: 2}


@pytest.mark.parametrize("flags, message", [
    (["--rungs", "3,1"], "--rungs must increase, got [3.0, 1.0]"),
    (["--rungs", "1,3", "--eta", "1"], "--eta must be an integer >= 2, got 1"),
    (["--rungs", "1,2,4,8", "--eta", "2", "--trials", "4"], "4 rungs with eta 2 need at least 8 trials"),
    (["--rungs", "1,x"], "--rungs '1,x': expected comma-separated numbers of epochs"),
    (["--rungs", "1,3", "--epochs", "2"], "--epochs and rungs both set the proxy's training"),
    (["--rungs", "2"], "--rungs needs at least two budgets"),
    (["--score", "loss"], "--score: unknown score 'loss'; valid: accuracy, minival_loss, train_loss, bn_accuracy"),
])
def test_bad_rungs_are_one_line_and_write_nothing(tmp_path, capsys, flags, message):
    out = tmp_path / "bad"
    assert main(["search", "--out", str(out), *TINY, *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not out.exists()


def test_a_multi_objective_rung_promotes_by_front_rank_then_crowding():
    from types import SimpleNamespace

    from objectives import make_objective

    objective = make_objective("mnas")

    def record(number, accuracy, macs):
        return SimpleNamespace(number=number, reward=accuracy, values={"accuracy": accuracy, "macs": macs})

    front = [record(0, 0.9, 4e8), record(1, 0.8, 1e8), record(2, 0.85, 2e8)]
    dominated = [record(3, 0.7, 3e8), record(4, 0.6, 5e8)]
    order = [r.number for r in best_first(dominated + front, objective, multi_objective=True)]
    assert set(order[:3]) == {0, 1, 2} and order[3:] == [3, 4]
    assert order[:2] == [0, 1] or order[:2] == [1, 0]  # the front's ends are the least crowded
    assert [r.number for r in best_first(dominated + front, objective, multi_objective=False)] == [0, 2, 1, 3, 4]
    assert np.isfinite([r.reward for r in front]).all()
