"""A decoder-only (MoE) transformer built from an :class:`~moescale.architecture.Architecture`.

Pre-norm blocks ``x + attn(norm(x))``, ``x + ffn(norm(x))``; RoPE (the rotate-half layout of
``transformers``), grouped-query attention through ``scaled_dot_product_attention``, fused
QKV, optional q/k norms (``"head"``: Qwen3, ``"full"``: OLMoE), RMSNorm or LayerNorm, SwiGLU /
GeGLU / GELU / ReLU FFNs, leading dense and interleaved MoE layers (``arch.layer_is_moe``),
shared experts with an optional sigmoid gate (Qwen2-MoE), tied embeddings and biases.

Not supported (a :class:`~moescale.errors.MoescaleError` says so): MLA, attention sinks and
sliding-window layers.

>>> from moescale.architecture import Architecture
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

from moescale.architecture import Architecture
from moescale.errors import MoescaleError
from moescale.training.moe import FeedForward, MoEFeedForward, MoEOptions, RouterOutput


@dataclass(frozen=True)
class ModelOptions:
    """Choices an Architecture leaves open. Defaults follow Llama/Mixtral where they agree."""

    rope_theta: float = 10000.0  # RoPE base (HF configs: rope_theta)
    norm_eps: float = 1e-6  # RMSNorm/LayerNorm epsilon (HF: rms_norm_eps)
    init_std: float = 0.02  # normal init of weights; output projections get std/sqrt(2L)
    moe: MoEOptions = field(default_factory=MoEOptions)


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


class _RMSNormFP32(torch.autograd.Function):
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


class RMSNorm(nn.Module):
    """``x / rms(x) · g`` computed in fp32 (Zhang & Sennrich 2019; the ``transformers`` order)."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.dtype == torch.float32 and self.weight.dtype == torch.float32
                and not torch.compiler.is_compiling()):  # compiled: Inductor fuses the formula
            return _RMSNormFP32.apply(x, self.weight, self.eps)
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)


def make_norm(arch: Architecture, dim: int, eps: float) -> nn.Module:
    return RMSNorm(dim, eps) if arch.norm_type == "rmsnorm" else nn.LayerNorm(dim, eps=eps)


