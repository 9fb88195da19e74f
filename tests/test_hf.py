"""Hugging Face interop: parameter counts equal the transformers models', configs round-trip."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import TINY_HF_CONFIGS
from moescale.accounting.architecture import MLA, Architecture
from moescale.accounting.counting import count
from moescale.accounting.hf import FAMILIES, from_hf_config
from moescale.accounting.hf_export import to_hf_config
from moescale.accounting.megatron import to_megatron_args
from moescale.accounting.presets import HF_CONFIGS, PRESETS, get_preset
from moescale.errors import MoescaleError


def hf_model(cfg: dict, device: str = "meta"):
    """The transformers causal LM of ``cfg`` (eager attention and experts); the test that
    asks for one skips without the hf extra (only those tests: the rest need neither)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    cfg = {k: v for k, v in cfg.items() if k != "_name_or_path"}
    config = transformers.AutoConfig.for_model(**cfg)
    with torch.device(device):
        return transformers.AutoModelForCausalLM.from_config(
            config, attn_implementation="eager", experts_implementation="eager",
            dtype=torch.float32)


def numel(model) -> int:
    return sum(p.numel() for p in model.parameters())


def hf_active(model, arch: Architecture) -> int:
    """Active parameters read off the model: all but the unchosen share of routed experts."""
    experts = sum(p.numel() for n, p in model.named_parameters() if ".mlp.experts." in n)
    return numel(model) - experts * (arch.n_experts - arch.top_k) // max(arch.n_experts, 1)


# ----- parameter counts equal sum(p.numel()) ---------------------------------------------------
@pytest.mark.parametrize("name", sorted(HF_CONFIGS))
def test_full_size_params_equal_transformers(name):
    cfg = HF_CONFIGS[name]
    arch = from_hf_config(cfg)
    model = hf_model(cfg)
    c = count(arch)
    assert c.total_params == numel(model)
    assert c.active_params == hf_active(model, arch)


def test_every_family_has_a_full_size_check():
    assert {cfg["model_type"] for cfg in HF_CONFIGS.values()} == set(FAMILIES)


@pytest.mark.parametrize("family", sorted(TINY_HF_CONFIGS))
def test_tiny_params_equal_transformers(family):
    cfg = TINY_HF_CONFIGS[family]
    arch = from_hf_config(cfg)
    model = hf_model(cfg)
    assert count(arch).total_params == numel(model)
    assert count(arch).active_params == hf_active(model, arch)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_missing_keys_take_the_family_defaults(family):
    """Only the required keys given: every other value is transformers' default."""
    cfg = dict(model_type=family, hidden_size=512, num_hidden_layers=2, num_attention_heads=32)
    if family == "deepseek_v2":
        cfg["num_experts_per_tok"] = 2  # transformers' default (None) cannot build a model
    if family.startswith("deepseek"):
        cfg["num_key_value_heads"] = 32
    assert count(from_hf_config(cfg)).total_params == numel(hf_model(cfg))


def test_active_params_by_hand():
    """Mixtral-8x7B and DeepSeek-V3 active paths written out term by term."""
    d, L, V, f, E, K = 4096, 32, 32000, 14336, 8, 2
    attn = d * 4096 + 2 * d * 1024 + 4096 * d
    mixtral = 2 * V * d + L * (attn + 2 * d + d * E + K * 3 * d * f) + d
    assert count(get_preset("mixtral-8x7b")).active_params == mixtral

    d, L, V, H = 7168, 61, 129280, 128
    attn = (d * 1536 + 1536 * H * 192 + d * (512 + 64) + 512 * H * (128 + 128) + H * 128 * d
            + 1536 + 512)  # + q_a and kv_a layernorms
    dense_layer = attn + 2 * d + 3 * d * 18432
    moe_layer = attn + 2 * d + d * 256 + (8 + 1) * 3 * d * 2048
    deepseek = 2 * V * d + 3 * dense_layer + 58 * moe_layer + d
    assert count(get_preset("deepseek-v3")).active_params == deepseek


