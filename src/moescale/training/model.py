"""A decoder-only mixture-of-experts transformer, built from an
:class:`~moescale.accounting.architecture.Architecture` and written to be read top to bottom.

Pre-norm blocks ``x + attn(norm(x))``, ``x + ffn(norm(x))`` (GPT-2, Radford et al. 2019); RoPE
in the rotate-half layout of ``transformers`` (arXiv:2104.09864); grouped-query attention
(arXiv:2305.13245) through ``scaled_dot_product_attention`` with fused QKV and optional q/k norms
(``"head"``: Qwen3, ``"full"``: OLMoE arXiv:2409.02060); RMSNorm (arXiv:1910.07467) or
LayerNorm; SwiGLU / GeGLU (arXiv:2002.05202), GELU or ReLU FFNs; leading dense and interleaved
MoE layers (``arch.layer_is_moe``) with a top-k router (Switch arXiv:2101.03961, Mixtral
arXiv:2401.04088, DeepSeek-V3 arXiv:2412.19437), optional expert capacity (GShard
arXiv:2006.16668), shared experts (DeepSeekMoE arXiv:2401.06066) with an optional sigmoid gate
(Qwen2-MoE); tied embeddings and biases. Not supported (a
:class:`~moescale.errors.MoescaleError` says so): MLA, attention sinks, sliding-window layers.

This module is the reference: plain PyTorch ops and autograd. ``ModelOptions(fused=True)``
(the default, as fast as ``transformers`` on CPU) swaps in the hand-written kernels of
:mod:`moescale.training.fused` for RMSNorm, RoPE and the routed experts — the same formulas
with hand-written backwards; ``fused=False`` runs exactly what is written here.

Tensor names carry their shape as a suffix (torchtitan style):

====  ==========================================  ====  ===================================
``B``  batch                                      ``E``  routed experts
``S``  sequence positions                         ``K``  experts per token (top-k)
``T``  tokens of the flattened batch (B·S)        ``N``  tokens routed to one expert
``D``  hidden size                                ``F``  expert / FFN width
``H``  query heads                                ``X``  FFN input width (2F gated, else F)
``G``  key/value heads (groups)                   ``V``  vocabulary
``d``  head dimension
====  ==========================================  ====  ===================================

>>> from moescale.accounting.architecture import Architecture
>>> arch = Architecture(hidden_size=64, n_layers=2, n_heads=4, vocab_size=256,
...                     n_experts=4, top_k=2, expert_ffn=32, seq_len=32)
>>> model = MoETransformer(arch)
>>> out = model(torch.zeros(1, 8, dtype=torch.long))
>>> tuple(out.logits.shape)
(1, 8, 256)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from moescale.accounting.architecture import Architecture
from moescale.errors import MoescaleError
from moescale.training import fused as _fused
from moescale.training.activations import ffn_activation
from moescale.training.routing import resolve_norm_topk_prob

# ----- options ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MoEOptions:
    """Routing choices that an :class:`~moescale.accounting.architecture.Architecture` does not fix."""

    score: str = "softmax"  # "softmax" (Mixtral/Qwen) or "sigmoid" (DeepSeek-V3)
    # Renormalise the top-k weights to sum to 1. None → the papers' default for the layer's
    # top_k: yes for top-k > 1 (Mixtral), no for top-1 (Switch, arXiv:2101.03961 §2.1: the gate
    # is the chosen expert's probability — renormalised it is always 1 and the router gets no
    # gradient from the language-model loss).
    norm_topk_prob: bool | None = None
    routed_scaling_factor: float = 1.0  # DeepSeek-V3 multiplies routed outputs (2.5 for V3)
    capacity_factor: float | None = None  # None = dropless


@dataclass(frozen=True)
class ModelOptions:
    """Choices an Architecture leaves open. Defaults follow Llama/Mixtral where they agree."""

    rope_theta: float = 10000.0  # RoPE base (HF configs: rope_theta)
    norm_eps: float = 1e-6  # RMSNorm/LayerNorm epsilon (HF: rms_norm_eps)
    init_std: float = 0.02  # normal init of weights; output projections get std/sqrt(2L)
    moe: MoEOptions = field(default_factory=MoEOptions)
    fused: bool = True  # the kernels of moescale.training.fused (False: this module's ops)


def check_supported(arch: Architecture) -> None:
    """Raise a MoescaleError naming any architecture feature this model cannot build."""
    unsupported = []
    if arch.mla is not None:
        unsupported.append("multi-head latent attention (mla)")
    if arch.attention_sinks:
        unsupported.append("attention_sinks")
    if arch.sliding_layers:
        unsupported.append("sliding-window layers (sliding_layers)")
    if unsupported:
        raise MoescaleError(
            "the moescale trainer does not support " + ", ".join(unsupported)
            + "; train a variant without it (e.g. plain GQA attention, no window) or use another trainer")


# ----- normalisation ------------------------------------------------------------------------


class RMSNorm(nn.Module):
    """``x / rms(x) · g`` computed in fp32, the ``transformers`` order (Zhang & Sennrich,
    arXiv:1910.07467)."""

    def __init__(self, dim: int, eps: float, fused: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps, self.fused = eps, fused

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused and _fused.rms_norm_applies(x, self.weight):
            return _fused.rms_norm(x, self.weight, self.eps)
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)


def make_norm(arch: Architecture, dim: int, eps: float, fused: bool = True) -> nn.Module:
    return RMSNorm(dim, eps, fused) if arch.norm_type == "rmsnorm" else nn.LayerNorm(dim, eps=eps)


# ----- rotary position embedding ------------------------------------------------------------


def rope_tables(head_dim: int, seq_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables, shape (S, d), rotate-half layout (Su et al., arXiv:2104.09864)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float) / head_dim))
    freqs_Sd = torch.outer(torch.arange(seq_len, dtype=torch.float), inv_freq)
    emb_Sd = torch.cat((freqs_Sd, freqs_Sd), dim=-1)
    return emb_Sd.cos(), emb_Sd.sin()


def apply_rope(x_BHSd: torch.Tensor, cos_Sd: torch.Tensor, sin_Sd: torch.Tensor) -> torch.Tensor:
    """``x·cos + rotate_half(x)·sin`` (the ``transformers`` formula)."""
    half = x_BHSd.shape[-1] // 2
    rotated_BHSd = torch.cat((-x_BHSd[..., half:], x_BHSd[..., :half]), dim=-1)
    return x_BHSd * cos_Sd + rotated_BHSd * sin_Sd


def rope(x_BHSd: torch.Tensor, cos_Sd: torch.Tensor, sin_Sd: torch.Tensor,
         fused: bool = True) -> torch.Tensor:
    """:func:`apply_rope`, through :class:`~moescale.training.fused.Rope` when ``fused``
    (eager mode; compiled graphs fuse the formula themselves)."""
    if fused and _fused.eager():
        return _fused.rope(x_BHSd, cos_Sd, sin_Sd)
    return apply_rope(x_BHSd, cos_Sd, sin_Sd)


# ----- attention ----------------------------------------------------------------------------


class Attention(nn.Module):
    """Causal grouped-query self-attention (arXiv:2305.13245) with fused QKV and RoPE."""

    def __init__(self, arch: Architecture, eps: float, fused: bool = True) -> None:
        super().__init__()
        self.n_heads, self.n_kv, self.head_dim = arch.n_heads, arch.kv_heads, arch.d_head
        q_dim, kv_dim = self.n_heads * self.head_dim, self.n_kv * self.head_dim
        self.qkv = nn.Linear(arch.hidden_size, q_dim + 2 * kv_dim, bias=arch.qkv_bias)
        self.out = nn.Linear(q_dim, arch.hidden_size, bias=arch.out_bias)
        self.qk_norm, self.fused = arch.qk_norm, fused
        if arch.qk_norm == "head":  # Qwen3: one norm per head
            self.q_norm = make_norm(arch, self.head_dim, eps, fused)
            self.k_norm = make_norm(arch, self.head_dim, eps, fused)
        elif arch.qk_norm == "full":  # OLMoE: one norm over all heads
            self.q_norm = make_norm(arch, q_dim, eps, fused)
            self.k_norm = make_norm(arch, kv_dim, eps, fused)

    def forward(self, x_BSD: torch.Tensor, cos_Sd: torch.Tensor, sin_Sd: torch.Tensor):
        B, S, _ = x_BSD.shape
        qkv_BSX = self.qkv(x_BSD)
        if self.fused and self.qk_norm == "none" and _fused.eager():
            q_BHSd, k_BGSd, v_BGSd = _fused.qkv_rope(qkv_BSX, self.n_heads, self.n_kv,
                                                     cos_Sd, sin_Sd)
        else:
            q_BHSd, k_BGSd, v_BGSd = self.qkv_heads(qkv_BSX, cos_Sd, sin_Sd)
        y_BHSd = F.scaled_dot_product_attention(q_BHSd, k_BGSd, v_BGSd, is_causal=True,
                                                enable_gqa=self.n_kv != self.n_heads)
        return self.out(y_BHSd.transpose(1, 2).reshape(B, S, self.n_heads * self.head_dim))

    def qkv_heads(self, qkv_BSX: torch.Tensor, cos_Sd: torch.Tensor, sin_Sd: torch.Tensor):
        """Split the QKV projection into heads, apply the q/k norms, rotate q and k."""
        B, S, _ = qkv_BSX.shape
        q_dim, kv_dim = self.n_heads * self.head_dim, self.n_kv * self.head_dim
        q, k, v = qkv_BSX.split((q_dim, kv_dim, kv_dim), dim=-1)
        if self.qk_norm == "full":
            q, k = self.q_norm(q), self.k_norm(k)
        q_BSHd = q.view(B, S, self.n_heads, self.head_dim)
        k_BSGd = k.view(B, S, self.n_kv, self.head_dim)
        if self.qk_norm == "head":
            q_BSHd, k_BSGd = self.q_norm(q_BSHd), self.k_norm(k_BSGd)
        q_BHSd = rope(q_BSHd.transpose(1, 2), cos_Sd, sin_Sd, self.fused)
        k_BGSd = rope(k_BSGd.transpose(1, 2), cos_Sd, sin_Sd, self.fused)
        return q_BHSd, k_BGSd, v.view(B, S, self.n_kv, self.head_dim).transpose(1, 2)


# ----- feed-forward -------------------------------------------------------------------------


class FeedForward(nn.Module):
    """A dense FFN: ``w_out(act(w_in x))`` with gate and up fused in ``w_in`` for gated types."""

    def __init__(self, dim: int, ffn: int, ffn_type: str, bias: bool) -> None:
        super().__init__()
        self.ffn_type, self.gated = ffn_type, ffn_type in ("swiglu", "geglu")
        self.w_in = nn.Linear(dim, 2 * ffn if self.gated else ffn, bias=bias)
        self.w_out = nn.Linear(ffn, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_out(ffn_activation(self.ffn_type, self.w_in(x)))


# ----- router -------------------------------------------------------------------------------


class Router(nn.Module):
    """Top-k token-choice router: logits ``x_TD @ W`` in fp32 (also under bf16 autocast: small
    logit differences pick the experts), then

    - ``"softmax"`` (Mixtral, Qwen, OLMoE): ``probs = softmax(logits)``, the top-k
      probabilities, renormalised to sum to 1 if ``norm_topk_prob`` — the ``transformers``
      order (for Mixtral equal to a softmax over the top-k logits);
    - ``"sigmoid"`` (DeepSeek-V3, arXiv:2412.19437 §2.1.2): ``probs = sigmoid(logits)``;
      experts are *chosen* by ``probs + balance_bias_E``, a non-trained buffer nudged after each
      step toward balanced loads (:meth:`update_balance_bias`); the weights are the unbiased
      scores, renormalised if ``norm_topk_prob``, times ``routed_scaling_factor``."""

    def __init__(self, dim: int, n_experts: int, top_k: int, *, score: str = "softmax",
                 norm_topk_prob: bool | None = None, scaling: float = 1.0,
                 bias: bool = False) -> None:
        super().__init__()
        self.gate = nn.Linear(dim, n_experts, bias=bias)
        self.n_experts, self.top_k, self.score = n_experts, top_k, score
        self.norm_topk_prob = resolve_norm_topk_prob(norm_topk_prob, top_k)
        self.scaling = scaling
        self.register_buffer("balance_bias_E", torch.zeros(n_experts), persistent=True)

    def forward(self, x_TD: torch.Tensor):
        """Returns ``(weights_TK, idx_TK, probs_TE, logits_TE)``, all fp32."""
        with torch.autocast(x_TD.device.type, enabled=False):
            bias_E = None if self.gate.bias is None else self.gate.bias.float()
            logits_TE = F.linear(x_TD.float(), self.gate.weight.float(), bias_E)
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


@dataclass
class RouterOutput:
    """What one MoE layer reports besides its output (all per layer)."""

    aux_loss: torch.Tensor  # scalar, Switch load-balance loss (1.0 = balanced)
    z_loss: torch.Tensor  # scalar, ST-MoE router z-loss
    load_E: torch.Tensor  # slots routed to each expert in this batch (before capacity drops)
    dropped: torch.Tensor  # number of slots dropped by the capacity limit


def balance_losses(probs_TE: torch.Tensor, logits_TE: torch.Tensor, load_E: torch.Tensor,
                   n_slots: int, score: str = "softmax") -> tuple[torch.Tensor, torch.Tensor]:
    """Switch load-balance loss and ST-MoE z-loss of one layer (the trainer weights them).

    - balance (arXiv:2101.03961 eq. 4): ``E · Σ_e f_e · P_e``, ``f_e`` the fraction of the
      ``n_slots = T·K`` slots sent to expert ``e``, ``P_e`` its mean router probability; 1.0
      when perfectly balanced. Sigmoid scores are normalised per token first.
    - z-loss (arXiv:2202.08906 eq. 5): ``mean_T(logsumexp(logits)²)``, keeping softmax logits
      small; sigmoid scores are not normalised over experts, so it is 0 there."""
    n_experts = probs_TE.shape[-1]
    p_E = (probs_TE / probs_TE.sum(-1, keepdim=True).clamp_min(1e-20)).mean(dim=0)
    f_E = load_E.to(p_E.dtype) / max(n_slots, 1)
    aux = n_experts * torch.sum(f_E * p_E)
    z = torch.logsumexp(logits_TE, dim=-1).square().mean() if score == "softmax" \
        else logits_TE.new_zeros(())
    return aux, z


# ----- routed and shared experts ------------------------------------------------------------


class GroupedExperts(nn.Module):
    """``E`` expert FFNs stored as 3-D weights ``w_in_EDX`` (named ``w_in_EDH``: gate‖up, or F
    wide) and ``w_out_EFD``; each token's output is the router-weighted sum of its experts."""

    def __init__(self, dim: int, ffn: int, n_experts: int, ffn_type: str, bias: bool,
                 fused: bool = True) -> None:
        super().__init__()
        self.ffn_type, self.n_experts, self.fused = ffn_type, n_experts, fused
        width = 2 * ffn if ffn_type in ("swiglu", "geglu") else ffn
        self.w_in_EDH = nn.Parameter(torch.empty(n_experts, dim, width))
        self.w_out_EFD = nn.Parameter(torch.empty(n_experts, ffn, dim))
        self.b_in_EH = nn.Parameter(torch.zeros(n_experts, width)) if bias else None
        self.b_out_ED = nn.Parameter(torch.zeros(n_experts, dim)) if bias else None

    def expert(self, e: int, x_ND: torch.Tensor) -> torch.Tensor:
        """Expert ``e``'s FFN on the tokens routed to it."""
        h_NX = x_ND @ self.w_in_EDH[e]
        if self.b_in_EH is not None:
            h_NX = h_NX + self.b_in_EH[e]
        y_ND = ffn_activation(self.ffn_type, h_NX) @ self.w_out_EFD[e]
        return y_ND if self.b_out_ED is None else y_ND + self.b_out_ED[e]

    def forward(self, x_TD: torch.Tensor, weights_TK: torch.Tensor, idx_TK: torch.Tensor,
                capacity: int | None = None) -> torch.Tensor:
        """``Σ_k weights_TK[t, k] · expert_{idx_TK[t, k]}(x_t)``. With a ``capacity`` each
        expert takes only its earliest ``capacity`` slots (in token order); the rest are
        dropped and add nothing (GShard, arXiv:2006.16668 §2.2)."""
        if self.fused:  # the same sum as one autograd function (fused.RoutedExperts)
            return _fused.routed_experts(x_TD, weights_TK, idx_TK, capacity, self.w_in_EDH,
                                         self.w_out_EFD, self.b_in_EH, self.b_out_ED,
                                         self.ffn_type)
        out_TD = torch.zeros_like(x_TD)
        for e in range(self.n_experts):
            token_N, slot_N = torch.where(idx_TK == e)  # row-major: earliest tokens first
            token_N, slot_N = token_N[:capacity], slot_N[:capacity]
            if token_N.numel():
                y_ND = self.expert(e, x_TD[token_N]) * weights_TK[token_N, slot_N, None]
                out_TD.index_add_(0, token_N, y_ND.to(out_TD.dtype))
        return out_TD


