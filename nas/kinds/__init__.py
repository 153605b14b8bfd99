"""The registries of block kinds, normalization kinds and activations.

Each kind is one module of this package holding everything about it (see :mod:`nas.kinds.block_kind`
and :mod:`nas.kinds.norm_kind`); the registration lines below are the only other place that names it.
Adding a kind means: its module, one line here, its tests. Outside this package,
``BLOCKS.register(name, "package.module:KIND")`` adds one without editing the package.
"""

from __future__ import annotations

from nas.errors import SpecError
from nas.registry import Registry

BLOCKS: Registry = Registry("block", {
    "mbconv": "nas.kinds.mbconv:KIND",
    "fused_mbconv": "nas.kinds.fused_mbconv:KIND",
    "ds": "nas.kinds.ds:KIND",
    "conv": "nas.kinds.conv:KIND",
}, error=SpecError)

NORMS: Registry = Registry("norm", {
    "batchnorm": "nas.kinds.batchnorm:KIND",
    "groupnorm": "nas.kinds.groupnorm:KIND",
    "layernorm": "nas.kinds.layernorm:KIND",
    "layernorm_pn": "nas.kinds.proxynorm:LAYERNORM_PN",
    "groupnorm_pn": "nas.kinds.proxynorm:GROUPNORM_PN",
}, error=SpecError)

ACTIVATIONS: Registry = Registry("activation", {
    "silu": "nas.kinds.activations:silu",
    "relu": "nas.kinds.activations:relu",
}, error=SpecError)

__all__ = ["ACTIVATIONS", "BLOCKS", "NORMS"]
