"""Named architectures, one namespace for every command and the Python API: published open
models (from their Hugging Face ``config.json``), a small ``example`` MoE, and the tiny
torchtitan-style debug presets the trainer's tests use (``tiny``, ``small``, ``small-shared``,
``gpu-100m``).

:func:`resolve_architecture` is the one resolver behind ``count``, ``train`` and the API: a
preset, an architecture/plan JSON, a Hugging Face ``config.json`` or size overrides.

``get_preset(name)`` returns the :class:`~moescale.accounting.architecture.Architecture`; ``PRESETS`` maps
each name to a zero-argument callable building it; ``HF_CONFIGS`` holds the config dicts the
published presets are read from (only the keys that change the architecture; everything else
takes the family's ``transformers`` default, as in :func:`moescale.accounting.hf.from_hf_config`).
``seq_len`` of an HF preset is the model's ``max_position_embeddings``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from moescale.accounting.architecture import Architecture
from moescale.accounting.hf import from_hf_config
from moescale.errors import MoescaleError

HF_CONFIGS: dict[str, dict[str, Any]] = {
    # huggingface.co/mistralai/Mixtral-8x7B-v0.1/blob/main/config.json
    "mixtral-8x7b": dict(
        _name_or_path="mistralai/Mixtral-8x7B-v0.1", model_type="mixtral", hidden_size=4096,
        intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=8, vocab_size=32000, max_position_embeddings=32768,
        num_local_experts=8, num_experts_per_tok=2, sliding_window=None,
        tie_word_embeddings=False),
    # huggingface.co/allenai/OLMoE-1B-7B-0924/blob/main/config.json
    "olmoe-1b-7b": dict(
        _name_or_path="allenai/OLMoE-1B-7B-0924", model_type="olmoe", hidden_size=2048,
        intermediate_size=1024, num_hidden_layers=16, num_attention_heads=16,
        num_key_value_heads=16, vocab_size=50304, max_position_embeddings=4096,
        num_experts=64, num_experts_per_tok=8, attention_bias=False, clip_qkv=None,
        tie_word_embeddings=False),
    # huggingface.co/Qwen/Qwen3-30B-A3B/blob/main/config.json
    "qwen3-30b-a3b": dict(
        _name_or_path="Qwen/Qwen3-30B-A3B", model_type="qwen3_moe", hidden_size=2048,
        intermediate_size=6144, moe_intermediate_size=768, num_hidden_layers=48,
        num_attention_heads=32, num_key_value_heads=4, head_dim=128, vocab_size=151936,
        max_position_embeddings=40960, num_experts=128, num_experts_per_tok=8,
        decoder_sparse_step=1, mlp_only_layers=[], attention_bias=False,
        use_sliding_window=False, tie_word_embeddings=False),
    # huggingface.co/Qwen/Qwen1.5-MoE-A2.7B/blob/main/config.json
    "qwen1.5-moe-a2.7b": dict(
        _name_or_path="Qwen/Qwen1.5-MoE-A2.7B", model_type="qwen2_moe", hidden_size=2048,
        intermediate_size=5632, moe_intermediate_size=1408,
        shared_expert_intermediate_size=5632, num_hidden_layers=24, num_attention_heads=16,
        num_key_value_heads=16, vocab_size=151936, max_position_embeddings=8192,
        num_experts=60, num_experts_per_tok=4, decoder_sparse_step=1,
        use_sliding_window=False, tie_word_embeddings=False),
    # huggingface.co/deepseek-ai/DeepSeek-V2-Lite/blob/main/config.json
    "deepseek-v2-lite": dict(
        _name_or_path="deepseek-ai/DeepSeek-V2-Lite", model_type="deepseek_v2", hidden_size=2048,
        intermediate_size=10944, moe_intermediate_size=1408, num_hidden_layers=27,
        num_attention_heads=16, num_key_value_heads=16, n_routed_experts=64, n_shared_experts=2,
        num_experts_per_tok=6, first_k_dense_replace=1, moe_layer_freq=1, kv_lora_rank=512,
        q_lora_rank=None, qk_rope_head_dim=64, v_head_dim=128, qk_nope_head_dim=128,
        vocab_size=102400, max_position_embeddings=163840, tie_word_embeddings=False),
    # huggingface.co/deepseek-ai/DeepSeek-V3/blob/main/config.json (the MTP module is not
    # counted: transformers does not build it; the 671B of the model card excludes it)
    "deepseek-v3": dict(
        _name_or_path="deepseek-ai/DeepSeek-V3", model_type="deepseek_v3", hidden_size=7168,
        intermediate_size=18432, moe_intermediate_size=2048, num_hidden_layers=61,
        num_attention_heads=128, num_key_value_heads=128, n_routed_experts=256,
        n_shared_experts=1, num_experts_per_tok=8, first_k_dense_replace=3, moe_layer_freq=1,
        n_group=8, topk_group=4, kv_lora_rank=512, q_lora_rank=1536, qk_rope_head_dim=64,
        v_head_dim=128, qk_nope_head_dim=128, vocab_size=129280,
        max_position_embeddings=163840, tie_word_embeddings=False),
    # huggingface.co/openai/gpt-oss-20b/blob/main/config.json
    "gpt-oss-20b": dict(
        _name_or_path="openai/gpt-oss-20b", model_type="gpt_oss", hidden_size=2880,
        intermediate_size=2880, num_hidden_layers=24, num_attention_heads=64,
        num_key_value_heads=8, head_dim=64, num_local_experts=32, num_experts_per_tok=4,
        vocab_size=201088, max_position_embeddings=131072, sliding_window=128,
        layer_types=["sliding_attention", "full_attention"] * 12, attention_bias=True,
        tie_word_embeddings=False),
    # huggingface.co/zai-org/GLM-4.5-Air/blob/main/config.json (model card: 106B total, 12B active)
    "glm-4.5-air": dict(
        _name_or_path="zai-org/GLM-4.5-Air", model_type="glm4_moe", hidden_size=4096,
        intermediate_size=10944, moe_intermediate_size=1408, num_hidden_layers=46,
        num_attention_heads=96, num_key_value_heads=8, head_dim=128, n_routed_experts=128,
        n_shared_experts=1, num_experts_per_tok=8, first_k_dense_replace=1,
        attention_bias=True, use_qk_norm=False, partial_rotary_factor=0.5,
        vocab_size=151552, max_position_embeddings=131072, tie_word_embeddings=False),
    # huggingface.co/meta-llama/Meta-Llama-3-8B/blob/main/config.json
    "llama-3-8b": dict(
        _name_or_path="meta-llama/Meta-Llama-3-8B", model_type="llama", hidden_size=4096,
        intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=8, vocab_size=128256, max_position_embeddings=8192,
        attention_bias=False, mlp_bias=False, tie_word_embeddings=False),
    # huggingface.co/mistralai/Mistral-7B-v0.1/blob/main/config.json
    "mistral-7b": dict(
        _name_or_path="mistralai/Mistral-7B-v0.1", model_type="mistral", hidden_size=4096,
        intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=8, vocab_size=32000, max_position_embeddings=32768,
        sliding_window=4096, tie_word_embeddings=False),
    # huggingface.co/Qwen/Qwen2-7B/blob/main/config.json
    "qwen2-7b": dict(
        _name_or_path="Qwen/Qwen2-7B", model_type="qwen2", hidden_size=3584,
        intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
        num_key_value_heads=4, vocab_size=152064, max_position_embeddings=131072,
        use_sliding_window=False, sliding_window=131072, max_window_layers=28,
        tie_word_embeddings=False),
    # huggingface.co/Qwen/Qwen3-8B/blob/main/config.json
    "qwen3-8b": dict(
        _name_or_path="Qwen/Qwen3-8B", model_type="qwen3", hidden_size=4096,
        intermediate_size=12288, num_hidden_layers=36, num_attention_heads=32,
        num_key_value_heads=8, head_dim=128, vocab_size=151936, max_position_embeddings=40960,
        attention_bias=False, use_sliding_window=False, tie_word_embeddings=False),
}


def example() -> Architecture:
    """A small MoE with every common feature (~0.5B total, ~0.1B active): one leading dense
    layer, GQA, 16 routed experts of which 2 per token, one shared expert, SwiGLU."""
    return Architecture(
        name="example", hidden_size=512, n_layers=8, n_heads=8, n_kv_heads=4, vocab_size=32000,
        dense_ffn=1536, n_experts=16, top_k=2, expert_ffn=512, n_shared_experts=1,
        first_dense_layers=1, seq_len=2048)


def _from_hf(name: str) -> Callable[[], Architecture]:
    def build() -> Architecture:
        return from_hf_config(HF_CONFIGS[name]).replace(name=name)

    build.__name__ = name.replace("-", "_").replace(".", "_")
    build.__doc__ = f"{HF_CONFIGS[name]['_name_or_path']} (from its Hugging Face config.json)."
    return build


def tiny() -> Architecture:
    """2 layers, d=64, 8 experts top-2 (0.26 M parameters, 0.11 M active): seconds on a CPU."""
    return Architecture(hidden_size=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=256,
                        n_experts=8, top_k=2, expert_ffn=64, seq_len=256, name="tiny")


def small() -> Architecture:
    """4 layers, d=128, 8 experts top-2 (the CPU benchmark's Mixtral shape)."""
    return Architecture(hidden_size=128, n_layers=4, n_heads=4, n_kv_heads=2, vocab_size=256,
                        n_experts=8, top_k=2, expert_ffn=256, seq_len=256, name="small")


def small_shared() -> Architecture:
    """DeepSeek-style: a leading dense layer, 16 fine-grained experts top-4, one shared expert."""
    return Architecture(hidden_size=128, n_layers=4, n_heads=4, n_kv_heads=2, vocab_size=256,
                        dense_ffn=384, first_dense_layers=1, n_experts=16, top_k=4,
                        expert_ffn=96, n_shared_experts=1, seq_len=256, name="small-shared")


def gpu_100m() -> Architecture:
    """About 100 M active parameters (GPU MFU measurements): 12 layers, d=768, 8 experts top-2."""
    return Architecture(hidden_size=768, n_layers=12, n_heads=12, n_kv_heads=4, vocab_size=4096,
                        n_experts=8, top_k=2, expert_ffn=1536, seq_len=1024, name="gpu-100m")


DEBUG_PRESETS: dict[str, Callable[[], Architecture]] = {
    "tiny": tiny, "small": small, "small-shared": small_shared, "gpu-100m": gpu_100m}
PRESETS: dict[str, Callable[[], Architecture]] = {"example": example, **DEBUG_PRESETS}
PRESETS.update({name: _from_hf(name) for name in HF_CONFIGS})


def get_preset(name: str) -> Architecture:
    """The named architecture; an unknown name is a :class:`MoescaleError` listing the choices.

    >>> get_preset("tiny").n_experts, get_preset("mixtral-8x7b").n_experts
    (8, 8)
    """
    try:
        build = PRESETS[name]
    except (KeyError, TypeError):
        raise MoescaleError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
    return build()


def resolve_architecture(*, preset: str | None = None, arch: str | Path | None = None,
                         hf_config: str | Path | None = None, plan: str | Path | None = None,
                         overrides: dict[str, Any] | None = None,
                         ) -> tuple[Architecture, dict[str, Any] | None]:
    """The architecture from exactly one source, with ``overrides`` (Architecture fields)
    applied; and the Hugging Face config dict when the source has one (an HF file or an HF
    preset: the trainer reads RoPE θ, norm ε and router options from it).

    With no source, ``overrides`` alone must describe the model.

    >>> a, hf = resolve_architecture(preset="mixtral-8x7b", overrides={"n_layers": 2})
    >>> a.n_layers, hf["model_type"]
    (2, 'mixtral')
    """
    given = [f"`{n}`" for n, v in (("preset", preset), ("arch", arch), ("hf_config", hf_config),
                                  ("plan", plan)) if v]
    if len(given) > 1:
        raise MoescaleError(f"give only one of `preset`, `arch`, `hf_config` and `plan` "
                            f"(got {', '.join(given)})")
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    hf: dict[str, Any] | None = None
    if preset:
        base = get_preset(preset)
        hf = dict(HF_CONFIGS[preset]) if preset in HF_CONFIGS else None
    elif hf_config:
        path = Path(hf_config)
        base = from_hf_config(path)  # a missing or bad file is a MoescaleError
        hf = json.loads(path.read_text(encoding="utf-8"))
    elif arch or plan:
        base = Architecture.from_json(arch or plan)
    else:
        if not overrides:
            raise MoescaleError(
                "no architecture given; give `hf_config` (a config.json), `arch` (an architecture "
                "JSON), `plan` (a plan JSON), `preset` or the sizes (`hidden_size`, `n_layers`, "
                "`n_heads`, ...)")
        return Architecture.from_dict(overrides), None
    return (base.replace(**overrides) if overrides else base), hf
