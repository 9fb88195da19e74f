"""Megatron-LM command-line arguments for an
:class:`~moescale.accounting.architecture.Architecture` (:func:`to_megatron_args`)."""

from __future__ import annotations

from moescale.accounting.architecture import Architecture
from moescale.errors import MoescaleError


def to_megatron_args(arch: Architecture) -> list[str]:
    """Megatron-LM (``pretrain_gpt.py``) model arguments describing ``arch``.

    The MoE layer pattern is always written in Megatron's list form ``--moe-layer-freq
    [0,0,1,...]`` when not every layer is MoE (Megatron's integer form puts MoE on layer 0,
    which differs from our "every k-th layer after the dense ones" rule). Attention sinks,
    router biases and sliding-window layers have no Megatron-LM model flag and are rejected.
    """
    a = arch
    for feature, bad in (("attention sinks", a.attention_sinks), ("a router bias", a.router_bias),
                         ("sliding-window attention", bool(a.sliding_layers))):
        if bad:
            raise MoescaleError(f"Megatron-LM arguments cannot express {feature}")
    args = ["--num-layers", str(a.n_layers), "--hidden-size", str(a.hidden_size),
            "--num-attention-heads", str(a.n_heads), "--seq-length", str(a.seq_len),
            "--max-position-embeddings", str(a.seq_len), "--vocab-size", str(a.vocab_size),
            "--position-embedding-type", "rope",
            "--normalization", "RMSNorm" if a.norm_type == "rmsnorm" else "LayerNorm"]
    args += ["--ffn-hidden-size", str(a.dense_ffn or a.expert_ffn)]
    if a.ffn_type in ("swiglu", "geglu"):
        args.append("--swiglu" if a.ffn_type == "swiglu" else "--geglu")
    if not a.tie_embeddings:
        args.append("--untie-embeddings-and-output-weights")
    if not (a.qkv_bias or a.out_bias or a.mlp_bias):
        args.append("--disable-bias-linear")
    elif a.qkv_bias and not (a.out_bias or a.mlp_bias):
        args += ["--disable-bias-linear", "--add-qkv-bias"]
    if a.qk_norm != "none":
        args.append("--qk-layernorm")
    args += _megatron_attention(a) + _megatron_moe(a)
    return args


def _megatron_attention(a: Architecture) -> list[str]:
    if a.mla is not None:
        m = a.mla
        out = ["--multi-latent-attention", "--kv-lora-rank", str(m.kv_lora_rank),
               "--qk-head-dim", str(m.qk_nope_head_dim),
               "--qk-pos-emb-head-dim", str(m.qk_rope_head_dim), "--v-head-dim", str(m.v_head_dim)]
        return out + (["--q-lora-rank", str(m.q_lora_rank)] if m.q_lora_rank else [])
    out = ["--kv-channels", str(a.d_head)]
    if a.kv_heads != a.n_heads:
        out += ["--group-query-attention", "--num-query-groups", str(a.kv_heads)]
    return out


def _megatron_moe(a: Architecture) -> list[str]:
    if not a.is_moe:
        return []
    out = ["--num-experts", str(a.n_experts), "--moe-router-topk", str(a.top_k),
           "--moe-ffn-hidden-size", str(a.expert_ffn)]
    if a.n_shared_experts:
        out += ["--moe-shared-expert-intermediate-size", str(a.n_shared_experts * a.shared_ffn)]
        if a.shared_expert_gate:
            out.append("--moe-shared-expert-gate")
    if a.n_dense_layers:
        out += ["--moe-layer-freq", "[" + ",".join(str(int(f)) for f in a.layer_is_moe) + "]"]
    return out
