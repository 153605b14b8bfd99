"""``nas compare`` on constructed training folders: model.pt files written directly with known per-image
results (no training), so every statistic is checked against scipy's, and the refusals are one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from nas.checkpoint import save_model_checkpoint
from nas.cli import main
from nas.metrics import pack_correct
from nas.presets import preset
from nas.training.config import TrainConfig
from nas.training.trained import seed_folder

TEST_IMAGES = 400
CLASSES = [str(i) for i in range(10)]


def mask(rng: np.random.Generator, right: int, size: int = TEST_IMAGES) -> np.ndarray:
    """``right`` of ``size`` images right, at random places."""
    out = np.zeros(size, dtype=bool)
    out[rng.choice(size, right, replace=False)] = True
    return out


def write_training(folder: Path, seed: int, test: np.ndarray, *, width: float = 1.0, dataset: str = "digits",
                   epochs: float = 2, minival: float = 0.9, ema: bool = True) -> None:
    """A ``model.pt`` as ``nas train --test`` writes it, with ``test`` as the raw weights' per-image results."""
    spec = preset("efficientnet-b0").with_(name=f"net-{width}", stem_channels=int(32 * width))
    config = TrainConfig.from_flat({"dataset": dataset, "epochs": epochs, "seed": seed, "test": True})
    evaluation = {"minival_accuracy": minival, "test_accuracy": float(test.mean()), "test_images": int(test.size),
                  "test_correct": pack_correct(test)}
    metrics = {"status": "ok", "accuracy": minival, "macs": int(1e6 * width), "params": int(1e5 * width),
               "latency_ms": 2.0 * width, "raw": evaluation, **({"ema": dict(evaluation)} if ema else {})}
    folder.mkdir(parents=True)
    save_model_checkpoint(folder / "model.pt", spec, {"w": torch.zeros(1)}, metrics=metrics,
                          config={"flat": config.flat(), "dataset": dataset, "classes": CLASSES,
                                  "train_resolution": 16})


def write_seeds(folder: Path, masks: list[np.ndarray], **options) -> None:
    for k, m in enumerate(masks):
        write_training(seed_folder(folder, k), k, m, **options)


