"""B0 drawn: the network stage by stage as an inline SVG.

One box per part (stem, each stage, head) with the block kind, kernel, expansion, SE ratio,
repeats and stride, the channels and the resolution in and out; under each box the part's
multiply-adds and parameters from the counter (:func:`nas.counting.count`, the same numbers as
``nas show``) and a bar of its share of the network's multiply-adds.
"""

from __future__ import annotations

from typing import Any

from nas.counting import count
from nas.kinds import BLOCKS
from nas.ranking import ranked
from nas.report.html import esc, note, svg_drawing
from nas.report.run import RunView
from nas.spec import ArchSpec

BOX_W, GAP, BOX_H, BAR_H, TOP = 136, 20, 150, 60, 34
KIND_COLOURS = {"mbconv": "#dbe9f6", "fused_mbconv": "#fde2c8", "conv": "#d9f0d3", "ds": "#e8def3"}


def _short(value: float) -> str:
    for threshold, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= threshold:
            return f"{value / threshold:.3g}{suffix}"
    return f"{value:.3g}"


def part_lines(spec: ArchSpec) -> list[tuple[str, str, list[str]]]:
    """(title, block kind or '', lines of text) for the stem, each stage and the head."""
    cost = count(spec)
    sizes = [spec.resolution] + [part.resolution_out for part in cost.stages]
    parts = [("stem", "", ["conv 3x3, stride 2", f"{spec.in_chans} → {spec.stem_channels} ch",
                           f"{sizes[0]} → {sizes[1]} px"])]
    for i, (stage, in_ch) in enumerate(zip(spec.stages, spec.stage_in_channels())):
        kind = BLOCKS[stage.block]
        shape = f"k{stage.kernel}" + (f" e{stage.expansion:g}" if kind.has_expansion else "")
        if kind.has_se and stage.se_ratio > 0:
            shape += f" SE {stage.se_ratio:g}"
        if kind.has_group_size and stage.group_size != 1:
            shape += f" g{stage.group_size}"
        repeats = f"×{stage.repeats}, stride {stage.stride}" + ("" if stage.skip else ", no skip")
        parts.append((f"stage {i + 1}", stage.block, [kind.title or kind.name, shape, repeats,
                                                     f"{in_ch} → {stage.out_channels} ch",
                                                     f"{sizes[i + 1]} → {sizes[i + 2]} px"]))
    head = [f"conv 1x1 → {spec.head_channels} ch"] if spec.head_channels else ["no head conv"]
    parts.append(("head", "", head + ["pool, dropout", f"FC → {spec.num_classes} classes"]))
    return parts


def diagram(spec: ArchSpec, title: str) -> str:
    """The SVG of ``spec``'s stages, their costs and their share of the multiply-adds."""
    cost = count(spec)
    parts = part_lines(spec)
    width = len(parts) * (BOX_W + GAP)
    height = TOP + BOX_H + 46 + BAR_H + 10
    out = [f'<svg class="b0" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" style="max-width: 100%; height: auto" font-family="sans-serif" '
           'font-size="11.5">',
           f'<text x="4" y="18" font-size="14" font-weight="bold">{esc(title)}</text>']
    for i, ((name, kind, lines), part) in enumerate(zip(parts, cost.stages)):
        x = i * (BOX_W + GAP) + 4
        fill = KIND_COLOURS.get(kind, "#eeeeee")
        out.append(f'<g class="part"><title>{esc(name)}: {esc(", ".join(lines))}; {part.macs:,} multiply-adds, '
                   f'{part.params:,} parameters</title>')
        out.append(f'<rect x="{x}" y="{TOP}" width="{BOX_W}" height="{BOX_H}" rx="6" fill="{fill}" stroke="#555"/>')
        out.append(f'<text x="{x + 8}" y="{TOP + 18}" font-weight="bold">{esc(name)}</text>')
        for j, line in enumerate(lines):
            out.append(f'<text x="{x + 8}" y="{TOP + 38 + 19 * j}">{esc(line)}</text>')
        share = part.macs / cost.macs if cost.macs else 0.0
        out.append(f'<text x="{x + 8}" y="{TOP + BOX_H + 18}">MACs {_short(part.macs)} ({100 * share:.1f}%)</text>')
        out.append(f'<text x="{x + 8}" y="{TOP + BOX_H + 36}">params {_short(part.params)}</text>')
        bar = max(1.0, BAR_H * share)
        out.append(f'<rect x="{x + 8}" y="{TOP + BOX_H + 46 + BAR_H - bar:.1f}" width="{BOX_W - 16}" '
                   f'height="{bar:.1f}" fill="#4c78a8"/>')
        out.append("</g>")
        if i + 1 < len(parts):
            y = TOP + BOX_H / 2
            out.append(f'<path d="M{x + BOX_W + 3} {y} h{GAP - 8} m-6 -5 l6 5 l-6 5" fill="none" stroke="#555"/>')
    out.append("</svg>")
    return "".join(out)


def b0_body(view: RunView) -> str:
    """B0 of a search (the best candidate of another kind of run), or why there is none yet."""
    if view.choice is not None:
        record: Any = view.choice.record
        what = f"B0 of {view.label}: trial {record.number}, ranked by its {view.choice.ranked_by} reward"
    else:
        leaders = ranked(view.records, view.main_stage)
        if not leaders:
            return note(f"{view.label}: no candidate has finished yet")
        record = leaders[0]
        what = f"best {view.main_stage} candidate of {view.label}: trial {record.number}"
    spec = record.spec
    cost = count(spec)
    title = f"{what}; {_short(cost.macs)} multiply-adds, {_short(cost.params)} parameters at {spec.resolution} px"
    return (svg_drawing(diagram(spec, title))
            + f'<p class="arch"><code>{esc(record.arch)}</code></p>')


__all__ = ["b0_body", "diagram", "part_lines"]
