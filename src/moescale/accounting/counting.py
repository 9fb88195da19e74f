"""Exact parameter, FLOP and memory accounting of an :class:`~moescale.accounting.architecture.Architecture`.

Parameters are counted analytically from the architecture and equal ``sum(p.numel())`` of the
Hugging Face model built from the same config (tests check this for every supported family).
FLOPs are counted per token, per component, under a named :mod:`~moescale.accounting.conventions`
convention: 2 FLOPs per multiply-add, training = forward × 3 (Kaplan et al. 2020, arXiv 2001.08361, §2.1).

>>> from moescale.accounting.architecture import Architecture
>>> arch = Architecture(hidden_size=4096, n_layers=32, n_heads=32, n_kv_heads=8,
...                     n_experts=8, top_k=2, expert_ffn=14336, vocab_size=32000)
>>> c = count(arch)
>>> round(c.total_params / 1e9, 1), round(c.active_params / 1e9, 1)   # Mixtral-8x7B
(46.7, 12.9)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from moescale.accounting.architecture import NORM_TYPES, Architecture
from moescale.accounting.conventions import Convention, get_convention
from moescale.errors import MoescaleError
from moescale.units import dtype_bytes

COMPONENTS = ("embedding", "attention", "attention_scores", "dense_ffn", "routed_experts",
              "shared_experts", "router", "norms", "unembedding")
EMBEDDING_COMPONENTS = ("embedding", "unembedding")
ADAMW_MIXED_PRECISION_BYTES = 16  # bf16 weight + bf16 grad + fp32 master + two fp32 moments


@dataclass(frozen=True)
class Raw:
    """Convention-free counts of one component for the whole model.

    ``matmul_active`` is the number of weights each token multiplies (forward FLOPs = 2×).
    """

    params: int = 0
    active_params: int = 0
    matmul_active: int = 0


@dataclass(frozen=True)
class ComponentCount:
    """One row of the breakdown: parameters and FLOPs per token under a convention."""

    name: str
    params: int
    active_params: int
    training_flops: float
    inference_flops: float


@dataclass(frozen=True)
class Counts:
    """Counts of one architecture under one convention (all FLOPs are per token)."""

    architecture: Architecture
    convention: Convention
    context: int  # training context length used for attention-score FLOPs
    inference_context: int  # keys attended by one decoded token
    components: tuple[ComponentCount, ...]
    total_params: int  # every parameter (= sum of numel)
    active_params: int  # parameters one token uses (top-k of the routed experts)
    total_params_non_embedding: int
    active_params_non_embedding: int
    params: int  # N as the convention counts it
    params_active: int  # N_a as the convention counts it
    training_flops_per_token: float
    inference_flops_per_token: float
    ratios: dict[str, float]

    def component(self, name: str) -> ComponentCount:
        """The component called ``name`` (a MoescaleError lists the names when there is none)."""
        for c in self.components:
            if c.name == name:
                return c
        raise MoescaleError(f"no component {name!r}; components: "
                            + ", ".join(c.name for c in self.components))

    def __repr__(self) -> str:
        return (f"Counts({self.architecture.name or 'architecture'!r}, "
                f"convention={self.convention.name!r}, total_params={self.total_params:,}, "
                f"active_params={self.active_params:,}, "
                f"training_flops_per_token={self.training_flops_per_token:.4g})")

    def weights_bytes(self, dtype: str = "bf16") -> float:
        """Memory of all weights, ``N_total × bytes(dtype)``."""
        return self.total_params * dtype_bytes(dtype)

    def training_state_bytes(self, bytes_per_param: float = ADAMW_MIXED_PRECISION_BYTES) -> float:
        """Weights, gradients and mixed-precision AdamW state (16 bytes/param by default)."""
        return self.total_params * bytes_per_param

    def kv_cache_bytes(self, tokens: int, dtype: str = "bf16") -> float:
        """KV cache for ``tokens`` cached tokens of one sequence; see :func:`kv_cache_values`."""
        return kv_cache_values(self.architecture, tokens) * dtype_bytes(dtype)

    def to_dict(self, dtype: str = "bf16") -> dict[str, Any]:
        """The ``moescale count --json`` object."""
        return {
            "name": self.architecture.name,
            "convention": {"name": self.convention.name, "description": self.convention.description,
                           "params": self.params, "active_params": self.params_active},
            "context": self.context,
            "inference_context": self.inference_context,
            "total_params": self.total_params,
            "active_params": self.active_params,
            "total_params_non_embedding": self.total_params_non_embedding,
            "active_params_non_embedding": self.active_params_non_embedding,
            "training_flops_per_token": self.training_flops_per_token,
            "inference_flops_per_token": self.inference_flops_per_token,
            "dtype": dtype,
            "weights_bytes": self.weights_bytes(dtype),
            "training_state_bytes": self.training_state_bytes(),
            "kv_cache_bytes": self.kv_cache_bytes(self.inference_context, dtype),
            "ratios": self.ratios,
            "components": [c.__dict__ for c in self.components],
            "architecture": self.architecture.to_dict(),
        }


# ----- raw, convention-free counts ------------------------------------------------------------
def raw_components(a: Architecture) -> dict[str, Raw]:
    """Parameters and per-token matmul weights of every component (attention scores excluded)."""
    d, V, L = a.hidden_size, a.vocab_size, a.n_layers
    L_m, L_d = a.n_moe_layers, a.n_dense_layers
    attn_w, attn_extra = _attention_params(a)
    dense = _ffn_params(a, a.dense_ffn)
    expert = _ffn_params(a, a.expert_ffn)
    shared = a.n_shared_experts * _ffn_params(a, a.shared_ffn) + (d if a.shared_expert_gate else 0)
    shared_w = a.n_shared_experts * a.ffn_matrices * d * a.shared_ffn + (d if a.shared_expert_gate else 0)
    router = d * a.n_experts + (a.n_experts if a.router_bias else 0)
    return {
        "embedding": Raw(V * d, V * d, 0),
        "attention": Raw(L * (attn_w + attn_extra), L * (attn_w + attn_extra), L * attn_w),
        "dense_ffn": Raw(L_d * dense, L_d * dense, L_d * a.ffn_matrices * d * a.dense_ffn),
        "routed_experts": Raw(L_m * a.n_experts * expert, L_m * a.top_k * expert,
                              L_m * a.top_k * a.ffn_matrices * d * a.expert_ffn),
        "shared_experts": Raw(L_m * shared, L_m * shared, L_m * shared_w),
        "router": Raw(L_m * router, L_m * router, L_m * d * a.n_experts),
        "norms": Raw(_norm_params(a), _norm_params(a), 0),
        "unembedding": Raw(0 if a.tie_embeddings else V * d, 0 if a.tie_embeddings else V * d, V * d),
    }


def _attention_params(a: Architecture) -> tuple[int, int]:
    """(matmul weights, biases + sinks) of one layer's attention."""
    d, H = a.hidden_size, a.n_heads
    extra = H if a.attention_sinks else 0
    if a.mla is None:
        h, kv = a.d_head, a.kv_heads
        weights = d * H * h + 2 * d * kv * h + H * h * d
        extra += (H * h + 2 * kv * h if a.qkv_bias else 0) + (d if a.out_bias else 0)
        return weights, extra
    m = a.mla
    q = d * m.q_lora_rank + m.q_lora_rank * H * m.qk_head_dim if m.q_lora_rank else d * H * m.qk_head_dim
    weights = q + d * (m.kv_lora_rank + m.qk_rope_head_dim) + m.kv_lora_rank * H * (
        m.qk_nope_head_dim + m.v_head_dim) + H * m.v_head_dim * d
    if a.qkv_bias:  # DeepSeek: biases on q_a_proj and kv_a_proj only (never on q_proj/kv_b_proj)
        extra += (m.q_lora_rank or 0) + m.kv_lora_rank + m.qk_rope_head_dim
    extra += d if a.out_bias else 0
    return weights, extra


