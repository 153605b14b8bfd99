"""Shared fixtures: a generator of random valid specs and the shared dataset folders."""

from __future__ import annotations

import os
from pathlib import Path

# Every process the suite starts (CLI subprocesses, several searches at once) runs torch on one
# thread: on a 2-core machine, processes whose two OpenMP threads compete make tiny training steps up
# to 100x slower (a two-process shared-study test: 118 s with two threads each, 18 s with one).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest

from nas.data.shared import missing_reason, shared_dataset_dir
from nas.deploy.runtimes import torch_threads
from nas.spec import ACTIVATIONS, BLOCKS, NORMS, ArchSpec, StageSpec



def random_stage(rng: np.random.Generator, in_ch: int) -> StageSpec:
    """One random valid stage over every registered block kind, kernels 3/5/7, SE, strides and group
    sizes (each only where the kind has it)."""
    kind = BLOCKS[str(rng.choice(BLOCKS.names))]
    out = int(rng.choice([4, 8, 12, 16, 24, 32]))
    repeats = int(rng.integers(1, 4))
    expansion = float(rng.choice([1, 2, 3, 4, 6, 2.5])) if kind.has_expansion else 1
    stage = dict(block=kind.name, repeats=repeats, kernel=int(rng.choice([3, 5, 7])), stride=int(rng.integers(1, 3)),
                 expansion=expansion, out_channels=out,
                 se_ratio=float(rng.choice([0.0, 0.0, 0.25, 0.5, 1.0])) if kind.has_se else 0.0,
                 skip=bool(rng.random() < 0.8), activation=str(rng.choice(ACTIVATIONS.names)))
    if kind.has_group_size:
        probe = StageSpec(**stage)
        widths = {probe.mid_channels(in_ch)} | ({probe.mid_channels(out)} if repeats > 1 else set())
        options = [g for g in (1, 2, 4, 8) if all(w % g == 0 for w in widths)]
        stage["group_size"] = int(rng.choice(options))
    return StageSpec(**stage)


def random_spec(rng: np.random.Generator) -> ArchSpec:
    """A small random valid network: cheap to build and run, yet exercising every spec field."""
    stem = int(rng.choice([8, 16, 24]))
    stages, in_ch = [], stem
    for _ in range(int(rng.integers(1, 5))):
        stage = random_stage(rng, in_ch)
        stages.append(stage)
        in_ch = stage.out_channels
    return ArchSpec(stem_channels=stem, stages=tuple(stages), head_channels=int(rng.choice([0, 32, 64])),
                    resolution=int(rng.choice([8, 16, 17, 24, 32, 33])), dropout=float(rng.choice([0.0, 0.2])),
                    drop_connect_rate=float(rng.choice([0.0, 0.2])), norm=str(rng.choice(NORMS.names)),
                    num_classes=int(rng.choice([1, 10, 100])), in_chans=int(rng.choice([1, 3])),
                    activation=str(rng.choice(ACTIVATIONS.names)), name=f"random-{int(rng.integers(1e6))}",
                    scale_head=bool(rng.random() < 0.5))


@pytest.fixture(scope="session")
def random_specs() -> list[ArchSpec]:
    """220 random valid specs, the same ones in every run."""
    rng = np.random.default_rng(20240601)
    return [random_spec(rng) for _ in range(220)]


def shared_dir(name: str) -> Path:
    """The shared dataset folder ``name`` (mnist, fashion-mnist), or skip the test saying where it was looked for."""
    folder = shared_dataset_dir(name)
    if folder is None:
        pytest.skip(missing_reason(name))
    return folder


@pytest.fixture(scope="session")
def shared_data():
    """:func:`shared_dir` as a fixture, for tests parametrized over dataset names."""
    return shared_dir


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    return shared_dir("mnist")


@pytest.fixture(scope="session")
def fashion_dir() -> Path:
    return shared_dir("fashion-mnist")


def _train_steps(model, images, labels, optimizer, steps: int, batch: int, seed: int = 0) -> list[float]:
    """``steps`` steps of cross-entropy on random batches (a seeded generator); the losses.

    Torch's global generator is seeded for the steps too: dropout and drop-connect draw from it, and
    unseeded they would train another model after whatever ran before in the worker (the int8 test's
    fixture failed 2 runs in 4 so)."""
    import torch

    from nas.training.setup import seeded_global_rng

    gen = torch.Generator().manual_seed(seed)
    losses = []
    with seeded_global_rng(seed, torch.device("cpu")):
        for _ in range(steps):
            idx = torch.randint(0, len(images), (batch,), generator=gen)
            loss = torch.nn.functional.cross_entropy(model(images[idx]), labels[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    return losses


@pytest.fixture(scope="session")
def train_steps():
    """A few real training steps: ``train_steps(model, images, labels, optimizer, steps, batch)`` -> losses."""
    return _train_steps


@pytest.fixture
def one_thread():
    """One torch thread for the test."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def one_thread_module():
    """:func:`one_thread` for a whole test module (its module-scoped fixtures train too)."""
    with torch_threads(1):
        yield


@pytest.fixture
def ray_outs():
    """Output folders of a test's local-Ray runs: each run's local Ray keeps its sessions in
    /tmp/nas-ray-<hash of OUT> (runners.ray_support.temp_root), removed at the end of the test."""
    import shutil

    from runners.ray_support import temp_root

    outs: list[Path] = []
    yield outs
    for out in outs:
        shutil.rmtree(temp_root(out), ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server for the whole session (tests/postgres.py): started from the machine's server
    binaries on 127.0.0.5 and a free port, stopped at the end. Skips only where the binaries are absent."""
    from postgres import find_pg_bindir, missing_reason, start_postgres

    if find_pg_bindir() is None:
        pytest.skip(missing_reason())
    with start_postgres() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server, request) -> str:
    """A fresh, empty database on :func:`postgres_server` for this test, as a SQLAlchemy URL
    (``postgresql+psycopg://nas:<password>@127.0.0.5:<port>/<test name>``)."""
    import re

    name = re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())[:50] + f"_{os.getpid()}"
    return postgres_server.create_database(name)


# The modules that take longest, longest first. With one file per worker at a time (--dist loadfile),
# the workers take files in collection order: starting with the longest packs the rest around them
# instead of leaving one worker alone with a long file at the end.
LONGEST_FIRST = ("test_ray_cluster.py", "test_shared_study.py", "test_deploy_export.py", "test_ray_runner.py",
                 "test_training.py", "test_controllers.py", "test_train_cli.py", "test_search.py", "test_jobs.py",
                 "test_tune_adapter.py", "test_rerank.py", "test_report.py", "test_scale_cli.py")


def pytest_collection_modifyitems(config, items):
    """Longest modules first (see :data:`LONGEST_FIRST`); and a test marked slow says why
    (``@pytest.mark.slow(reason="what it covers that no fast test does")``): the fast lane
    (``-m "not slow"``) leaves it out, so the reason is what the fast lane does not check."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
    for item in items:
        mark = item.get_closest_marker("slow")
        if mark is not None and not str(mark.kwargs.get("reason", "")).strip():
            raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.slow needs reason=... (what it covers that no "
                                    "fast test does)")
