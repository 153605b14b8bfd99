"""Benchmark: the search's own bookkeeping per trial, with a runner that trains nothing.

A search of the ``efficientnet`` space (42 decisions) with the random controller, on a runner that
answers every job at once with made-up metrics (:class:`InstantRunner`: it lives here and in the tests,
not in the library), so all that is timed is the engine, the controller and the store: reserving a
trial, checking what is trained or in flight, completing it, telling the controller, writing the
outputs. For each size and storage it prints the ms per trial of each quarter of the run, the median,
the driver's CPU ms per trial and its last quarter over its first (user + system: what other
processes on the machine do not change),
the driver's peak memory (``ru_maxrss``) and the size of the store. With ``--ray N`` it also runs N
instant trials on the Ray runner with 2 workers (a local Ray whose workers answer at once) and prints
the dispatch rate.

    .venv/bin/python benchmarks/bookkeeping.py --trials 1000,5000,10000 --storage sqlite
    .venv/bin/python benchmarks/bookkeeping.py --trials 1000 --storage postgresql   # a throwaway server
    .venv/bin/python benchmarks/bookkeeping.py --trials 0 --ray 500
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from instant_runner import InstantRunner  # noqa: E402
from nas.jobs.search import SearchConfig, run_search  # noqa: E402
from runners import RUNNERS  # noqa: E402

PG_BIN = Path("/usr/lib/postgresql")


def timed_search(trials: int, out: Path, storage: str | None) -> tuple[list[float], list[float], float]:
    """The driver's time per trial (seconds between consecutive results), its CPU seconds per trial
    (user + system, between consecutive results) and the peak RSS in MB."""
    stamps: list[float] = []
    cpu: list[float] = []

    def on_trial(*_: object) -> None:
        stamps.append(time.perf_counter())
        cpu.append(time.process_time())

    start = time.perf_counter()
    run_search(SearchConfig(runner="instant", controller="random", trials=trials, seed=0), out, storage=storage,
               on_trial=on_trial)
    gaps = np.diff([start, *stamps])
    return list(gaps), list(np.diff(cpu)), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ray_dispatch(trials: int, out: Path) -> str:
    """Trials per second through the Ray runner with 2 workers whose jobs answer at once."""
    import runners.ray_cluster as ray_cluster
    from runners.ray_support import TrainWorker, WorkerResult

    class InstantWorker(TrainWorker):
        def train(self, job, coordinator=None):  # type: ignore[no-untyped-def]
            now = time.time()
            metrics = InstantRunner(workers=1)
            metrics.submit(job)
            return WorkerResult(metrics.wait()[0][1], now, time.time(), {})

    ray_cluster.TrainWorker = InstantWorker  # this process only: the library's runner, the benchmark's worker
    stamps: list[float] = []
    run_search(SearchConfig(runner="ray", runner_options={"workers": 2}, controller="random", trials=trials,
                            seed=0), out, on_trial=lambda *_: stamps.append(time.perf_counter()))
    seconds = stamps[-1] - stamps[0]
    rate = (len(stamps) - 1) / seconds
    return (f"Ray runner, 2 workers, instant jobs, {trials} trials (SQLite): {rate:.1f} trials/s "
            f"({1000 / rate:.1f} ms per trial, first result to last; Ray's start not counted)")


@contextlib.contextmanager
def postgresql() -> Iterator[str]:
    """A throwaway PostgreSQL server on 127.0.0.2 (Debian's binaries; initdb refuses root, so as nobody)."""
    versions = sorted(PG_BIN.glob("*/bin/initdb"))
    if not versions:
        raise SystemExit("error: no PostgreSQL binaries under /usr/lib/postgresql")
    bin_dir = versions[-1].parent
    folder = Path(tempfile.mkdtemp(prefix="nas-bk-pg-"))
    os.chmod(folder, 0o777)
    user = ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []
    data = folder / "data"
    subprocess.run([*user, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "nas"], check=True,
                   capture_output=True)
    port = "54329"
    subprocess.run([*user, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w", "-o",
                    f"-h 127.0.0.2 -p {port} -k {folder}", "start"], check=True, capture_output=True)
    try:
        subprocess.run([*user, str(bin_dir / "createdb"), "-h", "127.0.0.2", "-p", port, "-U", "nas", "bench"],
                       check=True, capture_output=True)
        yield f"postgresql+psycopg://nas@127.0.0.2:{port}/bench"
    finally:
        subprocess.run([*user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def store_size(out: Path, url: str | None) -> str:
    if url is None:
        return f"{(out / 'study.db').stat().st_size / 1e6:.1f} MB"
    import sqlalchemy

    with sqlalchemy.create_engine(url).connect() as conn:
        size = conn.execute(sqlalchemy.text("select pg_database_size(current_database())")).scalar()
    return f"{size / 1e6:.1f} MB"


def report(trials: int, storage: str, gaps: list[float], cpu: list[float], peak_mb: float, size: str) -> str:
    quarters = np.array_split(np.asarray(gaps) * 1000, 4)
    cells = " | ".join(f"{np.median(q):.1f}" for q in quarters)
    cpu_quarters = np.array_split(np.asarray(cpu) * 1000, 4)
    return (f"| {trials} | {storage} | {cells} | {np.median(gaps) * 1000:.1f} | "
            f"{np.median(quarters[-1]) / np.median(quarters[0]):.2f} | {np.mean(cpu) * 1000:.1f} | "
            f"{np.mean(cpu_quarters[-1]) / np.mean(cpu_quarters[0]):.2f} | {peak_mb:.0f} | {size} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", default="1000,5000,10000")
    parser.add_argument("--storage", default="sqlite", choices=("sqlite", "postgresql", "both"))
    parser.add_argument("--ray", type=int, default=0, help="also this many instant trials on the Ray runner")
    args = parser.parse_args()
    RUNNERS.register("instant", InstantRunner)
    sizes = [int(n) for n in args.trials.split(",") if int(n) > 0]
    print(f"Bookkeeping per trial ({dt.date.today().isoformat()}, {platform.processor() or platform.machine()}, "
          f"`{' '.join(sys.argv)}`): efficientnet space (42 decisions), random controller, a runner that answers "
          f"at once; ms between consecutive results, median of each quarter of the run.\n")
    print("| trials | storage | Q1 ms | Q2 ms | Q3 ms | Q4 ms | median ms | Q4 / Q1 | CPU ms | CPU Q4 / Q1 | "
          "peak RSS MB | store |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for storage in (("sqlite", "postgresql") if args.storage == "both" else (args.storage,)):
        for n in sizes:
            folder = Path(tempfile.mkdtemp(prefix="nas-bk-"))
            try:
                if storage == "sqlite":
                    gaps, cpu, peak = timed_search(n, folder / "run", None)
                    size = store_size(folder / "run", None)
                else:
                    with postgresql() as url:
                        gaps, cpu, peak = timed_search(n, folder / "run", url)
                        size = store_size(folder / "run", url)
                print(report(n, storage, gaps, cpu, peak, size), flush=True)
            finally:
                shutil.rmtree(folder, ignore_errors=True)
    if args.ray:
        folder = Path(tempfile.mkdtemp(prefix="nas-bk-ray-"))
        try:
            print("\n" + ray_dispatch(args.ray, folder / "run"), flush=True)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