def _ffn_params(a: Architecture, width: int) -> int:
    """One FFN of ``width``: ``glu·d·f`` weights plus biases (gate/up ``f`` each, down ``d``)."""
    bias = (a.ffn_matrices - 1) * width + a.hidden_size if a.mlp_bias else 0
    return a.ffn_matrices * a.hidden_size * width + bias


def _norm_params(a: Architecture) -> int:
    """Pre-attention and pre-FFN norms per layer, the final norm, q/k norms, MLA latent norms."""
    per = NORM_TYPES[a.norm_type]
    d = a.hidden_size
    layer = 2 * d
    if a.qk_norm == "head":
        layer += 2 * a.d_head
    elif a.qk_norm == "full":
        layer += (a.n_heads + a.kv_heads) * a.d_head
    if a.mla is not None:
        layer += a.mla.kv_lora_rank + (a.mla.q_lora_rank or 0)
    return per * (a.n_layers * layer + d)


def attention_score_flops(a: Architecture, context: int, causal_halving: bool) -> float:
    """Forward FLOPs per token of ``QKᵀ`` and ``AV`` summed over layers.

    ``2·H·(d_qk + d_v)·c`` per layer, where ``c`` is the number of keys a token attends to:
    ``context`` (or the window) without halving; with causal halving the mean over positions,
    ``S/2`` for full attention and ``w − w²/(2S)`` for a window ``w < S``.
    """
    if a.mla is None:
        per_key = 2 * a.n_heads * 2 * a.d_head
    else:
        per_key = 2 * a.n_heads * (a.mla.qk_head_dim + a.mla.v_head_dim)
    sliding = set(a.sliding_layers)
    total = 0.0
    for i in range(a.n_layers):
        w = a.sliding_window if i in sliding else None
        total += per_key * _keys_per_token(context, w, causal_halving)
    return total


