"""Mixture-of-experts layer: top-k token-choice router and grouped expert computation.

Tensor names carry their shape (torchtitan style). Legend:

- ``T`` tokens in the (flattened) batch, ``D`` hidden size, ``E`` routed experts,
- ``K`` experts per token (top-k), ``S = T·K`` token-expert slots, ``F`` expert FFN width.

Routing (``Router``): logits ``x_TD @ W_router`` then either

- ``"softmax"`` (Mixtral, Qwen, OLMoE): ``probs_TE = softmax(logits)``, take the top-k probabilities
  and, if ``norm_topk_prob``, renormalise them to sum to 1 — exactly the order of
  ``transformers`` (softmax → top-k → renormalise; for Mixtral this equals softmax over the top-k
  logits);
- ``"sigmoid"`` (DeepSeek-V3, arXiv:2412.19437 §2.1.2): ``scores = sigmoid(logits)``; experts are
  *chosen* by ``scores + bias_E`` where ``bias_E`` is a non-trained buffer nudged after each step
  toward balanced loads (auxiliary-loss-free balancing); the gate weights are the unbiased
  scores, renormalised if ``norm_topk_prob``, times ``routed_scaling_factor``.

Auxiliary losses (returned per layer; the trainer sums them over MoE layers and weights them,
see :class:`~moescale.training.config.TrainConfig`):

- load balance (Switch Transformer, arXiv:2101.03961 eq. 4): ``E · Σ_e f_e · P_e`` with
  ``f_e`` the fraction of the ``S`` slots sent to expert ``e`` and ``P_e`` its mean router
  probability; 1.0 when perfectly balanced.
- router z-loss (ST-MoE, arXiv:2202.08906 eq. 5): mean over tokens of ``logsumexp(logits)²``
  (softmax routers only; 0 for sigmoid scores).

Router logits are computed in fp32, also under bf16 autocast.

Experts (``GroupedExperts``): slots are sorted by expert (a stable sort, so tokens keep their
order inside an expert), gathered into one contiguous ``x_SD``, and each expert runs its whole
FFN on its own contiguous slice only (:class:`RoutedExperts`, one autograd function with a
hand-written backward: per expert both matmuls and the activation back to back, so the
intermediates stay in cache); outputs are un-sorted and combined with the gate weights.
:class:`GroupedMatmul` is the same grouped matmul as a standalone op (the reference path).
Dropless by default; with a capacity factor ``c`` each expert keeps at most ``ceil(c·S/E)``
slots (the earliest tokens) and the rest are dropped (contribute zero).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class RouterOutput:
    """What one MoE layer reports besides its output (all per layer)."""

    aux_loss: torch.Tensor  # scalar, Switch load-balance loss (1.0 = balanced)
    z_loss: torch.Tensor  # scalar, ST-MoE router z-loss
    load_E: torch.Tensor  # slots routed to each expert in this batch (before capacity drops)
    dropped: torch.Tensor  # number of slots dropped by the capacity limit


class GroupedMatmul(torch.autograd.Function):
    """``out_SN[rows of e] = x_SM[rows of e] @ w_EMN[e]`` for contiguous row groups.

    ``counts`` (a Python list, length ``E``) gives the rows of each expert in order. Each expert
    multiplies only its own rows; empty experts cost nothing and get a zero gradient.
    """

    @staticmethod
    def forward(ctx, x_SM: torch.Tensor, w_EMN: torch.Tensor, counts: list[int]) -> torch.Tensor:
        ctx.save_for_backward(x_SM, w_EMN)
        ctx.counts = counts
        out_SN = x_SM.new_empty(x_SM.shape[0], w_EMN.shape[2])
        start = 0
        for e, n in enumerate(counts):
            if n:
                torch.mm(x_SM[start:start + n], w_EMN[e], out=out_SN[start:start + n])
            start += n
        return out_SN

    @staticmethod
    def backward(ctx, grad_SN: torch.Tensor):
        x_SM, w_EMN = ctx.saved_tensors
        grad_x = x_SM.new_empty(x_SM.shape) if ctx.needs_input_grad[0] else None
        grad_w = torch.zeros_like(w_EMN) if ctx.needs_input_grad[1] else None
        grad_SN = grad_SN.contiguous()
        start = 0
        for e, n in enumerate(ctx.counts):
            if n:
                rows = slice(start, start + n)
                if grad_x is not None:
                    torch.mm(grad_SN[rows], w_EMN[e].t(), out=grad_x[rows])
                if grad_w is not None:
                    torch.mm(x_SM[rows].t(), grad_SN[rows], out=grad_w[e])
            start += n
        return grad_x, grad_w, None


def _gated_parts(ffn_type: str, h: torch.Tensor, width: int):
    return (h[:, :width], h[:, width:]) if ffn_type in ("swiglu", "geglu") else (h, None)


def _expert_forward(ffn_type: str, h: torch.Tensor, width: int):
    """``(act(h), kept)``: the activation of one expert's rows and what its backward needs
    besides ``h`` (SwiGLU keeps ``silu(gate)``, so backward evaluates one exponential, not two)."""
    gate, up = _gated_parts(ffn_type, h, width)
    if ffn_type == "swiglu":
        silu = F.silu(gate)
        return silu * up, silu
    return activation(ffn_type, gate, up), None


def _expert_backward(ffn_type: str, grad_a: torch.Tensor, h: torch.Tensor, kept,
                     grad_h: torch.Tensor, want_a: bool) -> torch.Tensor | None:
    """Write ``∂L/∂h`` into ``grad_h`` from ``∂L/∂act``; return ``act(h)`` when ``want_a``."""
    aten, width = torch.ops.aten, grad_a.shape[1]
    gate, up = _gated_parts(ffn_type, h, width)
    a = None
    if ffn_type == "swiglu":
        silu = kept
        if want_a:
            a = silu * up
        torch.mul(grad_a, silu, out=grad_h[:, width:])
        aten.silu_backward.grad_input(grad_a.mul_(up), gate, grad_input=grad_h[:, :width])
        return a
    if want_a:
        a = activation(ffn_type, gate, up)
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


@torch.compiler.disable  # data-dependent group sizes: run eagerly inside compiled graphs
def routed_experts(x_TD: torch.Tensor, weights_TK: torch.Tensor, w_in_EDH: torch.Tensor,
                   w_out_EFD: torch.Tensor, b_in_EH: torch.Tensor | None,
                   b_out_ED: torch.Tensor | None, order_S: torch.Tensor, counts: list[int],
                   ffn_type: str) -> torch.Tensor:
    """:class:`RoutedExperts` in the activations' dtype (the autocast dtype when it is on)."""
    device = x_TD.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x_TD.dtype
    tensors = [t if t is None else t.to(dtype)
               for t in (x_TD, weights_TK, w_in_EDH, w_out_EFD, b_in_EH, b_out_ED)]
    with torch.autocast(device, enabled=False):
        return RoutedExperts.apply(*tensors, order_S, counts, ffn_type)


