"""Benchmark: search quality of rl, random, tpe and nsga2 on real data (Fashion-MNIST), plus proxy fidelity.

Each controller runs the default search (efficientnet space, mnas reward at T = 400M multiply-adds,
proxy width 0.5, depth 0.5, 32 px) with the same trials and seeds on a documented subset of
Fashion-MNIST: the first ``--train-images`` images of the original training file (the loader holds
out a seeded, stratified tenth of them as minival) and a 1-epoch proxy. For each run it reports the
best reward and the hypervolume of accuracy against MACs (one reference point shared by all runs:
accuracy 0 and 1.1 x the largest MACs), and for one run (rl, first seed) the proxy-fidelity check
(``nas fidelity``: Kendall's tau between the 1-epoch proxy and a 4-epoch training).

Resumable: each run lives in OUT/<controller>-s<seed> and a second call continues what is missing.
On 2 cores, two calls side by side (``--controllers rl,random`` and ``--controllers tpe,nsga2
--fidelity-top 0``, same ``--out``) halve the time; a last call with all controllers then only reports.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/search_quality.py --out runs/search-quality > /tmp/sq.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import platform
import struct
import time
from pathlib import Path

import numpy as np

from nas.data.shared import require_shared_dataset

CONTROLLERS = ("rl", "random", "tpe", "nsga2")


def write_subset(source: Path, target: Path, train_images: int, test_images: int = 1000) -> Path:
    """The first N images and labels of each original IDX file, written as IDX .gz files again."""
    target.mkdir(parents=True, exist_ok=True)
    for stem, n in (("train-images-idx3-ubyte", train_images), ("train-labels-idx1-ubyte", train_images),
                    ("t10k-images-idx3-ubyte", test_images), ("t10k-labels-idx1-ubyte", test_images)):
        out = target / f"{stem}.gz"
        if out.exists():
            continue
        data = gzip.open(source / f"{stem}.gz", "rb").read()
        dims = data[3]
        shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
        item = int(np.prod(shape[1:])) if dims > 1 else 1
        header = data[:4] + struct.pack(">" + "I" * dims, n, *shape[1:])
        body = data[4 + 4 * dims: 4 + 4 * dims + n * item]
        with gzip.open(out, "wb") as handle:
            handle.write(header + body)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/search-quality")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--train-images", type=int, default=10000)
    parser.add_argument("--epochs", type=float, default=1)
    parser.add_argument("--controllers", default=",".join(CONTROLLERS))
    parser.add_argument("--fidelity-top", type=int, default=8, help="0: no fidelity check (for a partial run)")
    parser.add_argument("--fidelity-epochs", type=float, default=4)
    args = parser.parse_args()

    from nas.jobs.fidelity import FidelitySettings, run_fidelity
    from nas.jobs.search import SearchConfig, run_search
    from nas.pareto import analyze, common_reference
    from nas.ranking import ranked as rank
    from nas.store import open_run, run_exists

    source = require_shared_dataset("fashion-mnist")
    out = Path(args.out)
    data_dir = write_subset(source, out / "data", args.train_images)
    rows, results, walls = [], [], {}
    start = time.perf_counter()
    for controller in args.controllers.split(","):
        for seed in range(args.seeds):
            run_dir = out / f"{controller}-s{seed}"
            t0 = time.perf_counter()
            config = SearchConfig(controller=controller, dataset="fashion-mnist", data_dir=str(data_dir),
                                  trials=args.trials, epochs=args.epochs, seed=seed)
            run_search(config, run_dir, resume=run_exists(run_dir))
            walls[(controller, seed)] = time.perf_counter() - t0
            store = open_run(run_dir)
            ranked = rank(store.records())
            frame = store.dataframe()
            results.append(analyze(frame, "accuracy:max,macs:min", label=f"{controller}-s{seed}"))
            ok = frame[(frame.stage == "search") & (frame.status == "ok")]
            rows.append({"controller": controller, "seed": seed, "best_reward": ranked[0].reward if ranked else None,
                         "best_accuracy": float(ok.accuracy.max()) if len(ok) else None,
                         "at_chance": int(ok.at_chance.astype(bool).sum()), "ok": len(ok)})
    reference = common_reference(results)
    for row, result in zip(rows, results):
        row["hypervolume"] = result.hypervolume(reference)
    fidelity = None if args.fidelity_top <= 0 else run_fidelity(
        out / f"{args.controllers.split(',')[0]}-s0", FidelitySettings(top=args.fidelity_top, epochs=args.fidelity_epochs))
    total = time.perf_counter() - start

    lines = [f"\n## Search quality on Fashion-MNIST ({dt.date.today().isoformat()})\n",
             f"Machine: {platform.machine()} {platform.processor() or ''} 2-core CPU container, no GPU. Command: "
             f"`OMP_NUM_THREADS=1 .venv/bin/python benchmarks/search_quality.py --out {args.out} --trials "
             f"{args.trials} --seeds {args.seeds} --train-images {args.train_images}` ({total / 60:.1f} min in all). "
             f"Data: the first {args.train_images} training images of Fashion-MNIST ({args.train_images // 10} of "
             f"them held out as minival), {args.epochs:g}-epoch proxy (width 0.5, depth 0.5, 32 px), efficientnet "
             f"space, mnas reward T = 400M. Hypervolume: accuracy x MACs dominated up to the shared reference "
             f"(accuracy {reference[0]:.3g}, MACs {reference[1]:.4g}).\n",
             "| controller | seed | best reward | best accuracy | hypervolume | ok trials | at chance | wall (s) |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['controller']} | {row['seed']} | {row['best_reward']:.4f} | {row['best_accuracy']:.4f} "
                     f"| {row['hypervolume']:.4g} | {row['ok']} | {row['at_chance']} | "
                     f"{walls[(row['controller'], row['seed'])]:.0f} |")
    lines.append("\n| controller | mean best reward | mean hypervolume |\n|---|---|---|")
    for controller in args.controllers.split(","):
        mine = [r for r in rows if r["controller"] == controller]
        lines.append(f"| {controller} | {np.mean([r['best_reward'] for r in mine]):.4f} | "
                     f"{np.mean([r['hypervolume'] for r in mine]):.4g} |")
    for what, stats in (fidelity.agreement.items() if fidelity else ()):
        tau, rho = stats["kendall_tau"], stats["spearman_rho"]
        lines.append(f"\nProxy fidelity ({what}, run {args.controllers.split(',')[0]}-s0, {args.fidelity_top} "
                     f"candidates, {args.epochs:g} vs {args.fidelity_epochs:g} epochs): Kendall tau "
                     f"{tau['value']:.3f} [{tau['low']:.2f}, {tau['high']:.2f}], Spearman rho {rho['value']:.3f} "
                     f"[{rho['low']:.2f}, {rho['high']:.2f}].")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
