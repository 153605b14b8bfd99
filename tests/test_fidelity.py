"""`nas fidelity` on a real digits search: the stage, the statistics, the plot and the bad inputs."""

from __future__ import annotations

import json

import pytest
from scipy.stats import kendalltau, spearmanr

from nas.cli import main
from nas.jobs.fidelity import spread
from nas.jobs.search import SearchConfig, run_search
from nas.store import open_run

FAST = dict(epochs=2, proxy_width=0.25, proxy_depth=0.25, proxy_resolution=16)


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    out = tmp_path_factory.mktemp("fidelity") / "run"
    run_search(SearchConfig(controller="random", trials=5, seed=11, **FAST), out)
    return out


def test_spread_covers_the_range():
    assert spread(10, 3) == [0, 4, 9] or spread(10, 3) == [0, 5, 9]
    assert spread(5, 5) == [0, 1, 2, 3, 4]


@pytest.mark.slow(reason="nas fidelity end to end: the top candidates trained again at a longer budget, its "
                         "statistics checked against scipy, a second call training nothing")
def test_fidelity_trains_a_stage_and_reports_scipy_statistics(searched, capsys):
    assert main(["fidelity", str(searched), "--top", "4", "--epochs", "3", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "Kendall tau" in text and (searched / "fidelity.png").stat().st_size > 10_000
    doc = json.loads((searched / "fidelity.json").read_text())
    assert doc["complete"] and len(doc["candidates"]) == 4
    frame = open_run(searched).dataframe()
    assert (frame.stage == "fidelity").sum() == 4 and (frame[frame.stage == "fidelity"].epochs == 3).all()
    pairs = doc["candidates"]
    for what in ("accuracy", "reward"):
        x = [p[f"proxy_{what}"] for p in pairs]
        y = [p[f"fidelity_{what}"] for p in pairs]
        assert abs(doc["agreement"][what]["kendall_tau"]["value"] - kendalltau(x, y)[0]) < 1e-12
        assert abs(doc["agreement"][what]["spearman_rho"]["value"] - spearmanr(x, y)[0]) < 1e-12
    # spread over the range of rewards: the best and the worst completed candidate are both in
    ranks = sorted(p["search_rank"] for p in pairs)
    distinct = len({r.key for r in open_run(searched).records("search") if r.metrics.ok})
    assert ranks[0] == 1 and ranks[-1] == distinct
    # a second call with the same settings has nothing left to train
    assert main(["fidelity", str(searched), "--top", "4", "--epochs", "3", "--quiet"]) == 0
    assert "0 trained" in capsys.readouterr().out


@pytest.mark.parametrize("flags, message", [
    (["--top", "0"], "--top must be at least 3 candidates"),
    (["--top", "2"], "--top must be at least 3 candidates (a rank agreement needs 3)"),
    (["--top", "99"], "--top 99 is more than the"),
])
def test_bad_top_is_one_line(searched, capsys, flags, message):
    before = (searched / "study.db").read_bytes()
    assert main(["fidelity", str(searched), *flags, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert (searched / "study.db").read_bytes() == before


def test_a_missing_run_or_too_few_candidates(tmp_path, capsys):
    assert main(["fidelity", str(tmp_path / "nothing"), "--top", "3"]) == 2
    assert "no such run folder" in capsys.readouterr().err
    small = tmp_path / "small"
    run_search(SearchConfig(controller="random", trials=2, seed=1, **FAST), small)
    assert main(["fidelity", str(small), "--top", "3", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "needs at least 3 completed candidates" in err and err.count("\n") == 1


def test_a_read_only_run_folder_is_refused_before_training(searched, tmp_path, capsys):
    """A read-only mount (what stops root too) or a folder without write permission: one line, nothing trained."""
    import os
    import shutil
    import subprocess

    copy = tmp_path / "copy"
    shutil.copytree(searched, copy)
    before = {p.name: p.read_bytes() for p in copy.iterdir() if p.is_file()}
    view = tmp_path / "view"
    view.mkdir()
    if os.geteuid() == 0:
        if subprocess.run(["mount", "--bind", "-o", "ro", str(copy), str(view)], capture_output=True).returncode:
            pytest.skip("running as root where a read-only bind mount is not allowed")
    else:
        view.rmdir()
        view = copy
        view.chmod(0o555)
    try:
        assert main(["fidelity", str(view), "--top", "3", "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {view}: the run folder is not writable") and err.count("\n") == 1, err
    finally:
        if view != copy:
            subprocess.run(["umount", str(view)], check=True)
        copy.chmod(0o755)
    assert {p.name: p.read_bytes() for p in copy.iterdir() if p.is_file()} == before