def compare_json(capsys, *args: str) -> dict:
    capsys.readouterr()
    assert main(["compare", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def one_line_error(capsys, *args: str) -> str:
    capsys.readouterr()
    code = main(["compare", *args])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == "", captured
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1, captured.err
    return captured.err


def test_statistics_are_scipys(tmp_path, capsys):
    rng = np.random.default_rng(0)
    right_a, right_b = [372, 380, 366], [361, 370, 368]
    masks_a = [mask(rng, n) for n in right_a]
    masks_b = [mask(rng, n) for n in right_b]
    write_seeds(tmp_path / "a", masks_a)
    write_seeds(tmp_path / "b", masks_b, width=0.5)
    out = compare_json(capsys, str(tmp_path / "a"), str(tmp_path / "b"))
    acc_a, acc_b = np.array(right_a) / TEST_IMAGES, np.array(right_b) / TEST_IMAGES

    for model, acc in zip(out["models"], (acc_a, acc_b)):
        mean = model["accuracy"]["raw"]["test"]
        low, high = stats.t.interval(0.95, len(acc) - 1, loc=acc.mean(), scale=stats.sem(acc))
        assert abs(mean["mean"] - acc.mean()) < 1e-12 and abs(mean["low"] - low) < 1e-12
        assert abs(mean["high"] - high) < 1e-12 and model["seeds"] == [0, 1, 2]
    assert out["models"][1]["macs"] == 500_000 and out["models"][1]["latency_ms"] == 1.0

    (pair,) = out["pairs"]
    expected = stats.ttest_rel(acc_a, acc_b)
    interval = expected.confidence_interval(0.95)
    d = pair["difference"]
    assert pair["seeds"] == [0, 1, 2] and d["n"] == 3
    assert abs(d["statistic"] - expected.statistic) < 1e-12 and abs(d["p_value"] - expected.pvalue) < 1e-12
    assert abs(d["low"] - interval.low) < 1e-12 and abs(d["high"] - interval.high) < 1e-12
    assert abs(d["mean"] - (acc_a - acc_b).mean()) < 1e-12
    for test, ma, mb in zip(pair["mcnemar"], masks_a, masks_b):
        only_a, only_b = int(np.sum(ma & ~mb)), int(np.sum(~ma & mb))
        assert (test["only_a"], test["only_b"]) == (only_a, only_b)
        assert abs(test["p_value"] - stats.binomtest(only_a, only_a + only_b, 0.5).pvalue) < 1e-12
    assert pair["verdict"] == ("not distinguishable" if interval.low <= 0 <= interval.high else
                               "better" if interval.low > 0 else "worse")


def test_verdicts_better_worse_and_identical(tmp_path, capsys):
    rng = np.random.default_rng(1)
    strong = [mask(rng, n) for n in (390, 391, 389)]
    weak = [mask(rng, n) for n in (340, 352, 345)]
    write_seeds(tmp_path / "strong", strong)
    write_seeds(tmp_path / "weak", weak, width=0.5)
    write_seeds(tmp_path / "twin", strong, width=0.5)  # the same per-image results as strong
    out = compare_json(capsys, str(tmp_path / "strong"), str(tmp_path / "weak"), str(tmp_path / "twin"))
    verdicts = {(p["a"], p["b"]): p["verdict"] for p in out["pairs"]}
    assert verdicts == {("strong", "weak"): "better", ("strong", "twin"): "not distinguishable",
                        ("weak", "twin"): "worse"}
    twin = next(p for p in out["pairs"] if p["b"] == "twin" and p["a"] == "strong")
    assert twin["difference"]["p_value"] == 1.0 and all(t["p_value"] == 1.0 for t in twin["mcnemar"])

    assert main(["compare", str(tmp_path / "strong"), str(tmp_path / "twin"), "--png", str(tmp_path / "c.png")]) == 0
    printed = capsys.readouterr().out
    assert "strong and twin are not distinguishable at 95%" in printed
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_one_seed_each_uses_mcnemar_and_plain_folders(tmp_path, capsys):
    """A folder with model.pt itself (nas train without --seeds) is one seed; one seed pair: McNemar decides."""
    rng = np.random.default_rng(2)
    write_training(tmp_path / "a", 0, mask(rng, 395))
    write_training(tmp_path / "b", 0, mask(rng, 300), width=0.5)
    (pair,) = compare_json(capsys, str(tmp_path / "a"), str(tmp_path / "b"))["pairs"]
    assert pair["difference"] is None and pair["verdict"] == "better" and "one seed" in pair["basis"]
    # no seed in common: nothing is paired
    write_training(tmp_path / "c", 5, mask(rng, 300), width=0.5)
    (pair,) = compare_json(capsys, str(tmp_path / "a"), str(tmp_path / "c"))["pairs"]
    assert pair["seeds"] == [] and pair["verdict"] == "not distinguishable" and "no seed in common" in pair["basis"]


@pytest.mark.parametrize("options, named", [({"dataset": "fashion-mnist"}, "dataset 'fashion-mnist'"),
                                            ({"epochs": 3}, "epochs 3")])
def test_other_recipes_are_refused_in_one_line(tmp_path, capsys, options, named):
    rng = np.random.default_rng(3)
    write_seeds(tmp_path / "a", [mask(rng, 380), mask(rng, 381)])
    write_seeds(tmp_path / "b", [mask(rng, 380), mask(rng, 381)], width=0.5, **options)
    err = one_line_error(capsys, str(tmp_path / "a"), str(tmp_path / "b"))
    assert f"error: b was trained with {named} but a with" in err and "only fair under one recipe" in err


def test_bad_inputs_are_one_line_errors(tmp_path, capsys):
    rng = np.random.default_rng(4)
    write_seeds(tmp_path / "a", [mask(rng, 380), mask(rng, 381)])
    assert "compare needs at least two trained models, got 1" in one_line_error(capsys, str(tmp_path / "a"))
    (tmp_path / "empty").mkdir()
    err = one_line_error(capsys, str(tmp_path / "a"), str(tmp_path / "empty"))
    assert "empty: no finished training" in err
    unfinished = tmp_path / "unfinished"
    write_seeds(unfinished, [mask(rng, 380)])
    seed_folder(unfinished, 1).mkdir()
    (seed_folder(unfinished, 1) / "last.pt").write_bytes(b"")  # a seed still training
    err = one_line_error(capsys, str(tmp_path / "a"), str(unfinished))
    assert "seed-1: no finished training (no model.pt" in err
    assert "no such folder" in one_line_error(capsys, str(tmp_path / "a"), str(tmp_path / "nowhere"))
    write_seeds(tmp_path / "no-ema", [mask(rng, 380), mask(rng, 381)], width=0.5, ema=False)
    err = one_line_error(capsys, str(tmp_path / "a"), str(tmp_path / "no-ema"), "--weights", "ema")
    assert "no-ema: no test accuracy of the ema weights" in err
