"""Latency tables: the enumeration covers every candidate with the real blocks, a killed build
resumes without losing entries, predictions are the calibrated sum, mismatches are one-line errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.cli import main
from nas.deploy.latency_table import Calibration, fit_calibration, load_latency_table, read_table, space_pieces
from nas.deploy.pieces import Piece, spec_pieces
from nas.errors import ConfigError, StorageError
from nas.timing import steady_allocator
from search_spaces import make_space

ROOT = Path(__file__).resolve().parents[1]
TINY = """\
name: tiny
stem_channels: 8
head_channels: 32
resolution: 32
choices:
  op: [mbconv1, mbconv3, conv]
  kernel: [3, 5]
stages:
  - {op: mbconv1, kernel: 3, stride: 1, filters: 8, layers: 1, se: 0.25, choices: {se: [0, 0.25]}}
  - {op: mbconv3, kernel: 3, stride: 2, filters: 16, layers: 2, choices: {filters: [0.5, 1.0]}}
  - {op: mbconv3, kernel: 3, stride: 2, filters: 24, layers: 1, choices: {skip: [true, false]}}
"""
FAST = ["--piece-seconds", "0", "--network-seconds", "0", "--calibration-networks", "3"]


@pytest.fixture
def tiny_space(tmp_path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


@pytest.mark.parametrize("name", ["efficientnet", "mnasnet", "efficientnetv2"])
def test_enumeration_covers_sampled_candidates(name):
    space = make_space(name)
    pieces = space_pieces(space, space.resolution)
    rng = np.random.default_rng(11)
    used = set()
    for _ in range(300):
        for where, piece in spec_pieces(space.decode(space.sample(rng))):
            assert piece.key in pieces, (where, piece.key)
            used.add(piece.key)
    assert {p.kind for p in pieces.values()} >= {"stem", "head", "mbconv"}
    assert len(used) > 0.3 * len(pieces)  # the enumeration is not padded with pieces no candidate has


def test_pieces_are_the_blocks_of_the_built_network(tiny_space):
    from nas.builder import build_model

    space = make_space(str(tiny_space))
    rng = np.random.default_rng(2)
    for _ in range(5):
        spec = space.decode(space.sample(rng))
        model = build_model(spec)
        blocks = [block for stage in model.stages for block in stage]
        parts = [model.stem, *blocks, model.head]
        for (where, piece), part in zip(spec_pieces(spec), parts, strict=True):
            expected = {k: tuple(v.shape) for k, v in part.state_dict().items()}
            got = {k: tuple(v.shape) for k, v in piece.module().state_dict().items()}
            assert got == expected, where
            assert getattr(piece.module(), "has_residual", None) == getattr(part, "has_residual", None), where


def test_fit_calibration_recovers_scale_boundary_cost_and_constant_despite_an_outlier():
    rng = np.random.default_rng(0)
    sums = rng.uniform(5, 40, 25)
    boundaries = rng.uniform(1, 12, 25)
    truth = Calibration(scale=1.15, ms_per_boundary_million=-0.25, offset_ms=0.4)
    measured = [truth.predict(s, b) for s, b in zip(sums, boundaries)]
    measured[3] *= 3  # one network timed while another process ran
    fitted = fit_calibration(list(sums), list(boundaries), measured)
    assert fitted.scale == pytest.approx(1.15, rel=0.01)
    assert fitted.ms_per_boundary_million == pytest.approx(-0.25, abs=0.02)
    assert fitted.offset_ms == pytest.approx(0.4, abs=0.1)


def test_fit_calibration_with_few_networks_is_a_median_ratio():
    fitted = fit_calibration([10.0, 20.0, 40.0], [1.0, 2.0, 3.0], [12.0, 21.0, 45.0])  # ratios 1.2, 1.05, 1.125
    assert (fitted.scale, fitted.ms_per_boundary_million) == (pytest.approx(1.125), 0.0)
    assert fitted.offset_ms == pytest.approx(0.0)  # residuals 0.75, -1.5, 0
    assert fit_calibration([10.0], [1.0], [12.5]) == Calibration(1.0, 0.0, 2.5)
    assert fit_calibration([], [], []) == Calibration()


def test_boundary_elements_count_a_pieces_input_and_output():
    block = Piece(kind="mbconv", size=56, in_ch=24, out_ch=40, kernel=5, stride=2, expansion=6)
    assert block.boundary_elements == 56 * 56 * 24 + 28 * 28 * 40
    assert Piece("head", 7, 320, 1280, kernel=1, classes=1000).boundary_elements == 7 * 7 * 320 + 1000


def _build(space: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "nas", "latency-table", "build", "--space", str(space), "--out", str(out), *extra]


@pytest.mark.slow(reason="a latency-table build killed and resumed in subprocesses")
def test_build_is_resumable_after_kill_and_predicts_the_calibrated_sum(tiny_space, tmp_path, one_thread):
    out = tmp_path / "table.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    slow = _build(tiny_space, out, "--piece-seconds", "0.05", "--network-seconds", "0", "--calibration-networks", "3")
    process = subprocess.Popen(slow, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            if out.exists() and len(json.loads(out.read_text())["entries"]) >= 2:
                break
            time.sleep(0.05)
        assert process.poll() is None, "the build finished before it could be killed: slow it down"
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    partial = read_table(out)  # always a valid file: written atomically
    expected = partial.expected
    assert 2 <= len(partial.entries) < expected and not partial.complete
    with pytest.raises(StorageError, match="unfinished latency table"):
        load_latency_table(out, str(tiny_space), 32)

    finished = subprocess.run(_build(tiny_space, out, *FAST), cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert "calibration on 3 whole networks" in finished.stdout
    table = load_latency_table(out, str(tiny_space), 32)
    assert len(table.entries) == expected and table.complete
    for key, entry in partial.entries.items():
        assert table.entries[key] == entry  # entries measured before the kill are kept, not re-measured
    header = table.header
    assert (header["space"], header["resolution"], header["runtime"], header["threads"]) == ("tiny", 32, "torch", 1)
    assert header["machine"]["cpu"] and header["machine"]["torch"] == torch.__version__
    assert header["allocator"] == steady_allocator()

    space = make_space(str(tiny_space))
    spec = space.decode(space.sample(np.random.default_rng(5)))
    total = sum(table.entries[piece.key]["ms"] for _, piece in spec_pieces(spec))
    cal = table.calibration
    boundary = sum(piece.boundary_elements for _, piece in spec_pieces(spec)) / 1e6
    assert table.predict_ms(spec) == pytest.approx(cal["scale"] * total + cal["ms_per_boundary_million"] * boundary
                                                   + cal["offset_ms"])
    assert len(cal["networks"]) == 3
    after = [n["after_entries"] for n in cal["networks"]]
    assert after == sorted(after) and after[0] < expected  # timed spread over the build, not all at its end

    # Mismatches name what differs.
    with pytest.raises(ConfigError, match="built for space 'tiny', not 'efficientnet'"):
        load_latency_table(out, "efficientnet", 224)
    with pytest.raises(ConfigError, match="built at resolution 32, not 64"):
        load_latency_table(out, str(tiny_space), 64)
    with pytest.raises(ConfigError, match="built for in_chans 3, the network has 1"):
        table.predict_ms(spec.with_(in_chans=1))
    wider = spec.with_(stages=(spec.stages[0].__class__(**{**spec.stages[0].to_dict(), "kernel": 7}),
                               *spec.stages[1:]))
    with pytest.raises(ConfigError, match=r"has no entry for stage 1 block 1 \([a-z_]+_r16_i8_o8_k7_"):
        table.predict_ms(wider)
    changed = tmp_path / "changed.yaml"
    changed.write_text(TINY.replace("kernel: [3, 5]", "kernel: [3, 7]"))
    with pytest.raises(ConfigError, match="another definition of space 'tiny'"):
        load_latency_table(out, str(changed), 32)


def _error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_latency_table_bad_inputs_are_one_line_errors(tiny_space, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    build = ["latency-table", "build", "--space", str(tiny_space)]
    assert "unknown runtime 'tflite'" in _error(capsys, [*build, "--runtime", "tflite", "--out", str(tmp_path / "t.json")])
    assert "--threads" in _error(capsys, [*build, "--threads", "0", "--out", str(tmp_path / "t.json")])
    assert "--piece-seconds" in _error(capsys, [*build, "--piece-seconds", "-1", "--out", str(tmp_path / "t.json")])
    assert "is a file" in _error(capsys, [*build, "--out", str(blocker / "t.json")])
    assert "unknown space" in _error(capsys, ["latency-table", "build", "--space", "nope", "--out", str(tmp_path / "t")])
    foreign = tmp_path / "foreign.json"
    foreign.write_text('{"format": "something else"}')
    assert "not a latency table" in _error(capsys, [*build, "--out", str(foreign)])
    assert foreign.read_text() == '{"format": "something else"}'  # never overwritten
    assert "no such latency table" in _error(capsys, ["latency-table", "predict", "efficientnet-b0",
                                                      "--table", str(tmp_path / "none.json")])
    assert not (tmp_path / "t.json").exists()


def test_resuming_with_another_setting_is_refused_and_keeps_the_file(tiny_space, tmp_path, capsys, one_thread):
    out = tmp_path / "table.json"
    assert main(["latency-table", "build", "--space", str(tiny_space), "--out", str(out), *FAST]) == 0
    before = out.read_text()
    err = _error(capsys, ["latency-table", "build", "--space", str(tiny_space), "--out", str(out), "--threads", "2",
                          *FAST])
    assert f"--out {out}: holds a table built with threads 1, this build has 2" in err
    err = _error(capsys, ["latency-table", "build", "--space", str(tiny_space), "--out", str(out),
                          "--resolution", "64", *FAST])
    assert "resolution 32" in err
    assert out.read_text() == before

    spec_file = tmp_path / "backbone.json"
    spec_file.write_text(make_space(str(tiny_space)).backbone().to_json())
    assert main(["latency-table", "predict", str(spec_file), "--table", str(out)]) == 0
    assert "predicted" in capsys.readouterr().out
    err = _error(capsys, ["latency-table", "predict", "efficientnet-b0", "--table", str(out)])
    assert "built for resolution 32, the network has 224" in err


def test_a_search_predicts_latency_from_the_table_and_times_nothing(tiny_space, tmp_path, capsys, one_thread):
    """Platform-aware search end to end on digits: the reward's latency is the table's prediction."""
    import pandas as pd

    from nas.api import load_spec

    table_path = tmp_path / "digits.json"
    assert main(["latency-table", "build", "--space", str(tiny_space), "--in-chans", "1", "--classes", "10",
                 "--out", str(table_path), *FAST]) == 0
    out = tmp_path / "run"
    assert main(["search", "--space", str(tiny_space), "--objective", "mnas", "--cost", "latency", "--target", "1ms",
                 "--latency-table", str(table_path), "--controller", "random", "--trials", "3", "--epochs", "1",
                 "--out", str(out), "--quiet"]) == 0
    frame = pd.read_csv(out / "trials.csv")
    table = load_latency_table(table_path, str(tiny_space), 32)
    ok = frame[frame.status == "ok"]
    assert len(ok) >= 2 and (ok.latency_ms == ok.predicted_latency_ms).all()
    for row in ok.itertuples():
        spec = load_spec({"spec": open_spec(out, row.trial)})
        assert row.latency_ms == pytest.approx(table.predict_ms(spec))
        assert row.reward == pytest.approx(row.score * (row.latency_ms / 1.0) ** -0.07)  # score: bn_accuracy
    capsys.readouterr()
    wrong = tmp_path / "imagenet.json"  # built for 1000 classes and 3 channels: not this dataset's network
    assert main(["latency-table", "build", "--space", str(tiny_space), "--out", str(wrong), *FAST]) == 0
    capsys.readouterr()
    assert main(["search", "--space", str(tiny_space), "--cost", "latency", "--latency-table", str(wrong),
                 "--out", str(tmp_path / "bad"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --latency-table") and "in_chans" in err and err.count("\n") == 1, err
    assert not (tmp_path / "bad").exists()


def open_spec(run: Path, trial: int) -> dict:
    from nas.store import open_run

    return open_run(run).trial(trial).spec.to_dict()


@pytest.mark.parametrize("damage, message", [
    (lambda t: t.pop("in_chans"), "latency table field 'in_chans' is missing"),
    (lambda t: t["calibration"].update(scale="fast"), "calibration 'scale' is not a finite number, got 'fast'"),
    (lambda t: t["calibration"].update(offset_ms=float("inf")), "calibration 'offset_ms' is not a finite number"),
    (lambda t: next(iter(t["entries"].values())).update(ms=float("inf")), "has no valid 'ms' value"),
    (lambda t: t["calibration"].pop("scale"), "the table has no calibration yet"),
], ids=["missing field", "text calibration", "infinite calibration", "infinite entry", "no calibration"])
def test_a_damaged_table_is_one_line_in_predict_and_in_a_search(tiny_space, tmp_path, capsys, damage, message):
    """A hand-edited or damaged table: one line naming what is wrong, never a traceback or "inf ms"."""
    table = {"format": "scalenas-latency-table", "version": 2, "space": "tiny", "space_fingerprint": "x",
             "resolution": 32, "in_chans": 1, "num_classes": 10, "norm": "batchnorm", "runtime": "torch", "threads": 1,
             "expected_entries": 1, "calibration_networks": 0,
             "entries": {"stem_r32_i1_o8_silu_batchnorm": {"ms": 0.04}},
             "calibration": {"networks": [], "scale": 1.0, "ms_per_boundary_million": 0.0, "offset_ms": 0.0}}
    damage(table)
    path = tmp_path / "damaged.json"
    path.write_text(json.dumps(table))
    before = path.read_text()
    spec = tmp_path / "backbone.json"
    spec.write_text(make_space(str(tiny_space)).backbone().with_(in_chans=1, num_classes=10).to_json())
    err = _error(capsys, ["latency-table", "predict", str(spec), "--table", str(path)])
    assert err.startswith("error: --table") and message in err, err
    if message != "the table has no calibration yet":  # a search reads the table before anything trains
        out = tmp_path / "run"
        err = _error(capsys, ["search", "--space", str(tiny_space), "--cost", "latency", "--target", "1ms",
                              "--latency-table", str(path), "--out", str(out), "--quiet"])
        assert err.startswith("error: --latency-table") and message in err, err
        assert not out.exists()
    assert path.read_text() == before
