"""``nas train --seeds N``: one architecture trained under N seeds, and the summary over them.

One training says little: two trainings of one network differ by a point or more on small data.
:func:`train_seeds` trains seed ``base + K`` into ``out/seed-K`` for K = 0..N-1, each with
:func:`~nas.training.run.train_model` (so each is resumable after a kill and bit-identical on the
CPU), then writes ``out/summary.json``: the mean accuracy with its 95% t-interval over the seeds
(:func:`nas.comparison.summarize`), the cost and each seed's numbers.

Where the seeds train: one after another in this process, or, given a ``runner`` (a search's runner,
e.g. the Ray runner built by :func:`nas.jobs.seeds.seeds_runner`), each seed as a :class:`SeedJob` on
a worker, as many at once as the runner has workers (five seeds on five GPUs side by side). A
worker writes its seed's folder itself, so ``out`` must be the same folder on every node: the driver
writes a marker file there (:data:`DRIVER_FILE`) and a worker that cannot read it fails its seed
with one line naming its host, before it writes anything.

Resuming (``resume``) continues every seed folder holding a ``last.pt`` (a finished one is read, not
retrained) and starts the seeds not begun; it may add seeds (a larger N), never drop them. A seed
whose worker died is started again by the runner from its ``last.pt`` (the runner's ``retries``).
"""

from __future__ import annotations

import json
import secrets
import socket
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, ClassVar

from rich.console import Console

from nas.comparison import summarize
from nas.errors import ConfigError, NasError, StorageError, TrainingError
from nas.fileio import atomic_write_json
from nas.folder_lock import FolderLock
from nas.metrics import Metrics
from nas.training.config import TrainConfig
from nas.training.outputs import MODEL_FILE, STATE_FILE, RunFolder, stored_config
from nas.training.run import train_model
from nas.training.seed_progress import EpochWatcher
from nas.training.trained import SUMMARY_FILE, TrainedModel, read_trained, seed_folder, seed_folders

DRIVER_FILE = ".seeds-driver.json"  # written by the process that hands the seeds to a runner, while they train


def check_seeds(seeds: Any) -> int:
    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
        raise ConfigError(f"seeds must be an integer >= 1, got {seeds!r}", field="seeds")
    return seeds


def with_seed(config: TrainConfig, seed: int) -> TrainConfig:
    return replace(config, budget=replace(config.budget, seed=seed))


def stored_seeds_config(out: str | Path, seeds: int) -> TrainConfig | None:
    """The configuration the seed folders of ``out`` were started with, its seed the base seed
    (``seed-K`` trains base + K); None when no ``seed-K/last.pt`` exists."""
    for k in range(seeds):
        config = stored_config(seed_folder(out, k))
        if config is not None:
            return with_seed(config, config.budget.seed - k)
    return None


def _check_folders(out: Path, seeds: int, resume: bool) -> list[RunFolder]:
    """The seed folders, after every check that must pass before anything trains."""
    if out.exists() and not out.is_dir():
        raise StorageError(f"{out}: exists and is not a folder", field="out")
    held = [name for name in (MODEL_FILE, STATE_FILE) if (out / name).exists()]
    if held:
        raise StorageError(f"{out} holds a single training ({', '.join(held)}), not seed folders; choose another "
                           "output folder", field="out")
    folders = [RunFolder(seed_folder(out, k)) for k in range(seeds)]
    if not resume:
        for folder in folders:
            folder.check(resume=False)
        return folders
    if not any(folder.file(STATE_FILE).is_file() for folder in folders):
        raise StorageError(f"{out}: nothing to resume (no seed-K/last.pt for K < {seeds})", field="resume")
    started = [p for p in seed_folders(out) if (p / STATE_FILE).is_file()]
    if len(started) > seeds or any(p not in [f.path for f in folders] for p in started):
        raise StorageError(f"{out} holds {len(started)} started seeds but seeds is {seeds}; resume with all of "
                           "them (a larger number adds seeds)", field="seeds")
    return folders


@dataclass(frozen=True)
class SeedJob:
    """One seed of ``nas train --seeds`` as a runner's job (:class:`runners.base.Job`): train ``spec``
    under ``config`` (its seed set) into ``folder``, continuing the ``last.pt`` found there.

    ``driver_token`` is the token the driver wrote into ``out/DRIVER_FILE``: a worker that does not
    read the same token is on a node where ``out`` is another folder (or none), and fails the seed
    before it writes anything. ``trial`` is K of ``seed-K`` (the runner's logs and retries key on it).
    """

    trial: int
    spec: Any
    config: TrainConfig
    folder: str
    device: str = "auto"
    driver_token: str | None = None
    progress: bool = False

    needs_data: ClassVar[bool] = False  # each seed loads its data itself: the minival split follows the seed

    @property
    def budget(self) -> Any:
        return self.config.budget

    def execute(self, console: Console | None = None) -> Metrics:
        """Train (or continue, or read a finished) seed here; raises NasError subclasses for bad input."""
        self.check_shared()
        resume = (Path(self.folder) / STATE_FILE).is_file()  # the driver checked the folders: ours, or new
        result = train_model(self.spec, self.config, self.folder, resume=resume, device=self.device,
                             progress=self.progress, console=console)
        return result.metrics

    def run(self, on_epoch: Callable[[int, float], Any] | None = None, data: Any = None) -> Metrics:
        """:meth:`execute` on a worker: a failure comes back as failed metrics with its one-line reason."""
        start = time.perf_counter()
        try:
            return self.execute()
        except NasError as exc:
            error = str(exc)
        except Exception as exc:  # noqa: BLE001 - the driver reports it; the other seeds go on
            error = f"{type(exc).__name__}: {exc}"
        return Metrics(status="failed", error=error, wall_time_s=time.perf_counter() - start)

    def check_shared(self) -> None:
        if self.driver_token is None:
            return
        out = Path(self.folder).parent
        try:
            token = json.loads((out / DRIVER_FILE).read_text()).get("token")
        except (OSError, ValueError, AttributeError):
            token = None
        if token != self.driver_token:
            raise StorageError(f"host {socket.gethostname()} does not see the folder the driver writes ({out}): "
                               "with a runner, out must be one folder every node mounts at that path", field="out")


