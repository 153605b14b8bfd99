"""Benchmark: Optuna's ways of storing one search trial, the choice behind nas/store/trial_rows.py (issue 22).

A trial as the search stores it: reserved RUNNING with 42 categorical parameters (the efficientnet
space) and 7 user attributes, then completed with 5 more attributes and a value; then the study's
trials read back as the search reads them after each trial. For each storage it prints ms per trial
(the median over the last half of the trials), after checking that Optuna reads every trial back.

- Optuna RDB (SQLite), rollback journal: ``RDBStorage`` behind Optuna's cached storage, its public calls.
- Optuna RDB (SQLite), write-ahead log: the same calls, the file in WAL mode, synchronous=NORMAL.
- Optuna journal file: ``JournalStorage(JournalFileBackend)``, the same calls (no heartbeats, no PostgreSQL).
- TrialRows: this toolkit's one-transaction writes on the RDB storage (WAL).

    .venv/bin/python benchmarks/trial_writes.py --trials 300
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nas.store.study import open_storage  # noqa: E402
from nas.store.trial_rows import TrialRows, study_id_of  # noqa: E402
from search_spaces import make_space  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACE = make_space("efficientnet")
DISTRIBUTIONS = {d.name: CategoricalDistribution(list(d.options)) for d in SPACE.decisions}
RESERVE = {"stage": "search", "train_key": "k" * 16, "key": "k" * 16, "arch": "x" * 200,
           "spec": {"stages": [{"block": "mbconv", "repeats": 2}] * 7}, "indices": [0] * 42, "owner": "o" * 12}
COMPLETE = {"status": "ok", "metrics": {"accuracy": 0.9, "loss": 0.3, "history": [0.5] * 5}, "values": {"macs": 1e8},
            "reused_from": None, "reward": 0.9}


def params(rng: np.random.Generator) -> dict[str, Any]:
    return {d.name: d.options[int(rng.integers(len(d.options)))] for d in SPACE.decisions}


def with_public_calls(study: optuna.Study) -> Callable[[dict[str, Any]], None]:
    storage = study._storage

    def one(chosen: dict[str, Any]) -> None:
        template = FrozenTrial(number=-1, state=TrialState.RUNNING, value=None, datetime_start=datetime.now(),
                               datetime_complete=None, params=chosen, distributions=DISTRIBUTIONS,
                               user_attrs=RESERVE, system_attrs={}, intermediate_values={}, trial_id=-1)
        trial_id = storage.create_new_trial(study._study_id, template_trial=template)
        for key, value in COMPLETE.items():
            storage.set_trial_user_attr(trial_id, key, value)
        storage.set_trial_state_values(trial_id, TrialState.COMPLETE, [0.9])
        storage.get_all_trials(study._study_id, deepcopy=False)

    return one


def with_trial_rows(study: optuna.Study, backend: Any) -> Callable[[dict[str, Any]], None]:
    rows = TrialRows(backend, study_id_of(study))
    seen = [-1]

    def one(chosen: dict[str, Any]) -> None:
        trial_id, _ = rows.add_running(chosen, DISTRIBUTIONS, RESERVE)
        rows.finish(trial_id, TrialState.COMPLETE, [0.9], COMPLETE)
        for trial_id, _, _ in rows.states(seen[0]):
            seen[0] = max(seen[0], trial_id)

    return one


def measure(name: str, make: Callable[[Path], tuple[optuna.Study, Callable[[dict[str, Any]], None]]],
            trials: int) -> str:
    folder = Path(tempfile.mkdtemp(prefix="nas-writes-"))
    study, one = make(folder)
    rng = np.random.default_rng(0)
    times = []
    for _ in range(trials):
        chosen = params(rng)
        start = time.perf_counter()
        one(chosen)
        times.append(time.perf_counter() - start)
    reread = optuna.load_study(study_name=study.study_name, storage=study._storage).get_trials(deepcopy=False)
    assert len(reread) == trials and reread[-1].params and reread[-1].user_attrs["reward"] == 0.9
    return f"| {name} | {np.median(times[trials // 2:]) * 1000:.1f} |"


def rdb(folder: Path, wal: bool) -> tuple[optuna.Study, Any]:
    url = f"sqlite:///{folder / 'study.db'}"
    backend = open_storage(url) if wal else optuna.storages.RDBStorage(url)
    return optuna.create_study(storage=backend, study_name="s"), backend


def journal(folder: Path) -> tuple[optuna.Study, Callable[[dict[str, Any]], None]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(folder / "j.log")))
    study = optuna.create_study(storage=storage, study_name="s")
    return study, with_public_calls(study)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=300)
    args = parser.parse_args()
    print(f"{args.trials} trials, 42 parameters each; ms per trial: median of the last {args.trials // 2}\n")
    print("| storage | ms per trial |")
    print("|---|---|")
    print(measure("Optuna RDB, SQLite rollback journal (Optuna's default)",
                  lambda f: (lambda s: (s, with_public_calls(s)))(rdb(f, wal=False)[0]), args.trials), flush=True)
    print(measure("Optuna RDB, SQLite write-ahead log",
                  lambda f: (lambda s: (s, with_public_calls(s)))(rdb(f, wal=True)[0]), args.trials), flush=True)
    print(measure("Optuna journal file", journal, args.trials), flush=True)
    print(measure("TrialRows on the RDB, SQLite write-ahead log",
                  lambda f: (lambda sb: (sb[0], with_trial_rows(*sb)))(rdb(f, wal=True)), args.trials), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
