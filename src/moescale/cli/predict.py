"""``moescale predict``: a law's prediction at given run variables, from a preset or a fit."""

from __future__ import annotations

import click

from moescale.cli._output import echo_json
from moescale.errors import MoescaleError


@click.command()
@click.option("--law", "law_name", default=None, help="Law name (see `moescale laws`).")
@click.option("--preset", default=None, help="Preset coefficients (default: the law's first).")
@click.option("--fit", "fit_file", type=click.Path(dir_okay=False), default=None,
              help="A fit.json from `moescale fit` (instead of --law/--preset).")
@click.option("--N", "N", default=None, help="Parameters N.")
@click.option("--N-active", "N_active", default=None, help="Active parameters N_act.")
@click.option("--N-a", "N_a", default=None, help="Active parameters N_a (comprehensive law).")
@click.option("--D", "D", default=None, help="Training tokens D.")
@click.option("--E", "E", default=None, help="Routed experts E.")
@click.option("--G", "G", default=None, help="Activated experts G (or granularity, Krajewski).")
@click.option("--S", "S", default=None, help="Shared-expert ratio S.")
@click.option("--C", "C", default=None, help="Compute C (FLOPs).")
@click.option("--var", "extra", multiple=True, metavar="NAME=VALUE",
              help="Any other variable of the law, e.g. --var loss=2.1. Repeatable.")
@click.option("--corpus-tokens", default=None,
              help="Tokens in the training corpus: warn when D exceeds it (default: the corpus "
                   "a --fit records, when its runs repeated it).")
@click.option("--json", "as_json", is_flag=True, help="Print {\"loss\": …} as JSON.")
def predict(law_name, preset, fit_file, extra, corpus_tokens, as_json, **values):
    """Predict the loss (or the law's target) of a run from published or fitted coefficients.

    With --fit and a bootstrapped fit, the intervals of the law's mean and of a new run are
    printed too (or why the fit refused one); published coefficients carry no interval, and
    say so. Variables outside the paper's runs (a preset) or more than 2x outside the fit's
    runs, and D beyond the corpus, are warnings (stderr; "warnings" in --json).

    \b
    Examples:
      moescale predict --law chinchilla --preset hoffmann2022 --N 7e9 --D 1.4e11
      moescale predict --law ludziejewski2025 --N-active 1e9 --D 2e10 --E 8 --json
      moescale predict --fit fit.json --N 7e9 --D 1.4e12
    """
    from moescale.api import predict as predict_
    from moescale.cli._options import parse_pairs
    from moescale.units import parse_positive

    corpus = parse_positive(corpus_tokens, "--corpus-tokens") if corpus_tokens else None
    given = {k: _value(k, v, f"--{k}") for k, v in values.items() if v is not None}
    for name, value in parse_pairs(extra, "--var", "NAME=VALUE").items():
        if name in given:
            raise MoescaleError(f"{name} is given twice (--{name} and --var {name}=…)")
        given[name] = _value(name, value, f"--var {name}")
    if fit_file and (law_name or preset):
        raise MoescaleError("give either --fit or --law/--preset, not both")
    if not fit_file and not law_name:
        raise MoescaleError("give --law NAME (with --preset) or --fit fit.json")
    p = predict_(fit_file or law_name, preset=None if fit_file else preset,
                 corpus_tokens=corpus, **given)
    if as_json:
        echo_json(p.to_dict())
        return
    level = f"{(p.ci_level or 0.95) * 100:g} %"
    ci = (f" ({level} interval of the law's mean {p.ci[0]:.5g}–{p.ci[1]:.5g}; of a new run "
          f"{p.run_ci[0]:.5g}–{p.run_ci[1]:.5g})" if p.ci else "")
    click.echo(f"{p.law} ({p.source}): {p.target} = {p.value:.5g}{ci}")
    if p.interval_note:
        click.echo(f"note: {p.interval_note}")
    for w in p.warnings:
        click.echo(f"warning: {w}", err=True)


def _value(name: str, text: str, what: str) -> float:
    """A variable's value: a positive number with optional suffix (7B, 2e10); the shared
    fraction S may also be 0. The law then checks its domain (whole experts, N_a ≤ N, …)."""
    from moescale.units import parse_number, parse_positive

    return parse_number(text, what) if name == "S" else parse_positive(text, what)
