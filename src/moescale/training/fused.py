"""Fused kernels for :mod:`moescale.training.model` (``ModelOptions(fused=True)``, the default).

Each is a ``torch.autograd.Function`` with a hand-written backward that computes exactly the
reference formula of the model module (tests/test_model_paths.py checks logits, losses and every
gradient of the two paths against each other), in fewer memory passes — what makes the CPU
trainer about as fast as ``transformers`` (benchmarks/bench_train_vs_hf.py). Where a kernel is
used and where the model falls back to its reference op:

- :class:`RMSNormFP32` — fp32 activations and weight, any device; other dtypes and
  ``torch.compile`` (Inductor fuses the formula itself) use the reference.
- :class:`Rope` — any dtype and device: it computes in the promoted dtype of the input and the
  tables (as the reference does: fp32 tables promote a bf16 input) and returns the input's
  gradient in the input's dtype; under ``torch.compile`` the reference is used.
- :class:`RoutedExperts` — any dtype and device, in the autocast dtype when autocast is on
  (also inside compiled graphs, which it leaves: the group sizes are data-dependent).

Shape suffixes as in the model module: ``T`` tokens, ``D`` hidden, ``E`` experts, ``K`` top-k,
``S`` token-expert slots, ``F`` expert width, ``H`` its input width (2F for gated FFNs).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from moescale.training.activations import ffn_activation


def eager() -> bool:
    """True outside ``torch.compile`` tracing (compiled graphs use the reference formulas)."""
    return not torch.compiler.is_compiling()


# ----- RMSNorm ------------------------------------------------------------------------------

class RMSNormFP32(torch.autograd.Function):
    """fp32 RMSNorm with a hand-written backward (about half the memory passes of autograd's):
    ``x̂ = x·r`` with ``r = 1/sqrt(mean(x²) + eps)``, ``y = x̂·g``;
    ``∂x = r·(∂y·g − x̂·mean(∂y·g·x̂))``, ``∂g = Σ_tokens ∂y·x̂``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        ms = torch.linalg.vector_norm(x, dim=-1, keepdim=True).square_().div_(x.shape[-1])
        rstd = ms.add_(eps).rsqrt_()
        xhat = x * rstd
        ctx.save_for_backward(xhat, weight, rstd)
        return xhat * weight

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        xhat, weight, rstd = ctx.saved_tensors
        grad_w = (grad * xhat).flatten(0, -2).sum(0) if ctx.needs_input_grad[1] else None
        grad_x = None
        if ctx.needs_input_grad[0]:
            gw = grad * weight
            dot = (gw * xhat).mean(-1, keepdim=True)
            grad_x = gw.sub_(xhat.mul(dot)).mul_(rstd)
        return grad_x, grad_w, None


def rms_norm_applies(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether :func:`rms_norm` may replace the reference: fp32 input and weight, eager."""
    return x.dtype == torch.float32 and weight.dtype == torch.float32 and eager()


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return RMSNormFP32.apply(x, weight, eps)


# ----- RoPE ---------------------------------------------------------------------------------

class Rope(torch.autograd.Function):
    """RoPE as a rotation of the halves ``(x₁, x₂)`` by ``(c, s)`` (the rotate-half tables'
    two halves are equal): ``(x₁c − x₂s, x₂c + x₁s)``; the gradient is the inverse rotation.
    Four fused multiply-adds over half-width tensors instead of autograd's negate / concatenate
    / multiply chain. Computes in ``result_type(x, cos)`` like the reference formula; the input
    gradient is returned in ``x``'s dtype, as autograd would."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        dtype = torch.result_type(x, cos)
        c, s = cos[..., :half].to(dtype), sin[..., :half].to(dtype)
        ctx.save_for_backward(c, s)
        ctx.x_dtype = x.dtype
        return Rope.rotate(x, c, s)

    @staticmethod
    def rotate(x: torch.Tensor, c: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        x1, x2 = x[..., :half], x[..., half:]
        out = torch.empty(x.shape, dtype=c.dtype, device=x.device)
        torch.mul(x1, c, out=out[..., :half]).addcmul_(x2, s, value=-1.0)
        torch.mul(x2, c, out=out[..., half:]).addcmul_(x1, s)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        c, s = ctx.saved_tensors
        return Rope.rotate(grad, c, -s).to(ctx.x_dtype), None, None


def rope(x_BHSd: torch.Tensor, cos_Sd: torch.Tensor, sin_Sd: torch.Tensor) -> torch.Tensor:
    return Rope.apply(x_BHSd, cos_Sd, sin_Sd)


def qkv_rope(qkv_BSX: torch.Tensor, n_heads: int, n_kv: int, cos_Sd: torch.Tensor,
             sin_Sd: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(q_BHSd, k_BGSd, v_BGSd)`` from the fused QKV projection with q and k rotated in one
    :class:`Rope` call (their heads are adjacent in ``qkv``; only without q/k norms)."""
    B, S, _ = qkv_BSX.shape
    d = cos_Sd.shape[-1]
    qk_BNSd = qkv_BSX[..., :(n_heads + n_kv) * d].view(B, S, n_heads + n_kv, d).transpose(1, 2)
    qk_BNSd = rope(qk_BNSd, cos_Sd, sin_Sd)
    v_BGSd = qkv_BSX[..., (n_heads + n_kv) * d:].view(B, S, n_kv, d).transpose(1, 2)
    return qk_BNSd[:, :n_heads], qk_BNSd[:, n_heads:], v_BGSd


# ----- routed experts -----------------------------------------------------------------------

def _expert_forward(ffn_type: str, h: torch.Tensor, width: int):
    """``(act(h), kept)``: the activation of one expert's rows and what its backward needs
    besides ``h`` (SwiGLU keeps ``silu(gate)``, so backward evaluates one exponential, not two)."""
    if ffn_type == "swiglu":
        silu = F.silu(h[:, :width])
        return silu * h[:, width:], silu
    return ffn_activation(ffn_type, h), None


def _expert_backward(ffn_type: str, grad_a: torch.Tensor, h: torch.Tensor, kept,
                     grad_h: torch.Tensor, want_a: bool) -> torch.Tensor | None:
    """Write ``∂L/∂h`` into ``grad_h`` from ``∂L/∂act``; return ``act(h)`` when ``want_a``."""
    aten, width = torch.ops.aten, grad_a.shape[1]
    gate, up = (h[:, :width], h[:, width:]) if ffn_type in ("swiglu", "geglu") else (h, None)
    a = None
    if ffn_type == "swiglu":
        silu = kept
        if want_a:
            a = silu * up
        torch.mul(grad_a, silu, out=grad_h[:, width:])
        aten.silu_backward.grad_input(grad_a.mul_(up), gate, grad_input=grad_h[:, :width])
        return a
    if want_a:
        a = ffn_activation(ffn_type, h)
    if ffn_type == "geglu":
        torch.mul(grad_a, F.gelu(gate, approximate="tanh"), out=grad_h[:, width:])
        aten.gelu_backward.grad_input(grad_a * up, gate, approximate="tanh",
                                      grad_input=grad_h[:, :width])
    elif ffn_type == "gelu":
        aten.gelu_backward.grad_input(grad_a, h, approximate="tanh", grad_input=grad_h)
    else:
        aten.threshold_backward.grad_input(grad_a, h, 0, grad_input=grad_h)
    return a


class RoutedExperts(torch.autograd.Function):
    """Routed-expert output of every token: gather → grouped expert FFNs → gate-weighted sum.

    ``order_S`` lists the kept token-expert slots (flat index ``t·K + k``) sorted by expert,
    ``counts`` the kept slots of each expert. Forward gathers ``x_SD = x_TD[order_S // K]``;
    for the rows of expert ``e`` computes ``h = x·w_in[e] (+ b_in[e])``, ``a = act(h)``,
    ``y = a·w_out[e] (+ b_out[e])`` — one expert at a time through both matmuls, so its
    intermediates stay in cache — then un-sorts ``y`` into ``(T, K, D)`` (dropped slots are
    zero) and returns ``Σ_k weights_TK[t, k] · y[t, k]``.

    Backward only gathers (no scatter-add): a kept slot's row is ``inv[t·K + k]``, and the input
    gradient of token ``t`` sums its ``K`` slot rows. Saved: ``x_SD``, ``h``, the un-sorted
    ``y`` and, for SwiGLU, ``silu(gate)``; the activation itself is recomputed.
    """

    @staticmethod
    def forward(ctx, x_TD, weights_TK, w_in_EDH, w_out_EFD, b_in_EH, b_out_ED,
                order_S, counts: list[int], ffn_type: str):
        n_tok, top_k = weights_TK.shape
        width = w_out_EFD.shape[1]
        x_SD = x_TD.index_select(0, order_S // top_k)
        h_SH = x_SD.new_empty(x_SD.shape[0], w_in_EDH.shape[2])
        n_kept = order_S.numel()
        dropless = n_kept == n_tok * top_k
        # one spare zero row for dropped slots
        y_SD = x_SD.new_empty(n_kept + (0 if dropless else 1), w_out_EFD.shape[2])
        if not dropless:
            y_SD[n_kept:].zero_()
        kept, start = [], 0
        for e, n in enumerate(counts):
            if n:
                rows = slice(start, start + n)
                if b_in_EH is None:
                    torch.mm(x_SD[rows], w_in_EDH[e], out=h_SH[rows])
                else:
                    torch.addmm(b_in_EH[e], x_SD[rows], w_in_EDH[e], out=h_SH[rows])
                a, k = _expert_forward(ffn_type, h_SH[rows], width)
                kept.append(k)
                if b_out_ED is None:
                    torch.mm(a, w_out_EFD[e], out=y_SD[rows])
                else:
                    torch.addmm(b_out_ED[e], a, w_out_EFD[e], out=y_SD[rows])
            start += n
        inv = order_S.new_full((n_tok * top_k,), n_kept)
        inv[order_S] = torch.arange(n_kept, device=order_S.device)
        y_TKD = y_SD.index_select(0, inv).view(n_tok, top_k, -1)
        out_TD = y_TKD[:, 0] * weights_TK[:, :1]
        for k in range(1, top_k):  # K is small: K fused multiply-adds beat a batched matmul
            out_TD.addcmul_(y_TKD[:, k], weights_TK[:, k:k + 1])
        ctx.save_for_backward(x_SD, weights_TK, w_in_EDH, w_out_EFD, h_SH, y_TKD, order_S, inv,
                              *[k for k in kept if k is not None])
        ctx.counts, ctx.ffn_type, ctx.dropless = counts, ffn_type, dropless
        ctx.has_kept = [k is not None for k in kept]
        return out_TD

    @staticmethod
    def backward(ctx, grad_TD):
        x_SD, weights_TK, w_in_EDH, w_out_EFD, h_SH, y_TKD, order_S, inv, *kept_saved = (
            ctx.saved_tensors)
        kept_iter = iter(kept_saved)
        kept = [next(kept_iter) if has else None for has in ctx.has_kept]
        need = ctx.needs_input_grad
        n_tok, top_k = weights_TK.shape
        grad_TD = grad_TD.contiguous()
        grad_w_TK = (y_TKD * grad_TD.unsqueeze(1)).sum(2) if need[1] else None
        # ∂L/∂y of each kept slot (sorted order): weight · grad of its token
        grad_y_SD = (weights_TK.unsqueeze(2) * grad_TD.unsqueeze(1)).view(n_tok * top_k, -1)
        grad_y_SD = grad_y_SD.index_select(0, order_S)
        n_kept = order_S.numel()
        grad_x_SD = x_SD.new_empty(n_kept + (0 if ctx.dropless else 1), x_SD.shape[1])
        if not ctx.dropless:
            grad_x_SD[n_kept:].zero_()
        grad_w_in = torch.zeros_like(w_in_EDH) if need[2] else None
        grad_w_out = torch.zeros_like(w_out_EFD) if need[3] else None
        grad_b_in = h_SH.new_zeros(w_in_EDH.shape[0], w_in_EDH.shape[2]) if need[4] else None
        grad_b_out = h_SH.new_zeros(w_out_EFD.shape[0], w_out_EFD.shape[2]) if need[5] else None
        start, i = 0, 0
        for e, n in enumerate(ctx.counts):
            if n:
                rows = slice(start, start + n)
                g, h = grad_y_SD[rows], h_SH[rows]
                grad_a = g @ w_out_EFD[e].t()
                grad_h = torch.empty_like(h)
                a = _expert_backward(ctx.ffn_type, grad_a, h, kept[i], grad_h,
                                     want_a=grad_w_out is not None)
                i += 1
                if grad_w_out is not None:
                    torch.mm(a.t(), g, out=grad_w_out[e])
                if grad_b_out is not None:
                    torch.sum(g, 0, out=grad_b_out[e])
                if grad_b_in is not None:
                    torch.sum(grad_h, 0, out=grad_b_in[e])
                if grad_w_in is not None:
                    torch.mm(x_SD[rows].t(), grad_h, out=grad_w_in[e])
                torch.mm(grad_h, w_in_EDH[e].t(), out=grad_x_SD[rows])
            start += n
        grad_x_TD = None
        if need[0]:
            grad_x_TD = grad_x_SD.index_select(0, inv).view(n_tok, top_k, -1).sum(1)
        return grad_x_TD, grad_w_TK, grad_w_in, grad_w_out, grad_b_in, grad_b_out, None, None, None


def dispatch(idx_TK: torch.Tensor, n_experts: int, capacity: int | None):
    """Sort the ``S = T·K`` slots by expert (a stable sort: tokens keep their order inside an
    expert, so a capacity keeps each expert's earliest slots, as the reference does).

    Returns ``(order_S, counts)``: the kept slots' flat indices ``t·K + k`` in expert order and
    the kept rows of each expert (a Python list)."""
    flat_S = idx_TK.reshape(-1)
    order_S = torch.argsort(flat_S, stable=True)
    load_E = torch.bincount(flat_S, minlength=n_experts)
    if capacity is None:
        return order_S, load_E.tolist()
    expert_S = flat_S[order_S]
    starts_E = torch.cumsum(load_E, 0) - load_E
    rank_S = torch.arange(flat_S.numel(), device=flat_S.device) - starts_E[expert_S]
    return order_S[rank_S < capacity], load_E.clamp(max=capacity).tolist()


def routed_experts(x_TD: torch.Tensor, weights_TK: torch.Tensor, idx_TK: torch.Tensor,
                   capacity: int | None, w_in_EDH: torch.Tensor, w_out_EFD: torch.Tensor,
                   b_in_EH: torch.Tensor | None, b_out_ED: torch.Tensor | None,
                   ffn_type: str) -> torch.Tensor:
    """:func:`dispatch` then :class:`RoutedExperts`, in the activations' dtype (the autocast
    dtype when autocast is on)."""
    order_S, counts = dispatch(idx_TK, w_in_EDH.shape[0], capacity)
    device = x_TD.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x_TD.dtype
    tensors = [t if t is None else t.to(dtype)
               for t in (x_TD, weights_TK, w_in_EDH, w_out_EFD, b_in_EH, b_out_ED)]
    with torch.autocast(device, enabled=False):
        return RoutedExperts.apply(*tensors, order_S, counts, ffn_type)


def prepare_for_compile() -> None:
    """Before ``torch.compile``: run :func:`routed_experts` eagerly inside compiled graphs
    (its group sizes depend on the data). Done here, not with a decorator at import, because
    ``torch.compiler.disable`` imports ``torch._dynamo`` — a second of every worker's start-up
    that a run without ``compile`` never needs."""
    global routed_experts
    if not getattr(routed_experts, "_eager_only", False):
        routed_experts = torch.compiler.disable(routed_experts)
        routed_experts._eager_only = True