def train_seeds(spec: Any, config: TrainConfig, out: str | Path, seeds: int, *, resume: bool = False,
                device: str = "auto", progress: bool = False, console: Console | None = None,
                runner: Callable[[], Any] | None = None) -> dict[str, Any]:
    """Train ``seeds`` seeds (``config``'s seed + K into ``out/seed-K``) and return the summary that
    ``out/summary.json`` now holds. ``runner``: a function building the runner the seeds train on (all
    at once, as its workers allow); None trains them one after another here. Raises NasError
    subclasses for bad input before training, and :class:`~nas.errors.TrainingError` naming each
    seed that failed on a worker (the others are kept)."""
    check_seeds(seeds)
    out = Path(out).expanduser()
    folders = _check_folders(out, seeds, resume)
    console = console or Console(stderr=True)
    lock = FolderLock.take(out)  # one driver per seeds folder (each seed's folder has its own lock too)
    try:
        jobs = [SeedJob(k, spec, with_seed(config, config.budget.seed + k), str(folder.path), device)
                for k, folder in enumerate(folders)]
        if runner is None:
            _train_here(jobs, resume, progress, console)
        else:
            _train_on(runner, jobs, out, progress, console)
        summary = seeds_summary(read_trained(out, count=seeds))
        atomic_write_json(out / SUMMARY_FILE, summary)
    finally:
        lock.release()
    return summary


def _train_here(jobs: list[SeedJob], resume: bool, progress: bool, console: Console) -> None:
    for job in jobs:
        folder = Path(job.folder)
        if progress:
            continues = resume and (folder / STATE_FILE).is_file()
            state = (", finished: read" if (folder / MODEL_FILE).is_file() else ", resumed") if continues else ""
            console.print(f"seed {job.config.budget.seed} ({job.trial + 1}/{len(jobs)}){state} in {folder}")
        replace(job, progress=progress).execute(console)


def _train_on(build_runner: Callable[[], Any], jobs: list[SeedJob], out: Path, progress: bool,
              console: Console) -> None:
    """Every seed on the runner at once; then one error naming each seed that failed."""
    token = secrets.token_hex(8)
    marker = out / DRIVER_FILE
    atomic_write_json(marker, {"token": token, "host": socket.gethostname()})
    failed: list[tuple[int, str]] = []
    try:
        with build_runner() as runner:
            if progress:
                console.print(f"{len(jobs)} seeds on {runner.describe()}", soft_wrap=True)
            for job in jobs:
                runner.submit(replace(job, driver_token=token))
            watched = {job.config.budget.seed: Path(job.folder) for job in jobs} if progress else {}
            budget = jobs[0].config.budget
            with EpochWatcher(watched, None if budget.steps else budget.epochs, console):
                _collect(runner, jobs, failed, progress, console)
    finally:
        marker.unlink(missing_ok=True)
    if failed:
        more = f" (and {len(failed) - 1} more seed(s))" if len(failed) > 1 else ""
        raise TrainingError(f"{min(failed)[1]}{more}; what finished is kept: mend the cause and run the command again "
                            "(--resume continues the seeds that began)")


def _collect(runner: Any, jobs: list[SeedJob], failed: list[tuple[int, str]], progress: bool,
             console: Console) -> None:
    """Wait for every seed; a failed one goes into ``failed`` as (K, one line naming it and why)."""
    done = 0
    while done < len(jobs):
        for job, metrics in runner.wait():
            done += 1
            seed = job.config.budget.seed
            error = (metrics.error.strip().splitlines() or ["no reason given"])[0]
            if not metrics.ok:
                failed.append((job.trial, f"seed {seed} ({Path(job.folder).name}): {error}"))
            if progress:
                state = (f"minival accuracy {metrics.accuracy or 0:.4f}, {metrics.train_time_s:.0f} s of training"
                         if metrics.ok else f"failed: {error}")
                console.print(f"seed {seed} ({done}/{len(jobs)} done) in {job.folder}: {state}", soft_wrap=True)


def seeds_summary(model: TrainedModel) -> dict[str, Any]:
    """``summary.json``: :func:`~nas.comparison.summarize`'s numbers, the recipe and each seed's accuracies."""
    per_seed = [{"seed": s.seed, "folder": s.folder.name,
                 **{f"{w}_{split}_accuracy": s.accuracy(w, split) for w in s.evaluations
                    for split in ("minival", "test") if s.accuracy(w, split) is not None},
                 "latency_ms": s.latency_ms} for s in model.seeds]
    return {**summarize(model).to_dict(), "recipe": dict(model.first.recipe), "per_seed": per_seed}


__all__ = ["DRIVER_FILE", "SeedJob", "check_seeds", "seeds_summary", "stored_seeds_config", "train_seeds", "with_seed"]
