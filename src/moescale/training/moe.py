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

Auxiliary losses (returned per layer, weighted by the trainer):

- load balance (Switch Transformer, arXiv:2101.03961 eq. 4): ``E · Σ_e f_e · P_e`` with
  ``f_e`` the fraction of the ``S`` slots sent to expert ``e`` and ``P_e`` its mean router
  probability; 1.0 when perfectly balanced.
- router z-loss (ST-MoE, arXiv:2202.08906 eq. 5): mean over tokens of ``logsumexp(logits)²``.

Experts (``GroupedExperts``): slots are sorted by expert (a stable sort, so tokens keep their
order inside an expert), gathered into one contiguous ``x_SD``, and each expert multiplies only
its own contiguous slice (:class:`GroupedMatmul`); outputs are un-sorted and combined with the
gate weights. Dropless by default; with a capacity factor ``c`` each expert keeps at most
``ceil(c·S/E)`` slots (the earliest tokens) and the rest are dropped (contribute zero).
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
        logits_TE = self.gate(x_TD).float()
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
                   n_slots: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Switch load-balance loss (1.0 when balanced) and ST-MoE z-loss for one layer."""
    n_experts = probs_TE.shape[-1]
    # per-token normalisation is a no-op for softmax and turns sigmoid scores into a distribution
    p_E = (probs_TE / probs_TE.sum(-1, keepdim=True).clamp_min(1e-20)).mean(dim=0)
    f_E = load_E.to(p_E.dtype) / max(n_slots, 1)
    aux = n_experts * torch.sum(f_E * p_E)
    z = torch.logsumexp(logits_TE, dim=-1).square().mean()
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

    def forward(self, x_SD: torch.Tensor, idx_S: torch.Tensor, counts: list[int]) -> torch.Tensor:
        """``x_SD`` sorted by expert (``idx_S`` the expert of each row, ``counts`` rows per expert)."""
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
        order_S, token_S, expert_S, counts, load_E, keep_S = dispatch(
            idx_TK, self.n_experts, self.capacity(x_TD.shape[0]))
        y_SD = self.experts(x_TD[token_S], expert_S, counts)
        w_S = weights_TK.reshape(-1)[order_S].to(y_SD.dtype)
        out_TD = torch.zeros_like(x_TD, dtype=y_SD.dtype).index_add(0, token_S, y_SD * w_S[:, None])
        out_TD = out_TD + self._shared(x_TD)
        aux, z = balance_losses(probs_TE, logits_TE, load_E, idx_TK.numel())
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
