"""Load the weights of a Hugging Face ``transformers`` MoE model into :class:`MoETransformer`.

Also reads the model options of a config (:func:`options_from_hf_config`). Supports the families whose layers the model reproduces exactly: Mixtral, Qwen2-MoE (shared
expert + sigmoid gate), Qwen3-MoE, OLMoE, GLM-4.5-MoE with full rotary and one expert group
(DeepSeek-V3 routing: sigmoid scores, balancing bias, routed scaling; shared experts; leading
dense layers) and their dense relatives (Llama/Mistral/Qwen2/3).
``transformers`` ≥ 5 stores experts fused: ``experts.gate_up_proj`` (E, 2F, D) with gate then
up, ``experts.down_proj`` (E, D, F); moescale stores ``w_in_EDH`` (E, D, 2F), ``w_out_EFD``
(E, F, D), so both are transposed. Q, K and V are concatenated into the fused ``qkv``.
"""

from __future__ import annotations

import torch

from moescale.errors import MoescaleError
from moescale.training.model import ModelOptions, MoEOptions, MoETransformer

_ATTN = "model.layers.{i}.self_attn."


def _cat(sd: dict[str, torch.Tensor], prefix: str, names: tuple[str, ...], suffix: str):
    keys = [f"{prefix}{n}{suffix}" for n in names]
    if not all(k in sd for k in keys):
        return None
    return torch.cat([sd[k] for k in keys], dim=0)


def _attention(sd: dict, i: int) -> dict[str, torch.Tensor]:
    p, out = _ATTN.format(i=i), {}
    out[f"blocks.{i}.attn.qkv.weight"] = _cat(sd, p, ("q_proj", "k_proj", "v_proj"), ".weight")
    bias = _cat(sd, p, ("q_proj", "k_proj", "v_proj"), ".bias")
    if bias is not None:
        out[f"blocks.{i}.attn.qkv.bias"] = bias
    out[f"blocks.{i}.attn.out.weight"] = sd[p + "o_proj.weight"]
    for src, dst in (("o_proj.bias", "out.bias"), ("q_norm.weight", "q_norm.weight"),
                     ("k_norm.weight", "k_norm.weight")):
        if p + src in sd:
            out[f"blocks.{i}.attn.{dst}"] = sd[p + src]
    return out


def _mlp(sd: dict, prefix: str, dst: str) -> dict[str, torch.Tensor]:
    """A gate/up/down MLP (dense FFN or shared expert) → fused ``w_in`` and ``w_out``."""
    out = {f"{dst}.w_in.weight": _cat(sd, prefix, ("gate_proj", "up_proj"), ".weight"),
           f"{dst}.w_out.weight": sd[prefix + "down_proj.weight"]}
    bias = _cat(sd, prefix, ("gate_proj", "up_proj"), ".bias")
    if bias is not None:
        out[f"{dst}.w_in.bias"] = bias
        out[f"{dst}.w_out.bias"] = sd[prefix + "down_proj.bias"]
    return out


def _moe(sd: dict, i: int) -> dict[str, torch.Tensor]:
    p, dst = f"model.layers.{i}.mlp.", f"blocks.{i}.ffn."
    out = {dst + "router.gate.weight": sd[p + "gate.weight"],
           dst + "experts.w_in_EDH": sd[p + "experts.gate_up_proj"].transpose(1, 2),
           dst + "experts.w_out_EFD": sd[p + "experts.down_proj"].transpose(1, 2)}
    if p + "gate.bias" in sd:
        out[dst + "router.gate.bias"] = sd[p + "gate.bias"]
    if p + "gate.e_score_correction_bias" in sd:  # DeepSeek-V3 / GLM-4.5 balancing bias
        out[dst + "router.balance_bias_E"] = sd[p + "gate.e_score_correction_bias"]
    for shared in ("shared_expert.", "shared_experts."):
        if p + shared + "down_proj.weight" in sd:
            out |= _mlp(sd, p + shared, dst + "shared")
    if p + "shared_expert_gate.weight" in sd:
        out[dst + "shared_gate.weight"] = sd[p + "shared_expert_gate.weight"]
    return out


def convert_hf_state_dict(sd: dict[str, torch.Tensor], model: MoETransformer) -> dict:
    """Rename and reshape a ``transformers`` state dict to this model's parameter names."""
    out = {"embed.weight": sd["model.embed_tokens.weight"], "norm.weight": sd["model.norm.weight"]}
    out["lm_head.weight"] = sd.get("lm_head.weight", sd["model.embed_tokens.weight"])
    for i, block in enumerate(model.blocks):
        out |= _attention(sd, i)
        out[f"blocks.{i}.attn_norm.weight"] = sd[f"model.layers.{i}.input_layernorm.weight"]
        out[f"blocks.{i}.ffn_norm.weight"] = sd[f"model.layers.{i}.post_attention_layernorm.weight"]
        if block.is_moe:
            out |= _moe(sd, i)
        else:
            out |= _mlp(sd, f"model.layers.{i}.mlp.", f"blocks.{i}.ffn")
    return out


@torch.no_grad()
def load_hf_weights(model: MoETransformer, hf_model: torch.nn.Module) -> MoETransformer:
    """Copy ``hf_model``'s weights into ``model`` (every parameter must be matched)."""
    converted = convert_hf_state_dict(hf_model.state_dict(), model)
    params = dict(model.named_parameters())
    missing = sorted(set(params) - set(converted))
    if missing:
        raise MoescaleError(f"no Hugging Face weight for: {', '.join(missing)}")
    for name, p in params.items():
        src = converted[name]
        if src.shape != p.shape:
            raise MoescaleError(f"shape mismatch for {name}: HF {tuple(src.shape)} vs {tuple(p.shape)}")
        p.copy_(src)
    buffers = dict(model.named_buffers())
    for name, src in converted.items():  # non-trained state such as the routing bias
        if name in buffers:
            buffers[name].copy_(src)
    return model


def options_from_hf_config(config: dict) -> ModelOptions:
    """Model choices a ``transformers`` config fixes beyond the Architecture: RoPE base,
    norm epsilon, top-k renormalisation (Mixtral always renormalises; Qwen/OLMoE read
    ``norm_topk_prob``), DeepSeek's sigmoid scoring and routed scaling factor."""
    family = config.get("model_type", "")
    rope = config.get("rope_theta") or (config.get("rope_parameters") or {}).get("rope_theta")
    moe = MoEOptions(
        score="sigmoid" if config.get("scoring_func") == "sigmoid" else "softmax",
        norm_topk_prob=bool(config.get("norm_topk_prob", family == "mixtral")),
        routed_scaling_factor=float(config.get("routed_scaling_factor") or 1.0))
    return ModelOptions(rope_theta=float(rope or 10000.0),
                        norm_eps=float(config.get("rms_norm_eps") or 1e-6), moe=moe)
