"""`nas pareto` on real run folders (Optuna study in a SQLite file, written through nas.store)."""

from __future__ import annotations

import json
from collections import namedtuple
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nas.cli import main as nas_main
from nas.errors import NasError
from nas.metrics import Metrics
from nas.pareto import analyze
from nas.spec import ArchSpec, StageSpec
from nas.store import RunStore, TrialRecord, open_run

# The store only reads .name and .options of a decision.
Decision = namedtuple("Decision", "name options")
DECISIONS = (Decision("kernel", (3, 5, 7)), Decision("width", (16, 24, 32, 40, 48, 64, 80, 96)))


def spec_for(kernel: int, width: int) -> ArchSpec:
    return ArchSpec(stem_channels=16, head_channels=128, resolution=64, num_classes=10, in_chans=1, stages=(
        StageSpec("fused_mbconv", 1, 3, 1, 1, 16),
        StageSpec("mbconv", 2, kernel, 2, 4, width, se_ratio=0.25),
    ))


def main(argv: list[str]) -> int:
    return nas_main(["pareto", *argv])


def make_run(root: Path, name: str, rows: list[dict], seed: int = 0) -> Path:
    """A run folder whose trials carry the given metrics (status, accuracy, costs, reward)."""
    run = root / name
    store = RunStore.create(run, {"space": "test", "seed": seed})
    first_of_key: dict[str, int] = {}
    for row in rows:
        spec = spec_for(row["kernel"], row["width"])
        status = row.get("status", "ok")
        accuracy = row.get("accuracy")
        metrics = Metrics(status=status, accuracy=accuracy, params=row["params"], macs=row["macs"] // 16,
                          proxy_macs=row["macs"] // 16, latency_ms=row.get("latency_ms"), epochs=1,
                          error="" if status == "ok" else f"{status} on purpose")
        values = {"macs": float(row["macs"]), "params": float(row["params"])}
        if accuracy is not None:
            values["accuracy"] = accuracy
        if row.get("latency_ms") is not None:
            values["latency_ms"] = row["latency_ms"]
        reward = accuracy * (row["macs"] / 400e6) ** -0.07 if status == "ok" else None
        key = spec.key()
        record = TrialRecord(choices={"kernel": row["kernel"], "width": row["width"]},
                             indices=(DECISIONS[0].options.index(row["kernel"]),
                                      DECISIONS[1].options.index(row["width"])),
                             metrics=metrics, spec=spec, arch=f"fk3_e1_c16 k{row['kernel']}_e4_c{row['width']}_se0.25",
                             key=key, reward=reward, values=values, reused_from=first_of_key.get(key))
        record = store.record(record, DECISIONS)
        first_of_key.setdefault(key, record.number)
    store.write_trials_csv()
    store.close()  # let go of the folder's lock: the run is written
    return run


