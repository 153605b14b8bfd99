"""A search stored in a real PostgreSQL server (tests/postgres.py), read back by ``nas results``."""

from __future__ import annotations

import optuna
import pandas as pd
import pytest

from nas.cli import main

TINY = ["--controller", "random", "--epochs", "1", "--proxy-width", "0.25", "--proxy-depth", "0.25",
        "--proxy-resolution", "16", "--quiet", "--seed", "1"]


def test_search_stored_in_postgresql_is_read_back(postgres_server, postgres_url, tmp_path, capsys, one_thread):
    out = tmp_path / "pg"
    assert main(["search", "--storage", postgres_url, "--trials", "3", "--out", str(out), *TINY]) == 0
    assert not (out / "study.db").exists()  # the study lives in the server, not in the run folder
    # read back independently of the toolkit: the server holds one study with 3 finished trials
    summaries = optuna.get_all_study_summaries(storage=postgres_url)
    assert len(summaries) == 1 and summaries[0].n_trials == 3
    study = optuna.load_study(study_name=summaries[0].study_name, storage=postgres_url)
    assert [t.number for t in study.trials] == [0, 1, 2]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert postgres_server.password not in (out / "run.json").read_text()  # run folders never keep passwords
    capsys.readouterr()
    assert main(["results", str(out)]) == 2  # so reading the run back needs the password again
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "PGPASSWORD" in err and postgres_server.password not in err
    csv = tmp_path / "all.csv"
    assert main(["results", str(out), "--storage", postgres_url, "--csv", str(csv)]) == 0
    printed = capsys.readouterr().out
    assert "trials: 3 ok" in printed
    frame = pd.read_csv(csv)
    assert list(frame.trial) == [0, 1, 2]
    assert frame.reward.tolist() == pytest.approx([t.value for t in study.trials])


def test_wrong_postgresql_password_is_one_line_and_exit_2(postgres_server, postgres_url, tmp_path, capsys):
    wrong = postgres_url.replace(f":{postgres_server.password}@", ":not-the-password@")
    code = main(["search", "--storage", wrong, "--trials", "3", "--out", str(tmp_path / "r"), *TINY])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert 'password authentication failed for user "nas"' in err and "not-the-password" not in err
    assert optuna.get_all_study_summaries(storage=postgres_url) == []  # nothing was created