# ----- published counts (model cards) ----------------------------------------------------------
# Each published figure is printed to its last digit; we require agreement within one unit of it.
PUBLISHED = {
    # huggingface.co/mistralai/Mixtral-8x7B-v0.1 and mistral.ai/news/mixtral-of-experts:
    # "46.7B total parameters but only uses 12.9B parameters per token"
    "mixtral-8x7b": (46.7e9, 12.9e9, 0.1e9),
    # huggingface.co/allenai/OLMoE-1B-7B-0924: "1B active and 7B total" — paper Table 1: 6.9B/1.3B
    "olmoe-1b-7b": (6.9e9, 1.3e9, 0.1e9),
    # huggingface.co/Qwen/Qwen3-30B-A3B: "Number of Parameters: 30.5B in total and 3.3B activated"
    "qwen3-30b-a3b": (30.5e9, 3.3e9, 0.1e9),
    # huggingface.co/deepseek-ai/DeepSeek-V3: "671B total parameters with 37B activated"
    # (the HF checkpoint's 685B adds the 14B multi-token-prediction module)
    "deepseek-v3": (671e9, 37e9, 1e9),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_counts(name):
    total, active, unit = PUBLISHED[name]
    c = count(get_preset(name))
    assert abs(c.total_params - total) < unit
    assert abs(c.active_params - active) < unit


def test_gpt_oss_published_counts():
    """openai.com/index/gpt-oss-model-card: gpt-oss-20b has 20.9B total and 3.6B active
    parameters, the active count leaving out the input embedding table (a lookup)."""
    c = count(get_preset("gpt-oss-20b"))
    assert abs(c.total_params - 20.9e9) < 0.1e9
    emb = c.component("embedding").params
    assert abs(c.active_params - emb - 3.6e9) < 0.1e9


# ----- to_hf_config ---------------------------------------------------------------------------
def _small(**changes) -> Architecture:
    base = dict(hidden_size=64, n_layers=4, n_heads=4, n_kv_heads=2, vocab_size=128,
                n_experts=8, top_k=2, expert_ffn=32, seq_len=64)
    base.update(changes)
    return Architecture(**base)


ROUND_TRIPS = {
    "mixtral": _small(tie_embeddings=True),
    "qwen2_moe": _small(n_shared_experts=1, shared_expert_ffn=48, shared_expert_gate=True,
                        qkv_bias=True, dense_ffn=96, moe_layers=(0, 2, 3)),
    "qwen3_moe": _small(head_dim=24, qk_norm="head", dense_ffn=96, moe_layer_step=2),
    "olmoe": _small(qk_norm="full", n_kv_heads=None),
    "deepseek_v3": _small(n_kv_heads=None, n_shared_experts=1, first_dense_layers=1,
                          dense_ffn=96, mla=MLA(16, 12, 8, 16, 24)),
    "deepseek_v2": _small(n_kv_heads=None, n_shared_experts=2, first_dense_layers=2,
                          dense_ffn=96, mla=MLA(16, 12, 8, 16), qkv_bias=True, out_bias=True),
    "gpt_oss": _small(qkv_bias=True, out_bias=True, mlp_bias=True,
                      router_bias=True, attention_sinks=True, sliding_window=16,
                      sliding_layers=(0, 2)),
    "llama": _small(n_experts=0, top_k=0, expert_ffn=0, dense_ffn=96, mlp_bias=True),
}


@pytest.mark.parametrize("family", sorted(ROUND_TRIPS))
def test_to_hf_config_round_trips_and_builds(family):
    arch = ROUND_TRIPS[family]
    cfg = to_hf_config(arch, family)
    assert cfg["model_type"] == family and cfg["architectures"]
    assert from_hf_config(cfg) == arch
    assert count(arch).total_params == numel(hf_model(cfg))


@pytest.mark.parametrize("name", ["mixtral-8x7b", "qwen3-30b-a3b", "deepseek-v3",
                                  "qwen1.5-moe-a2.7b", "llama-3-8b", "olmoe-1b-7b",
                                  "gpt-oss-20b", "deepseek-v2-lite"])
def test_presets_round_trip_through_their_family(name):
    arch = get_preset(name)
    family = HF_CONFIGS[name]["model_type"]
    assert from_hf_config(to_hf_config(arch, family)) == arch


@pytest.mark.parametrize("arch, family, feature", [
    (_small(n_shared_experts=1), "mixtral", "shared experts"),
    (_small(first_dense_layers=1, dense_ffn=96), "mixtral", "dense"),
    (_small(qkv_bias=True), "mixtral", "attention biases"),
    (_small(sliding_window=8, sliding_layers=(0,)), "mixtral", "sliding-window"),
    (_small(n_shared_experts=1), "qwen3_moe", "shared experts"),
    (_small(), "qwen3_moe", "per-head RMSNorm"),
    (_small(), "qwen2_moe", "one gated shared expert"),
    (_small(qk_norm="head", qkv_bias=True), "qwen3_moe", "different q/k/v and output"),
    (_small(mla=MLA(16, 12, 8, 16), moe_layer_step=2, dense_ffn=96), "deepseek_v3",
     "moe_layer_freq"),
    (_small(), "deepseek_v3", "plain \\(non-MLA\\) attention"),
    (_small(mla=MLA(16, 12, 8, 16), n_shared_experts=1, shared_expert_ffn=48), "deepseek_v3",
     "shared-expert width"),
    (_small(mla=MLA(16, 12, 8, 16)), "mixtral", "multi-head latent attention"),
    (_small(), "llama", "routed experts"),
    (_small(n_experts=0, top_k=0, expert_ffn=0, dense_ffn=96), "mixtral", "a dense model"),
    (_small(ffn_type="gelu"), "mixtral", "non-SwiGLU"),
    (_small(norm_type="layernorm"), "mixtral", "LayerNorm"),
    (_small(attention_sinks=True), "mixtral", "attention sinks"),
    (_small(), "gpt_oss", "without biases|without bias|without sinks|different"),
])
def test_to_hf_config_names_what_the_family_cannot_represent(arch, family, feature):
    with pytest.raises(MoescaleError, match=f"{family} cannot represent.*({feature})"):
        to_hf_config(arch, family)


def test_to_hf_config_unknown_family():
    with pytest.raises(MoescaleError, match="to_hf_config supports .*mixtral.*got 'gpt2'"):
        to_hf_config(_small(), "gpt2")


# ----- from_hf_config: layer patterns and options ----------------------------------------------
def test_qwen_layer_pattern_sparse_step_and_mlp_only_layers():
    cfg = dict(TINY_HF_CONFIGS["qwen3_moe"], num_hidden_layers=8, decoder_sparse_step=2,
               mlp_only_layers=[3])
    arch = from_hf_config(cfg)
    assert arch.layer_is_moe == (False, True, False, False, False, True, False, True)
    assert count(arch).total_params == numel(hf_model(cfg))


def test_qwen_mlp_only_prefix_is_leading_dense_layers():
    arch = from_hf_config(dict(TINY_HF_CONFIGS["qwen3_moe"], decoder_sparse_step=1,
                               mlp_only_layers=[0, 1]))
    assert (arch.first_dense_layers, arch.moe_layer_step, arch.moe_layers) == (2, 1, None)


def test_qwen_moe_with_no_moe_layer_is_dense():
    cfg = dict(TINY_HF_CONFIGS["qwen2_moe"], num_hidden_layers=2, mlp_only_layers=[0, 1])
    arch = from_hf_config(cfg)
    assert not arch.is_moe
    assert count(arch).total_params == numel(hf_model(cfg))


def test_deepseek_layer_pattern_follows_deepseek_code():
    """DeepSeek's modelling code: MoE where i >= first_k_dense_replace and i % moe_layer_freq == 0
    (transformers' native DeepSeek ignores moe_layer_freq, so no numel comparison here)."""
    cfg = dict(TINY_HF_CONFIGS["deepseek_v3"], num_hidden_layers=7, first_k_dense_replace=2,
               moe_layer_freq=2)
    assert from_hf_config(cfg).layer_is_moe == (False, False, True, False, True, False, True)
    full = from_hf_config(dict(cfg, moe_layer_freq=1))
    assert (full.first_dense_layers, full.n_moe_layers) == (2, 5)


def test_deepseek_shared_experts_fused_width():
    """transformers fuses n shared experts into one MLP of width n·moe_intermediate_size."""
    arch = from_hf_config(TINY_HF_CONFIGS["deepseek_v3"])
    assert (arch.n_shared_experts, arch.shared_ffn) == (2, 32)


def test_gpt_oss_layer_types_and_window():
    arch = get_preset("gpt-oss-20b")
    assert arch.sliding_window == 128 and arch.sliding_layers == tuple(range(0, 24, 2))
    assert arch.attention_sinks and arch.router_bias and arch.mlp_bias and arch.qkv_bias
    default = from_hf_config(dict(model_type="gpt_oss", hidden_size=64, num_hidden_layers=4,
                                  num_attention_heads=4, num_key_value_heads=2))
    assert default.sliding_layers == (0, 2) and default.head_dim == 64


def test_qwen2_sliding_window_layers():
    cfg = dict(TINY_HF_CONFIGS["qwen2"], num_hidden_layers=4, use_sliding_window=True,
               sliding_window=16, max_window_layers=2)
    assert from_hf_config(cfg).sliding_layers == (2, 3)
    assert from_hf_config(dict(cfg, use_sliding_window=False)).sliding_layers == ()


def test_seq_len_and_name_and_normalisation():
    arch = from_hf_config(HF_CONFIGS["mixtral-8x7b"])
    assert arch.seq_len == 32768 and arch.name == "mistralai/Mixtral-8x7B-v0.1"
    assert arch.head_dim is None and arch.n_kv_heads == 8
    assert from_hf_config(TINY_HF_CONFIGS["olmoe"]).name == "olmoe"
    assert get_preset("qwen3-30b-a3b").head_dim == 128  # explicit, not hidden/heads = 64


def test_from_hf_config_reads_a_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(HF_CONFIGS["olmoe-1b-7b"]))
    assert from_hf_config(path) == get_preset("olmoe-1b-7b")
    assert from_hf_config(str(path)) == from_hf_config(json.loads(path.read_text()))


