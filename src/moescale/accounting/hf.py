"""Hugging Face ``config.json`` → :class:`~moescale.accounting.architecture.Architecture`
(:func:`from_hf_config`); the way back is :mod:`moescale.accounting.hf_export`, Megatron-LM
flags :mod:`moescale.accounting.megatron`.

Supported families (``model_type``): ``mixtral``, ``qwen2_moe`` (Qwen1.5-MoE), ``qwen3_moe``,
``olmoe``, ``deepseek_v2``, ``deepseek_v3``, ``gpt_oss`` and the dense ``llama``, ``mistral``,
``qwen2``, ``qwen3``. A key missing from the config takes the default of that family's
``transformers`` config class (transformers 5.x), so ``count(from_hf_config(cfg)).total_params``
equals ``sum(p.numel())`` of ``AutoModelForCausalLM.from_config(cfg)`` (tested per family).

Choices made here (documented because they are choices):

- ``seq_len`` is ``max_position_embeddings`` (the longest context the config allows; set
  ``arch.replace(seq_len=...)`` for the training context you mean).
- DeepSeek layer pattern follows DeepSeek's own modelling code: layer ``i`` is MoE when
  ``i >= first_k_dense_replace and i % moe_layer_freq == 0``. (transformers' native DeepSeek
  ignores ``moe_layer_freq``; every released config has ``moe_layer_freq = 1``.)
- DeepSeek's ``n_shared_experts`` shared experts of width ``moe_intermediate_size`` are stored
  by transformers as one fused MLP of width ``moe_intermediate_size · n_shared_experts``: same
  parameters and FLOPs. DeepSeek-V3's ``e_score_correction_bias`` is a buffer, not a parameter,
  and its multi-token-prediction module is not built by transformers: neither is counted.
- Redundant values are normalised so that equal models compare equal: ``head_dim`` equal to
  ``hidden_size / num_attention_heads`` becomes ``None``, as do ``num_key_value_heads`` equal to
  the head count and a shared-expert width equal to the routed-expert width; the layer pattern
  is written in its simplest form (leading dense layers + step, else an explicit list).

This module never imports ``torch`` or ``transformers``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from moescale.accounting.architecture import MLA, Architecture
from moescale.errors import MoescaleError
from moescale.jsonio import read_json_object

MOE_FAMILIES = ("mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "deepseek_v2", "deepseek_v3",
                "gpt_oss", "glm4_moe")
DENSE_FAMILIES = ("llama", "mistral", "qwen2", "qwen3")
FAMILIES = MOE_FAMILIES + DENSE_FAMILIES
REQUIRED_KEYS = ("hidden_size", "num_hidden_layers", "num_attention_heads")

# transformers 5.x defaults of the keys we read, per family (configuration_<family>.py).
# "H" stands for "same as num_attention_heads".
DEFAULTS: dict[str, dict[str, Any]] = {
    "mixtral": dict(vocab_size=32000, intermediate_size=14336, num_key_value_heads=8,
                    max_position_embeddings=131072, num_local_experts=8, num_experts_per_tok=2,
                    sliding_window=None),
    "qwen2_moe": dict(vocab_size=151936, intermediate_size=5632, moe_intermediate_size=1408,
                      shared_expert_intermediate_size=5632, num_key_value_heads=16,
                      max_position_embeddings=32768, num_experts=60, num_experts_per_tok=4,
                      decoder_sparse_step=1, qkv_bias=True, use_sliding_window=False,
                      sliding_window=4096, max_window_layers=28),
    "qwen3_moe": dict(vocab_size=151936, intermediate_size=6144, moe_intermediate_size=768,
                      num_key_value_heads=4, max_position_embeddings=32768, num_experts=128,
                      num_experts_per_tok=8, decoder_sparse_step=1, attention_bias=False,
                      use_sliding_window=False, sliding_window=4096),
    "olmoe": dict(vocab_size=50304, intermediate_size=2048, num_key_value_heads="H",
                  max_position_embeddings=4096, num_experts=64, num_experts_per_tok=8,
                  attention_bias=False),
    "deepseek_v2": dict(vocab_size=102400, intermediate_size=11008, moe_intermediate_size=1407,
                        max_position_embeddings=2048, n_routed_experts=64,
                        num_experts_per_tok=None, n_shared_experts=2, first_k_dense_replace=0,
                        moe_layer_freq=1, kv_lora_rank=512, q_lora_rank=1536,
                        qk_rope_head_dim=64, v_head_dim=128, qk_nope_head_dim=128,
                        attention_bias=False, mlp_bias=False),
    "deepseek_v3": dict(vocab_size=129280, intermediate_size=18432, moe_intermediate_size=2048,
                        max_position_embeddings=4096, n_routed_experts=256,
                        num_experts_per_tok=8, n_shared_experts=1, first_k_dense_replace=3,
                        moe_layer_freq=1, kv_lora_rank=512, q_lora_rank=1536,
                        qk_rope_head_dim=64, v_head_dim=128, qk_nope_head_dim=128,
                        attention_bias=False),
    "gpt_oss": dict(vocab_size=201088, intermediate_size=2880, head_dim=64,
                    num_key_value_heads=8, max_position_embeddings=131072,
                    num_local_experts=128, num_experts_per_tok=4, sliding_window=128,
                    attention_bias=True),
    "glm4_moe": dict(vocab_size=151552, intermediate_size=10944, num_key_value_heads=8,
                     max_position_embeddings=131072, moe_intermediate_size=1408,
                     num_experts_per_tok=8, n_shared_experts=1, n_routed_experts=128,
                     first_k_dense_replace=1, attention_bias=False, use_qk_norm=False),
    "llama": dict(vocab_size=32000, intermediate_size=11008, num_key_value_heads="H",
                  max_position_embeddings=2048, attention_bias=False, mlp_bias=False),
    "mistral": dict(vocab_size=32000, intermediate_size=14336, num_key_value_heads=8,
                    max_position_embeddings=131072, sliding_window=4096),
    "qwen2": dict(vocab_size=151936, intermediate_size=22016, num_key_value_heads=32,
                  max_position_embeddings=32768, use_sliding_window=False, sliding_window=4096,
                  max_window_layers=28),
    "qwen3": dict(vocab_size=151936, intermediate_size=22016, num_key_value_heads=32,
                  head_dim=128, max_position_embeddings=32768, attention_bias=False,
                  use_sliding_window=False, sliding_window=4096, max_window_layers=28),
}
HF_ARCHITECTURES = {
    "mixtral": "MixtralForCausalLM", "qwen2_moe": "Qwen2MoeForCausalLM",
    "qwen3_moe": "Qwen3MoeForCausalLM", "olmoe": "OlmoeForCausalLM",
    "deepseek_v2": "DeepseekV2ForCausalLM", "deepseek_v3": "DeepseekV3ForCausalLM",
    "gpt_oss": "GptOssForCausalLM", "glm4_moe": "Glm4MoeForCausalLM", "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM",
}
# Alternative spellings transformers accepts through ``attribute_map``.
_ALIASES = {"num_local_experts": "num_experts", "num_experts": "num_local_experts"}


# ----- reading --------------------------------------------------------------------------------
class _Cfg:
    """A config dict with the family's defaults and typed getters that raise MoescaleError."""

    def __init__(self, data: dict[str, Any], family: str) -> None:
        self.data, self.family = data, family

    def get(self, key: str) -> Any:
        if key in self.data:
            return self.data[key]
        alias = _ALIASES.get(key)
        if alias is not None and alias in self.data:
            return self.data[alias]
        default = DEFAULTS[self.family].get(key)
        return self.data["num_attention_heads"] if default == "H" else default

    def int(self, key: str, allow_none: bool = False) -> int | None:
        value = self.get(key)
        if value is None and allow_none:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            raise MoescaleError(
                f"{self.family} config key {key!r} must be an integer, got {value!r}")
        return value

    def bool(self, key: str, default: bool = False) -> bool:
        value = self.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise MoescaleError(f"{self.family} config key {key!r} must be true or false, "
                                f"got {value!r}")
        return value

    def int_list(self, key: str) -> list[int]:
        value = self.get(key) or []
        if not isinstance(value, list) or not all(isinstance(i, int) for i in value):
            raise MoescaleError(f"{self.family} config key {key!r} must be a list of layer "
                                f"indices, got {value!r}")
        return value


