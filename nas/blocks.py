"""The layers networks are built from: MBConv, Fused-MBConv, depthwise-separable and conv blocks,
squeeze-excite, stem and head. Public: use them in any network, not only in built specs.

Every block takes plain arguments (widths, kernel, stride, expansion, SE ratio, group size, skip,
drop-connect rate) and its norm and activation either by registry name (``norm="groupnorm"``,
``activation="relu"``; see :data:`nas.kinds.NORMS` and :data:`nas.kinds.ACTIVATIONS`) or as a factory
(``norm=lambda c: nn.BatchNorm2d(c)``, ``activation=nn.Hardswish``). The builder uses these same
classes. Arguments are validated like a spec's stage fields and raise :class:`~nas.errors.SpecError`.

Each ``forward`` is a short straight sequence of named sub-layers, which keeps the analytic counter
(:meth:`nas.kinds.block_kind.BlockKind.cost`) easy to check against it.

    >>> block = MBConv(32, 32, kernel=5, expansion=4, se_ratio=0.25, norm="groupnorm")
    >>> block(torch.zeros(2, 32, 16, 16)).shape
    torch.Size([2, 32, 16, 16])
"""

from __future__ import annotations

import math
from typing import Callable, Union

import torch
from torch import nn

from nas.errors import SpecError
from nas.kinds import ACTIVATIONS, NORMS
from nas.spec import StageSpec, expanded_width, se_width

NormFactory = Callable[[int], nn.Module]
ActFactory = Callable[[], nn.Module]
Norm = Union[str, NormFactory]
Activation = Union[str, ActFactory]


def activation_factory(activation: Activation) -> ActFactory:
    """``activation`` as a factory ``() -> nn.Module``: a registry name resolved, a factory kept."""
    if isinstance(activation, str):
        return ACTIVATIONS[activation]
    if not callable(activation):
        raise SpecError(f"activation: expected an activation name or a factory () -> module, got {activation!r}",
                        field="activation")
    return activation


class NormAct:
    """The norm and activation layers of a block, from registry names or factories.

    A registered norm kind decides both layers where a norm is followed by an activation (Proxy
    Normalization, for one, wraps the activation); a factory norm is called as ``norm(channels)``
    and a factory activation as ``activation()``.
    """

    def __init__(self, norm: Norm = "batchnorm", activation: Activation = "silu") -> None:
        if isinstance(norm, str):
            self.kind = NORMS[norm]
        elif callable(norm):
            self.kind = None
        else:
            raise SpecError(f"norm: expected a norm name or a factory channels -> module, got {norm!r}", field="norm")
        self._norm = norm
        self.activation = activation_factory(activation)

    def norm(self, channels: int, activation_follows: bool = True) -> nn.Module:
        if self.kind is None:
            return self._norm(channels)
        return self.kind.build(channels, activation_follows)

    def act(self, channels: int) -> nn.Module:
        """The activation after a norm of ``channels`` channels."""
        activation = self.activation()
        return activation if self.kind is None else self.kind.wrap_activation(channels, activation)


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


def _validated(block: str, in_channels: int, drop_rate: float, **fields) -> StageSpec:
    """Check a block's arguments with the spec's own rules (one place for them)."""
    if not (isinstance(in_channels, int) and not isinstance(in_channels, bool) and in_channels >= 1):
        raise SpecError(f"in_channels: must be an integer >= 1, got {in_channels!r}", field="in_channels")
    if isinstance(drop_rate, bool) or not isinstance(drop_rate, (int, float)) or not 0.0 <= drop_rate < 1.0:
        raise SpecError(f"drop_rate: must be in [0, 1), got {drop_rate!r}", field="drop_rate")
    stage = StageSpec(block=block, repeats=1, **fields)
    width = stage.mid_channels(in_channels)
    if width % stage.group_size:
        raise SpecError(f"group_size: {stage.group_size} does not divide the {width} channels of the grouped "
                        "convolution", field="group_size")
    return stage


