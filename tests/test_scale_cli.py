"""``nas scale grid`` / ``nas scale apply`` end to end: real proxy training on digits, a real SQLite
study, a SIGKILL and a resume, the bN.json files and the one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from cli_processes import kill_when, nas_cli, nas_here, trials_stored

from nas.api import load_spec
from nas.cli import main
from nas.compound import PAPER, apply_coefficients
from nas.counting import count
from nas.presets import preset
from nas.store import open_run

REPO = Path(__file__).resolve().parents[1]
# A 6-point grid (5 kept + the reference) whose proxies merge into 3 distinct networks to train.
GRID = ["--base", "efficientnet-b0", "--step", "0.1", "--max", "1.2", "--tol", "0.1"]
FAST = ["--epochs", "1", "--proxy-width", "0.25", "--proxy-depth", "0.25", "--proxy-resolution", "12"]


_nas = nas_cli


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory):
    """A grid run killed (SIGKILL) after its first stored point, then resumed to the end."""
    out = tmp_path_factory.mktemp("scale") / "grid"
    args = ["scale", "grid", *GRID, *FAST, "--out", str(out), "--quiet"]
    kill_when(args, trials_stored(out, 1), "the first stored point")
    before = open_run(out).dataframe()
    resumed = nas_here(*args, "--resume")
    again = nas_here(*args, "--resume")
    return out, before, resumed, again


@pytest.mark.slow(reason="a grid run killed after its first point and resumed (three processes)")
def test_grid_run_completes_and_chooses_a_point(killed_and_resumed):
    out, _, resumed, _ = killed_and_resumed
    assert resumed.returncode == 0, resumed.stderr
    for name in ("study.db", "run.json", "trials.csv", "scaling.csv", "scaling.json", "report.html"):
        assert (out / name).exists(), name
    assert "report.html" in resumed.stdout  # the grid's report, rebuilt on --resume
    assert not (out / "b0.json").exists()
    frame = pd.read_csv(out / "scaling.csv")
    assert len(frame) == 6 and (frame.status == "ok").all() and frame.trial.notna().all()
    assert frame.reference.sum() == 1 and frame[frame.reference].iloc[0][["alpha", "beta", "gamma"]].tolist() == \
        [1.2, 1.1, 1.15]
    assert (frame.in_constraint | frame.reference).all()
    assert frame.reused_from.notna().sum() == 3  # 6 points, 3 distinct proxies
    chosen = json.loads((out / "scaling.json").read_text())
    assert chosen["complete"] and chosen["evaluated"] == 6
    row = frame[frame.chosen].iloc[0]
    assert [chosen["alpha"], chosen["beta"], chosen["gamma"]] == [row.alpha, row.beta, row.gamma]
    assert row["rank"] == 1 and chosen["accuracy"] == pytest.approx(frame.accuracy.max())
    # actual ratio column: the counted ratio of the full-size scaled network for this dataset
    base = preset("efficientnet-b0").with_(num_classes=10, in_chans=1)
    assert row.actual == pytest.approx(chosen["macs"] / count(base).macs, rel=1e-12)
    assert load_spec(str(out / "scaling.json")).key() == chosen["key"]
    assert "chosen: alpha" in resumed.stdout and "ref" in resumed.stdout


@pytest.mark.slow(reason="a grid run killed after its first point and resumed")
def test_kill_and_resume_loses_and_retrains_nothing(killed_and_resumed):
    out, before, resumed, again = killed_and_resumed
    after = open_run(out).dataframe()
    assert 1 <= len(before) < 6 and len(after) == 6
    cols = ["trial", "key", "accuracy", "wall_time_s", "reward"]
    pd.testing.assert_frame_equal(after[cols].iloc[: len(before)].reset_index(drop=True),
                                  before[cols].reset_index(drop=True))
    trained_after = after.iloc[len(before):].reused_from.isna().sum()
    assert f"{trained_after} trained" in resumed.stdout
    assert after.reused_from.isna().sum() == 3  # each distinct proxy trained exactly once over both runs
    assert again.returncode == 0 and "0 trained, 0 reused" in again.stdout
    assert len(open_run(out).dataframe()) == 6


@pytest.mark.slow(reason="a grid run killed after its first point and resumed")
def test_nas_results_reads_a_grid_run(killed_and_resumed, capsys):
    out = killed_and_resumed[0]
    assert main(["results", str(out), "--top", "2"]) == 0
    assert "reward" in capsys.readouterr().out


@pytest.mark.slow(reason="scaling.json of a grid run killed and resumed")
def test_apply_from_the_grid_writes_loadable_models(killed_and_resumed, tmp_path, capsys):
    out = killed_and_resumed[0]
    chosen = json.loads((out / "scaling.json").read_text())
    assert main(["scale", "apply", "--from", str(out / "scaling.json"), "--phi", "3", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b1.json", "b2.json", "b3.json"]
    doc = json.loads((tmp_path / "b2.json").read_text())
    assert (doc["alpha"], doc["beta"], doc["gamma"], doc["phi"]) == (chosen["alpha"], chosen["beta"],
                                                                      chosen["gamma"], 2)
    assert load_spec(str(tmp_path / "b2.json")).key() == doc["key"]


def test_apply_paper_coefficients_table_and_files(tmp_path, capsys):
    assert main(["scale", "apply", "--base", "efficientnet-b0", "--alpha", "1.2", "--beta", "1.1", "--gamma", "1.15",
                 "--phi", "7", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    for column in ("phi", "depth", "width", "resolution", "params", "MACs"):
        assert column in text
    expected = apply_coefficients(preset("efficientnet-b0"), PAPER, 7)
    for m in expected[1:]:
        spec = load_spec(str(tmp_path / f"b{m.phi}.json"))
        assert spec.key() == m.spec.key() and count(spec).params == m.params
    assert not (tmp_path / "b0.json").exists()


def test_apply_official_matches_the_presets(tmp_path, capsys):
    assert main(["scale", "apply", "--base", "efficientnet-b0", "--official", "--phi", "7",
                 "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "1.2^phi" in text and "600" in text and "596" in text  # official and paper powers side by side
    for n in range(1, 8):
        spec = load_spec(str(tmp_path / f"b{n}.json"))
        assert count(spec).params == count(preset(f"efficientnet-b{n}")).params


def test_grid_dry_run_prints_predicted_and_actual(capsys, tmp_path):
    assert main(["scale", "grid", *GRID, "--constraint", "actual", "--dry-run", "--out", str(tmp_path / "x")]) == 0
    text = capsys.readouterr().out
    assert "predicted" in text and "actual" in text and "ref out" in text
    assert not (tmp_path / "x").exists()


BAD = [
    (["apply", "--base", "efficientnet-b0", "--alpha", "0.9", "--beta", "1.1", "--gamma", "1.1"], "alpha must be >= 1"),
    (["apply", "--base", "efficientnet-b0", "--alpha", "1.2", "--beta", "0.8", "--gamma", "1.1"], "beta must be >= 1"),
    (["apply", "--base", "efficientnet-b0", "--alpha", "1.2", "--beta", "1.1", "--gamma", "0.5"], "gamma must be >= 1"),
    (["apply", "--base", "efficientnet-b0", "--official", "--phi", "-1"], "--phi must be >= 0"),
    (["apply", "--base", "no-such-net", "--official"], "not a preset"),
    (["apply", "--base", "missing/b0.json", "--official"], "no such spec file"),
    (["apply", "--from", "missing/scaling.json"], "--from"),
    (["apply", "--base", "efficientnet-b0", "--alpha", "1.2"], "needs --beta and --gamma"),
    (["grid", "--base", "efficientnet-b0", "--phi", "-1"], "--phi must be >= 0"),
    (["grid", "--base", "efficientnet-b0", "--step", "0.1", "--max", "1.3", "--tol", "0.001"], "leaves the grid empty"),
    (["grid", "--base", "no-such-net"], "not a preset"),
    (["grid", "--base", "missing/b0.json"], "no such spec file"),
    (["grid", "--base", "efficientnet-b0", "--constraint", "exact"], "unknown constraint"),
    (["grid", "--base", "efficientnet-b0", "--workers", "2"], "applies to --runner ray only"),
    (["grid", "--resume"], "--resume needs --out"),
    (["grid", "--base", "efficientnet-b0", "--objective", "speed"], "unknown objective 'speed'; valid: accuracy"),
]


@pytest.mark.parametrize("flags, message", BAD, ids=[" ".join(f) for f, _ in BAD])
def test_bad_inputs_give_one_line_and_touch_nothing(tmp_path, capsys, flags, message):
    out = tmp_path / "run"
    extra = [] if "--resume" in flags or flags[0] == "apply" else ["--out", str(out)]
    if flags[0] == "apply":
        extra = ["--out", str(out)]
    code = main(["scale", *flags, *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert not out.exists()


def test_objective_reward_uses_the_full_size_cost(tmp_path):
    from nas.jobs.scale_grid import ScaleGrid, ScaleGridConfig
    from nas.metrics import Metrics

    config = ScaleGridConfig(base=preset("efficientnet-b0").to_dict(), step=0.1, max=1.2, objective="mnas",
                             target="800M")
    from nas.engine import Engine

    grid = ScaleGrid(config, tmp_path / "run")
    point = grid.points[0]
    engine = Engine(grid.store, grid.parts.objective, grid.parts.runner, grid.parts.data_ref, "cpu")
    try:
        values = engine.values(grid.stage().plan(grid.space.choices_of(point)), Metrics(accuracy=0.5))
    finally:
        engine.close()
    assert values["macs"] == point.macs and values["actual"] == point.actual
    assert grid.parts.objective.reward(values) == pytest.approx(0.5 * (point.macs / 800e6) ** -0.07)
    assert json.loads((tmp_path / "run" / "run.json").read_text())["kind"] == "scale-grid"


def test_resuming_a_folder_without_a_run(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["scale", "grid", "--out", str(tmp_path / "empty"), "--resume", "--quiet"]) == 2
    assert "no study here" in capsys.readouterr().err


def test_cli_subprocess_error_has_no_traceback():
    proc = _nas("scale", "apply", "--base", "efficientnet-b0", "--alpha", "0.5", "--beta", "1", "--gamma", "1")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
