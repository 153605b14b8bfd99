"""The layers a spec is built from: stem, the four block types, squeeze-excite, head.

Each block receives its widths, stride and the norm / activation factories, so the same code
serves every norm and activation a spec may name. Every ``forward`` is a short straight sequence of
named sub-layers, which keeps the analytic counter (:mod:`nas.counting`) easy to check against it.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

NormFactory = Callable[[int], nn.Module]
ActFactory = Callable[[], nn.Module]

BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # PyTorch's momentum is 1 - TF's decay (0.99)
GN_MAX_GROUPS = 32
GN_MIN_GROUP_WIDTH = 4


def groupnorm_groups(channels: int) -> int:
    """Group count for ``groupnorm``: the most groups (at most 32) that divide ``channels`` while
    keeping at least 4 channels per group (1 group when the width is below 8).

    Groups of a single channel would zero every 1x1 feature map, which proxies at small
    resolutions reach in their last stages; four channels per group avoids that.
    """
    best = 1
    for groups in range(1, GN_MAX_GROUPS + 1):
        if channels % groups == 0 and channels // groups >= GN_MIN_GROUP_WIDTH:
            best = groups
    return best


def make_norm(kind: str) -> NormFactory:
    """A factory ``channels -> norm layer`` for a spec's ``norm`` name.

    ``layernorm`` normalizes each sample over channels and space (GroupNorm with one group), which
    like ``groupnorm`` does not depend on the batch.
    """
    if kind == "batchnorm":
        return lambda c: nn.BatchNorm2d(c, eps=BN_EPS, momentum=BN_MOMENTUM)
    if kind == "groupnorm":
        return lambda c: nn.GroupNorm(groupnorm_groups(c), c, eps=BN_EPS)
    if kind == "layernorm":
        return lambda c: nn.GroupNorm(1, c, eps=BN_EPS)
    raise ValueError(f"unknown norm {kind!r}")  # the spec validated it already


def make_act(kind: str) -> ActFactory:
    if kind == "silu":
        return lambda: nn.SiLU(inplace=True)
    if kind == "relu":
        return lambda: nn.ReLU(inplace=True)
    raise ValueError(f"unknown activation {kind!r}")  # the spec validated it already


def conv(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1, bias: bool = False) -> nn.Conv2d:
    """A convolution with 'same' padding (k // 2) for odd kernels."""
    return nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=bias)


