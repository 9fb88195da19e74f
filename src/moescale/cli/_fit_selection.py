"""``moescale fit --law all`` (a leaderboard of laws) and ``moescale fit --sensitivity`` (how
far the fitted optimum moves): option checks and formatting only; the work is in
:mod:`moescale.fitting.selection` and :mod:`moescale.fitting.sensitivity`."""

from __future__ import annotations

import math
import sys

import click

from moescale.cli._output import echo_json, fmt_num, print_table
from moescale.errors import MoescaleError


def wants_selection(law_name: str, sensitivity: bool, cv, rank_by, target_compute, at_items) -> bool:
    """Whether ``moescale fit`` should run a selection or a sensitivity study."""
    return bool(law_name.strip().lower() == "all" or "," in law_name or sensitivity or cv
                or rank_by or target_compute or at_items)


def run(*, data, store_path, mlflow_uri, experiment, law_name, mapping, derive, where, holdout, bootstrap, level, seed,
        weight_column, delta, method, exhaustive, grid_items, fix_items, output, as_json,
        sensitivity, cv, rank_by, target_compute, at_items) -> None:
    """Load the runs, run the selection or the sensitivity study, print it."""
    from moescale.cli._options import parse_pairs
    from moescale.units import parse_positive

    if weight_column:
        raise MoescaleError("--weights is not supported with several laws or --sensitivity "
                            "(the likelihoods of AIC/BIC are unweighted)")
    if fix_items:
        raise MoescaleError("--fix applies to one law's fit; drop it with --law all or "
                            "--sensitivity")
    if method != "grid":
        raise MoescaleError("--method varpro applies to one law's fit; law selection and "
                            "sensitivity start from the published grids")
    target = parse_positive(target_compute, "--target-compute") if target_compute else None
    at = {}
    for k, v in parse_pairs(at_items, "--at", "VAR=VALUE").items():
        if k not in ("E", "G", "K"):
            raise MoescaleError(f"--at {k}={v}: the optimum can fix E, G or K")
        at[k] = parse_positive(v, f"--at {k}")
    runs = load_runs(data, store_path, mapping, derive, where, mlflow=(mlflow_uri, experiment))
    grid = _grid(grid_items, law_name)
    progress = _progress_factory(as_json)
    if sensitivity:
        if "," in law_name or law_name.strip().lower() == "all":
            raise MoescaleError("--sensitivity studies one law: give --law NAME")
        if cv or rank_by:
            raise MoescaleError("--cv and --rank-by rank laws; they do not apply to "
                                "--sensitivity")
        if output:
            raise MoescaleError("-o writes a fit; --sensitivity prints a study (save it with "
                                "--json > sens.json for `moescale report --sensitivity`)")
        if target is None:
            raise MoescaleError("--sensitivity needs the budget of the optimum: "
                                "--target-compute FLOPS")
        from moescale.fitting.sensitivity import sensitivity as study

        with progress() as step:
            result = study(runs, law_name.strip(), target, delta=delta, grid=grid or None,
                           at=at or None, screen=not exhaustive, progress=step)
        if as_json:
            echo_json(result.to_dict())
        else:
            print_sensitivity(result)
        return
    from moescale.fitting.selection import resolve_laws, select_laws

    names = resolve_laws(law_name)
    if grid and len(names) > 1:
        raise MoescaleError("--grid names one law's parameters; give it with a single --law")
    with progress() as step:
        split = "auto" if holdout is None else None if holdout.strip().lower() == "none" else holdout
        result = select_laws(runs, names, holdout=split, cv=cv, rank_by=rank_by, delta=delta,
                             bootstrap=bootstrap, level=level, seed=seed,
                             target_compute=target, at=at or None,
                             grids={names[0]: grid} if grid else None,
                             screen=not exhaustive, progress=step)
    if result.best is None:  # nothing fitted is no answer: one error line, exit 2
        raise MoescaleError("no law could be ranked on these runs" + (
            ", so there is no fit to write" if output else "") + ": " + "; ".join(
            f"{s.law}: {s.status} ({s.reason})" for s in result.not_ranked))
    if output:
        result.best.fit.save(output)
    if as_json:
        echo_json(result.to_dict())
    else:
        print_selection(result, output)


