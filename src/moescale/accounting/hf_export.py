"""An :class:`~moescale.accounting.architecture.Architecture` written as a Hugging Face
``config.json`` of one family (:func:`to_hf_config`): the families and defaults of
:mod:`moescale.accounting.hf`, each field checked for what the family can express (an
architecture a family cannot hold is one error naming the field, not a silently different
model)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moescale.accounting.architecture import MLA, Architecture
from moescale.accounting.hf import HF_ARCHITECTURES
from moescale.errors import MoescaleError


def _check(arch: Architecture, family: str, rules: dict[str, tuple[bool, str]]) -> None:
    """Raise naming the first feature ``family`` cannot represent (rules: name → (ok, hint))."""
    for feature, (ok, hint) in rules.items():
        if not ok:
            raise MoescaleError(
                f"{family} cannot represent {feature}{': ' + hint if hint else ''}")


def _base_rules(a: Architecture, family: str) -> dict[str, tuple[bool, str]]:
    mla = family.startswith("deepseek")
    return {
        "a non-SwiGLU FFN": (a.ffn_type == "swiglu", f"ffn_type is {a.ffn_type!r}"),
        "LayerNorm": (a.norm_type == "rmsnorm", "use norm_type='rmsnorm'"),
        "multi-head latent attention": (mla or a.mla is None, "use deepseek_v3"),
        "plain (non-MLA) attention": (not mla or a.mla is not None, "set mla"),
        "attention sinks": (family == "gpt_oss" or not a.attention_sinks, "use gpt_oss"),
        "a router bias": (family == "gpt_oss" or not a.router_bias, ""),
        "a shared-expert gate": (family == "qwen2_moe" or not a.shared_expert_gate, ""),
    }


def _layer_types_out(a: Architecture) -> list[str]:
    s = set(a.sliding_layers)
    return ["sliding_attention" if i in s else "full_attention" for i in range(a.n_layers)]


def to_hf_config(arch: Architecture, family: str) -> dict[str, Any]:
    """A ``config.json`` dict of ``family`` describing ``arch`` exactly.

    Supported families: mixtral, qwen2_moe, qwen3_moe, olmoe, deepseek_v2, deepseek_v3,
    gpt_oss, llama. Raises :class:`MoescaleError` naming the feature the family cannot express
    (e.g. shared experts in Mixtral). ``transformers.AutoConfig.for_model(**cfg)`` accepts the
    result, and the model it builds has ``count(arch).total_params`` parameters.
    """
    if family not in _WRITERS:
        raise MoescaleError(f"to_hf_config supports {', '.join(_WRITERS)}; got {family!r}")
    a = arch
    rules = _base_rules(a, family)
    body = _WRITERS[family](a, rules)
    _check(a, family, rules)
    out: dict[str, Any] = {
        "model_type": family, "architectures": [HF_ARCHITECTURES[family]],
        "hidden_size": a.hidden_size, "num_hidden_layers": a.n_layers,
        "num_attention_heads": a.n_heads, "vocab_size": a.vocab_size,
        "max_position_embeddings": a.seq_len, "tie_word_embeddings": a.tie_embeddings,
        "hidden_act": "silu", "rms_norm_eps": 1e-6,
    }
    if a.mla is None:
        out.update(num_key_value_heads=a.kv_heads, head_dim=a.d_head)
    out.update(body)
    return out


def _no_experts_rules(a: Architecture, rules: dict, want_moe: bool) -> None:
    rules["a dense model" if want_moe else "routed experts"] = (
        a.is_moe == want_moe, "" if want_moe else "use an MoE family")


def _all_moe(a: Architecture, rules: dict) -> None:
    _no_experts_rules(a, rules, True)
    rules["dense (non-MoE) layers"] = (a.n_dense_layers == 0, "every layer must be MoE")
    rules["shared experts"] = (a.n_shared_experts == 0, "")


def _window_all(a: Architecture, rules: dict) -> None:
    rules["sliding-window attention on some layers only"] = (
        len(a.sliding_layers) in (0, a.n_layers), "all layers or none")


def _same_bias(a: Architecture, rules: dict, mlp_ok: bool = False) -> None:
    rules["different q/k/v and output-projection biases"] = (a.qkv_bias == a.out_bias, "")
    if not mlp_ok:
        rules["FFN biases"] = (not a.mlp_bias, "")


def _write_mixtral(a: Architecture, rules: dict) -> dict[str, Any]:
    _all_moe(a, rules)
    _window_all(a, rules)
    rules["attention biases"] = (not (a.qkv_bias or a.out_bias or a.mlp_bias), "")
    rules["q/k norms"] = (a.qk_norm == "none", "")
    return dict(intermediate_size=a.expert_ffn, num_local_experts=a.n_experts,
                num_experts_per_tok=a.top_k,
                sliding_window=a.sliding_window if a.sliding_layers else None)


def _qwen_layers(a: Architecture) -> dict[str, Any]:
    flags = a.layer_is_moe
    out: dict[str, Any] = dict(decoder_sparse_step=1,
                               mlp_only_layers=[i for i, f in enumerate(flags) if not f])
    if a.moe_layers is None and a.first_dense_layers == 0:
        out = dict(decoder_sparse_step=a.moe_layer_step, mlp_only_layers=[])
    if a.dense_ffn:
        out["intermediate_size"] = a.dense_ffn
    return out


def _write_qwen2_moe(a: Architecture, rules: dict) -> dict[str, Any]:
    _no_experts_rules(a, rules, True)
    rules["a number of shared experts other than one gated expert"] = (
        a.n_shared_experts == 1 and a.shared_expert_gate, "Qwen2-MoE has one gated shared expert")
    rules["an output-projection bias"] = (not a.out_bias, "")
    rules["FFN biases"] = (not a.mlp_bias, "")
    rules["q/k norms"] = (a.qk_norm == "none", "")
    return dict(num_experts=a.n_experts, num_experts_per_tok=a.top_k,
                moe_intermediate_size=a.expert_ffn, shared_expert_intermediate_size=a.shared_ffn,
                qkv_bias=a.qkv_bias, use_sliding_window=bool(a.sliding_layers),
                sliding_window=a.sliding_window or 4096, layer_types=_layer_types_out(a),
                **_qwen_layers(a))


def _write_qwen3_moe(a: Architecture, rules: dict) -> dict[str, Any]:
    _no_experts_rules(a, rules, True)
    rules["shared experts"] = (a.n_shared_experts == 0, "use qwen2_moe or deepseek_v3")
    _same_bias(a, rules)
    _window_all(a, rules)
    rules["q/k norms other than per-head RMSNorm"] = (a.qk_norm == "head", "set qk_norm='head'")
    return dict(num_experts=a.n_experts, num_experts_per_tok=a.top_k,
                moe_intermediate_size=a.expert_ffn, attention_bias=a.qkv_bias,
                use_sliding_window=bool(a.sliding_layers), sliding_window=a.sliding_window,
                **_qwen_layers(a))


def _write_olmoe(a: Architecture, rules: dict) -> dict[str, Any]:
    _all_moe(a, rules)
    _same_bias(a, rules)
    rules["sliding-window attention"] = (not a.sliding_layers, "")
    rules["q/k norms other than full-width RMSNorm"] = (a.qk_norm == "full",
                                                       "set qk_norm='full'")
    rules["an explicit head_dim"] = (a.d_head * a.n_heads == a.hidden_size, "")
    return dict(intermediate_size=a.expert_ffn, num_experts=a.n_experts,
                num_experts_per_tok=a.top_k, attention_bias=a.qkv_bias)


def _write_deepseek(a: Architecture, rules: dict) -> dict[str, Any]:
    _same_bias(a, rules)
    rules["sliding-window attention"] = (not a.sliding_layers, "")
    rules["q/k norms"] = (a.qk_norm == "none", "")
    flags = a.layer_is_moe
    first = next((i for i, f in enumerate(flags) if f), a.n_layers)
    rules["MoE layers other than all layers after the leading dense ones"] = (
        all(f == (i >= first) for i, f in enumerate(flags)),
        "transformers' DeepSeek ignores moe_layer_freq")
    rules["a shared-expert width different from the routed-expert width"] = (
        a.n_shared_experts == 0 or a.shared_ffn == a.expert_ffn, "")
    m = a.mla or MLA(1, 1, 1, 1)
    out: dict[str, Any] = dict(
        num_key_value_heads=a.n_heads, kv_lora_rank=m.kv_lora_rank, q_lora_rank=m.q_lora_rank,
        qk_nope_head_dim=m.qk_nope_head_dim, qk_rope_head_dim=m.qk_rope_head_dim,
        v_head_dim=m.v_head_dim, attention_bias=a.qkv_bias, first_k_dense_replace=first,
        moe_layer_freq=1, n_routed_experts=a.n_experts or None,
        num_experts_per_tok=a.top_k or None, moe_intermediate_size=a.expert_ffn or 1,
        n_shared_experts=a.n_shared_experts, intermediate_size=a.dense_ffn or 1)
    if not a.dense_ffn:
        del out["intermediate_size"]
    if a.is_moe:  # the grouped router of the defaults needs n_group to divide the experts
        out.update(n_group=1, topk_group=1)
    return out


def _write_gpt_oss(a: Architecture, rules: dict) -> dict[str, Any]:
    _all_moe(a, rules)
    _same_bias(a, rules, mlp_ok=True)
    for feature, ok in (("experts without biases", a.mlp_bias),
                        ("a router without bias", a.router_bias),
                        ("attention without sinks", a.attention_sinks),
                        ("q/k norms", a.qk_norm == "none")):
        rules[feature] = (ok, "")
    return dict(intermediate_size=a.expert_ffn, num_local_experts=a.n_experts,
                num_experts_per_tok=a.top_k, attention_bias=a.qkv_bias,
                sliding_window=a.sliding_window or 128, layer_types=_layer_types_out(a))


def _write_glm4_moe(a: Architecture, rules: dict) -> dict[str, Any]:
    _no_experts_rules(a, rules, True)
    flags = a.layer_is_moe
    first = next((i for i, f in enumerate(flags) if f), a.n_layers)
    rules["MoE layers other than all layers after the leading dense ones"] = (
        all(f == (i >= first) for i, f in enumerate(flags)), "")
    rules["an output-projection or MLP bias"] = (not a.out_bias and not a.mlp_bias, "")
    rules["a shared-expert width different from the routed-expert width"] = (
        a.n_shared_experts == 0 or a.shared_ffn == a.expert_ffn, "")
    rules["sliding-window attention"] = (not a.sliding_layers, "")
    rules["full-width q/k norms"] = (a.qk_norm != "full", "use qk_norm='head'")
    return dict(intermediate_size=a.dense_ffn or 1, moe_intermediate_size=a.expert_ffn,
                n_routed_experts=a.n_experts, num_experts_per_tok=a.top_k,
                n_shared_experts=a.n_shared_experts, first_k_dense_replace=first,
                attention_bias=a.qkv_bias, use_qk_norm=a.qk_norm == "head", n_group=1,
                topk_group=1, partial_rotary_factor=1.0)


def _write_llama(a: Architecture, rules: dict) -> dict[str, Any]:
    _no_experts_rules(a, rules, False)
    _same_bias(a, rules, mlp_ok=True)
    rules["sliding-window attention"] = (not a.sliding_layers, "use mistral")
    rules["q/k norms"] = (a.qk_norm == "none", "")
    return dict(intermediate_size=a.dense_ffn, attention_bias=a.qkv_bias, mlp_bias=a.mlp_bias)


_WRITERS: dict[str, Callable[[Architecture, dict], dict[str, Any]]] = {
    "mixtral": _write_mixtral, "qwen2_moe": _write_qwen2_moe, "qwen3_moe": _write_qwen3_moe,
    "olmoe": _write_olmoe, "deepseek_v2": _write_deepseek, "deepseek_v3": _write_deepseek,
    "gpt_oss": _write_gpt_oss, "glm4_moe": _write_glm4_moe, "llama": _write_llama,
}