@torch.compiler.disable  # data-dependent group sizes: run eagerly inside compiled graphs
def grouped_mm(x_SM: torch.Tensor, w_EMN: torch.Tensor, counts: list[int]) -> torch.Tensor:
    """Grouped matmul over expert-sorted rows (dtype follows autocast when it is on)."""
    if torch.is_autocast_enabled(x_SM.device.type):
        dtype = torch.get_autocast_dtype(x_SM.device.type)
        x_SM, w_EMN = x_SM.to(dtype), w_EMN.to(dtype)
    with torch.autocast(x_SM.device.type, enabled=False):
        return GroupedMatmul.apply(x_SM, w_EMN, counts)


class Router(nn.Module):
    """Top-k token-choice router (softmax or DeepSeek-V3 sigmoid with a balancing bias)."""

    def __init__(self, dim: int, n_experts: int, top_k: int, *, score: str = "softmax",
                 norm_topk_prob: bool = True, scaling: float = 1.0, bias: bool = False) -> None:
        super().__init__()
        self.gate = nn.Linear(dim, n_experts, bias=bias)
        self.n_experts, self.top_k, self.score = n_experts, top_k, score
        self.norm_topk_prob, self.scaling = norm_topk_prob, scaling
        # aux-loss-free balancing bias (sigmoid routing only); a buffer, never trained
        self.register_buffer("balance_bias_E", torch.zeros(n_experts), persistent=True)

    def forward(self, x_TD: torch.Tensor):
        """Returns ``(weights_TK, idx_TK, probs_TE, logits_TE)`` (probabilities in fp32)."""
        # fp32 routing (also under bf16 autocast): small logit differences pick the experts
        with torch.autocast(x_TD.device.type, enabled=False):
            bias = None if self.gate.bias is None else self.gate.bias.float()
            logits_TE = F.linear(x_TD.float(), self.gate.weight.float(), bias)
        if self.score == "softmax":
            probs_TE = torch.softmax(logits_TE, dim=-1)
            weights_TK, idx_TK = torch.topk(probs_TE, self.top_k, dim=-1)
        else:
            probs_TE = torch.sigmoid(logits_TE)
            _, idx_TK = torch.topk(probs_TE + self.balance_bias_E, self.top_k, dim=-1)
            weights_TK = probs_TE.gather(1, idx_TK)
        if self.norm_topk_prob:
            weights_TK = weights_TK / weights_TK.sum(dim=-1, keepdim=True).clamp_min(1e-20)
        return weights_TK * self.scaling, idx_TK, probs_TE, logits_TE

    @torch.no_grad()
    def update_balance_bias(self, load_E: torch.Tensor, rate: float) -> None:
        """DeepSeek-V3 update: raise the bias of under-loaded experts, lower over-loaded ones."""
        if self.score == "sigmoid" and rate > 0:
            load_E = load_E.float().to(self.balance_bias_E.device)
            self.balance_bias_E += rate * torch.sign(load_E.mean() - load_E)