def rope_tables(head_dim: int, seq_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables, shape (seq_len, head_dim), rotate-half layout (Su et al. 2021)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float) / head_dim))
    freqs = torch.outer(torch.arange(seq_len, dtype=torch.float), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def apply_rope(x_BHSh: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """``x·cos + rotate_half(x)·sin`` (the ``transformers`` formula; the reference for
    :class:`_Rope`)."""
    half = x_BHSh.shape[-1] // 2
    rotated = torch.cat((-x_BHSh[..., half:], x_BHSh[..., :half]), dim=-1)
    return x_BHSh * cos + rotated * sin


class _Rope(torch.autograd.Function):
    """RoPE as a rotation of the halves ``(x₁, x₂)`` by ``(c, s)`` (the tables' two halves are
    equal): ``(x₁c − x₂s, x₂c + x₁s)``; the gradient is the inverse rotation. Four fused
    multiply-adds over half-width tensors instead of autograd's negate / concatenate / multiply
    chain."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        c, s = cos[..., :half], sin[..., :half]
        ctx.save_for_backward(c, s)
        return _Rope.rotate(x, c, s, half)

    @staticmethod
    def rotate(x: torch.Tensor, c: torch.Tensor, s: torch.Tensor, half: int) -> torch.Tensor:
        x1, x2 = x[..., :half], x[..., half:]
        out = torch.empty_like(x)
        torch.mul(x1, c, out=out[..., :half]).addcmul_(x2, s, value=-1.0)
        torch.mul(x2, c, out=out[..., half:]).addcmul_(x1, s)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        c, s = ctx.saved_tensors
        return _Rope.rotate(grad, c, -s, grad.shape[-1] // 2), None, None


def rope(x_BHSh: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """:func:`apply_rope` with a hand-written backward (same dtype rules: tables follow ``x``)."""
    if cos.dtype != x_BHSh.dtype or torch.compiler.is_compiling():  # Inductor fuses the formula
        return apply_rope(x_BHSh, cos, sin)
    return _Rope.apply(x_BHSh, cos, sin)


class Attention(nn.Module):
    """Causal grouped-query self-attention with fused QKV and RoPE."""

    def __init__(self, arch: Architecture, eps: float) -> None:
        super().__init__()
        self.n_heads, self.n_kv, self.head_dim = arch.n_heads, arch.kv_heads, arch.d_head
        q_dim, kv_dim = self.n_heads * self.head_dim, self.n_kv * self.head_dim
        self.qkv = nn.Linear(arch.hidden_size, q_dim + 2 * kv_dim, bias=arch.qkv_bias)
        self.out = nn.Linear(q_dim, arch.hidden_size, bias=arch.out_bias)
        self.qk_norm = arch.qk_norm
        if arch.qk_norm == "head":
            self.q_norm = make_norm(arch, self.head_dim, eps)
            self.k_norm = make_norm(arch, self.head_dim, eps)
        elif arch.qk_norm == "full":
            self.q_norm, self.k_norm = make_norm(arch, q_dim, eps), make_norm(arch, kv_dim, eps)

    def forward(self, x_BSD: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        B, S, _ = x_BSD.shape
        q_dim, kv_dim = self.n_heads * self.head_dim, self.n_kv * self.head_dim
        qkv = self.qkv(x_BSD)
        q, k, v = qkv.split((q_dim, kv_dim, kv_dim), dim=-1)
        if self.qk_norm == "none":  # q and k heads are adjacent: rotate them in one call
            qk = qkv[..., :q_dim + kv_dim].view(B, S, self.n_heads + self.n_kv, self.head_dim)
            qk = rope(qk.transpose(1, 2), cos, sin)
            q, k = qk[:, :self.n_heads], qk[:, self.n_heads:]
        else:
            if self.qk_norm == "full":
                q, k = self.q_norm(q), self.k_norm(k)
            q = q.view(B, S, self.n_heads, self.head_dim)
            k = k.view(B, S, self.n_kv, self.head_dim)
            if self.qk_norm == "head":
                q, k = self.q_norm(q), self.k_norm(k)
            q = rope(q.transpose(1, 2), cos, sin)
            k = rope(k.transpose(1, 2), cos, sin)
        v = v.view(B, S, self.n_kv, self.head_dim).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           enable_gqa=self.n_kv != self.n_heads)
        return self.out(y.transpose(1, 2).reshape(B, S, q_dim))


class Block(nn.Module):
    """One pre-norm decoder layer with a dense or MoE FFN."""

    def __init__(self, arch: Architecture, is_moe: bool, options: ModelOptions) -> None:
        super().__init__()
        d, eps = arch.hidden_size, options.norm_eps
        self.attn_norm, self.ffn_norm = make_norm(arch, d, eps), make_norm(arch, d, eps)
        self.attn = Attention(arch, eps)
        self.is_moe = is_moe
        if is_moe:
            self.ffn = MoEFeedForward(
                d, arch.n_experts, arch.top_k, arch.expert_ffn, arch.ffn_type,
                bias=arch.mlp_bias, router_bias=arch.router_bias, n_shared=arch.n_shared_experts,
                shared_ffn=arch.shared_ffn, shared_gate=arch.shared_expert_gate,
                options=options.moe)
        else:
            self.ffn = FeedForward(d, arch.dense_ffn, arch.ffn_type, arch.mlp_bias)

    def forward(self, x, cos, sin) -> tuple[torch.Tensor, RouterOutput | None]:
        x = x + self.attn(self.attn_norm(x), cos, sin)
        if self.is_moe:
            h, routing = self.ffn(self.ffn_norm(x))
            return x + h, routing
        return x + self.ffn(self.ffn_norm(x)), None


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
        self.norm = make_norm(arch, arch.hidden_size, self.options.norm_eps)
        self.lm_head = nn.Linear(arch.hidden_size, arch.vocab_size, bias=False)
        if arch.tie_embeddings:
            self.lm_head.weight = self.embed.weight
        cos, sin = rope_tables(arch.d_head, arch.seq_len, self.options.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
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
        seq = idx_BS.shape[1]
        if seq > self.rope_cos.shape[0]:
            raise MoescaleError(f"sequence of {seq} tokens exceeds seq_len={self.rope_cos.shape[0]}")
        cos, sin = self.rope_cos[:seq], self.rope_sin[:seq]
        x = self.embed(idx_BS)
        routing = []
        for block in self.blocks:
            x, r = block(x, cos, sin)
            if r is not None:
                routing.append(r)
        return ModelOutput(self.lm_head(self.norm(x)), routing)

    def num_params(self) -> int:
        """Every trainable parameter once (a tied embedding counts once)."""
        return sum(p.numel() for p in self.parameters())

    def moe_layers(self) -> list[MoEFeedForward]:
        return [b.ffn for b in self.blocks if b.is_moe]
