"""The options that name an architecture, shared by ``count`` and ``train``: one source (a
Hugging Face config, an architecture JSON, a plan JSON or a preset) and size options that
override its fields or, alone, describe the model. Resolved by
:func:`moescale.accounting.presets.resolve_architecture`, as the API does."""

from __future__ import annotations

import click

# each option's parameter is named after the Architecture field it sets (SIZE_FIELDS)
SIZE_OPTIONS = [
    click.option("--hidden-size", "hidden_size", type=int, help="d, the model width."),
    click.option("--layers", "n_layers", type=int, help="L, number of layers."),
    click.option("--heads", "n_heads", type=int, help="N_q, query heads."),
    click.option("--kv-heads", "n_kv_heads", type=int, help="N_kv, key/value heads (GQA)."),
    click.option("--head-dim", "head_dim", type=int, help="d_qkv (default hidden/heads)."),
    click.option("--dense-ffn", "dense_ffn", type=int, help="d_d, dense FFN width."),
    click.option("--experts", "n_experts", type=int,
                 help="N_e, routed experts per MoE layer (0 = dense)."),
    click.option("--top-k", "top_k", type=int, help="K, routed experts per token."),
    click.option("--expert-ffn", "expert_ffn", type=int, help="d_m, width of one expert."),
    click.option("--shared-experts", "n_shared_experts", type=int,
                 help="Shared experts per MoE layer."),
    click.option("--shared-ffn", "shared_expert_ffn", type=int,
                 help="Width of one shared expert (default d_m)."),
    click.option("--dense-layers", "first_dense_layers", type=int,
                 help="L_d, leading dense layers."),
    click.option("--moe-step", "moe_layer_step", type=int,
                 help="Every k-th layer after the dense ones is MoE."),
    click.option("--ffn-type", "ffn_type", type=click.Choice(["swiglu", "geglu", "gelu", "relu"])),
    click.option("--vocab", "vocab_size", type=int, help="Vocabulary size."),
    click.option("--seq-len", "seq_len", type=int, help="S, training sequence length."),
]
SIZE_FIELDS = ("hidden_size", "n_layers", "n_heads", "n_kv_heads", "head_dim", "dense_ffn",
               "n_experts", "top_k", "expert_ffn", "n_shared_experts", "shared_expert_ffn",
               "first_dense_layers", "moe_layer_step", "ffn_type", "vocab_size", "seq_len")


def architecture_options(*, own: tuple[str, ...] = ()):
    """Decorator adding the ways of naming an architecture to a command; ``own`` names the fields whose size options the command leaves out because it
    sets them its own way (``train`` takes ``seq_len`` and ``vocab_size`` from its data)."""
    sources = [
        click.option("--hf-config", type=click.Path(dir_okay=False),
                     help="Hugging Face config.json."),
        click.option("--arch", type=click.Path(dir_okay=False),
                     help="Architecture JSON (from `count --json`, `plan --json` or "
                          "Architecture.to_json)."),
        click.option("--plan", type=click.Path(dir_okay=False),
                     help="Plan JSON from `moescale plan --json`: its architecture."),
        click.option("--preset", help="Built-in architecture, e.g. mixtral-8x7b, deepseek-v3, "
                                      "tiny, small, gpu-100m."),
    ]
    opts = sources + [o for name, o in zip(SIZE_FIELDS, SIZE_OPTIONS, strict=True)
                      if name not in own]

    def decorate(func):
        for opt in reversed(opts):
            func = opt(func)
        return func

    return decorate


def resolve(kwargs: dict) -> tuple:
    """Resolve a command's architecture options (``kwargs``, as :func:`architecture_options`
    adds them) to ``(Architecture, HF config dict or None)``."""
    from moescale.accounting.presets import resolve_architecture

    sources = {k: kwargs.get(k) for k in ("preset", "arch", "hf_config", "plan")}
    sizes = {k: kwargs[k] for k in SIZE_FIELDS if k in kwargs}
    return resolve_architecture(**sources, overrides=sizes)