def balance_losses(probs_TE: torch.Tensor, logits_TE: torch.Tensor, load_E: torch.Tensor,
                   n_slots: int, score: str = "softmax") -> tuple[torch.Tensor, torch.Tensor]:
    """Switch load-balance loss (1.0 when balanced) and ST-MoE z-loss for one layer.

    The z-loss ``mean_T(logsumexp(logits)²)`` keeps softmax logits small (ST-MoE eq. 5); it has
    no meaning for sigmoid scores, which are not normalised over experts, and is 0 there."""
    n_experts = probs_TE.shape[-1]
    # per-token normalisation is a no-op for softmax and turns sigmoid scores into a distribution
    p_E = (probs_TE / probs_TE.sum(-1, keepdim=True).clamp_min(1e-20)).mean(dim=0)
    f_E = load_E.to(p_E.dtype) / max(n_slots, 1)
    aux = n_experts * torch.sum(f_E * p_E)
    z = torch.logsumexp(logits_TE, dim=-1).square().mean() if score == "softmax" \
        else logits_TE.new_zeros(())
    return aux, z


def activation(ffn_type: str, gate: torch.Tensor, up: torch.Tensor | None) -> torch.Tensor:
    """SwiGLU ``silu(g)·u``, GeGLU ``gelu(g)·u`` (tanh approximation), or plain GELU/ReLU of ``g``."""
    if ffn_type == "swiglu":
        return F.silu(gate) * up
    if ffn_type == "geglu":
        return F.gelu(gate, approximate="tanh") * up
    return F.gelu(gate, approximate="tanh") if ffn_type == "gelu" else F.relu(gate)