def from_hf_config(config: str | Path | dict[str, Any]) -> Architecture:
    """Read a Hugging Face ``config.json`` (a path or the parsed dict) as an Architecture.

    >>> a = from_hf_config({"model_type": "mixtral", "hidden_size": 4096,
    ...                     "num_hidden_layers": 32, "num_attention_heads": 32})
    >>> a.n_experts, a.top_k, a.expert_ffn, a.n_kv_heads
    (8, 2, 14336, 8)
    """
    data = read_json_object(config, "a Hugging Face config") if isinstance(config, (str, Path)) else config
    if not isinstance(data, dict):
        raise MoescaleError(f"a Hugging Face config must be a JSON object, got "
                            f"{type(data).__name__}")
    family = data.get("model_type")
    if family not in FAMILIES:
        raise MoescaleError(
            f"unsupported model_type {family!r}; supported: {', '.join(FAMILIES)}")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise MoescaleError(f"{family} config is missing required key(s): {', '.join(missing)}")
    cfg = _Cfg(data, family)
    fields = _common(cfg)
    fields.update(_READERS[family](cfg))
    fields["name"] = str(data.get("_name_or_path") or data.get("name_or_path") or family)
    _normalise(fields)
    return Architecture(**fields)


def _common(cfg: _Cfg) -> dict[str, Any]:
    heads = cfg.int("num_attention_heads")
    kv = cfg.int("num_key_value_heads", allow_none=True)
    return dict(
        hidden_size=cfg.int("hidden_size"), n_layers=cfg.int("num_hidden_layers"),
        n_heads=heads, n_kv_heads=heads if kv is None else kv,
        head_dim=cfg.int("head_dim", allow_none=True), vocab_size=cfg.int("vocab_size"),
        seq_len=cfg.int("max_position_embeddings"),
        tie_embeddings=cfg.bool("tie_word_embeddings"),
    )


