"""``moescale compare``: the comparisons next to a plan — dense vs MoE at one budget, the best
number of experts per memory budget, and the comprehensive law's optimal G, S and N_a/N."""

from __future__ import annotations

import click

from moescale.api import COMPARE_EXPERTS, COMPARE_MEMORIES, COMPARE_SIZES
from moescale.cli._output import echo_json, fmt_num, print_table
from moescale.errors import MoescaleError


def _list(text: str, parse, what: str) -> list[float]:
    values = [parse(v, what) for v in text.split(",") if v.strip()]
    if not values:
        raise MoescaleError(f"{what} is empty; give one or more comma-separated values")
    return values


@click.command()
@click.option("--compute", required=True, metavar="FLOPS", help="Training compute in FLOPs, e.g. 1e21.")
@click.option("--law", default=None, metavar="NAME",
              help="Loss law with experts E (default ludziejewski2025).")
@click.option("--preset", default=None, metavar="NAME", help="Preset of --law (needs --law).")
@click.option("--fit", "fit_file", type=click.Path(dir_okay=False),
              help="A fit.json of a law with experts E, instead of --law.")
@click.option("--experts", default=",".join(map(str, COMPARE_EXPERTS)), show_default=True,
              metavar="E1,E2,…", help="Expert counts to compare.")
@click.option("--memory", "memories", default=",".join(f"{m / 1e9:g}GB" for m in COMPARE_MEMORIES),
              show_default=True, metavar="SIZE,…",
              help="Memory budgets (weights, + KV cache with --kv-tokens) for the experts question.")
@click.option("--dtype", default="bf16", show_default=True, metavar="DTYPE",
              help="Dtype of weights and KV cache.")
@click.option("--kv-tokens", default="0", show_default=True, metavar="TOKENS",
              help="KV-cache tokens held in memory.")
@click.option("--sizes", default=",".join(f"{n:g}" for n in COMPARE_SIZES), show_default=True,
              metavar="N1,N2,…", help="Total sizes N for the comprehensive law's optima.")
@click.option("--tolerance", default=None, metavar="FRACTION",
              help="Use the tolerance criterion: the cheapest G and N_a/N within this relative "
                   "loss increase (0–0.5), instead of the marginal one.")
@click.option("--threshold", default=None, metavar="NATS",
              help="Marginal criterion: stop lowering N_a/N where the loss it buys falls to this "
                   "many nats per unit of N_a/N [default: 0.39, which gives the paper's 9 % at "
                   "30B and 5 % at 671B].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def compare(compute, law, preset, fit_file, experts, memories, dtype, kv_tokens, sizes, tolerance,
            threshold, as_json):
    """Dense vs MoE savings, optimal experts per memory budget, optimal G, S and N_a/N.

    A memory budget that no number of experts fits is listed as such, not dropped.

    \b
    Examples:
      moescale compare --compute 1e21
      moescale compare --compute 1e22 --memory 24GB,80GB --kv-tokens 16384 --json
      moescale compare --compute 1e21 --fit fit.json --experts 1,8,32
    """
    from moescale import validation as check
    from moescale.api import compare as compare_
    from moescale.cli._options import parse_int, parse_int_list
    from moescale.units import parse_bytes, parse_number, parse_positive

    budget = parse_positive(compute, "--compute")
    result = compare_(
        budget, law=law, preset=preset, fit=fit_file, experts=parse_int_list(experts),
        memories_bytes=_list(memories, parse_bytes, "--memory"), dtype=dtype,
        kv_tokens=parse_int(kv_tokens, "--kv-tokens", 0),
        sizes=_list(sizes, parse_positive, "--sizes"),
        tolerance=None if tolerance is None else check.number(
            parse_number(tolerance, "--tolerance"), "--tolerance", positive=True, maximum=0.5),
        threshold=None if threshold is None else check.number(
            parse_number(threshold, "--threshold"), "--threshold", minimum=0))
    if as_json:
        echo_json(result.to_dict())
        return
    result = result.to_dict()
    print_table(f"dense vs MoE at C = {budget:.3g} ({result['law']}, compute-optimal)",
                ["experts", "loss", "N_active", "tokens", "FLOPs to match dense", "savings"],
                [(str(r["experts"]), f"{r['loss']:.4f}", r["active_params"], r["tokens"],
                  f"{r['compute_to_match_dense']:.3g}", f"{r['flop_savings']:.1%}")
                 for r in result["dense_vs_moe"]])
    print_table("best number of experts per memory budget",
                ["memory", "experts", "loss", "N_active", "N_total", "binds"],
                [(f"{r['memory_bytes'] / 1e9:g} GB", str(r["experts"]), f"{r['loss']:.4f}",
                  r["active_params"], r["total_params"], r["binding_constraint"])
                 if r["experts"] is not None else
                 (f"{r['memory_bytes'] / 1e9:g} GB", "-", "-", "-", "-", "does not fit")
                 for r in result["experts_by_memory"]])
    for r in result["experts_by_memory"]:
        if r["experts"] is None:
            click.echo(f"• {r['memory_bytes'] / 1e9:g} GB does not fit any model: {r['reason']}")
    first = result["comprehensive"][0]
    rule = (f"≤ {first['tolerance']:.1%} loss" if first["criterion"] == "tolerance" else
            f"marginal gain {first['threshold']:g} nats per unit N_a/N")
    print_table(f"comprehensive law (Zhao et al. 2025): optimum and efficiency-aware ({rule})",
                ["N", "G*", "S*", "N_a/N*", "G (efficient)", "N_a/N (efficient)"],
                [(fmt_num(r["N"]), f"{r['G_opt']:.2f}", f"{r['S']:.2f}",
                  f"{r['activation_ratio_opt']:.1%}", f"{r['G']:.2f}",
                  f"{r['activation_ratio']:.1%}") for r in result["comprehensive"]])
