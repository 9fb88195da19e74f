"""The moescale model reproduces Hugging Face ``transformers`` logits (fp32, 1e-4) and the
accounting module's parameter counts."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from moescale.accounting.architecture import Architecture  # noqa: E402
from moescale.accounting.counting import count  # noqa: E402
from moescale.errors import MoescaleError  # noqa: E402
from moescale.training.hf_weights import load_hf_weights  # noqa: E402
from moescale.training.model import (  # noqa: E402
    ModelOptions,
    MoEOptions,  # noqa: E402
    MoETransformer,
)

V, SEQ = 96, 24


def _mixtral():
    cfg = transformers.MixtralConfig(
        hidden_size=48, intermediate_size=40, num_hidden_layers=2, num_attention_heads=6,
        num_key_value_heads=2, num_local_experts=5, num_experts_per_tok=2, vocab_size=V,
        max_position_embeddings=SEQ, rope_theta=5000.0, rms_norm_eps=1e-5, sliding_window=None)
    arch = Architecture(hidden_size=48, n_layers=2, n_heads=6, n_kv_heads=2, vocab_size=V,
                        n_experts=5, top_k=2, expert_ffn=40, seq_len=SEQ)
    opts = ModelOptions(rope_theta=5000.0, norm_eps=1e-5, moe=MoEOptions(norm_topk_prob=True))
    return transformers.MixtralForCausalLM, cfg, arch, opts


def _qwen2_moe():
    """Shared expert with sigmoid gate, QKV biases, a dense layer between MoE layers."""
    cfg = transformers.Qwen2MoeConfig(
        hidden_size=48, intermediate_size=64, moe_intermediate_size=24,
        shared_expert_intermediate_size=56, num_hidden_layers=4, decoder_sparse_step=2,
        num_attention_heads=4, num_key_value_heads=2, num_experts=6, num_experts_per_tok=3,
        norm_topk_prob=False, vocab_size=V, max_position_embeddings=SEQ, rope_theta=10000.0,
        rms_norm_eps=1e-6, tie_word_embeddings=False)
    arch = Architecture(hidden_size=48, n_layers=4, n_heads=4, n_kv_heads=2, vocab_size=V,
                        dense_ffn=64, n_experts=6, top_k=3, expert_ffn=24, n_shared_experts=1,
                        shared_expert_ffn=56, shared_expert_gate=True, moe_layer_step=2,
                        qkv_bias=True, seq_len=SEQ)
    opts = ModelOptions(norm_eps=1e-6, moe=MoEOptions(norm_topk_prob=False))
    return transformers.Qwen2MoeForCausalLM, cfg, arch, opts


def _qwen3_moe():
    """Per-head q/k RMSNorm, explicit head_dim, tied embeddings."""
    cfg = transformers.Qwen3MoeConfig(
        hidden_size=40, intermediate_size=64, moe_intermediate_size=24, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, num_experts=4,
        num_experts_per_tok=2, norm_topk_prob=True, vocab_size=V, max_position_embeddings=SEQ,
        tie_word_embeddings=True)
    arch = Architecture(hidden_size=40, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=16,
                        vocab_size=V, n_experts=4, top_k=2, expert_ffn=24, qk_norm="head",
                        tie_embeddings=True, seq_len=SEQ)
    return transformers.Qwen3MoeForCausalLM, cfg, arch, ModelOptions(norm_eps=1e-6)


def _olmoe():
    """q/k RMSNorm over all heads, top-k weights not renormalised."""
    cfg = transformers.OlmoeConfig(
        hidden_size=32, intermediate_size=24, num_hidden_layers=2, num_attention_heads=4,
        num_experts=8, num_experts_per_tok=2, norm_topk_prob=False, vocab_size=V,
        max_position_embeddings=SEQ, rms_norm_eps=1e-5)
    arch = Architecture(hidden_size=32, n_layers=2, n_heads=4, vocab_size=V, n_experts=8,
                        top_k=2, expert_ffn=24, qk_norm="full", seq_len=SEQ)
    opts = ModelOptions(norm_eps=1e-5, moe=MoEOptions(norm_topk_prob=False))
    return transformers.OlmoeForCausalLM, cfg, arch, opts


def _glm4_moe():
    """DeepSeek-V3-style MoE (GLM-4.5 code, which has GQA instead of MLA): sigmoid router with
    a balancing bias, routed scaling factor, a shared expert, a leading dense layer."""
    cfg = transformers.Glm4MoeConfig(
        hidden_size=48, intermediate_size=64, moe_intermediate_size=24, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, n_routed_experts=8, num_experts_per_tok=2,
        n_shared_experts=1, first_k_dense_replace=1, n_group=1, topk_group=1,
        norm_topk_prob=True, routed_scaling_factor=2.5, vocab_size=V,
        max_position_embeddings=SEQ, rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                         "partial_rotary_factor": 1.0})
    arch = Architecture(hidden_size=48, n_layers=3, n_heads=4, n_kv_heads=2, vocab_size=V,
                        dense_ffn=64, first_dense_layers=1, n_experts=8, top_k=2, expert_ffn=24,
                        n_shared_experts=1, seq_len=SEQ)
    opts = ModelOptions(norm_eps=1e-5, moe=MoEOptions(score="sigmoid", norm_topk_prob=True,
                                                      routed_scaling_factor=2.5))
    return transformers.Glm4MoeForCausalLM, cfg, arch, opts


FAMILIES = {"mixtral": _mixtral, "qwen2_moe": _qwen2_moe, "qwen3_moe": _qwen3_moe,
            "olmoe": _olmoe, "glm4_moe_deepseek_routing": _glm4_moe}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_logits_match_transformers(family):
    cls, cfg, arch, opts = FAMILIES[family]()
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    hf = cls(cfg).eval()
    with torch.no_grad():  # HF initialises some weights (router, norms) to constants
        for p in hf.parameters():
            p.add_(0.05 * torch.randn_like(p))
        for name, buf in hf.named_buffers():  # DeepSeek-style routing bias: must be loaded too
            if name.endswith("e_score_correction_bias"):
                buf.copy_(0.1 * torch.randn_like(buf))
    ours = load_hf_weights(MoETransformer(arch, opts), hf).eval()
    idx = torch.randint(0, V, (3, SEQ), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = hf(idx).logits
        got = ours(idx).logits
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-4, rtol=0), (got - want).abs().max()
    assert ours.num_params() == sum(p.numel() for p in hf.parameters())
    assert ours.num_params() == count(arch).total_params


@pytest.mark.parametrize("changes", [
    dict(n_shared_experts=2, shared_expert_ffn=24, mlp_bias=True, router_bias=True),
    dict(first_dense_layers=1, dense_ffn=40, ffn_type="gelu", out_bias=True),
    dict(norm_type="layernorm", qk_norm="full", tie_embeddings=True, ffn_type="geglu"),
])
def test_param_count_matches_accounting(changes):
    base = Architecture(hidden_size=32, n_layers=3, n_heads=4, n_kv_heads=2, vocab_size=V,
                        n_experts=4, top_k=2, expert_ffn=16, seq_len=SEQ)
    arch = base.replace(**changes)
    model = MoETransformer(arch)
    assert model.num_params() == count(arch).total_params
    out = model(torch.zeros(2, 8, dtype=torch.long))
    assert out.logits.shape == (2, 8, V)


@pytest.mark.parametrize("changes, word", [
    (dict(attention_sinks=True), "attention_sinks"),
    (dict(sliding_window=8, sliding_layers=(0,)), "sliding"),
])
def test_unsupported_features_raise(changes, word):
    arch = Architecture(hidden_size=32, n_layers=2, n_heads=4, vocab_size=V, n_experts=4,
                        top_k=2, expert_ffn=16, seq_len=SEQ, **changes)
    with pytest.raises(MoescaleError, match=word):
        MoETransformer(arch)