def _attention_bias(cfg: _Cfg) -> dict[str, Any]:
    bias = cfg.bool("attention_bias")
    return dict(qkv_bias=bias, out_bias=bias)


def _pattern(flags: list[bool]) -> dict[str, Any]:
    """The simplest Architecture layer pattern giving these MoE flags."""
    if not any(flags):
        return dict(first_dense_layers=0, moe_layer_step=1, moe_layers=None)
    first_moe = next(i for i, f in enumerate(flags) if f)
    for step in range(1, first_moe + 2):  # the first MoE layer is first_dense + step - 1
        first = first_moe + 1 - step
        if all(f == (i >= first and (i + 1 - first) % step == 0) for i, f in enumerate(flags)):
            return dict(first_dense_layers=first, moe_layer_step=step, moe_layers=None)
    return dict(first_dense_layers=0, moe_layer_step=1,
                moe_layers=tuple(i for i, f in enumerate(flags) if f))


def _sliding(layer_types: list[str], window: int | None) -> dict[str, Any]:
    layers = tuple(i for i, t in enumerate(layer_types) if t == "sliding_attention")
    if not layers or not window:
        return dict(sliding_window=None, sliding_layers=())
    return dict(sliding_window=window, sliding_layers=layers)


def _layer_types(cfg: _Cfg, rule: Callable[[int], bool]) -> list[str]:
    given = cfg.data.get("layer_types")
    if given is not None:
        if not isinstance(given, list) or len(given) != cfg.data["num_hidden_layers"]:
            raise MoescaleError(f"{cfg.family} config key 'layer_types' must list one type "
                                "per layer")
        return given
    return ["sliding_attention" if rule(i) else "full_attention"
            for i in range(cfg.data["num_hidden_layers"])]


def _moe_basics(cfg: _Cfg, experts_key: str, width_key: str) -> dict[str, Any]:
    return dict(n_experts=cfg.int(experts_key), top_k=cfg.int("num_experts_per_tok"),
                expert_ffn=cfg.int(width_key))


def _read_mixtral(cfg: _Cfg) -> dict[str, Any]:
    window = cfg.int("sliding_window", allow_none=True)
    return dict(**_moe_basics(cfg, "num_local_experts", "intermediate_size"),
                **_sliding(_layer_types(cfg, lambda i: window is not None), window))