class MoEFeedForward(nn.Module):
    """One MoE layer: router, routed experts and optional shared experts (DeepSeekMoE,
    arXiv:2401.06066) behind an optional sigmoid gate (Qwen2-MoE)."""

    def __init__(self, dim: int, n_experts: int, top_k: int, expert_ffn: int, ffn_type: str,
                 *, bias: bool, router_bias: bool, n_shared: int = 0, shared_ffn: int = 0,
                 shared_gate: bool = False, options: MoEOptions = MoEOptions(),
                 fused: bool = True) -> None:
        super().__init__()
        self.n_experts, self.top_k, self.options = n_experts, top_k, options
        self.router = Router(dim, n_experts, top_k, score=options.score, bias=router_bias,
                             norm_topk_prob=options.norm_topk_prob,
                             scaling=options.routed_scaling_factor)
        self.experts = GroupedExperts(dim, expert_ffn, n_experts, ffn_type, bias, fused)
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
        capacity = self.capacity(x_TD.shape[0])
        out_TD = self.experts(x_TD, weights_TK, idx_TK, capacity) + self.shared_experts(x_TD)
        load_E = torch.bincount(idx_TK.reshape(-1), minlength=self.n_experts)
        dropped = idx_TK.new_tensor(0) if capacity is None else (load_E - capacity).clamp(min=0).sum()
        aux, z = balance_losses(probs_TE, logits_TE, load_E, idx_TK.numel(), self.options.score)
        return out_TD.view_as(x_BSD), RouterOutput(aux, z, load_E.detach(), dropped)

    def shared_experts(self, x_TD: torch.Tensor) -> torch.Tensor | float:
        """The shared experts' output (every token), or 0 without shared experts."""
        if self.shared is None:
            return 0.0
        if isinstance(self.shared, nn.ModuleList):
            out_TD = sum(ffn(x_TD) for ffn in self.shared)
        else:
            out_TD = self.shared(x_TD)
        if self.shared_gate is not None:
            out_TD = torch.sigmoid(self.shared_gate(x_TD)) * out_TD
        return out_TD


