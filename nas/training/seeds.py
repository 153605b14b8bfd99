"""``nas train --seeds N``: one architecture trained under N seeds, and the summary over them.

One training says little: two trainings of one network differ by a point or more on small data.
:func:`train_seeds` trains seed ``base + K`` into ``out/seed-K`` for K = 0..N-1, one after another,
each with :func:`~nas.training.run.train_model` (so each is resumable after a kill and bit-identical
on the CPU), then writes ``out/summary.json``: the mean accuracy with its 95% t-interval over the
seeds (:func:`nas.comparison.summarize`), the cost and each seed's numbers.

Resuming (``resume``) continues every seed folder holding a ``last.pt`` (a finished one is read, not
retrained) and starts the seeds not begun; it may add seeds (a larger N), never drop them.

The seeds run here, not through a runner (``runners/``): a runner's job trains a proxy candidate and
hands back its metrics, while a seed of ``nas train`` writes its model, checkpoints and history into
a folder that ``--resume`` and ``nas compare`` read on this machine.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console

from nas.comparison import summarize
from nas.errors import ConfigError, StorageError
from nas.fileio import atomic_write_json
from nas.training.config import TrainConfig
from nas.training.outputs import MODEL_FILE, STATE_FILE, RunFolder, stored_config
from nas.training.run import train_model
from nas.training.trained import SUMMARY_FILE, TrainedModel, read_trained, seed_folder, seed_folders


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


def train_seeds(spec: Any, config: TrainConfig, out: str | Path, seeds: int, *, resume: bool = False,
                device: str = "auto", progress: bool = False, console: Console | None = None) -> dict[str, Any]:
    """Train ``seeds`` seeds (``config``'s seed + K into ``out/seed-K``) and return the summary that
    ``out/summary.json`` now holds. Raises NasError subclasses for bad input before training."""
    check_seeds(seeds)
    out = Path(out).expanduser()
    folders = _check_folders(out, seeds, resume)
    console = console or Console(stderr=True)
    base = config.budget.seed
    for k, folder in enumerate(folders):
        continues = resume and folder.file(STATE_FILE).is_file()
        if progress:
            state = (", finished: read" if folder.file(MODEL_FILE).is_file() else ", resumed") if continues else ""
            console.print(f"seed {base + k} ({k + 1}/{seeds}){state} in {folder.path}")
        train_model(spec, with_seed(config, base + k), folder.path, resume=continues, device=device,
                    progress=progress, console=console)
    summary = seeds_summary(read_trained(out, count=seeds))
    atomic_write_json(out / SUMMARY_FILE, summary)
    return summary


def seeds_summary(model: TrainedModel) -> dict[str, Any]:
    """``summary.json``: :func:`~nas.comparison.summarize`'s numbers, the recipe and each seed's accuracies."""
    per_seed = [{"seed": s.seed, "folder": s.folder.name,
                 **{f"{w}_{split}_accuracy": s.accuracy(w, split) for w in s.evaluations
                    for split in ("minival", "test") if s.accuracy(w, split) is not None},
                 "latency_ms": s.latency_ms} for s in model.seeds]
    return {**summarize(model).to_dict(), "recipe": dict(model.first.recipe), "per_seed": per_seed}


__all__ = ["check_seeds", "seeds_summary", "stored_seeds_config", "train_seeds", "with_seed"]
