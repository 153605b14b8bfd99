"""Published networks as specs, written in their official block-string notation.

Sources: the official TensorFlow code (efficientnet_builder.py, effnetv2_configs.py,
mnasnet_models.py) and papers. Parameter counts at 1000 classes are checked in
tests/test_presets.py against the official / timm ``tf_`` ports' numbers.
"""

from __future__ import annotations

from nas.blockstrings import spec_from_block_strings
from nas.errors import SpecError
from nas.registry import Registry
from nas.scaling import EFFICIENTNET_PARAMS, scale_spec
from nas.spec import ArchSpec

EFFICIENTNET_B0_BLOCKS = (
    "r1_k3_s11_e1_i32_o16_se0.25", "r2_k3_s22_e6_i16_o24_se0.25", "r2_k5_s22_e6_i24_o40_se0.25",
    "r3_k3_s22_e6_i40_o80_se0.25", "r3_k5_s11_e6_i80_o112_se0.25", "r4_k5_s22_e6_i112_o192_se0.25",
    "r1_k3_s11_e6_i192_o320_se0.25",
)

EFFICIENTNET_V2_BLOCKS = {
    "s": ("r2_k3_s1_e1_i24_o24_c1", "r4_k3_s2_e4_i24_o48_c1", "r4_k3_s2_e4_i48_o64_c1",
          "r6_k3_s2_e4_i64_o128_se0.25", "r9_k3_s1_e6_i128_o160_se0.25", "r15_k3_s2_e6_i160_o256_se0.25"),
    "m": ("r3_k3_s1_e1_i24_o24_c1", "r5_k3_s2_e4_i24_o48_c1", "r5_k3_s2_e4_i48_o80_c1",
          "r7_k3_s2_e4_i80_o160_se0.25", "r14_k3_s1_e6_i160_o176_se0.25", "r18_k3_s2_e6_i176_o304_se0.25",
          "r5_k3_s1_e6_i304_o512_se0.25"),
    "l": ("r4_k3_s1_e1_i32_o32_c1", "r7_k3_s2_e4_i32_o64_c1", "r7_k3_s2_e4_i64_o96_c1",
          "r10_k3_s2_e4_i96_o192_se0.25", "r19_k3_s1_e6_i192_o224_se0.25", "r25_k3_s2_e6_i224_o384_se0.25",
          "r7_k3_s1_e6_i384_o640_se0.25"),
}
# size: (eval resolution, dropout); official train resolutions are 300 / 384 / 384.
EFFICIENTNET_V2_PARAMS = {"s": (384, 0.2), "m": (480, 0.3), "l": (480, 0.4)}

MNASNET_BLOCKS = {
    "a1": ("r1_k3_s11_e1_i32_o16_noskip", "r2_k3_s22_e6_i16_o24", "r3_k5_s22_e3_i24_o40_se0.25",
           "r4_k3_s22_e6_i40_o80", "r2_k3_s11_e6_i80_o112_se0.25", "r3_k5_s22_e6_i112_o160_se0.25",
           "r1_k3_s11_e6_i160_o320"),
    "b1": ("r1_k3_s11_e1_i32_o16_noskip", "r3_k3_s22_e3_i16_o24", "r3_k5_s22_e3_i24_o40", "r3_k5_s22_e6_i40_o80",
           "r2_k3_s11_e6_i80_o96", "r4_k5_s22_e6_i96_o192", "r1_k3_s11_e6_i192_o320_noskip"),
}


def efficientnet(name: str) -> ArchSpec:
    """EfficientNet-B0 scaled by its row of :data:`~nas.scaling.EFFICIENTNET_PARAMS`."""
    width, depth, resolution, dropout = EFFICIENTNET_PARAMS[name]
    b0 = spec_from_block_strings(EFFICIENTNET_B0_BLOCKS, stem_channels=32, head_channels=1280, resolution=224,
                                 dropout=0.2, drop_connect_rate=0.2, activation="silu", name=name)
    return scale_spec(b0, width=width, depth=depth, resolution=resolution, dropout=dropout)


def efficientnet_v2(size: str) -> ArchSpec:
    resolution, dropout = EFFICIENTNET_V2_PARAMS[size]
    # The stem is the first block's input width (the default of spec_from_block_strings).
    return spec_from_block_strings(EFFICIENTNET_V2_BLOCKS[size], head_channels=1280, resolution=resolution,
                                   dropout=dropout, drop_connect_rate=0.2, activation="silu",
                                   name=f"efficientnetv2-{size}")


def mnasnet(variant: str) -> ArchSpec:
    """MnasNet: ReLU, no stochastic depth, and a 1280 head that width scaling leaves alone."""
    return spec_from_block_strings(MNASNET_BLOCKS[variant], stem_channels=32, head_channels=1280, resolution=224,
                                   dropout=0.2, drop_connect_rate=0.0, activation="relu", scale_head=False,
                                   name=f"mnasnet-{variant}")


# name -> zero-argument function returning the spec
PRESETS: Registry = Registry("preset", {
    **{name: (lambda n=name: efficientnet(n)) for name in EFFICIENTNET_PARAMS},
    **{f"efficientnetv2-{s}": (lambda s=s: efficientnet_v2(s)) for s in EFFICIENTNET_V2_BLOCKS},
    **{f"mnasnet-{v}": (lambda v=v: mnasnet(v)) for v in MNASNET_BLOCKS},
}, error=SpecError)


def preset(name: str) -> ArchSpec:
    """The spec of a published network by name (case-insensitive), e.g. ``efficientnet-b0``."""
    key = name.strip().lower() if isinstance(name, str) else name
    if not isinstance(key, str) or key not in PRESETS:
        PRESETS.check(str(name))
    return PRESETS[key]()


__all__ = ["PRESETS", "preset", "EFFICIENTNET_B0_BLOCKS", "EFFICIENTNET_V2_BLOCKS", "MNASNET_BLOCKS"]
