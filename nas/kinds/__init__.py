"""The registries of block kinds, normalization kinds and activations.

Each kind is one module of this package holding everything about it (see :mod:`nas.kinds.block`
and :mod:`nas.kinds.norm`); the registration lines below are the only other place that names it.
Adding a kind means: its module, one line here, its tests. Outside this package,
``BLOCKS.register(name, "package.module:KIND")`` adds one without editing the package.
"""

from __future__ import annotations

from nas.kinds.registry import Registry

BLOCKS = Registry("block", {
    "mbconv": "nas.kinds.mbconv:KIND",
    "fused_mbconv": "nas.kinds.fused_mbconv:KIND",
    "ds": "nas.kinds.ds:KIND",
    "conv": "nas.kinds.conv:KIND",
})

NORMS = Registry("norm", {
    "batchnorm": "nas.kinds.batchnorm:KIND",
    "groupnorm": "nas.kinds.groupnorm:KIND",
    "layernorm": "nas.kinds.layernorm:KIND",
    "layernorm_pn": "nas.kinds.proxynorm:LAYERNORM_PN",
    "groupnorm_pn": "nas.kinds.proxynorm:GROUPNORM_PN",
})

ACTIVATIONS = Registry("activation", {
    "silu": "nas.kinds.activations:silu",
    "relu": "nas.kinds.activations:relu",
})

__all__ = ["ACTIVATIONS", "BLOCKS", "NORMS", "Registry"]
