"""``moescale fit``: fit a scaling law to your runs, with held-out error and bootstrap CIs."""

from __future__ import annotations

import click

from moescale.cli._options import FiniteFloat
from moescale.cli._output import StageProgress, echo_json, fmt_num, print_table
from moescale.errors import MoescaleError


def _floats(text: str, what: str) -> list[float]:
    from moescale.units import parse_number

    try:
        return [parse_number(x, what) for x in text.split(",")]
    except MoescaleError:
        raise MoescaleError(f"{what} {text!r} must be comma-separated finite numbers") from None


@click.command()
@click.argument("data", type=click.Path(dir_okay=False), required=False)
@click.option("--store", "store_path", type=click.Path(dir_okay=False), default=None,
              help="Fit the finished runs of a sweep store instead of DATA.")
@click.option("--mlflow", "mlflow_uri", default=None, metavar="URI",
              help="Read the finished runs of --experiment from this MLflow tracking server "
                   "or store (http://host:5000, sqlite:///mlflow.db) instead of DATA.")
@click.option("--experiment", default=None, metavar="NAME",
              help="The MLflow experiment of --mlflow (a sweep's runs: its name).")
@click.option("--law", "law_name", required=True, help="Law to fit (see `moescale laws`).")
@click.option("--map", "mapping", multiple=True, metavar="COLUMN=NAME",
              help="Rename a column of DATA to a run variable, e.g. \"Model Size=N\". Repeatable.")
@click.option("--derive", multiple=True, metavar="NAME=EXPR",
              help="Add a column from an expression, e.g. \"D=C/(6*N)\". Repeatable.")
@click.option("--where", default=None, metavar="EXPR",
              help="Keep only the runs matching a pandas query, e.g. \"step == 249000 and k == 1\".")
@click.option("--holdout", default=None, metavar="SPEC",
              help="Held-out runs: largest-C:5, largest-N:1, lowest-loss:30, tag:COL=VALUE, "
                   "query:EXPR [one law: none; --law LIST: the largest size or budget, or none].")
@click.option("--bootstrap", type=click.IntRange(0, 10_000), default=0,
              help="Bootstrap refits (resampled runs) for confidence intervals.")
@click.option("--level", type=FiniteFloat(0.5, 0.999), default=0.95, show_default=True,
              help="Confidence level of the intervals.")
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=0, show_default=True, help="Seed of the bootstrap.")
@click.option("--weights", "weight_column", default=None, metavar="COLUMN",
              help="Column of positive per-run weights in the objective.")
@click.option("--delta", type=FiniteFloat(min=0, min_open=True), default=None,
              help="Huber δ on ln(loss) residuals, for one law or every law of a "
                   "leaderboard (default: the law's paper — ludziejewski2025 0.01, "
                   "krajewski2024 0.1 — else 1e-3).")
@click.option("--method", type=click.Choice(["grid", "varpro"]), default="grid", show_default=True,
              help="Starts: the law's published grid, or variable projection (linear laws).")
@click.option("--exhaustive", is_flag=True,
              help="Refine every start to convergence (no successive-halving screening; slower).")
@click.option("--grid", "grid_items", multiple=True, metavar="PARAM=V1,V2,…",
              help="Replace the starting values of one parameter (fit space). Repeatable.")
@click.option("--fix", "fix_items", multiple=True, metavar="PARAM=VALUE",
              help="Hold a parameter at a value instead of fitting it. Repeatable.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the fit as JSON.")
@click.option("--json", "as_json", is_flag=True, help="Print the fit as JSON.")
@click.option("--cv", default=None, metavar="budget|COLUMN",
              help="With several laws: leave-one-group-out cross-validation (one fold per budget).")
@click.option("--rank-by", type=click.Choice(["holdout", "cv", "aic", "bic"]), default=None,
              help="With several laws: the ranking (default: cv with --cv, else held-out RMSE).")
@click.option("--sensitivity", is_flag=True,
              help="How far the fitted optimum moves under δ, residuals, start grid and dropped runs.")
@click.option("--target-compute", default=None, metavar="FLOPS",
              help="Budget of the predicted optimum (--sensitivity; leaderboard default: largest C).")
@click.option("--at", "at_items", multiple=True, metavar="VAR=VALUE",
              help="Hold E, G or K fixed at the optimum (default: best of the runs' values).")