@pytest.mark.parametrize("config, message", [
    ({"model_type": "gpt2", "hidden_size": 8}, "unsupported model_type 'gpt2'; supported: mixtral"),
    ({"hidden_size": 8}, "unsupported model_type None"),
    ({"model_type": "mixtral", "hidden_size": 64}, "mixtral config is missing required key\\(s\\): "
                                                   "num_hidden_layers, num_attention_heads"),
    ([1, 2], "must be a JSON object, got list"),
    (dict(TINY_HF_CONFIGS["mixtral"], num_local_experts="8"),
     "mixtral config key 'num_local_experts' must be an integer, got '8'"),
    (dict(TINY_HF_CONFIGS["llama"], mlp_bias="yes"), "'mlp_bias' must be true or false"),
    (dict(TINY_HF_CONFIGS["qwen3_moe"], mlp_only_layers=3), "'mlp_only_layers' must be a list"),
    (dict(TINY_HF_CONFIGS["qwen3_moe"], decoder_sparse_step=0), "decoder_sparse_step must be"),
    (dict(TINY_HF_CONFIGS["deepseek_v2"], num_experts_per_tok=None), "needs num_experts_per_tok"),
    (dict(TINY_HF_CONFIGS["deepseek_v2"], mlp_bias=True), "mlp_bias=true is not supported"),
    (dict(TINY_HF_CONFIGS["deepseek_v3"], moe_layer_freq=0), "moe_layer_freq must be"),
    (dict(TINY_HF_CONFIGS["qwen2_moe"], shared_expert_intermediate_size=0),
     "shared_expert_intermediate_size=0 is not supported"),
    (dict(TINY_HF_CONFIGS["olmoe"], head_dim=8), "olmoe needs head_dim"),
    (dict(TINY_HF_CONFIGS["gpt_oss"], layer_types=["full_attention"]), "one type per layer"),
    (dict(TINY_HF_CONFIGS["mixtral"], num_experts_per_tok=9), "`top_k`=9 must be between 1"),
])
def test_from_hf_config_errors(config, message):
    with pytest.raises(MoescaleError, match=message):
        from_hf_config(config)


