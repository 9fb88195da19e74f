"""``moescale plan``: from a budget to a complete, trainable MoE architecture."""

from __future__ import annotations

import json

import click

from moescale.cli._options import parse_int, parse_int_list
from moescale.cli._output import echo_json, fmt_num, print_table
from moescale.errors import MoescaleError


@click.command()
@click.option("--compute", metavar="FLOPS", required=True, help="Training compute budget in FLOPs, e.g. 1e21.")
@click.option("--method", type=click.Choice(["holistic", "law"]), default=None,
              help="holistic: the two-phase architecture search [default]; law: the realisable "
                   "model with the lowest loss under --law/--fit [default when either is given].")
@click.option("--law", metavar="NAME", default=None, help="Law for --method law (default ludziejewski2025).")
@click.option("--preset", metavar="NAME", default=None, help="Preset coefficients of --law (needs --law).")
@click.option("--fit", "fit", type=click.Path(dir_okay=False),
              help="A fit.json from `moescale fit`: a loss law (--method law) or holistic2026 "
                   "(C → D_opt, for the holistic method).")
@click.option("--m-ratio-fit", type=click.Path(dir_okay=False),
              help="power_law_C fit of the optimal M/N_a in C (holistic method).")
@click.option("--n-ratio-fit", type=click.Path(dir_okay=False),
              help="power_law_C fit of the optimal N/N_a in C (holistic method).")
@click.option("--memory", "memory_bytes", metavar="SIZE", default=None,
              help="Memory budget for weights (+ KV cache), e.g. 80GB.")
@click.option("--kv-tokens", metavar="TOKENS", default="0", show_default=True,
              help="Tokens of KV cache that must fit in --memory.")
@click.option("--dtype", metavar="DTYPE", default="bf16", show_default=True, help="Dtype of weights and KV cache.")
@click.option("--inference-tokens", metavar="TOKENS", default=None, help="Tokens to serve, paid from --compute (2·N_act each).")
@click.option("--corpus-tokens", metavar="TOKENS", default=None,
              help="Tokens in the training corpus: warn when the plan trains on more (default: "
                   "the corpus a --fit records, when its runs repeated it).")
@click.option("--experts", metavar="E[,E…]", default=None,
              help="law: numbers of experts to compare [1,2,4,8,16,32]; holistic: routed "
                   "experts N_e [288].")
@click.option("--top-k", metavar="K", default=None, help="Routed experts per token K (holistic) [8].")
@click.option("--vocab", metavar="V", default=None, help="Vocabulary size [holistic 152064, law 50257].")
@click.option("--seq-len", metavar="S", default=None, help="Sequence length S [holistic 8192, law 512].")
@click.option("--heads", metavar="N", default=None, help="Query heads (default: per scale / d/64).")
@click.option("--kv-heads", metavar="N", default=None, help="Key/value heads (default: heads/2 holistic, heads law).")
@click.option("--head-dim", metavar="N", default=None, help="Head dimension (default: per scale / 64).")
@click.option("--align", metavar="N", default=None, help="d and d_m multiples of this [holistic 8, law 64].")
@click.option("--top", metavar="N", default="5", show_default=True, help="Alternatives to list.")
@click.option("--hf-config", "hf_out", type=click.Path(dir_okay=False),
              help="Write the planned model as a Hugging Face config.json here.")
@click.option("--hf-family", metavar="NAME", default=None, help="Family for --hf-config (default: glm4_moe for "
                                                 "holistic plans, mixtral for law plans).")
@click.option("--megatron", "megatron_out", type=click.Path(dir_okay=False),
              help="Write Megatron-LM arguments for the planned model here.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the plan JSON here.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as one JSON object.")
