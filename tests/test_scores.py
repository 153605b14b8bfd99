"""Scores from the training already paid for (nas.training.scores), --score, --train-subset and
`nas fidelity --sample`: real digits trainings, checked against what each score promises."""

from __future__ import annotations

import json
import math
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy.stats import kendalltau
from torch import nn

from nas.cli import main
from nas.data import load_dataset
from nas.jobs.search import SearchConfig, run_search
from nas.metrics import DEFAULT_SCORE, SCORES, score_quality
from nas.store import open_run
from nas.training import TrainBudget, train_candidate
from nas.training.scores import TrainLossTail, bn_reestimated
from objectives import make_objective
from search_spaces import ProxyConfig, make_space

FAST = dict(epochs=2, proxy_width=0.25, proxy_depth=0.25, proxy_resolution=16)


def test_train_loss_is_the_mean_over_the_last_half_of_the_steps_a_continuation_included():
    tail = TrainLossTail(end_step=10)
    for step in range(1, 11):
        tail.step_end(SimpleNamespace(step=step), torch.tensor(float(step)))
    assert tail.value() == np.mean([6, 7, 8, 9, 10])  # steps 6..10 of 10
    # a training continued from step 4 reports what one training to step 10 would
    first = TrainLossTail(end_step=10)
    for step in range(1, 5):
        first.step_end(SimpleNamespace(step=step), torch.tensor(float(step)))
    again = TrainLossTail(end_step=10, earlier=first.pairs())
    for step in range(5, 11):
        again.step_end(SimpleNamespace(step=step), torch.tensor(float(step)))
    assert again.value() == tail.value()


def test_bn_reestimation_sets_the_exact_training_statistics_on_a_copy():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(3))
    data = load_dataset("digits", seed=0)
    train = data.source("train", torch.device("cpu"))
    from nas.data.augment import Augmenter

    augmenter = Augmenter(data.mean, data.std, "cpu")
    model(torch.zeros(2, 1, 8, 8))  # materialize the lazy layer
    norm = model[1]
    norm.running_mean.fill_(5.0)
    again = bn_reestimated(model, train, 8, augmenter, batch_size=64, images=256)
    assert torch.all(norm.running_mean == 5.0)  # the model itself is untouched
    draw = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:256].sort().values
    batches = [augmenter.to_float(train.batch(draw[i:i + 64], 8)[0]) for i in range(0, 256, 64)]
    with torch.no_grad():
        means = [again[0](b).mean(dim=(0, 2, 3)) for b in batches]
    assert torch.allclose(again[1].running_mean, torch.stack(means).mean(0), atol=1e-5)
    assert not again.training


def test_a_training_reports_every_score_and_bn_accuracy_only_differs_with_batchnorm():
    data = load_dataset("digits", seed=0)
    space = make_space("efficientnet")
    proxy = ProxyConfig(0.25, 0.25, 16)
    full = space.full_size(space.base_choices(), proxy, data.num_classes, data.in_chans)
    spec = space.proxy(full, proxy, data.num_classes, data.in_chans)
    metrics = train_candidate(spec, data, TrainBudget(epochs=2, seed=0))
    assert metrics.ok and set(metrics.scores) == set(SCORES)
    assert metrics.scores["accuracy"] == metrics.accuracy and metrics.scores["minival_loss"] == metrics.loss
    assert 0 < metrics.scores["train_loss"] < math.log(10) and 0.5 < metrics.scores["bn_accuracy"] <= 1
    grouped = train_candidate(spec.with_(norm="groupnorm"), data, TrainBudget(epochs=1, seed=0))
    assert grouped.scores["bn_accuracy"] == grouped.accuracy  # nothing to re-estimate


def test_score_train_loss_is_the_rewards_quality_term(tmp_path):
    out = tmp_path / "run"
    assert main(["search", "--out", str(out), "--trials", "2", "--controller", "random", "--score", "train_loss",
                 "--quiet", *[f"--{k.replace('_', '-')}={v}" for k, v in FAST.items()]]) == 0
    objective = make_objective("mnas")
    frame = open_run(out).dataframe()
    for record in open_run(out).records():
        quality = math.exp(-record.metrics.scores["train_loss"])
        assert record.values["score"] == pytest.approx(quality)
        assert record.reward == pytest.approx(objective.reward({"accuracy": quality, "macs": record.values["macs"]}))
    assert frame.score.tolist() == pytest.approx([math.exp(-r.metrics.scores["train_loss"])
                                                  for r in open_run(out).records()])


def test_the_default_score_is_bn_accuracy_and_runs_stored_without_one_keep_accuracy():
    assert SearchConfig().score == DEFAULT_SCORE == "bn_accuracy"
    stored = SearchConfig(trials=3).to_dict()
    del stored["score"]  # a run.json written before scores existed
    assert SearchConfig.from_dict(stored).score == "accuracy"
    assert SearchConfig.from_dict({**stored, "score": "train_loss"}).score == "train_loss"
    objective = make_objective("mnas").with_score("bn_accuracy")
    measured = {"accuracy": 0.8, "score_bn_accuracy": 0.9, "macs": 400e6}
    assert objective.quality(measured) == 0.9
    # a runner that re-estimated nothing reports no bn_accuracy: the accuracy itself, as without BatchNorm
    assert objective.quality({"accuracy": 0.8, "macs": 400e6}) == 0.8
    assert make_objective("mnas").with_score("train_loss").quality({"accuracy": 0.8}) is None


