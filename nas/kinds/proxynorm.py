"""``layernorm_pn`` and ``groupnorm_pn``: LayerNorm / GroupNorm followed by Proxy Normalization.

Proxy Normalization (Labatie, Masters, Eaton-Rosen, Luschi, NeurIPS 2021: "Proxy-Normalizing
Activations to Match Batch Normalization while Removing Batch Dependence") normalizes the
*activation* that follows a batch-independent norm. "Making EfficientNet More Efficient" (Masters et
al., 2021) used it with LayerNorm and GroupNorm in EfficientNet, where it matched BatchNorm without
depending on the batch. Per channel c::

    y   = LN(x) or GN(x)                      the norm, without a scale or shift of its own
    z   = act(gamma_c * y + beta_c)
    Y~  = beta~_c + (1 + gamma~_c) * u        the channel's Gaussian proxy, u ~ N(0, 1)
    out = (z - E[act(gamma_c * Y~ + beta_c)]) / sqrt(Var[act(gamma_c * Y~ + beta_c)] + eps)

The mean and variance are those of the activation applied to the proxy, a Gaussian standing for
what ``y`` would look like under BatchNorm. They depend on the parameters only, never on the batch,
so each sample is treated alone, in training and inference alike. They are computed with a fixed
quadrature: ``u`` runs over the n = 200 midpoint quantiles of N(0, 1), Phi^-1((i + 0.5) / n), the
sample set of Graphcore's public implementation, and eps = 0.03 as there. Parameters per channel:
gamma, beta (the affine transform, moved out of the norm) and the proxy's gamma~, beta~ (both start
at 0, so the proxy starts as N(0, 1)): 4 per channel.

Where no activation follows the norm (the linear projection ending MBConv, Fused-MBConv and ds
blocks), there is nothing to proxy-normalize. As in Graphcore's EfficientNet code, the norm there
keeps a learnable per-channel scale and no shift (1 parameter per channel): normalizing an identity
activation would cancel that scale, the one knob that sizes the residual branch.

Cost: the proxy statistics are elementwise work on a (channels x 200) tensor and two reductions per
norm, whatever the batch and resolution. Like every norm's arithmetic they are not multiply-adds
for :func:`nas.counting.count`, and FlopCounterMode does not count them either (no matmul or conv).
This module imports torch: it defines layers, and the registry loads it only for specs that name it.
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from nas.kinds.groupnorm import groupnorm_groups
from nas.kinds.norm_kind import NORM_EPS, NormKind

PROXY_SAMPLES = 200
PROXY_EPS = 0.03


def normal_quantiles(samples: int = PROXY_SAMPLES) -> list[float]:
    """The midpoint quantiles Phi^-1((i + 0.5) / n) of N(0, 1): a fixed, symmetric quadrature."""
    normal = NormalDist()
    return [normal.inv_cdf((i + 0.5) / samples) for i in range(samples)]


class ProxyNormActivation(nn.Module):
    """``act(gamma * y + beta)`` normalized by the moments of ``act`` on the channel's Gaussian proxy."""

    def __init__(self, channels: int, activation: nn.Module, samples: int = PROXY_SAMPLES,
                 eps: float = PROXY_EPS) -> None:
        super().__init__()
        self.activation = activation
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.proxy_weight = nn.Parameter(torch.zeros(channels))
        self.proxy_bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("quantiles", torch.tensor(normal_quantiles(samples)), persistent=False)

    def proxy_moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel mean and variance of ``act(gamma * Y~ + beta)`` over the quadrature points."""
        proxy = self.proxy_bias[:, None] + (1 + self.proxy_weight[:, None]) * self.quantiles
        z = self.activation(self.weight[:, None] * proxy + self.bias[:, None])
        return z.mean(1), z.var(1, correction=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean, var = self.proxy_moments()
        shape = (1, -1, 1, 1)
        z = self.activation(x * self.weight.view(shape) + self.bias.view(shape))
        return (z - mean.view(shape)) * torch.rsqrt(var + self.eps).view(shape)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, samples={self.quantiles.shape[0]}, eps={self.eps}"


class UnshiftedGroupNorm(nn.Module):
    """GroupNorm without a shift; with a per-channel scale only when ``scale`` (no activation follows)."""

    def __init__(self, groups: int, channels: int, scale: bool) -> None:
        super().__init__()
        self.groups = groups
        self.eps = NORM_EPS
        self.weight = nn.Parameter(torch.ones(channels)) if scale else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x, self.groups, self.weight, None, self.eps)

    def extra_repr(self) -> str:
        return f"groups={self.groups}, scale={self.weight is not None}, eps={self.eps}"


class ProxyNormKind(NormKind):
    """A GroupNorm (``groups(channels)`` groups) followed by Proxy Normalization of its activation."""

    lr_scale = 0.25  # batch-independent: diverges at BatchNorm's default rate (BENCHMARKS.md, norm kinds)

    def __init__(self, name: str, groups: Callable[[int], int]) -> None:
        self.name = name
        self.groups = groups

    def build(self, channels: int, activation_follows: bool = True) -> nn.Module:
        return UnshiftedGroupNorm(self.groups(channels), channels, scale=not activation_follows)

    def wrap_activation(self, channels: int, activation: nn.Module) -> nn.Module:
        return ProxyNormActivation(channels, activation)

    def params(self, channels: int, activation_follows: bool = True) -> int:
        return 4 * channels if activation_follows else channels


def one_group(channels: int) -> int:
    """LayerNorm over channels and space: GroupNorm with a single group."""
    return 1


LAYERNORM_PN = ProxyNormKind("layernorm_pn", one_group)
GROUPNORM_PN = ProxyNormKind("groupnorm_pn", groupnorm_groups)

__all__ = ["GROUPNORM_PN", "LAYERNORM_PN", "PROXY_EPS", "PROXY_SAMPLES", "ProxyNormActivation", "ProxyNormKind",
           "UnshiftedGroupNorm", "normal_quantiles"]