def plan(compute, method, law, preset, fit, m_ratio_fit, n_ratio_fit, memory_bytes, kv_tokens,
         dtype, inference_tokens, corpus_tokens, experts, top_k, vocab, seq_len, heads, kv_heads, head_dim,
         align, top, hf_out, hf_family, megatron_out, output, as_json):
    """Plan an MoE for a compute budget (and optionally memory and serving load).

    Every budget holds for the realised architecture (exact counts): memory and KV cache
    strictly, compute within 0.1 % below the budget. Laws used outside their fitted range
    are named in the plan's assumptions; a fit used more than 2x beyond its runs, or training
    tokens beyond the corpus, are warnings (stderr; "warnings" in --json).

    \b
    Examples:
      moescale plan --compute 1e21
      moescale plan --compute 3e20 --memory 80GB --kv-tokens 16384 --align 64 --json
      moescale plan --compute 1e22 --law ludziejewski2025 --memory 24GB --experts 1,4,8,32
      moescale plan --compute 1e12 --vocab 256 --seq-len 128 --experts 8 --top-k 2 -o plan.json
      moescale plan --compute 1e21 --fit fit.json --hf-config planned/config.json
      moescale plan --compute 1e15 --fit fit.json --corpus-tokens 4e6 --vocab 256
    """
    from moescale.api import plan as make_plan
    from moescale.fitting import FitResult
    from moescale.units import parse_bytes, parse_positive

    corpus = parse_positive(corpus_tokens, "--corpus-tokens") if corpus_tokens else None
    p = make_plan(
        parse_positive(compute, "--compute"),
        memory_bytes=parse_bytes(memory_bytes, "--memory") if memory_bytes is not None else None,
        kv_tokens=parse_int(kv_tokens, "--kv-tokens", 0), dtype=dtype,
        inference_tokens=(parse_positive(inference_tokens, "--inference-tokens")
                          if inference_tokens is not None else 0.0),
        method=method, law=law, preset=preset, fit=fit,
        experts=parse_int_list(experts) if experts is not None else None,
        align=parse_int(align, "--align"), seq_len=parse_int(seq_len, "--seq-len", 2),
        top=parse_int(top, "--top", 0), m_ratio_fit=m_ratio_fit, n_ratio_fit=n_ratio_fit,
        vocab=parse_int(vocab, "--vocab", 2), top_k=parse_int(top_k, "--top-k"),
        heads=parse_int(heads, "--heads"), kv_heads=parse_int(kv_heads, "--kv-heads"),
        head_dim=parse_int(head_dim, "--head-dim"), corpus_tokens=corpus)
    _write_exports(p, hf_out, hf_family, megatron_out, output)
    if as_json:
        echo_json(p.to_dict())
    else:
        _print_plan(p, FitResult.load(fit).ci_level if fit else 0.95)
        for w in p.warnings:
            click.echo(f"warning: {w}", err=True)


def _write_exports(p, hf_out, hf_family, megatron_out, output) -> None:
    """Render every export first, then write them all or none (planning.exports)."""
    from moescale.planning.exports import write_all

    files: list[tuple[str, str]] = []
    if hf_out:
        files.append((hf_out, json.dumps(p.to_hf_config(hf_family), indent=2) + "\n"))
    elif hf_family:
        raise MoescaleError("--hf-family chooses the family of --hf-config; give --hf-config too")
    if megatron_out:
        from moescale.accounting.megatron import to_megatron_args

        files.append((megatron_out, _megatron_lines(to_megatron_args(p.architecture))))
    if output:
        from moescale.jsonio import jsonable

        files.append((output, json.dumps(jsonable(p.to_dict()), indent=2) + "\n"))
    if files:
        write_all(files)


def _megatron_lines(args: list[str]) -> str:
    """One ``--flag value`` per line, joined with shell continuations."""
    lines: list[str] = []
    for arg in args:
        if arg.startswith("--") or not lines:
            lines.append(arg)
        else:
            lines[-1] += " " + arg
    return " \\\n".join(lines) + "\n"


def _loss_text(p, level: float) -> str:
    """``2.4310 (95 % CI 2.40–2.46)``: the predicted loss and its bootstrap interval."""
    if p.predicted_loss is None:
        return "-"
    ci = p.predicted_loss_ci
    return f"{p.predicted_loss:.4f}" + (f" ({level * 100:g} % CI {ci[0]:.4g}–{ci[1]:.4g})" if ci
                                         else " (no interval)")


def _print_plan(p, level: float = 0.95) -> None:
    """The plan as tables (``level``: the confidence level of the loss interval)."""
    a, al, r = p.architecture, p.allocation, p.realised
    b = p.budget
    head = [("method / law", f"{p.method} / {p.law} ({p.convention} convention)"),
            ("compute (realised / budget)",
             f"{r['total_compute']:.4g} / {b.compute:.3g} FLOPs"
             + (f" (training {r['training_compute']:.4g}, serving {r['inference_compute']:.4g})"
                if b.inference_tokens else ""))]
    if b.memory_bytes:
        head.append(("memory (realised / budget)",
                     f"{r['memory_bytes'] / 1e9:.4g} / {b.memory_bytes / 1e9:.4g} GB ({b.dtype}; "
                     f"weights {r['weights_bytes'] / 1e9:.4g}, KV {b.kv_tokens} tokens "
                     f"{r['kv_cache_bytes'] / 1e9:.4g})"))
    if b.inference_tokens:
        head.append(("inference tokens", fmt_num(b.inference_tokens)))
    head += [
        ("binding constraint", p.binding_constraint),
        ("active / total params", f"{fmt_num(al['active_params'])} / {fmt_num(al['total_params'])}"
                                  f" ({p.convention})"),
        ("all params (exact)", f"{fmt_num(p.counts.active_params)} / {fmt_num(p.counts.total_params)}"),
        ("training tokens", fmt_num(al["tokens"])),
        ("predicted loss", _loss_text(p, level)),
        ("learning rate", "-" if p.learning_rate is None else f"{p.learning_rate:.3g}"),
        ("batch", "-" if p.batch_size_sequences is None else
         f"{p.batch_size_sequences} × {a.seq_len} = {fmt_num(p.batch_size_tokens)} tokens"),
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
    if p.skipped:
        print_table("skipped", ["experts", "reason"],
                    [(str(k["experts"]), k["reason"]) for k in p.skipped])
    for line in p.assumptions:
        click.echo(f"• {line}")
