"""``moescale plan``: from a budget to a complete, trainable MoE architecture."""

from __future__ import annotations

import json
from pathlib import Path

import click

from moescale.cli._output import echo_json, fmt_num, print_table
from moescale.errors import MoescaleError


def _experts(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise MoescaleError(f"--experts must be a comma-separated list of integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise MoescaleError(f"--experts must list positive integers, got {text!r}")
    return values


@click.command()
@click.option("--compute", required=True, help="Training compute budget in FLOPs, e.g. 1e21.")
@click.option("--method", type=click.Choice(["holistic", "law"]), default=None,
              help="holistic: the two-phase architecture search [default]; law: continuous "
                   "allocation with --law/--fit [default when --law or --fit is given].")
@click.option("--law", default=None, help="Law for --method law (default ludziejewski2025).")
@click.option("--preset", default=None, help="Preset coefficients of --law.")
@click.option("--fit", "fit_file", type=click.Path(dir_okay=False),
              help="A fit.json from `moescale fit`: a loss law (--method law) or holistic2026 "
                   "(C → D_opt, for the holistic method).")
@click.option("--m-ratio-fit", type=click.Path(dir_okay=False),
              help="power_law_C fit of the optimal M/N_a in C (holistic method).")
@click.option("--n-ratio-fit", type=click.Path(dir_okay=False),
              help="power_law_C fit of the optimal N/N_a in C (holistic method).")
@click.option("--memory", default=None, help="Memory budget for weights (+ KV cache), e.g. 80GB.")
@click.option("--kv-tokens", type=int, default=0, help="Tokens of KV cache that must fit in --memory.")
@click.option("--dtype", default="bf16", show_default=True, help="Dtype of weights and KV cache.")
@click.option("--inference-tokens", default=None, help="Tokens to serve, paid from --compute (2·N_act each).")
@click.option("--experts", default="1,2,4,8,16,32", show_default=True,
              help="Numbers of experts to compare (--method law).")
@click.option("--align", type=int, default=8, show_default=True, help="d and d_m multiples of this (holistic).")
@click.option("--seq-len", type=int, default=8192, show_default=True, help="Sequence length S (holistic).")
@click.option("--top", type=int, default=5, show_default=True, help="Alternatives to list.")
@click.option("--hf-config", "hf_out", type=click.Path(dir_okay=False),
              help="Write the planned model as a Hugging Face config.json here.")
@click.option("--hf-family", default=None, help="Family for --hf-config (default: glm4_moe for "
                                                 "holistic plans, mixtral for law plans).")
@click.option("--megatron", "megatron_out", type=click.Path(dir_okay=False),
              help="Write Megatron-LM arguments for the planned model here.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the plan JSON here.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as one JSON object.")
def plan(compute, method, law, preset, fit_file, m_ratio_fit, n_ratio_fit, memory, kv_tokens, dtype, inference_tokens, experts,
         align, seq_len, top, hf_out, hf_family, megatron_out, output, as_json):
    """Plan an MoE for a compute budget (and optionally memory and serving load).

    \b
    Examples:
      moescale plan --compute 1e21
      moescale plan --compute 3e20 --memory 80GB --kv-tokens 16384 --align 64 --json
      moescale plan --compute 1e22 --law ludziejewski2025 --memory 24GB --experts 1,4,8,32
      moescale plan --compute 1e21 --fit fit.json --hf-config planned/config.json
    """
    from moescale.planning import Budget, make_plan
    from moescale.units import parse_bytes, parse_positive

    if top < 0 or align < 1 or seq_len < 1 or kv_tokens < 0:
        raise MoescaleError("--top, --kv-tokens must be ≥ 0 and --align, --seq-len ≥ 1")
    budget = Budget(
        compute=parse_positive(compute, "--compute"),
        memory_bytes=parse_bytes(memory, "--memory") if memory else None,
        kv_tokens=kv_tokens, dtype=dtype,
        inference_tokens=parse_positive(inference_tokens, "--inference-tokens") if inference_tokens else 0.0,
    )
    p = make_plan(budget, method=method, law=law, preset=preset, fit=fit_file,
                  experts=_experts(experts), align=align, seq_len=seq_len, top=top,
                  m_ratio_fit=m_ratio_fit, n_ratio_fit=n_ratio_fit)
    _write_exports(p, hf_out, hf_family, megatron_out, output)
    if as_json:
        echo_json(p.to_dict())
    else:
        _print_plan(p)


def _write_exports(p, hf_out, hf_family, megatron_out, output) -> None:
    if hf_out:
        from moescale.hf import to_hf_config

        family = hf_family or ("glm4_moe" if p.method == "holistic" else
                               "mixtral" if p.architecture.is_moe else "llama")
        _write(hf_out, json.dumps(to_hf_config(p.architecture, family), indent=2) + "\n")
    if megatron_out:
        from moescale.hf import to_megatron_args

        _write(megatron_out, _megatron_lines(to_megatron_args(p.architecture)))
    if output:
        from moescale.cli._output import _jsonable

        _write(output, json.dumps(_jsonable(p.to_dict()), indent=2) + "\n")


def _megatron_lines(args: list[str]) -> str:
    """One ``--flag value`` per line, joined with shell continuations."""
    lines: list[str] = []
    for arg in args:
        if arg.startswith("--") or not lines:
            lines.append(arg)
        else:
            lines[-1] += " " + arg
    return " \\\n".join(lines) + "\n"


def _write(path: str, text: str) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def _print_plan(p) -> None:
    a, al = p.architecture, p.allocation
    b = p.budget
    head = [("method / law", f"{p.method} / {p.law} ({p.convention} convention)"),
            ("compute", f"{b.compute:.3g} FLOPs")]
    if b.memory_bytes:
        head.append(("memory", f"{b.memory_bytes / 1e9:.4g} GB ({b.dtype}), KV tokens {b.kv_tokens}"))
    if b.inference_tokens:
        head.append(("inference tokens", fmt_num(b.inference_tokens)))
    head += [
        ("binding constraint", p.binding_constraint),
        ("active / total params", f"{fmt_num(al['active_params'])} / {fmt_num(al['total_params'])}"),
        ("training tokens", fmt_num(al["tokens"])),
        ("predicted loss", "-" if p.predicted_loss is None else f"{p.predicted_loss:.4f}"),
        ("learning rate", "-" if p.learning_rate is None else f"{p.learning_rate:.3g}"),
        ("batch size (tokens)", fmt_num(p.batch_size_tokens)),
    ]
    print_table("plan", ["", "value"], head)
    arch_rows = [("hidden size d", a.hidden_size), ("layers L (dense L_d + MoE L_m)",
                  f"{a.n_layers} ({a.n_dense_layers} + {a.n_moe_layers})"),
                 ("heads q / kv × head dim", f"{a.n_heads} / {a.kv_heads} × {a.d_head}"),
                 ("dense FFN d_d", a.dense_ffn), ("experts E, top-k K, shared",
                  f"{a.n_experts}, {a.top_k}, {a.n_shared_experts}"),
                 ("expert FFN d_m", a.expert_ffn), ("sequence length", a.seq_len),
                 ("vocabulary", a.vocab_size)]
    print_table("architecture", ["dimension", "value"], arch_rows)
    band = p.near_optimal_band
    if band:
        print_table(f"near-optimal band (within {band.get('tolerance', 0) * 100:g} %)",
                    ["quantity", "range"],
                    [(k, f"{v[0]:.4g} – {v[1]:.4g}") for k, v in band.items() if isinstance(v, list)])
    if p.alternatives:
        cols = {"hidden_size": "d", "n_layers": "L", "first_dense_layers": "L_d",
                "expert_ffn": "d_m", "experts": "E", "M_over_Na": "M/N_a", "N_over_Na": "N/N_a",
                "active_params": "N_a", "total_params": "N", "tokens": "D", "loss": "loss",
                "predicted_loss": "loss", "binding_constraint": "binds"}
        keys = [k for k in cols if k in p.alternatives[0]]
        print_table("alternatives", [cols[k] for k in keys],
                    [[alt[k] for k in keys] for alt in p.alternatives])
