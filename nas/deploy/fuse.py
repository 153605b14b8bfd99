"""Fold BatchNorm into the convolution before it: the same function with fewer layers and tensors.

In eval mode a BatchNorm is a per-channel affine map ``y = (x - mean) / sqrt(var + eps) * gamma +
beta``; after a convolution it can be folded into the convolution's weight and bias, which removes
one pass over the feature map per block layer. The pairs are found on the traced graph
(:mod:`torch.fx`), not by layer names, so any block kind qualifies, and a convolution whose output
feeds anything besides its BatchNorm is left alone (folding it would change that other consumer).

Other norms (GroupNorm, LayerNorm, batch-independent proxy norms) depend on the sample's own
statistics, so they cannot be folded into a fixed weight: they stay as they are, and the report
counts them.
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from nas.errors import ConfigError


@dataclass(frozen=True)
class FuseReport:
    """What :func:`fuse_batchnorm` did: pairs folded, parameters before and after, norms kept."""

    folded: int
    params_before: int
    params_after: int
    kept_norms: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        text = (f"folded {self.folded} BatchNorm layer(s) into their convolutions: "
                f"{self.params_before:,} -> {self.params_after:,} parameters")
        if self.kept_norms:
            kept = ", ".join(f"{n} {name}" for name, n in sorted(self.kept_norms.items()))
            text += f"; left as they are (they normalize each sample by its own statistics): {kept}"
        return text


def _conv_norm_pairs(model: Any) -> list[tuple[str, str]]:
    """``(conv name, batchnorm name)`` for every BatchNorm2d whose input is a Conv2d output used by nothing else."""
    import torch.fx  # torch: imported when used, not at module import
    from torch import nn

    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception as exc:  # noqa: BLE001 - any tracing failure means: cannot find the pairs safely
        raise ConfigError(f"fuse_bn: cannot trace the network to find convolution -> BatchNorm pairs "
                          f"({type(exc).__name__}: {exc})", field="fuse_bn") from None
    modules = dict(model.named_modules())
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules.get(node.target), nn.BatchNorm2d):
            continue
        source = node.args[0] if node.args else None
        if (isinstance(source, torch.fx.Node) and source.op == "call_module"
                and isinstance(modules.get(source.target), nn.Conv2d) and len(source.users) == 1):
            pairs.append((str(source.target), str(node.target)))
    return pairs


def _set_submodule(root: Any, name: str, module: Any) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent_name) if parent_name else root, child, module)


def fuse_batchnorm(model: Any) -> tuple[Any, FuseReport]:
    """A copy of ``model`` (in eval mode) with every foldable BatchNorm folded; ``model`` is untouched.

    Each folded convolution gains a bias and its BatchNorm becomes an ``nn.Identity``, so the module
    tree and the names of all other weights stay as they were.
    """
    from torch import nn  # torch: imported when used, not at module import
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    fused = copy.deepcopy(model).eval()
    pairs = _conv_norm_pairs(fused)
    for conv_name, norm_name in pairs:
        conv, norm = fused.get_submodule(conv_name), fused.get_submodule(norm_name)
        _set_submodule(fused, conv_name, fuse_conv_bn_eval(conv, norm))
        _set_submodule(fused, norm_name, nn.Identity())
    norm_types = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm)
    kept = Counter(type(m).__name__ for m in fused.modules()
                   if isinstance(m, norm_types) or "norm" in type(m).__name__.lower())
    report = FuseReport(folded=len(pairs), params_before=_params(model), params_after=_params(fused),
                        kept_norms=dict(kept))
    return fused, report


def _params(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["FuseReport", "fuse_batchnorm"]