def fit(data, store_path, mlflow_uri, experiment, law_name, mapping, derive, where, holdout, bootstrap, level, seed, weight_column,
        delta, method, exhaustive,
        grid_items, fix_items, output, as_json, cv=None, rank_by=None, sensitivity=False,
        target_compute=None, at_items=()):
    """Fit a scaling law to the runs in DATA (CSV, Parquet, JSONL or JSON).

    The objective is the papers': Huber on ln(loss) residuals, summed, from every point of the
    law's published initialisation grid (vectorised), best starts polished with L-BFGS-B.

    \b
    Examples:
      moescale fit runs.csv --law chinchilla --holdout largest-C:5 --bootstrap 200 -o fit.json
      moescale fit chinchilla.csv --law chinchilla --map "Model Size=N" \\
          --map "Training FLOP=C" --derive "D=C/(6*N)" --json
      moescale fit moe_runs.jsonl --law ludziejewski2025 --holdout lowest-loss:30
      moescale fit --store sweep.db --law chinchilla --bootstrap 100
      moescale fit --mlflow http://127.0.0.1:5000 --experiment micro --law chinchilla
      moescale fit curves.csv --law clark2022 --where "step == 249000 and k == 1" \\
          --map dense_parameter_count=N --map num_experts=E --map loss_validation=loss
      moescale fit runs.csv --law all --bootstrap 50 -o best.json     # a leaderboard of laws
      moescale fit runs.csv --law chinchilla,wang2024 --cv budget --json
      moescale fit runs.csv --law chinchilla --sensitivity --target-compute 1e21
    """
    from moescale.cli import _fit_selection

    if _fit_selection.wants_selection(law_name, sensitivity, cv, rank_by, target_compute, at_items):
        return _fit_selection.run(**{k: v for k, v in locals().items() if k != "_fit_selection"})
    from moescale import fitting
    from moescale.cli._options import parse_pairs
    from moescale.laws import get_law

    law = get_law(law_name)
    runs = _fit_selection.load_runs(data, store_path, mapping, derive, where, law=law.name,
                                    mlflow=(mlflow_uri, experiment))
    grid = {k: _floats(v, "--grid") for k, v in parse_pairs(grid_items, "--grid", "PARAM=V1,V2").items()}
    fixed = {}
    for k, v in parse_pairs(fix_items, "--fix", "PARAM=VALUE").items():
        values = _floats(v, f"--fix {k}")
        if len(values) != 1:
            raise MoescaleError(f"--fix {k}={v} must be one number")
        fixed[k] = values[0]
    unknown = sorted((set(grid) | set(fixed)) - set(law.params))
    if unknown:
        raise MoescaleError(f"law {law.name!r} has no parameter {', '.join(unknown)} "
                            f"(it has {', '.join(law.params)})")
    for k, v in fixed.items():
        try:
            law.check_param(k, v, "fixed parameter")
        except MoescaleError as exc:
            raise MoescaleError(f"--fix {k}={v:g}: {exc}") from None
    if grid:
        grid = {**law.init_grid, **grid}
    import sys

    with StageProgress(not as_json and sys.stderr.isatty()) as progress:
        result = fitting.fit(law.name, runs, holdout=holdout, bootstrap=bootstrap, level=level,
                          seed=seed, weights=weight_column, delta=delta, method=method, grid=grid or None,
                          fixed=fixed or None, screen=not exhaustive, progress=progress)
    if output:
        result.save(output)
    if as_json:
        out = result.to_dict()
        out["n_bootstrap"] = len(out.pop("bootstrap_params"))
        echo_json(out)
    else:
        _print(result, output)



def _print(result, output: str | None) -> None:
    ci, refused = result.ci, result.interval_refused
    none = "refused" if refused else "-"
    rows = [(k, fmt_num(v, 5), f"{fmt_num(ci[k][0], 4)} … {fmt_num(ci[k][1], 4)}" if k in ci
             else none, fmt_num(result.se[k], 3) if k in result.se else "-")
            for k, v in {**result.params, **result.derived}.items()]
    n_boot = result.optimizer.get("bootstrap_refits")
    level = f"{result.ci_level:.0%} CI" + (
        f" ({len(result.bootstrap_params)} of {n_boot} refits converged)"
        if result.bootstrap_params else "")
    print_table(f"{result.law} fitted to {result.data['n_train']} runs",
                ["parameter", "value", level, "SE"], rows)
    opt = result.optimizer
    click.echo(f"objective  Huber(δ={result.objective['delta']:g}) on ln {result.target}, summed: "
               f"{result.objective['value']:.8g}   [{opt['starts']} starts, "
               f"{opt['seconds']:.2f} s, {opt.get('nfev', 0):,} evaluations, "
               f"{'converged' if result.success else 'NOT converged'}: {opt['message']}]")
    rows = [("train", result.train)] + ([("held out", result.holdout)] if result.holdout else [])
    print_table(f"error on {result.target}", ["runs", "n", "RMSE", "max |error|", "mean |rel|"],
                [(name, str(m["n"]), f"{m['rmse']:.4g}", f"{m['max_abs_error']:.4g}",
                  f"{m['mean_abs_rel_error']:.2%}") for name, m in rows])
    if refused:
        click.echo(refused)
    _print_residuals(result)
    for w in result.warnings:
        click.echo(f"warning: {w}")
    if output:
        click.echo(f"saved {output}")


RESIDUAL_ROWS = 10  # the runs the residual table shows (largest |z| first)


def _print_residuals(result) -> None:
    """The runs the law fits worst (largest robust z of the ln residual), outliers marked;
    each named by its id (a sweep's ``id``/``spec_hash``), else its row."""
    from moescale.fitting.diagnostics import run_name

    if not result.residuals:
        return
    worst = sorted(result.residuals, key=lambda r: -abs(r["z"]))[:RESIDUAL_ROWS]
    names = result.law_object().variables
    print_table(f"worst-fitted runs ({len(worst)} of {len(result.residuals)}; all in --json)",
                ["run", "split", *names, "observed", "predicted", "ln resid.", "z", ""],
                [(run_name(r), r["split"], *(fmt_num(r[k], 4) for k in names),
                  f"{r['observed']:.5g}", f"{r['predicted']:.5g}", f"{r['log_residual']:+.3g}",
                  f"{r['z']:+.2f}", "outlier" if r["outlier"] else "") for r in worst])
