"""``moescale count``: parameters, FLOPs and memory of an architecture, per component."""

from __future__ import annotations

import click

from moescale.cli._architecture import architecture_options, resolve
from moescale.cli._output import echo_json, fmt_num, print_table
from moescale.errors import MoescaleError


@click.command()
@architecture_options()
@click.option("--convention", default="exact", show_default=True,
              help="Counting convention: exact, megatron, holistic, chinchilla, kaplan.")
@click.option("--context", type=int, help="Training context for attention FLOPs [default: seq_len].")
@click.option("--kv-tokens", type=int, help="Cached tokens for KV-cache size and decode FLOPs [default: seq_len].")
@click.option("--dtype", default="bf16", show_default=True, help="Weights / KV-cache dtype.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def count(convention, context, kv_tokens, dtype, as_json, **options):
    """Count parameters, FLOPs per token and memory of an (MoE) transformer.

    \b
    Examples:
      moescale count --hf-config config.json
      moescale count --preset mixtral-8x7b --convention megatron --json
      moescale count --hidden-size 1024 --layers 12 --heads 16 --experts 64 \\
                     --top-k 8 --expert-ffn 512 --dense-ffn 3072 --dense-layers 1
    """
    from moescale.accounting.architecture import LIMITS
    from moescale.accounting.counting import count as count_arch
    from moescale.units import dtype_bytes

    for name, value in (("--context", context), ("--kv-tokens", kv_tokens)):
        if value is not None and value <= 0:
            raise MoescaleError(f"{name} must be positive, got {value}")
        if value is not None and value > LIMITS["seq_len"]:
            raise MoescaleError(f"{name} must be at most {LIMITS['seq_len']:,} tokens, got {value:,}")
    dtype_bytes(dtype)
    a, _ = resolve(options)
    c = count_arch(a, convention, context=context, inference_context=kv_tokens)
    if as_json:
        echo_json(c.to_dict(dtype))
        return
    _print_counts(c, dtype)


def _print_counts(c, dtype: str) -> None:
    a = c.architecture
    title = f"{a.name or 'architecture'} — convention '{c.convention.name}', context {c.context}"
    rows = [(x.name, x.params, x.active_params, x.training_flops, x.inference_flops)
            for x in c.components]
    rows.append(("total", c.total_params, c.active_params, c.training_flops_per_token,
                 c.inference_flops_per_token))
    print_table(title, ["component", "params", "active", "train FLOPs/token",
                        f"decode FLOPs/token @{c.inference_context}"], rows)
    r = c.ratios
    summary = [
        ("params (convention)", c.params), ("active params (convention)", c.params_active),
        ("non-embedding params / active", f"{fmt_num(c.total_params_non_embedding)} / "
                                          f"{fmt_num(c.active_params_non_embedding)}"),
        (f"weights ({dtype})", _gb(c.weights_bytes(dtype))),
        ("training state (AdamW, 16 B/param)", _gb(c.training_state_bytes())),
        (f"KV cache, {c.inference_context} tokens ({dtype})",
         _gb(c.kv_cache_bytes(c.inference_context, dtype))),
        ("M/N_a, N/N_a (holistic)", f"{r['M_over_Na']:.3f}, {r['N_over_Na']:.3f}"),
        ("activation ratio N_a/N", f"{r['activation_ratio']:.4f}"),
        ("granularity, G, S", f"{r['granularity']:.3g}, {r['G']}, {r['S']:.3g}"),
    ]
    print_table("summary", ["quantity", "value"], summary)


def _gb(x: float) -> str:
    return f"{x / 1e9:,.3f} GB"