# ----- the transformer ----------------------------------------------------------------------


class Block(nn.Module):
    """One pre-norm decoder layer with a dense or MoE FFN."""

    def __init__(self, arch: Architecture, is_moe: bool, options: ModelOptions) -> None:
        super().__init__()
        d, eps, fused = arch.hidden_size, options.norm_eps, options.fused
        self.attn_norm, self.ffn_norm = make_norm(arch, d, eps, fused), make_norm(arch, d, eps, fused)
        self.attn = Attention(arch, eps, fused)
        self.is_moe = is_moe
        if is_moe:
            self.ffn = MoEFeedForward(
                d, arch.n_experts, arch.top_k, arch.expert_ffn, arch.ffn_type,
                bias=arch.mlp_bias, router_bias=arch.router_bias, n_shared=arch.n_shared_experts,
                shared_ffn=arch.shared_ffn, shared_gate=arch.shared_expert_gate,
                options=options.moe, fused=fused)
        else:
            self.ffn = FeedForward(d, arch.dense_ffn, arch.ffn_type, arch.mlp_bias)

    def forward(self, x_BSD, cos_Sd, sin_Sd) -> tuple[torch.Tensor, RouterOutput | None]:
        x_BSD = x_BSD + self.attn(self.attn_norm(x_BSD), cos_Sd, sin_Sd)
        if self.is_moe:
            h_BSD, routing = self.ffn(self.ffn_norm(x_BSD))
            return x_BSD + h_BSD, routing
        return x_BSD + self.ffn(self.ffn_norm(x_BSD)), None


