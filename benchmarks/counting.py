"""Analytic cost counting vs torch's FlopCounterMode on the built models.

Run: ``.venv/bin/python benchmarks/counting.py`` (``--n 100 --seed 0``).

Samples ``n`` random valid specs of mobile size (every block type, kernels 3/5/7, SE, group
sizes, all norms, 64-160 px, at most 1 G multiply-adds), then times, per spec: ``nas.counting.count`` alone; building the model;
one batch-1 forward pass under ``FlopCounterMode``. It checks that the two MAC counts agree (and
params exactly) so the faster path cannot be a wrong one, and prints the speed-up of the analytic
counter over the flop counter's forward pass alone (building excluded, which flatters torch).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from nas.builder import build_model
from nas.counting import count
from nas.spec import NORMS, ArchSpec, StageSpec


def sample_spec(rng: np.random.Generator) -> ArchSpec:
    """A random mobile-sized network: 4-7 stages, widths 16-192, 64-160 px."""
    stem = int(rng.choice([16, 24, 32]))
    stages, in_ch = [], stem
    for i in range(int(rng.integers(4, 8))):
        block = str(rng.choice(["mbconv", "mbconv", "fused_mbconv", "ds", "conv"]))
        out = int(rng.choice([16, 24, 32, 48, 64, 96, 128, 192][: 3 + i]))
        expansion = float(rng.choice([1, 3, 4, 6])) if block in ("mbconv", "fused_mbconv") else 1
        fields = dict(block=block, repeats=int(rng.integers(1, 4)), kernel=int(rng.choice([3, 5, 7])),
                      stride=int(rng.choice([1, 2])), expansion=expansion, out_channels=out,
                      se_ratio=0.0 if block == "conv" else float(rng.choice([0.0, 0.25])))
        if block in ("mbconv", "ds"):
            probe = StageSpec(**fields)
            widths = {probe.mid_channels(in_ch), probe.mid_channels(out)}
            fields["group_size"] = int(rng.choice([g for g in (1, 8, 16) if all(w % g == 0 for w in widths)]))
        stages.append(StageSpec(**fields))
        in_ch = out
    return ArchSpec(stem_channels=stem, stages=tuple(stages), head_channels=int(rng.choice([0, 640, 1280])),
                    resolution=int(rng.choice([64, 96, 128, 160])), norm=str(rng.choice(NORMS.names)),
                    in_chans=int(rng.choice([1, 3])), num_classes=int(rng.choice([10, 1000])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: two threads on a busy 2-core machine time the contention, not torch)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    specs: list[ArchSpec] = []
    while len(specs) < args.n:  # keep mobile-sized candidates (up to 1 G multiply-adds), like a search's
        spec = sample_spec(rng)
        if count(spec).macs <= 1e9:
            specs.append(spec)

    analytic_s = build_s = flop_s = 0.0
    worst = 0.0
    for spec in specs:
        start = time.perf_counter()
        cost = count(spec)
        analytic_s += time.perf_counter() - start

        start = time.perf_counter()
        model = build_model(spec).eval()
        build_s += time.perf_counter() - start

        x = torch.zeros(1, spec.in_chans, spec.resolution, spec.resolution)
        start = time.perf_counter()
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            model(x)
        flop_s += time.perf_counter() - start

        reference = counter.get_total_flops() // 2
        worst = max(worst, abs(cost.macs - reference) / reference)
        assert cost.params == sum(p.numel() for p in model.parameters()), spec

    macs = [count(s).macs for s in specs]
    print(f"torch threads: {torch.get_num_threads()}")
    print(f"{args.n} random specs, MACs {min(macs) / 1e6:.1f}M .. {max(macs) / 1e6:.1f}M (median "
          f"{np.median(macs) / 1e6:.1f}M); params equal on all; worst MAC difference {worst:.2e}")
    print(f"analytic count()                      {analytic_s * 1e3:9.1f} ms total  {analytic_s / args.n * 1e6:9.1f} us/spec")
    print(f"build_model()                         {build_s * 1e3:9.1f} ms total  {build_s / args.n * 1e3:9.2f} ms/spec")
    print(f"FlopCounterMode forward (batch 1)     {flop_s * 1e3:9.1f} ms total  {flop_s / args.n * 1e3:9.2f} ms/spec")
    print(f"speed-up vs forward alone             {flop_s / analytic_s:9.0f}x")
    print(f"speed-up vs build + forward           {(build_s + flop_s) / analytic_s:9.0f}x")


if __name__ == "__main__":
    main()
