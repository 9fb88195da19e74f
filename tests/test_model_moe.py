"""Routing and grouped expert computation (fused and reference paths) against naive
references."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from moescale.training.activations import activation  # noqa: E402
from moescale.training.fused import RoutedExperts, dispatch  # noqa: E402
from moescale.training.model import MoEFeedForward, MoEOptions  # noqa: E402


def _naive_moe(layer: MoEFeedForward, x_TD: torch.Tensor) -> torch.Tensor:
    """Per-token loop (the reference only): each token through its top-k experts."""
    weights_TK, idx_TK, _, _ = layer.router(x_TD)
    ex = layer.experts
    out = torch.zeros_like(x_TD)
    for t in range(x_TD.shape[0]):
        for w, e in zip(weights_TK[t], idx_TK[t], strict=True):
            gate, up = (x_TD[t] @ ex.w_in_EDH[e]).chunk(2)
            out[t] += w * (activation("swiglu", gate, up) @ ex.w_out_EFD[e])
    return out


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("score", ["softmax", "sigmoid"])
def test_grouped_experts_match_per_token_loop(score, fused):
    torch.manual_seed(0)
    layer = MoEFeedForward(16, 6, 2, 8, "swiglu", bias=False, router_bias=False,
                           options=MoEOptions(score=score), fused=fused)
    for p in layer.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(2, 7, 16)
    got, routing = layer(x)
    want = _naive_moe(layer, x.view(-1, 16)).view_as(x)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert int(routing.load_E.sum()) == 14 * 2
    assert int(routing.dropped) == 0
    assert 0 < routing.aux_loss.item() < 6  # E · Σ f·P lies in (0, E]


@pytest.mark.parametrize("fused", [True, False])
def test_capacity_factor_drops_overflow(fused):
    torch.manual_seed(0)
    layer = MoEFeedForward(8, 4, 1, 8, "swiglu", bias=False, router_bias=False,
                           options=MoEOptions(capacity_factor=1.0), fused=fused)
    for p in layer.experts.parameters():  # a bare layer's experts are uninitialised memory
        torch.nn.init.normal_(p, std=0.3)
    with torch.no_grad():  # send every token to expert 0
        layer.router.gate.weight.zero_()
        layer.router.gate.weight[0] = 10.0
    x = torch.rand(1, 12, 8) + 0.1
    out, routing = layer(x)
    capacity = 3  # ceil(1.0 * 12 tokens * 1 / 4 experts)
    assert int(routing.dropped) == 12 - capacity
    assert (out[0, capacity:] == 0).all() and (out[0, :capacity] != 0).any()


def test_sigmoid_bias_moves_toward_balance():
    layer = MoEFeedForward(8, 4, 1, 8, "swiglu", bias=False, router_bias=False,
                           options=MoEOptions(score="sigmoid"))
    layer.router.update_balance_bias(torch.tensor([10, 0, 1, 1]), rate=0.1)
    assert layer.router.balance_bias_E.tolist() == pytest.approx([-0.1, 0.1, 0.1, 0.1])


@pytest.mark.parametrize("ffn_type", ["swiglu", "geglu", "gelu", "relu"])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("capacity_factor", [None, 0.8])
def test_fused_routed_experts_match_autograd_and_gradcheck(ffn_type, bias, capacity_factor):
    """The hand-written backward of :class:`RoutedExperts` (dropless and with drops) against
    the reference layer (a loop over experts in plain autograd) with the same weights."""
    torch.manual_seed(0)
    layer = MoEFeedForward(6, 5, 2, 4, ffn_type, bias=bias, router_bias=False,
                           options=MoEOptions(capacity_factor=capacity_factor)).double()
    for p in layer.parameters():
        torch.nn.init.normal_(p, std=0.5)
    x = torch.randn(2, 9, 6, dtype=torch.double, requires_grad=True)
    params = [x, *layer.parameters()]
    got, routing = layer(x)
    grad = torch.randn_like(got)
    layer.experts.fused = False
    want, want_routing = layer(x)
    assert torch.equal(routing.load_E, want_routing.load_E)
    assert torch.equal(routing.dropped, want_routing.dropped)
    torch.testing.assert_close(got, want)
    for a, b in zip(torch.autograd.grad(got, params, grad), torch.autograd.grad(want, params, grad),
                    strict=True):
        torch.testing.assert_close(a, b)
    assert (int(routing.dropped) > 0) == (capacity_factor is not None)

    x_TD = x.detach().view(-1, 6).requires_grad_()
    weights_TK, idx_TK, _, _ = layer.router(x_TD)
    order_S, counts = dispatch(idx_TK, 5, layer.capacity(18))
    ex = layer.experts
    inputs = (x_TD, weights_TK.detach().double().requires_grad_(), ex.w_in_EDH, ex.w_out_EFD,
              ex.b_in_EH, ex.b_out_ED)
    assert torch.autograd.gradcheck(
        lambda *t: RoutedExperts.apply(*t, order_S, counts, ffn_type), inputs)