def load_runs(data, store_path, mapping, derive, where, law: str | None = None,
              mlflow: tuple[str | None, str | None] = (None, None)):
    """The runs of ``moescale fit``: DATA, ``--store`` (columns under ``law``'s convention
    when given) or ``--mlflow URI --experiment NAME``, renamed and derived, then filtered by
    ``--where``."""
    from moescale.cli._options import parse_derive, parse_mapping
    from moescale.runs import RunTable
    from moescale.sweeps.export import runs_from_store

    uri, experiment = mlflow
    if (uri is None) != (experiment is None):
        raise MoescaleError("--mlflow URI and --experiment NAME go together")
    if sum(x is not None for x in (data, store_path, uri)) != 1:
        raise MoescaleError("give one source of runs, not both: a runs file (DATA), --store "
                            "sweep.db or --mlflow URI --experiment NAME")
    if store_path:
        runs = runs_from_store(store_path, law=law)
        if mapping or derive:
            runs = RunTable.from_frame(runs.frame, parse_mapping(mapping) or None,
                                       parse_derive(derive) or None, source=runs.source)
    elif uri:
        from moescale.tracker_runs import runs_from_mlflow

        runs = RunTable.from_frame(runs_from_mlflow(uri, experiment),
                                   parse_mapping(mapping) or None, parse_derive(derive) or None,
                                   source=f"mlflow {uri} experiment {experiment}")
    else:
        runs = RunTable.from_file(data, mapping=parse_mapping(mapping) or None,
                                  derive=parse_derive(derive) or None)
    if where:
        from moescale.fitting.holdout import query_mask

        runs = runs.subset(query_mask(runs.frame, where, "--where"))
    return runs


def _grid(grid_items, law_name: str) -> dict:
    if not grid_items:
        return {}
    from moescale.cli._options import parse_pairs
    from moescale.laws import get_law
    from moescale.units import parse_number

    if "," in law_name or law_name.strip().lower() == "all":
        raise MoescaleError("--grid names one law's parameters; give it with a single --law")
    law = get_law(law_name.strip())
    grid = {}
    for k, text in parse_pairs(grid_items, "--grid", "PARAM=V1,V2").items():
        if k not in law.params:
            raise MoescaleError(f"law {law.name!r} has no parameter {k} "
                                f"(it has {', '.join(law.params)})")
        try:
            grid[k] = [parse_number(x, "--grid") for x in text.split(",")]
        except MoescaleError:
            raise MoescaleError(f"--grid {text!r} must be comma-separated finite numbers") from None
    return {**law.init_grid, **grid}


def _progress_factory(as_json: bool):
    """A context manager yielding a progress callback (a terminal only) or None."""
    from moescale.cli._output import StageProgress

    return lambda: StageProgress(not as_json and sys.stderr.isatty())