def _qwen_moe_layers(cfg: _Cfg, n_experts: int) -> dict[str, Any]:
    step, only = cfg.int("decoder_sparse_step"), set(cfg.int_list("mlp_only_layers"))
    if step < 1:
        raise MoescaleError(f"decoder_sparse_step must be a positive integer, got {step}")
    flags = [i not in only and n_experts > 0 and (i + 1) % step == 0
             for i in range(cfg.data["num_hidden_layers"])]
    out = _pattern(flags)
    if not any(flags):  # transformers builds a dense model
        out.update(n_experts=0, top_k=0, expert_ffn=0, n_shared_experts=0,
                   shared_expert_ffn=None, shared_expert_gate=False)
    if not all(flags) or "intermediate_size" in cfg.data:
        out["dense_ffn"] = cfg.int("intermediate_size")
    return out


def _read_qwen2_moe(cfg: _Cfg) -> dict[str, Any]:
    moe = _moe_basics(cfg, "num_experts", "moe_intermediate_size")
    shared = cfg.int("shared_expert_intermediate_size")
    if shared == 0:
        raise MoescaleError("qwen2_moe with shared_expert_intermediate_size=0 is not supported "
                            "(transformers still builds the shared-expert gate)")
    use = cfg.bool("use_sliding_window")
    window = cfg.int("sliding_window", allow_none=True) if use else None
    max_window = cfg.int("max_window_layers")
    types = _layer_types(cfg, lambda i: use and (i + 1) % 2 == 1 and i < max_window)
    extra: dict[str, Any] = {}
    if moe["n_experts"] > 0:
        extra = dict(n_shared_experts=1, shared_expert_ffn=shared, shared_expert_gate=True)
    else:
        moe.update(top_k=0, expert_ffn=0)
    return (moe | extra | _qwen_moe_layers(cfg, moe["n_experts"])
            | dict(qkv_bias=cfg.bool("qkv_bias", True)) | _sliding(types, window))


def _read_qwen3_moe(cfg: _Cfg) -> dict[str, Any]:
    moe = _moe_basics(cfg, "num_experts", "moe_intermediate_size")
    if moe["n_experts"] == 0:
        moe.update(top_k=0, expert_ffn=0)
    use = cfg.bool("use_sliding_window")
    window = cfg.int("sliding_window", allow_none=True) if use else None
    return (moe | _qwen_moe_layers(cfg, moe["n_experts"]) | _attention_bias(cfg)
            | dict(qk_norm="head") | _sliding(_layer_types(cfg, lambda i: use), window))


def _read_olmoe(cfg: _Cfg) -> dict[str, Any]:
    d, h = cfg.data["hidden_size"], cfg.data["num_attention_heads"]
    head_dim = cfg.int("head_dim", allow_none=True)
    if head_dim is not None and head_dim * h != d:
        raise MoescaleError("olmoe needs head_dim = hidden_size / num_attention_heads "
                            "(its q/k norms span hidden_size)")
    return dict(**_moe_basics(cfg, "num_experts", "intermediate_size"), **_attention_bias(cfg),
                qk_norm="full")


def _read_deepseek(cfg: _Cfg) -> dict[str, Any]:
    if cfg.bool("mlp_bias"):
        raise MoescaleError("deepseek_v2 with mlp_bias=true is not supported (transformers puts "
                            "biases on dense and shared MLPs but not on routed experts)")
    n_exp = cfg.int("n_routed_experts", allow_none=True) or 0
    top_k = cfg.int("num_experts_per_tok", allow_none=True)
    if n_exp and top_k is None:
        raise MoescaleError(f"{cfg.family} config needs num_experts_per_tok (routed experts per "
                            "token)")
    first, freq = cfg.int("first_k_dense_replace"), cfg.int("moe_layer_freq")
    if freq < 1:
        raise MoescaleError(f"moe_layer_freq must be a positive integer, got {freq}")
    flags = [n_exp > 0 and i >= first and i % freq == 0
             for i in range(cfg.data["num_hidden_layers"])]
    mla = MLA(kv_lora_rank=cfg.int("kv_lora_rank"), qk_nope_head_dim=cfg.int("qk_nope_head_dim"),
              qk_rope_head_dim=cfg.int("qk_rope_head_dim"), v_head_dim=cfg.int("v_head_dim"),
              q_lora_rank=cfg.int("q_lora_rank", allow_none=True))
    moe: dict[str, Any] = dict(n_experts=0)
    if any(flags):
        moe = dict(n_experts=n_exp, top_k=top_k, expert_ffn=cfg.int("moe_intermediate_size"),
                   n_shared_experts=cfg.int("n_shared_experts", allow_none=True) or 0)
    dense = cfg.int("intermediate_size") if not all(flags) or "intermediate_size" in cfg.data else 0
    return dict(**moe, **_pattern(flags), dense_ffn=dense, mla=mla, head_dim=None,
                n_kv_heads=None, **_attention_bias(cfg))