def test_train_subset_is_seeded_stratified_and_leaves_minival_alone():
    whole = load_dataset("digits", seed=3)
    part = load_dataset("digits", seed=3, train_subset=500)
    again = load_dataset("digits", seed=3, train_subset=500)
    train_labels = part.source("train", torch.device("cpu")).labels
    assert len(train_labels) == 500
    assert torch.equal(part.source("minival", torch.device("cpu")).labels,
                       whole.source("minival", torch.device("cpu")).labels)
    assert torch.equal(train_labels, again.source("train", torch.device("cpu")).labels)
    counts = np.bincount(train_labels.numpy(), minlength=10)
    assert counts.min() >= 45 and counts.max() <= 55  # about 50 per class


@pytest.mark.parametrize("value, message", [("1", "--train-subset must be an integer >= 2, got 1"),
                                            ("100000", "is not below the")])
def test_bad_train_subset_is_one_line(tmp_path, capsys, value, message):
    out = tmp_path / "bad"
    assert main(["search", "--out", str(out), "--train-subset", value, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not out.exists()


SAMPLE = ["--sample", "4", "--seeds", "2", "--proxy-epochs", "0.5,1", "--epochs", "2", "--quiet"]


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """`nas fidelity --sample 4 --seeds 2 --proxy-epochs 0.5,1 --epochs 2` on a 1-trial digits run."""
    out = tmp_path_factory.mktemp("sample") / "run"
    run_search(SearchConfig(controller="random", trials=1, seed=4, **FAST), out)
    assert main(["fidelity", str(out), *SAMPLE]) == 0
    return out


SLOW = "nas fidelity --sample end to end: 8 proxy and 8 reference trainings of candidates drawn from the space"


@pytest.mark.slow(reason=SLOW)
def test_sample_scores_every_candidate_at_every_budget_against_two_reference_seeds(measured):
    doc = json.loads((measured / "fidelity.json").read_text())
    assert doc["complete"] and doc["usable"] == 4 and len(doc["candidates"]) == 4
    frame = open_run(measured).dataframe()
    assert (frame.stage == "fidelity-proxy").sum() == 8 and (frame.stage == "fidelity-reference").sum() == 8
    assert sorted(frame[frame.stage == "fidelity-proxy"].epochs.unique()) == [0.5, 1.0]
    assert (frame[frame.stage == "fidelity-reference"].epochs == 2).all()
    # the candidates are drawn from the space, not the search's one
    searched = {tuple(r.indices) for r in open_run(measured).records("search")}
    assert len({tuple(c["indices"]) for c in doc["candidates"]} - searched) >= 3
    target = [np.mean(c["reference_accuracy"]) for c in doc["candidates"]]
    for budget in ("0.5", "1"):
        for name in SCORES:
            found = doc["scores"][budget][name]
            x = [c["proxy_scores"][budget][name] for c in doc["candidates"]]
            if len(set(x)) < 2:
                continue
            assert found["kendall_tau"]["value"] == pytest.approx(kendalltau(x, target)[0], abs=1e-12)
    macs = [c["macs"] for c in doc["candidates"]]
    assert doc["baselines"]["macs"]["kendall_tau"]["value"] == pytest.approx(kendalltau(macs, target)[0], abs=1e-12)
    first = [c["reference_accuracy"][0] for c in doc["candidates"]]
    second = [c["reference_accuracy"][1] for c in doc["candidates"]]
    assert doc["noise_ceiling"]["kendall_tau"]["value"] == pytest.approx(kendalltau(first, second)[0], abs=1e-12)
    assert first != second  # two seeds, two trainings
    assert doc["verdict"].startswith("at 0.5 epoch(s) the best score")
    assert all(score_quality(n, 1.0) > 0 for n in SCORES)


@pytest.mark.slow(reason=SLOW)
def test_sample_resumes_with_nothing_to_train_and_refuses_other_settings(measured, capsys):
    assert main(["fidelity", str(measured), *SAMPLE]) == 0
    assert "0 trained" in capsys.readouterr().out
    before = (measured / "study.db").read_bytes()
    assert main(["fidelity", str(measured), *SAMPLE[:1], "5", *SAMPLE[2:]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "other settings" in err
    assert (measured / "study.db").read_bytes() == before


@pytest.mark.slow(reason=SLOW)
def test_a_copied_run_measures_its_own_sample(measured, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(measured, copy)
    (copy / "fidelity.json").unlink()
    capsys.readouterr()
    assert main(["fidelity", str(copy), *SAMPLE]) == 0  # its own study holds the trainings: none again
    assert "0 trained" in capsys.readouterr().out
    assert json.loads((copy / "fidelity.json").read_text())["usable"] == 4
