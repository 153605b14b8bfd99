"""Proxy Normalization (layernorm_pn, groupnorm_pn): the proxy moments against numerical
integration, the normalizing property on Gaussian inputs, gradients, the projection norm without
an activation, and learning. Counting, batch independence and round trips are checked for every
norm kind in tests/test_kinds.py, tests/test_counting.py and tests/test_blocks_builder.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import integrate, stats
from torch import nn

from nas.blockstrings import spec_from_block_strings
from nas.blocks import MBConv
from nas.builder import build_model
from nas.counting import count
from nas.kinds import NORMS
from nas.kinds.proxynorm import PROXY_EPS, ProxyNormActivation, UnshiftedGroupNorm, normal_quantiles
from nas.presets import preset

pytestmark = pytest.mark.usefixtures("one_thread")

ACTIVATIONS = {"silu": (nn.SiLU, lambda v: v / (1 + np.exp(-v))), "relu": (nn.ReLU, lambda v: max(v, 0.0))}
# (gamma, beta, proxy gamma~, proxy beta~)
POINTS = [(1.0, 0.0, 0.0, 0.0), (2.0, -1.0, 0.3, 0.5), (0.5, 1.0, -0.5, -1.0)]


def layer_at(activation: nn.Module, gamma: float, beta: float, proxy_gamma: float, proxy_beta: float,
             channels: int = 1) -> ProxyNormActivation:
    layer = ProxyNormActivation(channels, activation)
    with torch.no_grad():
        layer.weight.fill_(gamma)
        layer.bias.fill_(beta)
        layer.proxy_weight.fill_(proxy_gamma)
        layer.proxy_bias.fill_(proxy_beta)
    return layer


def test_quadrature_points_are_the_symmetric_normal_quantiles():
    q = np.array(normal_quantiles(200))
    assert q.shape == (200,) and np.allclose(q, -q[::-1]) and abs(q.mean()) < 1e-12
    assert q[0] == pytest.approx(stats.norm.ppf(0.5 / 200)) and 0.99 < q.var() < 1.0


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
@pytest.mark.parametrize("point", POINTS)
def test_proxy_moments_match_numerical_integration(act, point):
    module, f = ACTIVATIONS[act]
    gamma, beta, proxy_gamma, proxy_beta = point
    mean, var = (t.item() for t in layer_at(module(), *point).proxy_moments())

    def h(u: float) -> float:  # the activation of the affine proxy Y~ = beta~ + (1 + gamma~) u
        return f(gamma * (proxy_beta + (1 + proxy_gamma) * u) + beta)

    expected_mean = integrate.quad(lambda u: h(u) * stats.norm.pdf(u), -12, 12)[0]
    expected_var = integrate.quad(lambda u: h(u) ** 2 * stats.norm.pdf(u), -12, 12)[0] - expected_mean ** 2
    # the 200-point midpoint rule is within 1% (it sees 0.994 of the normal's variance)
    assert mean == pytest.approx(expected_mean, abs=2e-3)
    assert var == pytest.approx(expected_var, rel=0.015)


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_gaussian_inputs_come_out_normalized_per_channel(act):
    # The defining property: if the normalized pre-activation of channel c is distributed like its proxy
    # N(beta~, (1 + gamma~)^2), the output has mean 0 and variance Var / (Var + eps), for any gamma, beta.
    gen = torch.Generator().manual_seed(0)
    layer = ProxyNormActivation(3, ACTIVATIONS[act][0]())
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        layer.bias.copy_(torch.tensor([0.0, -1.0, 1.0]))
        layer.proxy_weight.copy_(torch.tensor([0.0, 0.3, -0.5]))
        layer.proxy_bias.copy_(torch.tensor([0.0, 0.5, -1.0]))
        y = torch.randn(4000, 3, 4, 4, generator=gen)
        y = layer.proxy_bias.view(1, 3, 1, 1) + (1 + layer.proxy_weight.view(1, 3, 1, 1)) * y
        out = layer(y)
        _, var = layer.proxy_moments()
    per_channel = out.transpose(0, 1).reshape(3, -1)
    assert per_channel.mean(1).abs().max() < 0.02
    assert torch.allclose(per_channel.var(1), var / (var + PROXY_EPS), rtol=0.03)


def test_gradients_reach_every_parameter_and_are_exact():
    layer = layer_at(nn.SiLU(inplace=True), 1.5, -0.5, 0.2, 0.3, channels=1).double()
    x = torch.randn(2, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (x,))
    layer(x).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in layer.parameters())


def test_norms_followed_by_an_activation_hand_their_affine_to_it():
    for name, groups in (("layernorm_pn", 1), ("groupnorm_pn", 24)):
        kind = NORMS[name]
        before_act, projection = kind.build(96, True), kind.build(96, False)
        assert isinstance(before_act, UnshiftedGroupNorm) and before_act.groups == groups
        assert before_act.weight is None and projection.weight is not None  # scale only, no shift
        assert isinstance(kind.wrap_activation(96, nn.SiLU()), ProxyNormActivation)
    block = MBConv(16, 16, expansion=4, se_ratio=0.25, norm="layernorm_pn")
    assert isinstance(block.act1, ProxyNormActivation) and isinstance(block.act2, ProxyNormActivation)
    assert isinstance(block.se.act, nn.SiLU) and block.bn3.weight.shape == (16,)  # SE keeps the plain activation


def test_proxy_statistics_are_not_state_and_follow_the_module():
    model = build_model(preset("efficientnet-b0").with_(norm="groupnorm_pn", num_classes=10))
    assert not any("quantiles" in key for key in model.state_dict())
    act = model.stem.act
    assert act.quantiles.dtype == torch.float32 and model.double().stem.act.quantiles.dtype == torch.float64


@pytest.mark.parametrize("norm", ["layernorm_pn", "groupnorm_pn"])
def test_a_small_network_learns_with_proxy_norm(norm, train_steps):
    from nas.data import load_dataset

    data = load_dataset("digits")
    x = (data.train_x.float() / 255 - 0.5) / 0.25
    spec = spec_from_block_strings("ir_r1_k3_s1_e4_c16_se0.25 ir_r2_k3_s2_e4_c24_se0.25", stem_channels=16,
                                   head_channels=64, resolution=8, num_classes=10, in_chans=1, norm=norm,
                                   dropout=0.0, drop_connect_rate=0.0)
    model = build_model(spec, generator=torch.Generator().manual_seed(0))
    assert count(spec).params == sum(p.numel() for p in model.parameters())
    losses = train_steps(model, x, data.train_y, torch.optim.AdamW(model.parameters(), lr=3e-3), steps=60, batch=64)
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    model.eval()
    with torch.inference_mode():
        minival = (data.minival_x.float() / 255 - 0.5) / 0.25
        accuracy = (model(minival).argmax(1) == data.minival_y).float().mean().item()
    assert accuracy > 0.6  # chance is 0.1