def _read_gpt_oss(cfg: _Cfg) -> dict[str, Any]:
    window = cfg.int("sliding_window", allow_none=True)
    types = _layer_types(cfg, lambda i: (i + 1) % 2 == 1)
    return dict(**_moe_basics(cfg, "num_local_experts", "intermediate_size"),
                **_attention_bias(cfg), mlp_bias=True, router_bias=True, attention_sinks=True,
                **_sliding(types, window))


def _read_glm4_moe(cfg: _Cfg) -> dict[str, Any]:
    """GLM-4.5 style: GQA (q/k/v bias only), leading dense layers, shared experts, no gate."""
    first = cfg.int("first_k_dense_replace")
    flags = [i >= first for i in range(cfg.data["num_hidden_layers"])]
    return dict(n_experts=cfg.int("n_routed_experts"), top_k=cfg.int("num_experts_per_tok"),
                expert_ffn=cfg.int("moe_intermediate_size"),
                n_shared_experts=cfg.int("n_shared_experts"), dense_ffn=cfg.int("intermediate_size"),
                qkv_bias=cfg.bool("attention_bias"),
                qk_norm="head" if cfg.bool("use_qk_norm") else "none", **_pattern(flags))


def _read_llama(cfg: _Cfg) -> dict[str, Any]:
    return dict(dense_ffn=cfg.int("intermediate_size"), mlp_bias=cfg.bool("mlp_bias"),
                **_attention_bias(cfg))


def _read_mistral(cfg: _Cfg) -> dict[str, Any]:
    window = cfg.int("sliding_window", allow_none=True)
    return dict(dense_ffn=cfg.int("intermediate_size"),
                **_sliding(_layer_types(cfg, lambda i: window is not None), window))


def _read_qwen_dense(cfg: _Cfg) -> dict[str, Any]:
    use = cfg.bool("use_sliding_window")
    window = cfg.int("sliding_window", allow_none=True) if use else None
    max_window = cfg.int("max_window_layers")
    types = _layer_types(cfg, lambda i: window is not None and i >= max_window)
    out = dict(dense_ffn=cfg.int("intermediate_size"), **_sliding(types, window))
    if cfg.family == "qwen2":
        out.update(qkv_bias=True)
    else:
        out.update(qk_norm="head", **_attention_bias(cfg))
    return out


_READERS: dict[str, Callable[[_Cfg], dict[str, Any]]] = {
    "mixtral": _read_mixtral, "qwen2_moe": _read_qwen2_moe, "qwen3_moe": _read_qwen3_moe,
    "olmoe": _read_olmoe, "deepseek_v2": _read_deepseek, "deepseek_v3": _read_deepseek,
    "gpt_oss": _read_gpt_oss, "glm4_moe": _read_glm4_moe, "llama": _read_llama,
    "mistral": _read_mistral,
    "qwen2": _read_qwen_dense, "qwen3": _read_qwen_dense,
}


def _normalise(f: dict[str, Any]) -> None:
    d, h = f["hidden_size"], f["n_heads"]
    if f.get("head_dim") is not None and f.get("mla") is None and f["head_dim"] * h == d:
        f["head_dim"] = None
    if f.get("n_kv_heads") == h:
        f["n_kv_heads"] = None
    if f.get("shared_expert_ffn") is not None and f["shared_expert_ffn"] == f.get("expert_ffn"):
        f["shared_expert_ffn"] = None