# ----- people -------------------------------------------------------------------------------
def _num(x, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{x:.{digits}g}"


def _optimum_text(score) -> str:
    o = score.optimum
    if not o:
        return "-"
    parts = [f"{fmt_num(o['N_opt'], 3)} × {fmt_num(o['D_opt'], 3)}"]
    parts += [f"{k[0]}={o[k]:g}" for k in ("E_opt", "G_opt", "K_opt") if k in o]
    st = score.stability
    if st and math.isfinite(st.get("N_opt_rel_width", math.nan)):
        parts.append(f"±{st['N_opt_rel_width'] / 2:.0%}")
    return " ".join(parts)


def print_selection(result, output: str | None = None) -> None:
    """The leaderboard as a rich table, the laws not ranked below it."""
    by = {"holdout": "held-out RMSE (one-SE rule, ties by BIC)",
          "cv": f"leave-one-{result.cv}-out RMSE (one-SE rule, ties by BIC)",
          "aic": "AIC", "bic": "BIC"}[result.rank_by]
    split = result.holdout or "none"
    cols = ["#", "law", "k", "δ", "train RMSE", "held-out RMSE", "max |err|"]
    if result.cv:
        cols += ["CV RMSE", "CV max"]
    cols += ["ΔAIC", "ΔBIC", "optimum N × D" + (f" at {result.target_compute:.3g}"
                                                 if result.target_compute else "")]
    rows = []
    for s in result.leaderboard:
        row = [f"{s.rank}{'*' if s.within_one_se else ''}", s.law, str(s.n_params),
               _num(s.delta, 2), _num(s.train_rmse), _num(s.holdout_rmse), _num(s.holdout_max_error)]
        if result.cv:
            row += [_num(s.cv_rmse), _num(s.cv_max_error)]
        row += [f"{s.delta_aic:.1f}", f"{s.delta_bic:.1f}", _optimum_text(s)]
        rows.append(row)
    delta = (f"δ = {result.delta:g} for every law" if result.delta is not None
             else "δ of each law's single fit (its paper's, else 1e-3)")
    print_table(f"laws ranked by {by}; held out: {split}; {result.n_runs} runs, Huber {delta}",
                cols, rows)
    if any(s.within_one_se for s in result.leaderboard) and result.rank_by in ("holdout", "cv"):
        click.echo("* within one standard error of the best held-out error (ordered by BIC)")
    for s in result.leaderboard:
        for w in s.warnings:
            click.echo(f"warning: {s.law}: {w}")
    for s in result.not_ranked:
        click.echo(f"{s.status}: {s.law} — {s.reason}")
    if result.noise is not None:
        click.echo(result.noise.describe())
    if result.best is not None:
        word = {True: "", False: " — NOT VALIDATED", None: ""}[result.extrapolates]
        click.echo(f"best: {result.best.law}{word}")
        click.echo(("verdict: " if result.extrapolates is not False else "warning: ")
                   + result.verdict.text)
    if output:
        click.echo(f"saved {output} (the {result.best.law} fit)")


def print_sensitivity(result) -> None:
    """One table: each variant's optimum and its ratio to the baseline's."""
    keys = [k for k in ("E_opt", "G_opt", "K_opt") if result.baseline.optimum
            and k in result.baseline.optimum]
    cols = ["variant", "runs", "train RMSE", f"{result.size_variable}_opt",
            "×", "D_opt", "×", *keys, "loss"]
    rows = []
    for v in (result.baseline, *result.variants):
        o, r = v.optimum or {}, v.ratios
        if v.error:
            rows.append([v.name, str(v.n_runs), "-", f"failed: {v.error}"[:60],
                         "", "", "", *["" for _ in keys], ""])
            continue
        rows.append([v.name, str(v.n_runs), _num(v.train_rmse, 3),
                     fmt_num(o.get("N_opt"), 4), _num(r.get("N_opt", 1.0), 3),
                     fmt_num(o.get("D_opt"), 4), _num(r.get("D_opt", 1.0), 3),
                     *(f"{o[k]:g}" if k in o else "-" for k in keys),
                     _num(o.get("loss_opt"), 5)])
    print_table(f"{result.law}: optimum at C = {result.target_compute:.3g} FLOPs under each "
                "choice (× = ratio to the baseline)", cols, rows)
    click.echo(f"baseline: {result.baseline.description}")
    for q, s in result.summary.items():
        if q == "loss_opt":
            continue
        click.echo(f"{q}: ×{s['min_ratio']:.3g} ({s['min_variant']}) to ×{s['max_ratio']:.3g} "
                   f"({s['max_variant']}), spread ×{s['spread']:.3g}")
