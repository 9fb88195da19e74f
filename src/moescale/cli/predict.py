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

    With --fit and a bootstrapped fit, the confidence interval is printed too (or why the fit
    refused one). Variables more than 2x outside the fit's runs, and D beyond the corpus, are
    warnings (stderr; "warnings" in --json).

    \b
    Examples:
      moescale predict --law chinchilla --preset hoffmann2022 --N 70e9 --D 1.4e12
      moescale predict --law ludziejewski2025 --N-active 1e9 --D 2e10 --E 8 --json
      moescale predict --fit fit.json --N 7e9 --D 1.4e12
    """
    from moescale.cli._options import parse_pairs
    from moescale.laws import get_law
    from moescale.planning.plan import corpus_size, corpus_warning, fit_warnings
    from moescale.units import parse_positive

    corpus = parse_positive(corpus_tokens, "--corpus-tokens") if corpus_tokens else None
    given = {k: _value(k, v, f"--{k}") for k, v in values.items() if v is not None}
    for name, value in parse_pairs(extra, "--var", "NAME=VALUE").items():
        if name in given:
            raise MoescaleError(f"{name} is given twice (--{name} and --var {name}=…)")
        given[name] = _value(name, value, f"--var {name}")
    if fit_file:
        if law_name or preset:
            raise MoescaleError("give either --fit or --law/--preset, not both")
        from moescale.fitting import FitResult

        result = FitResult.load(fit_file)
        law, params, source = get_law(result.law), result.params, fit_file
    else:
        if not law_name:
            raise MoescaleError("give --law NAME (with --preset) or --fit fit.json")
        law = get_law(law_name)
        preset = preset or (next(iter(law.presets)) if law.presets else "")
        params, source, result = law.preset(preset).values, preset, None
    unused = sorted(set(given) - set(law.variables))
    if unused:
        raise MoescaleError(f"law {law.name!r} does not use {', '.join(unused)}; "
                            f"it needs {', '.join(law.variables)}")
    value = float(law.predict(params, given, strict=True))
    interval = None
    if result is not None and result.bootstrap_params and not result.interval_refused:
        interval = [float(x) for x in result.predict_interval(given)]
    warnings = fit_warnings(result, given) if result is not None else []
    size, where = corpus_size(corpus, [result])
    if "D" in given:
        warnings.append(corpus_warning(given["D"], size, where, what="D ="))
    warnings = [w for w in warnings if w]
    if as_json:
        out = {"law": law.name, "source": source, "preset": preset if result is None else None, "variables": given, law.target: value}
        if law.target != "loss":
            out["prediction"] = value
        if interval:
            out["ci"], out["ci_level"] = interval, result.ci_level
        if result is not None and result.interval_refused:
            out["interval_refused"] = result.interval_refused
        out["warnings"] = warnings
        echo_json(out)
    else:
        ci = (f" ({result.ci_level * 100:g} % CI {interval[0]:.5g}–{interval[1]:.5g})"
              if interval else "")
        click.echo(f"{law.name} ({source}): {law.target} = {value:.5g}{ci}")
        for w in warnings:
            click.echo(f"warning: {w}", err=True)


def _value(name: str, text: str, what: str) -> float:
    """A variable's value: a positive number with optional suffix (7B, 2e10); the shared
    fraction S may also be 0. The law then checks its domain (whole experts, N_a ≤ N, …)."""
    from moescale.units import parse_number, parse_positive

    return parse_number(text, what) if name == "S" else parse_positive(text, what)