def test_from_hf_config_file_errors(tmp_path):
    with pytest.raises(MoescaleError, match="file not found"):
        from_hf_config(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(MoescaleError, match="is not valid JSON"):
        from_hf_config(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(MoescaleError, match="must hold a JSON object"):
        from_hf_config(bad)


# ----- presets and Megatron-LM ---------------------------------------------------------------------
def test_presets_api():
    assert {"example", "mixtral-8x7b", "olmoe-1b-7b", "qwen3-30b-a3b", "deepseek-v3",
            "gpt-oss-20b"} <= set(PRESETS)
    for name in PRESETS:
        arch = get_preset(name)
        assert isinstance(arch, Architecture) and arch.name == name
    with pytest.raises(MoescaleError, match="unknown preset 'nope'; choose one of example"):
        get_preset("nope")


def test_megatron_args():
    args = to_megatron_args(get_preset("example"))
    flag = {a: args[i + 1] for i, a in enumerate(args[:-1]) if a.startswith("--")}
    assert flag["--num-layers"] == "8" and flag["--hidden-size"] == "512"
    assert flag["--num-query-groups"] == "4" and flag["--kv-channels"] == "64"
    assert flag["--num-experts"] == "16" and flag["--moe-router-topk"] == "2"
    assert flag["--moe-ffn-hidden-size"] == "512" and flag["--ffn-hidden-size"] == "1536"
    assert flag["--moe-shared-expert-intermediate-size"] == "512"
    assert flag["--moe-layer-freq"] == "[0,1,1,1,1,1,1,1]"
    for f in ("--swiglu", "--untie-embeddings-and-output-weights", "--disable-bias-linear",
              "--group-query-attention"):
        assert f in args
    assert flag["--normalization"] == "RMSNorm" and flag["--position-embedding-type"] == "rope"
    v3 = to_megatron_args(get_preset("deepseek-v3"))
    assert "--multi-latent-attention" in v3 and "--group-query-attention" not in v3
    assert v3[v3.index("--q-lora-rank") + 1] == "1536"
    qwen = to_megatron_args(get_preset("qwen1.5-moe-a2.7b"))
    assert "--moe-shared-expert-gate" in qwen and "--add-qkv-bias" in qwen
    assert "--moe-layer-freq" not in qwen and "--qk-layernorm" not in qwen
    assert "--num-experts" not in to_megatron_args(get_preset("llama-3-8b"))
    with pytest.raises(MoescaleError, match="Megatron-LM arguments cannot express attention sinks"):
        to_megatron_args(get_preset("gpt-oss-20b"))


def test_no_torch_or_transformers_import():
    code = ("import sys, moescale.accounting.hf, moescale.accounting.counting, moescale.accounting.presets; "
            "moescale.accounting.presets.get_preset('deepseek-v3'); "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_glm45_air_published_counts():
    # Model card of zai-org/GLM-4.5-Air: 106B total, 12B active parameters (active without the
    # embedding lookup; the card rounds down).
    c = count(get_preset("glm-4.5-air"))
    assert round(c.total_params / 1e9) == 107 and 106e9 <= c.total_params < 107e9
    assert round(c.active_params_non_embedding / 1e9) == 12
