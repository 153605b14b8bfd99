"""``batchnorm``: BatchNorm with the official EfficientNet epsilon and TF's running-average decay."""

from __future__ import annotations

from nas.kinds.norm_kind import NORM_EPS, NormKind

BN_MOMENTUM = 0.01  # PyTorch's momentum is 1 - TF's decay (0.99)


class BatchNorm(NormKind):
    name = "batchnorm"

    def build(self, channels: int, activation_follows: bool = True):
        from torch import nn  # torch: imported when used, not at module import

        return nn.BatchNorm2d(channels, eps=NORM_EPS, momentum=BN_MOMENTUM)

    def params(self, channels: int, activation_follows: bool = True) -> int:
        return 2 * channels  # scale and shift


KIND = BatchNorm()

__all__ = ["BN_MOMENTUM", "BatchNorm", "KIND"]
