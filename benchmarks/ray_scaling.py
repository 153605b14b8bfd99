"""Ray runner scaling: the same candidates on 1 worker and on N workers (N = 2 here, one per GPU there).

With ``--cluster`` the workers run on a real two-node cluster started on this machine's loopback
addresses (tests/cluster.py: a head on 127.0.0.2 and a second raylet on 127.0.0.3, one CPU each,
token authentication): the runner joins it with ``address`` and ``node_ip_address`` as
``nas search --address 127.0.0.2:P --node-ip-address 127.0.0.2`` does, and the two workers land one
per node. Without it a local Ray with 2 CPUs is started in this process.

Prints, for each worker count: Ray start-up (``ray.init``) and worker start-up (actors + one
``ray.put`` of the data) separately, the wall time of the candidates alone, the sum of the workers'
own time per candidate (``run_job`` inside the actor), the 1-minute load average before and after
each phase (other work on a shared machine takes cores from the workers), and the orchestration overhead per trial,
``(wall - sum(worker time) / workers) / trials``. The speed-up is wall(1) / wall(N).

    .venv/bin/python benchmarks/ray_scaling.py                 # 6 candidates of ~10 s each
    .venv/bin/python benchmarks/ray_scaling.py --candidates 4 --steps 60   # quicker
    .venv/bin/python benchmarks/ray_scaling.py --cluster       # on a two-node loopback cluster
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def candidates(count: int, seed: int, width: float, depth: float, resolution: int, num_classes: int,
               in_chans: int) -> list:
    """A fixed set of proxy networks from the EfficientNet space, of similar cost (so that neither
    worker count is favoured by how unequal jobs happen to pack): the ``count`` samples whose
    multiply-adds lie closest to the median of 200 samples."""
    import numpy as np

    from nas.counting import count as count_cost
    from search_spaces import ProxyConfig, make_space

    space = make_space("efficientnet")
    proxy = ProxyConfig(width=width, depth=depth, resolution=resolution)
    rng = np.random.default_rng(seed)
    pool = {}
    for _ in range(200):
        full = space.full_size(space.sample(rng), proxy, num_classes, in_chans)
        spec = space.proxy(full, proxy, num_classes, in_chans)
        pool.setdefault(spec.key(), spec)
    specs = list(pool.values())
    macs = np.array([count_cost(s).macs for s in specs], dtype=float)
    order = np.argsort(np.abs(macs - np.median(macs)))
    return [specs[i] for i in order[:count]]


def run(workers: int, jobs: list, dataset, data_ref, gpus: float, cpus_per_trial: float, run_dir: Path,
        cluster: dict | None = None) -> dict:
    from runners.ray_cluster import RayRunner

    run_dir.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    runner = RayRunner(dataset=dataset, data_ref=data_ref, run_dir=run_dir, workers=workers,
                       gpus_per_trial=gpus, cpus_per_trial=cpus_per_trial, **(cluster or {}))
    try:
        start = time.perf_counter()
        for job in jobs[:workers]:
            runner.submit(job)
        pending = list(jobs[workers:])
        results = []
        while len(results) < len(jobs):
            for job, metrics in runner.wait():
                results.append((job, metrics))
                if pending:
                    runner.submit(pending.pop(0))
        wall = time.perf_counter() - start
    finally:
        runner.close()
    bad = [m.error for _, m in results if not m.ok]
    if bad:
        raise SystemExit(f"candidates failed: {bad[:2]}")
    worker_time = sum(m.wall_time_s for _, m in results)
    train_time = sum(m.train_time_s for _, m in results)
    return {"workers": workers, "wall_s": wall, "worker_time_s": worker_time, "train_time_s": train_time,
            "per_candidate_s": statistics.median(m.wall_time_s for _, m in results),
            "overhead_per_trial_s": (wall - worker_time / workers) / len(jobs),
            "ray_init_s": runner.stats.startup_s, "workers_start_s": runner.stats.actors_s,
            "load": (load_before, os.getloadavg()[0])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", type=int, default=6)
    parser.add_argument("--steps", type=int, default=None, help="training steps per candidate (default: ~10 s)")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--depth", type=float, default=0.5)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--cluster", action="store_true", help="run on a two-node cluster on loopback addresses")
    args = parser.parse_args(argv)
    if args.cluster:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from cluster import start_cluster

        with start_cluster("127.0.0.2", num_cpus=1) as cluster:
            cluster.add_node("127.0.0.3", num_cpus=1)
            os.environ.update(cluster.env)  # this process is the driver: it needs the cluster's token
            return measure(args, {"address": cluster.address, "node_ip_address": cluster.head.ip})
    return measure(args, None)


def measure(args: argparse.Namespace, cluster: dict | None) -> int:
    import torch

    from nas.data.ref import DatasetRef, cached_dataset
    from nas.training import TrainBudget
    from runners.base import TrainJob

    gpus = torch.cuda.device_count()
    many = gpus if gpus >= 2 else 2
    ref = DatasetRef(args.dataset, args.data_dir, 0)
    dataset = cached_dataset(ref)
    specs = candidates(args.candidates, 0, args.width, args.depth, args.resolution, dataset.num_classes,
                       dataset.in_chans)
    steps = args.steps or (400 if gpus else 120)
    budget = TrainBudget(steps=steps, batch_size=args.batch_size, seed=0)
    jobs = [TrainJob(trial=i, spec=s, dataset=ref, budget=budget, device="auto") for i, s in enumerate(specs)]
    gpu_share = 1.0 if gpus else 0.0
    with tempfile.TemporaryDirectory(prefix="rb-", dir="/tmp") as tmp:
        one = run(1, jobs, dataset, ref, gpu_share, 1, Path(tmp) / "w1", cluster)
        two = run(many, jobs, dataset, ref, gpu_share, 1, Path(tmp) / f"w{many}", cluster)
    where = (f"two-node Ray cluster on loopback ({cluster['address']}, 1 CPU per node)" if cluster else
             "local Ray in this process")
    print(f"{where}; device: {'%d GPU' % gpus if gpus else 'CPU'}; cpus: {os.cpu_count()}; {len(jobs)} candidates, "
          f"{steps} steps each, batch {args.batch_size}, {args.width}x width, {args.depth}x depth, "
          f"{args.resolution}px, {args.dataset}")
    print("| workers | wall (s) | median candidate (s) | sum worker time (s) | overhead / trial (s) "
          "| ray.init (s) | workers start (s) | load avg before/after |")
    print("|---|---|---|---|---|---|---|---|")
    for r in (one, two):
        print(f"| {r['workers']} | {r['wall_s']:.1f} | {r['per_candidate_s']:.1f} | {r['worker_time_s']:.1f} "
              f"| {r['overhead_per_trial_s']:.3f} | {r['ray_init_s']:.1f} | {r['workers_start_s']:.1f} "
              f"| {r['load'][0]:.1f} / {r['load'][1]:.1f} |")
    print(f"speed-up {many} workers vs 1: {one['wall_s'] / two['wall_s']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
