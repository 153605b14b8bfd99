"""The runner ``nas train --seeds N --runner ray`` trains its seeds on: the search's runner, checked first.

A seed goes through the same runner as a search's candidates (``runners/``), with the same options
(``--address --workers --gpus-per-trial --cpus-per-trial --retries``): the Ray runner puts one seed on
each worker and starts a seed again from its ``last.pt`` when its worker dies. Everything the
options say is checked (and the cluster asked) before anything trains or is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

from nas.data.ref import DatasetRef
from nas.errors import ConfigError
from nas.training.config import TrainConfig
from runners import runner_factory


def seeds_runner(name: str, options: Mapping[str, Any], config: TrainConfig, out: str | Path,
                 device: str = "auto") -> Callable[[], Any] | None:
    """The function that builds the runner for :func:`nas.training.seeds.train_seeds` (None for
    ``local``: the seeds train one after another in this process). ``out`` is the seeds' folder, where
    the Ray runner writes its event log (``ray_runner.jsonl``) and links a local Ray's logs."""
    if name == "local" and not options:
        return None
    if "scheduler" in options:
        raise ConfigError("scheduler applies to a search's trials: each seed trains its whole budget",
                          field="scheduler")
    ref = DatasetRef(config.dataset, config.data_dir, config.budget.seed)  # each seed loads its own split
    return runner_factory(name, options, device=device, dataset=None, data_ref=ref, run_dir=Path(out).expanduser())


__all__ = ["seeds_runner"]