class GroupedExperts(nn.Module):
    """``E`` expert FFNs stored as 3-D weights: ``w_in_EDH`` (H = 2F gate‖up, or F) and ``w_out_EFD``."""

    def __init__(self, dim: int, ffn: int, n_experts: int, ffn_type: str, bias: bool) -> None:
        super().__init__()
        self.ffn_type, self.gated = ffn_type, ffn_type in ("swiglu", "geglu")
        width = 2 * ffn if self.gated else ffn
        self.w_in_EDH = nn.Parameter(torch.empty(n_experts, dim, width))
        self.w_out_EFD = nn.Parameter(torch.empty(n_experts, ffn, dim))
        self.b_in_EH = nn.Parameter(torch.zeros(n_experts, width)) if bias else None
        self.b_out_ED = nn.Parameter(torch.zeros(n_experts, dim)) if bias else None

    def forward(self, x_TD: torch.Tensor, weights_TK: torch.Tensor, order_S: torch.Tensor,
                counts: list[int]) -> torch.Tensor:
        """Gate-weighted expert output per token (:class:`RoutedExperts`); ``order_S`` the kept
        slots sorted by expert, ``counts`` kept slots per expert (see :func:`dispatch`)."""
        return routed_experts(x_TD, weights_TK, self.w_in_EDH, self.w_out_EFD, self.b_in_EH,
                              self.b_out_ED, order_S, counts, self.ffn_type)

    def forward_unfused(self, x_SD: torch.Tensor, idx_S: torch.Tensor,
                        counts: list[int]) -> torch.Tensor:
        """Unweighted outputs of expert-sorted rows ``x_SD`` as two :class:`GroupedMatmul`
        calls around the activation (plain autograd; the reference :meth:`forward` is tested
        against)."""
        h_SH = grouped_mm(x_SD, self.w_in_EDH, counts)
        if self.b_in_EH is not None:
            h_SH = h_SH + self.b_in_EH[idx_S]
        if self.gated:
            gate_SF, up_SF = h_SH.chunk(2, dim=-1)
            h_SF = activation(self.ffn_type, gate_SF, up_SF)
        else:
            h_SF = activation(self.ffn_type, h_SH, None)
        out_SD = grouped_mm(h_SF, self.w_out_EFD, counts)
        if self.b_out_ED is not None:
            out_SD = out_SD + self.b_out_ED[idx_S]
        return out_SD


def dispatch(idx_TK: torch.Tensor, n_experts: int, capacity: int | None):
    """Sort the ``S = T·K`` slots by expert.

    Returns ``(order_S, token_S, expert_S, counts, load_E, keep_S)``: the stable sort permutation,
    the token and expert of each sorted slot, kept rows per expert (a Python list), routed slots
    per expert before drops, and the kept-slot mask in sorted order (``None`` when dropless).
    """
    top_k = idx_TK.shape[1]
    flat_S = idx_TK.reshape(-1)
    order_S = torch.argsort(flat_S, stable=True)
    expert_S = flat_S[order_S]
    load_E = torch.bincount(flat_S, minlength=n_experts)
    keep_S = None
    if capacity is not None:
        starts_E = torch.cumsum(load_E, 0) - load_E
        rank_S = torch.arange(flat_S.numel(), device=flat_S.device) - starts_E[expert_S]
        keep_S = rank_S < capacity
        order_S, expert_S = order_S[keep_S], expert_S[keep_S]
        counts = load_E.clamp(max=capacity).tolist()
    else:
        counts = load_E.tolist()
    return order_S, order_S // top_k, expert_S, counts, load_E, keep_S


