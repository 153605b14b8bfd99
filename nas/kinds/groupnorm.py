"""``groupnorm``: GroupNorm, batch-independent, with a group count chosen per width."""

from __future__ import annotations

from nas.kinds.norm_kind import NORM_EPS, NormKind

GN_MAX_GROUPS = 32
GN_MIN_GROUP_WIDTH = 4


def groupnorm_groups(channels: int) -> int:
    """The most groups (at most 32) that divide ``channels`` while keeping at least 4 channels per
    group (1 group when the width is below 8).

    Groups of a single channel would zero every 1x1 feature map, which proxies at small
    resolutions reach in their last stages; four channels per group avoids that.
    """
    best = 1
    for groups in range(1, GN_MAX_GROUPS + 1):
        if channels % groups == 0 and channels // groups >= GN_MIN_GROUP_WIDTH:
            best = groups
    return best


class GroupNorm(NormKind):
    name = "groupnorm"
    lr_scale = 0.25  # batch-independent: diverges at BatchNorm's default rate (BENCHMARKS.md, norm kinds)

    def build(self, channels: int, activation_follows: bool = True):
        from torch import nn  # torch: imported when used, not at module import

        return nn.GroupNorm(groupnorm_groups(channels), channels, eps=NORM_EPS)

    def params(self, channels: int, activation_follows: bool = True) -> int:
        return 2 * channels  # scale and shift


KIND = GroupNorm()

__all__ = ["GroupNorm", "KIND", "groupnorm_groups"]