def _keys_per_token(context: int, window: int | None, causal_halving: bool) -> float:
    if window is None or window >= context:
        return context / 2 if causal_halving else context
    return window - window**2 / (2 * context) if causal_halving else window


def kv_cache_values(a: Architecture, tokens: int) -> int:
    """Values cached for ``tokens`` tokens: ``2·N_kv·d_head`` per layer (GQA) or the MLA latent
    ``kv_lora_rank + qk_rope_head_dim``; sliding-window layers keep at most ``window`` tokens."""
    per_token = (a.mla.kv_lora_rank + a.mla.qk_rope_head_dim) if a.mla else 2 * a.kv_heads * a.d_head
    sliding = set(a.sliding_layers)
    return sum(per_token * (min(tokens, a.sliding_window) if i in sliding else tokens)
               for i in range(a.n_layers))


# ----- conventions ----------------------------------------------------------------------------
def count(
    arch: Architecture,
    convention: str | Convention = "exact",
    context: int | None = None,
    inference_context: int | None = None,
    causal_halving: bool | None = None,
) -> Counts:
    """Count ``arch`` under ``convention``.

    Parameters
    ----------
    context : training sequence length for attention FLOPs (default ``arch.seq_len``).
    inference_context : keys one decoded token attends to (default ``arch.seq_len``).
    causal_halving : override the convention's choice (``False`` matches dense kernels and
        ``FlopCounterMode``).
    """
    conv = get_convention(convention)
    if causal_halving is not None:
        conv = conv.with_(causal_halving=causal_halving)
    ctx = context or arch.seq_len
    ictx = inference_context or arch.seq_len
    raw = raw_components(arch)
    rows = _component_rows(arch, conv, raw, ctx, ictx)
    total = sum(r.params for r in raw.values())
    active = sum(r.active_params for r in raw.values())
    emb = sum(raw[n].params for n in EMBEDDING_COMPONENTS)
    return Counts(
        architecture=arch, convention=conv, context=ctx, inference_context=ictx,
        components=rows,
        total_params=total, active_params=active,
        total_params_non_embedding=total - emb, active_params_non_embedding=active - emb,
        params=sum(raw[n].params for n in conv.param_components),
        params_active=sum(raw[n].active_params for n in conv.param_components),
        training_flops_per_token=sum(r.training_flops for r in rows),
        inference_flops_per_token=sum(r.inference_flops for r in rows),
        ratios=holistic_ratios(arch, raw),
    )