@dataclass
class ModelOutput:
    """Logits and the router report of every MoE layer (in layer order)."""

    logits: torch.Tensor  # (B, S, V)
    routing: list[RouterOutput]

    def aux_loss(self, reduction: str = "mean") -> torch.Tensor:
        """Switch load-balance loss over MoE layers, ``"sum"`` (each layer weighted by the
        coefficient, as Switch/ST-MoE) or ``"mean"`` (0 for a dense model)."""
        return _reduce([r.aux_loss for r in self.routing], self.logits, reduction)

    def z_loss(self, reduction: str = "mean") -> torch.Tensor:
        """ST-MoE router z-loss over MoE layers (see :meth:`aux_loss`)."""
        return _reduce([r.z_loss for r in self.routing], self.logits, reduction)


def _reduce(values: list[torch.Tensor], like: torch.Tensor, reduction: str) -> torch.Tensor:
    if not values:
        return like.new_zeros((), dtype=torch.float32)
    stacked = torch.stack(values)
    return stacked.sum() if reduction == "sum" else stacked.mean()


class MoETransformer(nn.Module):
    """The whole decoder: embedding, ``L`` blocks, final norm, (tied) unembedding."""

    def __init__(self, arch: Architecture, options: ModelOptions | None = None) -> None:
        super().__init__()
        check_supported(arch)
        self.arch, self.options = arch, options or ModelOptions()
        self.embed = nn.Embedding(arch.vocab_size, arch.hidden_size)
        self.blocks = nn.ModuleList(Block(arch, moe, self.options) for moe in arch.layer_is_moe)
        self.norm = make_norm(arch, arch.hidden_size, self.options.norm_eps, self.options.fused)
        self.lm_head = nn.Linear(arch.hidden_size, arch.vocab_size, bias=False)
        if arch.tie_embeddings:
            self.lm_head.weight = self.embed.weight
        cos_Sd, sin_Sd = rope_tables(arch.d_head, arch.seq_len, self.options.rope_theta)
        self.register_buffer("rope_cos", cos_Sd, persistent=False)
        self.register_buffer("rope_sin", sin_Sd, persistent=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Normal(0, std) weights, zero biases, unit norm gains; residual outputs get std/sqrt(2L)
        (GPT-2, Radford et al. 2019)."""
        std = self.options.init_std
        out_std = std / math.sqrt(2 * self.arch.n_layers)
        for name, p in self.named_parameters():
            if p.dim() == 1 or name.split(".")[-1].startswith("b_"):
                is_gain = "norm" in name and name.endswith("weight")
                p.fill_(1.0) if is_gain else p.zero_()
            elif name.endswith(("out.weight", "w_out_EFD", "w_out.weight")):
                p.normal_(0.0, out_std)
            else:
                p.normal_(0.0, std)

    def forward(self, idx_BS: torch.Tensor) -> ModelOutput:
        S = idx_BS.shape[1]
        if S > self.rope_cos.shape[0]:
            raise MoescaleError(f"sequence of {S} tokens exceeds seq_len={self.rope_cos.shape[0]}")
        cos_Sd, sin_Sd = self.rope_cos[:S], self.rope_sin[:S]
        x_BSD = self.embed(idx_BS)
        routing = []
        for block in self.blocks:
            x_BSD, r = block(x_BSD, cos_Sd, sin_Sd)
            if r is not None:
                routing.append(r)
        return ModelOutput(self.lm_head(self.norm(x_BSD)), routing)

    def num_params(self) -> int:
        """Every trainable parameter once (a tied embedding counts once)."""
        return sum(p.numel() for p in self.parameters())

    def moe_layers(self) -> list[MoEFeedForward]:
        return [b.ffn for b in self.blocks if b.is_moe]
