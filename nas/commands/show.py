"""``nas show``: a spec as a table in the style of the EfficientNet paper's Table 1, with its cost."""

from __future__ import annotations

import argparse
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from nas.api import load_spec
from nas.blockstrings import spec_to_block_strings
from nas.counting import count
from nas.errors import SpecError

OPERATOR_NAMES = {"mbconv": "MBConv", "fused_mbconv": "Fused-MBConv", "ds": "SepConv", "conv": "Conv"}


def add_parser(sub: Any) -> None:
    p = sub.add_parser("show", help="print a network's stages, parameters and FLOPs (multiply-adds)",
                       description="Show a spec: a preset name, a spec JSON file (or a run's b0.json), "
                                   "or block strings in quotes.")
    p.add_argument("spec", metavar="SPEC", help="preset name, JSON file, or \"BLOCK STRINGS\"")
    p.add_argument("--resolution", type=int, default=None, help="input resolution (default: the spec's)")
    p.add_argument("--classes", type=int, default=None, help="number of classes (default: the spec's)")
    p.add_argument("--in-chans", type=int, default=None, help="input channels (default: the spec's)")
    p.add_argument("--json", action="store_true", help="print the spec as JSON instead of the table")
    p.add_argument("--strings", choices=("efficientnet", "v2", "typed"), default=None,
                   help="print the spec's block strings in this notation instead of the table")
    p.set_defaults(func=run)


def operator_label(block: str, expansion: float, kernel: int, se_ratio: float, group_size: int) -> str:
    """'MBConv6, k3x3' as in the paper's table, plus SE and group size where present."""
    name = OPERATOR_NAMES[block]
    if block in ("mbconv", "fused_mbconv"):
        name += f"{expansion:g}"
    label = f"{name}, k{kernel}x{kernel}"
    if se_ratio > 0:
        label += f", SE{se_ratio:g}"
    if group_size > 1:
        label += f", G{group_size}"
    return label


def _short(value: int) -> str:
    """5288548 -> '5.29M': keeps the table within 80 columns."""
    for threshold, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if value >= threshold:
            return f"{value / threshold:.3g}{suffix}"
    return str(value)


def run(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    changes = {k: v for k, v in (("resolution", args.resolution), ("num_classes", args.classes),
                                 ("in_chans", args.in_chans)) if v is not None}
    if changes:
        try:
            spec = spec.with_(**changes)
        except SpecError as exc:
            flag = {"resolution": "--resolution", "num_classes": "--classes", "in_chans": "--in-chans"}
            message = str(exc)
            for field, name in flag.items():
                if message.startswith(field + ":"):
                    message = name + message[len(field):]
            raise SpecError(message) from None
    if args.json:
        print(spec.to_json())
        return 0
    if args.strings:
        print(" ".join(spec_to_block_strings(spec, args.strings)))
        return 0

    cost = count(spec)
    title = f"{spec.name or 'spec'} (key {spec.key()})"
    table = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False)
    for column in ("Stage", "Operator", "Input", "Channels", "Layers", "Params", "MACs"):
        table.add_column(column, justify="left" if column == "Operator" else "right", no_wrap=True)
    resolution = spec.resolution
    stem, *stages, head = cost.stages
    table.add_row("1", "Conv, k3x3", f"{resolution}x{resolution}", str(spec.stem_channels), "1",
                  _short(stem.params), _short(stem.macs))
    resolution = stem.resolution_out
    for i, (stage, part) in enumerate(zip(spec.stages, stages)):
        label = operator_label(stage.block, stage.expansion, stage.kernel, stage.se_ratio, stage.group_size)
        if stage.activation != spec.activation:
            label += f", {stage.activation}"
        table.add_row(str(i + 2), label, f"{resolution}x{resolution}", str(stage.out_channels), str(stage.repeats),
                      _short(part.params), _short(part.macs))
        resolution = part.resolution_out
    head_op = "Conv1x1 & Pooling & FC" if spec.head_channels > 0 else "Pooling & FC"
    head_width = f"{spec.head_channels}/{spec.num_classes}" if spec.head_channels else str(spec.num_classes)
    table.add_row(str(len(spec.stages) + 2), head_op, f"{resolution}x{resolution}", head_width, "1",
                  _short(head.params), _short(head.macs))
    console = Console()
    console.print(table)
    console.print(f"input {spec.in_chans}x{spec.resolution}x{spec.resolution}, {spec.num_classes} classes, "
                  f"{spec.activation}, {spec.norm}, dropout {spec.dropout:g}, drop-connect {spec.drop_connect_rate:g}")
    console.print(f"params: {cost.params:,} ({cost.params / 1e6:.2f} M)")
    console.print(f"FLOPs (multiply-adds): {cost.macs:,} ({cost.macs / 1e9:.3f} G)")
    console.print(f"peak activation: {cost.peak_activation:,} elements per image")
    console.print("block strings: " + " ".join(spec_to_block_strings(spec, "typed")), soft_wrap=True)
    return 0