def _component_rows(a: Architecture, conv: Convention, raw: dict[str, Raw], ctx: int,
                    ictx: int) -> tuple[ComponentCount, ...]:
    """Per-component training and inference FLOPs per token under ``conv``."""
    rows = []
    for name in COMPONENTS:
        if name == "attention_scores":
            fwd = attention_score_flops(a, ctx, conv.causal_halving) if conv.attention_scores else 0.0
            inf = attention_score_flops(a, ictx, False) if conv.attention_scores else 0.0
            rows.append(ComponentCount(name, 0, 0, conv.backward_factor * fwd, inf))
            continue
        r = raw[name]
        if conv.flop_rule == "6N":
            fwd = 2.0 * r.active_params if name in conv.param_components else 0.0
        else:
            fwd = 2.0 * r.matmul_active if name in conv.flop_components else 0.0
        rows.append(ComponentCount(name, r.params, r.active_params, conv.backward_factor * fwd, fwd))
    return tuple(rows)


def holistic_ratios(a: Architecture, raw: dict[str, Raw] | None = None) -> dict[str, float]:
    """The ratios the papers use, with ``M``, ``N_a``, ``N`` in the holistic convention.

    ``M_over_Na`` and ``N_over_Na`` (Wan et al. 2026), ``activation_ratio`` = N_a/N,
    ``granularity`` (Krajewski et al. 2024), ``G`` and ``S`` (Zhao et al. 2025).
    """
    raw = raw or raw_components(a)
    keys = ("attention", "dense_ffn", "routed_experts", "shared_experts")
    n_a = sum(raw[k].active_params for k in keys)
    n = sum(raw[k].params for k in keys)
    m = 6 * n_a + 3 * attention_score_flops(a, a.seq_len, causal_halving=True)
    return {
        "M": m,
        "N_a": n_a,
        "N": n,
        "M_over_Na": m / n_a,
        "N_over_Na": n / n_a,
        "activation_ratio": n_a / n,
        "granularity": a.granularity,
        "G": a.activated_experts,
        "S": a.shared_ratio,
    }


def clark2022_counts(a: Architecture) -> tuple[int, int]:
    """``(dense_parameter_count, total_parameter_count)`` as Clark et al. 2022 report them.

    Their routed LMs (google-deepmind/scaling_laws_for_routing) count non-embedding
    parameters with *five* ``d × H·q`` attention matrices per layer — Q, K, V, O and the
    Transformer-XL relative-position key projection of their Gopher-style models, which an
    :class:`Architecture` does not describe — two LayerNorms (gain and bias) per layer and no
    final norm, router weights ``d·E`` per MoE layer, and no embeddings. ``dense`` is the same
    model with one expert in every MoE layer. For ``a`` with ``ffn_type="gelu"``,
    ``norm_type="layernorm"`` and no biases this is Clark et al.'s (arXiv 2202.01169, App. A)
    ``dense = L·(4·d·H·q + d·H·q + 8·d² + 4·d)``, ``total = dense + L_m·((E−1)·8·d² + d·E)``.
    """
    raw = raw_components(a)
    d, L, L_m = a.hidden_size, a.n_layers, a.n_moe_layers
    attention = raw["attention"].params + L * d * a.n_heads * a.d_head  # + relative-position proj
    norms = raw["norms"].params - NORM_TYPES[a.norm_type] * d  # no final norm
    one_expert = _ffn_params(a, a.expert_ffn)
    dense = attention + norms + raw["dense_ffn"].params + L_m * one_expert
    total = dense - L_m * one_expert + raw["routed_experts"].params + raw["router"].params
    return dense, total
