"""Hand-written backwards of the fp32 RMSNorm and of RoPE against autograd of the
textbook formulas."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from moescale.training.model import RMSNorm, _RMSNormFP32  # noqa: E402


def test_rmsnorm_fp32_matches_autograd_reference():
    torch.manual_seed(0)
    norm = RMSNorm(7, 1e-5)
    torch.nn.init.normal_(norm.weight)
    x = torch.randn(3, 5, 7, requires_grad=True)
    got = norm(x)
    want = norm.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5))
    grad = torch.randn_like(got)
    torch.testing.assert_close(got, want)
    for a, b in zip(torch.autograd.grad(got, [x, norm.weight], grad),
                    torch.autograd.grad(want, [x, norm.weight], grad), strict=True):
        torch.testing.assert_close(a, b)


def test_rmsnorm_fp32_gradcheck():
    x = torch.randn(3, 5, 7, dtype=torch.double, requires_grad=True)
    w = torch.randn(7, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: _RMSNormFP32.apply(a, b, 1e-5), (x, w))


def test_rope_matches_rotate_half_formula_and_gradcheck():
    from moescale.training.model import _Rope, apply_rope, rope, rope_tables

    cos, sin = rope_tables(8, 6, 10000.0)
    x = torch.randn(2, 6, 3, 8).transpose(1, 2).requires_grad_()  # (B, H, S, hd) view
    got, want = rope(x, cos, sin), apply_rope(x, cos, sin)
    grad = torch.randn_like(got)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(torch.autograd.grad(got, x, grad)[0],
                               torch.autograd.grad(want, x, grad)[0])
    xd = torch.randn(2, 3, 6, 8, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: _Rope.apply(a, cos.double(), sin.double()), (xd,))
