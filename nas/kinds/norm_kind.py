"""What a normalization kind is: how it builds, how many parameters it has, how it wraps the
activation that follows it.

A network asks its norm kind for two layers wherever it normalizes: the norm itself
(:meth:`NormKind.build`) and, when an activation follows, the activation
(:meth:`NormKind.wrap_activation`; most kinds return it unchanged, Proxy Normalization wraps it).
:meth:`NormKind.params` counts both, so the analytic counter needs nothing else.

Multiply-adds. :func:`nas.counting.count` counts the multiply-adds of convolutions and linear layers
only, for every norm kind alike: a norm's own arithmetic (means, variances, scale and shift, and
any statistics a kind computes from its parameters) is elementwise work that
``torch.utils.flop_counter.FlopCounterMode`` does not count either. A kind must therefore compute
such statistics with elementwise and reduction ops, never with a matmul or convolution.

Initialization: a kind's layers set their own parameters in their constructors
(:func:`nas.blocks.init_weights` touches convolutions and linear layers only).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

NORM_EPS = 1e-3  # the official EfficientNet epsilon, used by every built-in norm kind


class NormKind:
    """Base class of a normalization kind; a subclass module registers one instance (or several)."""

    name: str = ""
    # The trainer's default peak learning rate is tuned for BatchNorm; a kind that trains only at a
    # lower rate says so here (the default budget multiplies its rate by this; an explicit lr wins).
    lr_scale: float = 1.0

    def build(self, channels: int, activation_follows: bool = True) -> "nn.Module":
        """The norm layer for ``channels`` channels. ``activation_follows`` is False where the norm
        ends a linear branch (the projection of an MBConv), which some kinds treat differently."""
        raise NotImplementedError

    def wrap_activation(self, channels: int, activation: "nn.Module") -> "nn.Module":
        """The activation that follows this norm; by default the activation itself."""
        return activation

    def params(self, channels: int, activation_follows: bool = True) -> int:
        """Trainable parameters of :meth:`build` plus those :meth:`wrap_activation` adds."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<norm kind {self.name}>"


__all__ = ["NORM_EPS", "NormKind"]