class SqueezeExcite(nn.Module):
    """Channel gate from global context: mean-pool, 1x1 reduce, activation, 1x1 expand, sigmoid.

    EfficientNet / MnasNet size the bottleneck from the block's *input* width (not the expanded
    one): pass ``reduced_channels`` for that; the default is a quarter of ``channels``.
    """

    def __init__(self, channels: int, reduced_channels: int | None = None, activation: Activation = "silu") -> None:
        super().__init__()
        reduced = se_width(channels, 0.25) if reduced_channels is None else reduced_channels
        self.reduce = nn.Conv2d(channels, reduced, 1, bias=True)
        self.act = activation_factory(activation)()
        self.expand = nn.Conv2d(reduced, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean((2, 3), keepdim=True)
        scale = self.expand(self.act(self.reduce(scale)))
        return x * torch.sigmoid(scale)


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


def _se(width: int, in_channels: int, se_ratio: float, activation: Activation) -> SqueezeExcite | None:
    return SqueezeExcite(width, se_width(in_channels, se_ratio), activation) if se_ratio > 0 else None


class MBConv(_Residual):
    """Inverted bottleneck: 1x1 expand (none at expansion 1), k x k depthwise conv (``group_size``
    channels per group; 1 = depthwise), squeeze-excite, 1x1 linear projection; residual where
    ``skip`` and the shapes allow, with drop-connect at ``drop_rate`` while training."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3, stride: int = 1, expansion: float = 6,
                 se_ratio: float = 0.25, group_size: int = 1, *, norm: Norm = "batchnorm",
                 activation: Activation = "silu", skip: bool = True, drop_rate: float = 0.0) -> None:
        super().__init__()
        _validated("mbconv", in_channels, drop_rate, kernel=kernel, stride=stride, expansion=expansion,
                   out_channels=out_channels, se_ratio=se_ratio, skip=skip, group_size=group_size)
        layers = NormAct(norm, activation)
        mid = expanded_width(in_channels, expansion)
        self._setup_residual(in_channels, out_channels, stride, skip, drop_rate)
        if expansion != 1:
            self.conv_pw = conv(in_channels, mid, 1)
            self.bn1 = layers.norm(mid)
            self.act1 = layers.act(mid)
        else:
            self.conv_pw = self.bn1 = self.act1 = None
        self.conv_dw = conv(mid, mid, kernel, stride, groups=mid // group_size)
        self.bn2 = layers.norm(mid)
        self.act2 = layers.act(mid)
        self.se = _se(mid, in_channels, se_ratio, layers.activation)
        self.conv_pwl = conv(mid, out_channels, 1)
        self.bn3 = layers.norm(out_channels, activation_follows=False)

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
    """Fused inverted bottleneck: one k x k conv replaces expand + depthwise, then SE and a 1x1
    linear projection.

    With expansion 1 the block is a single k x k conv in->out with norm and activation; its SE (if
    any) then gates the input, as the official EfficientNetV2 code does.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3, stride: int = 1, expansion: float = 4,
                 se_ratio: float = 0.0, *, norm: Norm = "batchnorm", activation: Activation = "silu",
                 skip: bool = True, drop_rate: float = 0.0) -> None:
        super().__init__()
        _validated("fused_mbconv", in_channels, drop_rate, kernel=kernel, stride=stride, expansion=expansion,
                   out_channels=out_channels, se_ratio=se_ratio, skip=skip)
        layers = NormAct(norm, activation)
        self._setup_residual(in_channels, out_channels, stride, skip, drop_rate)
        self.expanded = expansion != 1
        if self.expanded:
            mid = expanded_width(in_channels, expansion)
            self.conv_exp = conv(in_channels, mid, kernel, stride)
            self.bn1 = layers.norm(mid)
            self.act1 = layers.act(mid)
            self.se = _se(mid, in_channels, se_ratio, layers.activation)
            self.conv_pwl = conv(mid, out_channels, 1)
            self.bn2 = layers.norm(out_channels, activation_follows=False)
            self.act2 = None
        else:
            self.conv_exp = self.bn1 = self.act1 = None
            self.se = _se(in_channels, in_channels, se_ratio, layers.activation)
            self.conv_pwl = conv(in_channels, out_channels, kernel, stride)
            self.bn2 = layers.norm(out_channels)
            self.act2 = layers.act(out_channels)

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

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3, stride: int = 1, se_ratio: float = 0.0,
                 group_size: int = 1, *, norm: Norm = "batchnorm", activation: Activation = "silu",
                 skip: bool = True, drop_rate: float = 0.0) -> None:
        super().__init__()
        _validated("ds", in_channels, drop_rate, kernel=kernel, stride=stride, expansion=1,
                   out_channels=out_channels, se_ratio=se_ratio, skip=skip, group_size=group_size)
        layers = NormAct(norm, activation)
        self._setup_residual(in_channels, out_channels, stride, skip, drop_rate)
        self.conv_dw = conv(in_channels, in_channels, kernel, stride, groups=in_channels // group_size)
        self.bn1 = layers.norm(in_channels)
        self.act1 = layers.act(in_channels)
        self.se = _se(in_channels, in_channels, se_ratio, layers.activation)
        self.conv_pw = conv(in_channels, out_channels, 1)
        self.bn2 = layers.norm(out_channels, activation_follows=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.act1(self.bn1(self.conv_dw(x)))
        if self.se is not None:
            x = self.se(x)
        x = self.bn2(self.conv_pw(x))
        return self._finish(x, shortcut)


class ConvBlock(_Residual):
    """A plain k x k conv with norm and activation (MnasNet's "Conv" operator)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3, stride: int = 1, *,
                 norm: Norm = "batchnorm", activation: Activation = "silu", skip: bool = True,
                 drop_rate: float = 0.0) -> None:
        super().__init__()
        _validated("conv", in_channels, drop_rate, kernel=kernel, stride=stride, expansion=1,
                   out_channels=out_channels, skip=skip)
        layers = NormAct(norm, activation)
        self._setup_residual(in_channels, out_channels, stride, skip, drop_rate)
        self.conv = conv(in_channels, out_channels, kernel, stride)
        self.bn1 = layers.norm(out_channels)
        self.act1 = layers.act(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.act1(self.bn1(self.conv(x)))
        return self._finish(x, shortcut)


class Stem(nn.Module):
    """3x3 stride-2 conv, norm, activation."""

    def __init__(self, in_channels: int, out_channels: int, *, norm: Norm = "batchnorm",
                 activation: Activation = "silu") -> None:
        super().__init__()
        layers = NormAct(norm, activation)
        self.conv = conv(in_channels, out_channels, 3, 2)
        self.bn = layers.norm(out_channels)
        self.act = layers.act(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class Head(nn.Module):
    """Optional 1x1 conv to ``head_channels`` (norm, activation; 0 = none), global average pool,
    dropout, linear classifier."""

    def __init__(self, in_channels: int, head_channels: int, num_classes: int, dropout: float = 0.2, *,
                 norm: Norm = "batchnorm", activation: Activation = "silu") -> None:
        super().__init__()
        if head_channels > 0:
            layers = NormAct(norm, activation)
            self.conv = conv(in_channels, head_channels, 1)
            self.bn = layers.norm(head_channels)
            self.act = layers.act(head_channels)
            features = head_channels
        else:
            self.conv = self.bn = self.act = None
            features = in_channels
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
    """The official EfficientNet initialization of convolutions and linear layers.

    Conv weights ~ N(0, sqrt(2 / fan_out)) with fan_out = k * k * out_channels / groups; linear
    weights ~ U(-1/sqrt(out_features), 1/sqrt(out_features)); biases 0. Norm layers initialize
    themselves (scale 1, shift 0 for the built-in kinds; see :mod:`nas.kinds.norm_kind`).
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


__all__ = ["ConvBlock", "DepthwiseSeparable", "FusedMBConv", "Head", "MBConv", "NormAct", "SqueezeExcite", "Stem",
           "activation_factory", "conv", "drop_connect", "init_weights"]
