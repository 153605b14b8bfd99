"""The three built-in spaces: MnasNet's, the one EfficientNet searched for B0, and EfficientNetV2's.

Backbone tables are plain tuples, one row per stage:
(operator, kernel, stride, filters, layers, se ratio)
"""

from __future__ import annotations

from search_spaces.base import FactorizedSpace, StageBase

# MnasNet's factorized space over the MobileNetV2 backbone (MnasNet paper, section 4.1).
MOBILENET_V2_BACKBONE = (
    ("mbconv6", 3, 1, 16, 1, 0.0),
    ("mbconv6", 3, 2, 24, 2, 0.0),
    ("mbconv6", 3, 2, 32, 3, 0.0),
    ("mbconv6", 3, 2, 64, 4, 0.0),
    ("mbconv6", 3, 1, 96, 3, 0.0),
    ("mbconv6", 3, 2, 160, 3, 0.0),
    ("mbconv6", 3, 1, 320, 1, 0.0),
)

# EfficientNet-B0 (EfficientNet paper, Table 1): the point "every decision at its base value".
EFFICIENTNET_B0_BACKBONE = (
    ("mbconv1", 3, 1, 16, 1, 0.25),
    ("mbconv6", 3, 2, 24, 2, 0.25),
    ("mbconv6", 5, 2, 40, 2, 0.25),
    ("mbconv6", 3, 2, 80, 3, 0.25),
    ("mbconv6", 5, 1, 112, 3, 0.25),
    ("mbconv6", 5, 2, 192, 4, 0.25),
    ("mbconv6", 3, 1, 320, 1, 0.25),
)

# EfficientNetV2-S (EfficientNetV2 paper, Table 4): operator, kernel, stride, filters, layers, se, expansion.
EFFICIENTNET_V2_S_BACKBONE = (
    ("fused", 3, 1, 24, 2, 0.0, 1),
    ("fused", 3, 2, 48, 4, 0.0, 4),
    ("fused", 3, 2, 64, 4, 0.0, 4),
    ("mbconv", 3, 2, 128, 6, 0.25, 4),
    ("mbconv", 3, 1, 160, 9, 0.25, 6),
    ("mbconv", 3, 2, 256, 15, 0.25, 6),
)

MNAS_CHOICES = {
    "kernel": (3, 5),
    "se": (0.0, 0.25),
    "skip": (True, False),
    "filters": (0.75, 1.0, 1.25),
    "layers": (-1, 0, 1),
}


def mnasnet_space() -> FactorizedSpace:
    """MnasNet: ConvOp in {conv, SepConv, MBConv3, MBConv6}, kernel, SE, skip, filters, layers; ReLU."""
    stages = tuple(StageBase(op=op, kernel=k, stride=s, filters=f, layers=n, se=se)
                   for op, k, s, f, n, se in MOBILENET_V2_BACKBONE)
    choices = tuple({"op": ("conv", "ds", "mbconv3", "mbconv6"), **MNAS_CHOICES} for _ in stages)
    return FactorizedSpace(name="mnasnet", stages=stages, choices=choices, stem_channels=32, head_channels=1280,
                           resolution=224, activation="relu", description=mnasnet_space.__doc__ or "")


def efficientnet_space() -> FactorizedSpace:
    """MnasNet's decisions around B0's backbone, SiLU, B0's stem and head (SepConv = MBConv1)."""
    stages = tuple(StageBase(op=op, kernel=k, stride=s, filters=f, layers=n, se=se)
                   for op, k, s, f, n, se in EFFICIENTNET_B0_BACKBONE)
    choices = tuple({"op": ("conv", "mbconv1", "mbconv3", "mbconv6"), **MNAS_CHOICES} for _ in stages)
    return FactorizedSpace(name="efficientnet", stages=stages, choices=choices, stem_channels=32,
                           head_channels=1280, resolution=224, activation="silu",
                           description=efficientnet_space.__doc__ or "")


def efficientnet_v2_space() -> FactorizedSpace:
    """EfficientNetV2's training-aware space: MBConv or Fused-MBConv, kernel 3/5, expansion 1/4/6,
    layers around V2-S, SE (0.25) only on MBConv, channels from the backbone."""
    stages = tuple(StageBase(op=op, kernel=k, stride=s, filters=f, layers=n, se=se, expansion=e)
                   for op, k, s, f, n, se, e in EFFICIENTNET_V2_S_BACKBONE)
    choices = tuple({"op": ("mbconv", "fused"), "kernel": (3, 5), "expansion": (1, 4, 6), "se": (0.25,),
                     "layers": (-1, 0, 1)} for _ in stages)
    return FactorizedSpace(name="efficientnetv2", stages=stages, choices=choices, stem_channels=24,
                           head_channels=1280, resolution=384, activation="silu", dropout=0.2,
                           se_on=("mbconv",), description=efficientnet_v2_space.__doc__ or "")
