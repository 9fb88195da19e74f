"""Hand-written backwards of the fp32 RMSNorm and of RoPE against autograd of the
textbook formulas."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from moescale.training.fused import RMSNormFP32, Rope, rope  # noqa: E402
from moescale.training.model import RMSNorm, apply_rope, rope_tables  # noqa: E402


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
    assert torch.autograd.gradcheck(lambda a, b: RMSNormFP32.apply(a, b, 1e-5), (x, w))


def test_rope_matches_rotate_half_formula_and_gradcheck():
    cos, sin = rope_tables(8, 6, 10000.0)
    x = torch.randn(2, 6, 3, 8).transpose(1, 2).requires_grad_()  # (B, H, S, hd) view
    got, want = rope(x, cos, sin), apply_rope(x, cos, sin)
    grad = torch.randn_like(got)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(torch.autograd.grad(got, x, grad)[0],
                               torch.autograd.grad(want, x, grad)[0])
    xd = torch.randn(2, 3, 6, 8, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: Rope.apply(a, cos.double(), sin.double()), (xd,))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_rope_kernel_in_other_dtypes_matches_the_formula(dtype):
    """The fused RoPE computes in the promoted dtype of the input and the fp32 tables, as the
    formula does, and returns the input's gradient in the input's dtype, as autograd does."""
    cos, sin = rope_tables(8, 6, 10000.0)
    x = torch.randn(2, 3, 6, 8).to(dtype).requires_grad_()
    got, want = rope(x, cos, sin), apply_rope(x, cos, sin)
    assert got.dtype == want.dtype == torch.promote_types(dtype, torch.float32)
    torch.testing.assert_close(got, want)
    grad = torch.randn_like(got)
    got_grad, want_grad = (torch.autograd.grad(y, x, grad)[0] for y in (got, want))
    assert got_grad.dtype == dtype
    xd = x.detach().double().requires_grad_()
    exact = torch.autograd.grad(apply_rope(xd, cos.double(), sin.double()), xd, grad.double())[0]
    tol = {torch.bfloat16: 1e-2, torch.float16: 1e-3, torch.float64: 1e-12}[dtype]
    torch.testing.assert_close(got_grad.double(), exact, atol=tol, rtol=tol)
    torch.testing.assert_close(want_grad.double(), exact, atol=tol, rtol=tol)
