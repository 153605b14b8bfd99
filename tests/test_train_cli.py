"""``nas train``: one architecture trained from the command line, metrics as a table or JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nas.cli import main

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["efficientnet-b0", "--width", "0.25", "--depth", "0.25", "--resolution", "16", "--steps", "6",
         "--batch-size", "64"]


def test_train_json_on_digits(capsys):
    assert main(["train", *SMALL, "--json", "--seed", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    m = out["metrics"]
    assert m["status"] == "ok" and 0 <= m["accuracy"] <= 1 and m["step_time_ms"] > 0
    assert out["spec"]["in_chans"] == 1 and out["spec"]["num_classes"] == 10 and out["spec"]["resolution"] == 16
    assert out["budget"]["steps"] == 6 and out["budget"]["seed"] == 3 and out["evaluated_on"] == "minival"


def test_train_table_with_test_split(tmp_path):
    spec = tmp_path / "spec.json"
    from nas.presets import preset
    from nas.scaling import scale_spec

    spec.write_text(scale_spec(preset("efficientnet-b0"), width=0.25, depth=0.25, resolution=16).to_json())
    result = subprocess.run([sys.executable, "-m", "nas", "train", str(spec), "--steps", "4", "--test",
                             "--device", "cpu"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "test accuracy" in result.stdout and "latency ms, batch 1" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--dataset", "svhn"], "error: unknown dataset 'svhn'; valid:"),
    (["--dataset", "mnist"], "error: dataset 'mnist' needs --data-dir"),
    (["--dataset", "mnist", "--data-dir", "/no/such/dir"], "error: /no/such/dir: data folder not found"),
    (["--epochs", "0"], "error: budget epochs: must be a number > 0"),
    (["--optimizer", "adam"], "error: budget optimizer: unknown optimizer 'adam'"),
    (["--device", "tpu"], "error: --device 'tpu': expected auto, cpu, cuda or cuda:<index>"),
    (["--steps", "two"], "error: argument --steps: invalid int value"),
])
def test_bad_flags_are_one_line_errors(capsys, args, message):
    try:
        code = main(["train", *SMALL, *args])
    except SystemExit as exc:  # argparse errors, if main lets them through
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1


def test_missing_spec_file(capsys):
    assert main(["train", "nonexistent.json", "--steps", "1"]) == 2
    assert capsys.readouterr().err.startswith("error: ")