def drop_connect(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Stochastic depth: drop the whole residual branch of some samples, rescale the others."""
    if not training or rate <= 0.0:
        return x
    keep = 1.0 - rate
    mask = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
    return x * mask / keep


class SqueezeExcite(nn.Module):
    """Channel gate from global context; the bottleneck width follows the block's *input* width,
    as in the official EfficientNet / MnasNet code (not the expanded width)."""

    def __init__(self, channels: int, reduced: int, act: ActFactory) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1, bias=True)
        self.act = act()
        self.expand = nn.Conv2d(reduced, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean((2, 3), keepdim=True)
        scale = self.expand(self.act(self.reduce(scale)))
        return x * torch.sigmoid(scale)


def se_width(in_ch: int, se_ratio: float) -> int:
    return max(1, int(in_ch * se_ratio))


class _Residual(nn.Module):
    """Shared residual logic: identity shortcut with drop-connect where stride 1 and widths match."""

    has_residual: bool
    drop_rate: float

    def _setup_residual(self, in_ch: int, out_ch: int, stride: int, skip: bool, drop_rate: float) -> None:
        self.has_residual = skip and stride == 1 and in_ch == out_ch
        self.drop_rate = drop_rate

    def _finish(self, x: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
        if not self.has_residual:
            return x
        return drop_connect(x, self.drop_rate, self.training) + shortcut


class MBConv(_Residual):
    """Inverted bottleneck: 1x1 expand, k x k grouped (depthwise) conv, SE, 1x1 linear projection."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expansion: float, mid: int,
                 se_ratio: float, group_size: int, skip: bool, drop_rate: float,
                 norm: NormFactory, act: ActFactory) -> None:
        super().__init__()
        self._setup_residual(in_ch, out_ch, stride, skip, drop_rate)
        if expansion != 1:
            self.conv_pw = conv(in_ch, mid, 1)
            self.bn1 = norm(mid)
            self.act1 = act()
        else:
            self.conv_pw = self.bn1 = self.act1 = None
        self.conv_dw = conv(mid, mid, kernel, stride, groups=mid // group_size)
        self.bn2 = norm(mid)
        self.act2 = act()
        self.se = SqueezeExcite(mid, se_width(in_ch, se_ratio), act) if se_ratio > 0 else None
        self.conv_pwl = conv(mid, out_ch, 1)
        self.bn3 = norm(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        if self.conv_pw is not None:
            x = self.act1(self.bn1(self.conv_pw(x)))
        x = self.act2(self.bn2(self.conv_dw(x)))
        if self.se is not None:
            x = self.se(x)
        x = self.bn3(self.conv_pwl(x))
        return self._finish(x, shortcut)


class FusedMBConv(_Residual):
    """Fused inverted bottleneck: one k x k conv replaces expand + depthwise.

    With expansion 1 the block is a single k x k conv in->out with norm and activation; its SE (if
    any) then gates the input, as the official EfficientNetV2 code does.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expansion: float, mid: int,
                 se_ratio: float, skip: bool, drop_rate: float, norm: NormFactory, act: ActFactory) -> None:
        super().__init__()
        self._setup_residual(in_ch, out_ch, stride, skip, drop_rate)
        self.expanded = expansion != 1
        width = mid if self.expanded else in_ch
        if self.expanded:
            self.conv_exp = conv(in_ch, mid, kernel, stride)
            self.bn1 = norm(mid)
            self.act1 = act()
        else:
            self.conv_exp = self.bn1 = self.act1 = None
        self.se = SqueezeExcite(width, se_width(in_ch, se_ratio), act) if se_ratio > 0 else None
        if self.expanded:
            self.conv_pwl = conv(mid, out_ch, 1)
        else:
            self.conv_pwl = conv(in_ch, out_ch, kernel, stride)
        self.bn2 = norm(out_ch)
        self.act2 = None if self.expanded else act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        if self.conv_exp is not None:
            x = self.act1(self.bn1(self.conv_exp(x)))
        if self.se is not None:
            x = self.se(x)
        x = self.bn2(self.conv_pwl(x))
        if self.act2 is not None:
            x = self.act2(x)
        return self._finish(x, shortcut)


class DepthwiseSeparable(_Residual):
    """k x k depthwise (or grouped) conv, SE, 1x1 linear pointwise conv: MnasNet's SepConv."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, se_ratio: float, group_size: int,
                 skip: bool, drop_rate: float, norm: NormFactory, act: ActFactory) -> None:
        super().__init__()
        self._setup_residual(in_ch, out_ch, stride, skip, drop_rate)
        self.conv_dw = conv(in_ch, in_ch, kernel, stride, groups=in_ch // group_size)
        self.bn1 = norm(in_ch)
        self.act1 = act()
        self.se = SqueezeExcite(in_ch, se_width(in_ch, se_ratio), act) if se_ratio > 0 else None
        self.conv_pw = conv(in_ch, out_ch, 1)
        self.bn2 = norm(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.act1(self.bn1(self.conv_dw(x)))
        if self.se is not None:
            x = self.se(x)
        x = self.bn2(self.conv_pw(x))
        return self._finish(x, shortcut)


class ConvBlock(_Residual):
    """A plain k x k conv with norm and activation (MnasNet's "Conv" operator)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, skip: bool, drop_rate: float,
                 norm: NormFactory, act: ActFactory) -> None:
        super().__init__()
        self._setup_residual(in_ch, out_ch, stride, skip, drop_rate)
        self.conv = conv(in_ch, out_ch, kernel, stride)
        self.bn1 = norm(out_ch)
        self.act1 = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.act1(self.bn1(self.conv(x)))
        return self._finish(x, shortcut)


class Stem(nn.Module):
    """3x3 stride-2 conv, norm, activation."""

    def __init__(self, in_ch: int, out_ch: int, norm: NormFactory, act: ActFactory) -> None:
        super().__init__()
        self.conv = conv(in_ch, out_ch, 3, 2)
        self.bn = norm(out_ch)
        self.act = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class Head(nn.Module):
    """Optional 1x1 conv to ``head_ch`` (norm, activation), global average pool, dropout, linear."""

    def __init__(self, in_ch: int, head_ch: int, num_classes: int, dropout: float,
                 norm: NormFactory, act: ActFactory) -> None:
        super().__init__()
        if head_ch > 0:
            self.conv = conv(in_ch, head_ch, 1)
            self.bn = norm(head_ch)
            self.act = act()
            features = head_ch
        else:
            self.conv = self.bn = self.act = None
            features = in_ch
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv is not None:
            x = self.act(self.bn(self.conv(x)))
        return x.mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.forward_features(x)))


@torch.no_grad()
def init_weights(module: nn.Module, generator: torch.Generator | None = None) -> None:
    """The official EfficientNet initialization.

    Conv weights ~ N(0, sqrt(2 / fan_out)) with fan_out = k * k * out_channels / groups; linear
    weights ~ U(-1/sqrt(out_features), 1/sqrt(out_features)); biases 0; norm scale 1, shift 0.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            m.weight.normal_(0.0, math.sqrt(2.0 / fan_out), generator=generator)
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, nn.Linear):
            bound = 1.0 / math.sqrt(m.out_features)
            m.weight.uniform_(-bound, bound, generator=generator)
            m.bias.zero_()
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            m.weight.fill_(1.0)
            m.bias.zero_()