def random_rows(seed: int, n: int, failed: int = 0, pruned: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        kernel = int(rng.choice([3, 5, 7]))
        width = int(rng.choice(DECISIONS[1].options))
        macs = int(width ** 2 * kernel * 4e4)
        accuracy = float(np.clip(0.55 + 0.08 * np.log(macs / 1e7) + rng.normal(0, 0.03), 0.05, 0.99))
        rows.append(dict(kernel=kernel, width=width, macs=macs, params=width * 5000 + kernel * 100,
                         accuracy=round(accuracy, 4), latency_ms=round(macs / 2e7, 3)))
    for i in range(failed):
        rows.insert(2 * i + 1, dict(kernel=3, width=96, macs=int(96 ** 2 * 3 * 4e4), params=1, status="failed"))
    for i in range(pruned):
        rows.insert(3 * i + 2, dict(kernel=7, width=16, macs=int(16 ** 2 * 7 * 4e4), params=1, accuracy=0.2,
                                    status="pruned"))
    return rows


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {
        "a": make_run(root, "rl", random_rows(1, 30, failed=3, pruned=2)),
        "b": make_run(root, "random", random_rows(2, 25)),
    }


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps at 80 columns when output is not a terminal


def test_frontier_table_counts_and_hypervolume(runs, capsys):
    assert main([str(runs["a"])]) == 0
    out = capsys.readouterr().out
    assert "frontier over accuracy:max,macs:min" in out
    assert "3 failed, 2 pruned excluded" in out
    assert "counted once" in out  # 30 draws from 24 architectures repeat some
    assert "hypervolume:" in out and "reference point accuracy=0, macs=" in out
    assert "knee: trial" in out and "B0 (best reward): trial" in out
    for column in ("trial", "accuracy", "MACs", "params", "latency", "reward", "block strings"):
        assert column in out


def test_csv_has_trials_columns_and_exactly_the_frontier(runs, tmp_path):
    csv = tmp_path / "front.csv"
    assert main([str(runs["a"]), "--csv", str(csv)]) == 0
    front = pd.read_csv(csv)
    trials = pd.read_csv(runs["a"] / "trials.csv")
    assert list(front.columns) == list(trials.columns)
    # Independent check from trials.csv: completed, first of each key, brute-force non-dominated.
    ok = trials[trials["status"] == "ok"].drop_duplicates("key", keep="first")
    pts = np.c_[-ok["accuracy"].to_numpy(), ok["macs"].to_numpy()]
    keep = [not any(np.all(q <= p) and np.any(q < p) for q in pts) for p in pts]
    assert sorted(front["trial"]) == sorted(ok["trial"][keep])
    assert front["reused_from"].isna().all()


def test_several_runs_share_plots_and_reference(runs, tmp_path, capsys):
    png, html, csv = tmp_path / "front.png", tmp_path / "front.html", tmp_path / "both.csv"
    code = main([str(runs["a"]), str(runs["b"]), "--png", str(png), "--html", str(html), "--csv", str(csv)])
    assert code == 0
    out = capsys.readouterr().out
    assert out.count("hypervolume:") == 2
    refs = {line.split("reference point")[1].split(")")[0] for line in out.splitlines()
            if line.startswith("hypervolume:")}
    assert len(refs) == 1  # one shared reference, so the two numbers compare
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    page = html.read_text()
    assert "plotly" in page and "rl: frontier" in page and "random: frontier" in page
    assert "k5_e4_c" in page or "k3_e4_c" in page or "k7_e4_c" in page  # block strings in the hover text
    assert '"type":"log"' in page.replace(" ", "")
    both = pd.read_csv(csv)
    assert set(both["run"]) == {"rl", "random"}


def test_pick_and_knee_write_a_loadable_full_size_spec(runs, tmp_path, capsys):
    store = open_run(runs["a"])
    out = tmp_path / "knee.json"
    assert main([str(runs["a"]), "--knee", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert set(doc) >= {"spec", "metrics", "trial"}
    spec = ArchSpec.from_dict(doc["spec"])
    assert spec == store.trial(doc["trial"]).spec
    assert doc["pareto"]["picked_by"] == "knee" and doc["pareto"]["front"] == 0
    try:
        from nas.api import load_spec
    except ImportError:
        load_spec = None
    if load_spec is not None:
        assert load_spec(str(out)).key() == spec.key()
    result = analyze(store.dataframe())
    dominated = int(result.candidates[result.candidates["front"] > 0]["trial"].iloc[0])
    pick = tmp_path / "pick.json"
    assert main([str(runs["a"]), "--pick", str(dominated), "--out", str(pick)]) == 0
    doc = json.loads(pick.read_text())
    assert doc["trial"] == dominated and doc["pareto"]["front"] > 0
    capsys.readouterr()


def test_one_candidate_and_other_objectives(tmp_path, capsys):
    run = make_run(tmp_path, "single", [dict(kernel=3, width=16, macs=10_000_000, params=80_000, accuracy=0.5,
                                             latency_ms=1.5)])
    assert main([str(run), "--objectives", "accuracy:max,latency_ms:min,params:min", "--png",
                 str(tmp_path / "one.png")]) == 0
    out = capsys.readouterr().out
    assert "(1 of 1 distinct candidates)" in out and "knee: trial 0" in out


def bad(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_bad_inputs_are_one_line_errors(runs, tmp_path, capsys):
    err = bad([str(runs["a"]), "--objectives", "accuracy:max,flops:min"], capsys)
    assert "'flops'" in err and "macs" in err and "latency_ms" in err and "param_width" in err
    empty = tmp_path / "not-a-run"
    empty.mkdir()
    assert "no study here" in bad([str(empty)], capsys)
    assert "no such run folder" in bad([str(tmp_path / "missing")], capsys)
    failed = make_run(tmp_path, "all-failed", [dict(kernel=3, width=16, macs=1, params=1, status="failed"),
                                               dict(kernel=5, width=16, macs=1, params=1, status="pruned",
                                                    accuracy=0.1)])
    assert "no completed trial (1 failed, 1 pruned)" in bad([str(failed)], capsys)
    assert "direction must be max or min" in bad([str(runs["a"]), "--objectives", "accuracy:up"], capsys)
    assert "--out" in bad([str(runs["a"]), "--knee"], capsys)
    assert "exactly one RUN" in bad([str(runs["a"]), str(runs["b"]), "--knee", "--out", "x.json"], capsys)
    assert "no trial 999" in bad([str(runs["a"]), "--pick", "999", "--out", str(tmp_path / "p.json")], capsys)
    assert "pick a completed trial" in bad([str(runs["a"]), "--pick", "1", "--out", str(tmp_path / "p.json")],
                                           capsys)
    assert "--reference" in bad([str(runs["a"]), "--reference", "0"], capsys)


def test_plot_axes_and_staircase_directions():
    from nas.pareto_plots import plot_axes, staircase

    frame = pd.DataFrame({"trial": [0, 1, 2, 3], "status": "ok", "accuracy": [0.6, 0.8, 0.7, 0.9],
                          "macs": [1e8, 3e8, 4e8, 9e8], "params": [1e6, 2e6, 3e6, 2.5e6], "key": list("abcd"),
                          "reward": [0.5, 0.6, 0.55, 0.7]})
    result = analyze(frame, "macs:min,accuracy:max")
    x, y = plot_axes([result])
    assert (x.name, y.name) == ("macs", "accuracy")  # cost across, accuracy up, whatever the order given
    fx, fy, where = staircase(result, x, y)
    assert fx.tolist() == [1e8, 3e8, 9e8] and fy.tolist() == [0.6, 0.8, 0.9] and where == "post"
    # Two maximized objectives: the second goes across, and a maximized x steps on the left ("pre").
    result = analyze(frame, "accuracy:max,params:max")
    x, y = plot_axes([result])
    assert (x.name, y.name) == ("params", "accuracy")
    fx, fy, where = staircase(result, x, y)
    assert fx.tolist() == [2.5e6, 3e6] and fy.tolist() == [0.9, 0.7] and where == "pre"
    with pytest.raises(NasError, match="at least two objectives"):
        plot_axes([analyze(frame, "accuracy:max")])


def test_normalized_hypervolume_of_a_single_best_candidate_is_one():
    from nas.pareto import ideal_point, normalized_hypervolume

    frame = pd.DataFrame({"trial": [0, 1], "status": "ok", "accuracy": [0.9, 0.5], "macs": [1e8, 2e8],
                          "key": ["a", "b"]})
    result = analyze(frame)
    ref = [0.0, 3e8]
    assert normalized_hypervolume(result.hypervolume(ref), ideal_point([result]), ref) == pytest.approx(1.0)