class FeedForward(nn.Module):
    """A dense FFN: ``w_out(act(w_in x))`` with gate and up fused in ``w_in`` for gated types."""

    def __init__(self, dim: int, ffn: int, ffn_type: str, bias: bool) -> None:
        super().__init__()
        self.ffn_type, self.gated = ffn_type, ffn_type in ("swiglu", "geglu")
        self.w_in = nn.Linear(dim, 2 * ffn if self.gated else ffn, bias=bias)
        self.w_out = nn.Linear(ffn, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.w_in(x)
        if self.gated:
            gate, up = h.chunk(2, dim=-1)
            return self.w_out(activation(self.ffn_type, gate, up))
        return self.w_out(activation(self.ffn_type, h, None))


@dataclass(frozen=True)
class MoEOptions:
    """Routing choices that an :class:`~moescale.architecture.Architecture` does not fix."""

    score: str = "softmax"  # "softmax" (Mixtral/Qwen) or "sigmoid" (DeepSeek-V3)
    norm_topk_prob: bool = True  # renormalise the top-k weights (Mixtral: yes; Qwen2-MoE: no)
    routed_scaling_factor: float = 1.0  # DeepSeek-V3 multiplies routed outputs (2.5 for V3)
    capacity_factor: float | None = None  # None = dropless


class MoEFeedForward(nn.Module):
    """Routed experts (+ optional shared experts with an optional sigmoid gate) for one layer."""

    def __init__(self, dim: int, n_experts: int, top_k: int, expert_ffn: int, ffn_type: str,
                 *, bias: bool, router_bias: bool, n_shared: int = 0, shared_ffn: int = 0,
                 shared_gate: bool = False, options: MoEOptions = MoEOptions()) -> None:
        super().__init__()
        self.n_experts, self.top_k, self.options = n_experts, top_k, options
        self.router = Router(dim, n_experts, top_k, score=options.score, bias=router_bias,
                             norm_topk_prob=options.norm_topk_prob,
                             scaling=options.routed_scaling_factor)
        self.experts = GroupedExperts(dim, expert_ffn, n_experts, ffn_type, bias)
        self.shared = None
        if n_shared and bias and n_shared > 1:  # separate down-projection biases per expert
            self.shared = nn.ModuleList(FeedForward(dim, shared_ffn, ffn_type, True)
                                        for _ in range(n_shared))
        elif n_shared:  # n shared experts of width f are one FFN of width n·f
            self.shared = FeedForward(dim, n_shared * shared_ffn, ffn_type, bias)
        self.shared_gate = nn.Linear(dim, 1, bias=False) if shared_gate else None

    def capacity(self, n_tokens: int) -> int | None:
        """Slots one expert may take: ``ceil(c·T·K/E)``; None when dropless."""
        cf = self.options.capacity_factor
        return None if cf is None else math.ceil(cf * n_tokens * self.top_k / self.n_experts)

    def forward(self, x_BSD: torch.Tensor) -> tuple[torch.Tensor, RouterOutput]:
        x_TD = x_BSD.reshape(-1, x_BSD.shape[-1])
        weights_TK, idx_TK, probs_TE, logits_TE = self.router(x_TD)
        order_S, _, _, counts, load_E, keep_S = dispatch(
            idx_TK, self.n_experts, self.capacity(x_TD.shape[0]))
        out_TD = self.experts(x_TD, weights_TK, order_S, counts)
        out_TD = out_TD + self._shared(x_TD)
        aux, z = balance_losses(probs_TE, logits_TE, load_E, idx_TK.numel(), self.options.score)
        dropped = idx_TK.new_tensor(0) if keep_S is None else (~keep_S).sum()
        return out_TD.view_as(x_BSD), RouterOutput(aux, z, load_E.detach(), dropped)

    def _shared(self, x_TD: torch.Tensor) -> torch.Tensor | float:
        if self.shared is None:
            return 0.0
        if isinstance(self.shared, nn.ModuleList):
            out_TD = sum(ffn(x_TD) for ffn in self.shared)
        else:
            out_TD = self.shared(x_TD)
        if self.shared_gate is not None:
            out_TD = torch.sigmoid(self.shared_gate(x_TD)) * out_TD
        return out_TD
