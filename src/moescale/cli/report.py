"""``moescale report``: figures (PNG and SVG) and one self-contained HTML page from a sweep
store, a run table, fits and a plan."""

from __future__ import annotations

import click

from moescale.errors import MoescaleError


@click.command()
@click.option("--store", type=click.Path(dir_okay=False), metavar="SWEEP.db",
              help="A sweep store (moescale sweep run): runs, learning curves, isoFLOP analysis.")
@click.option("--runs", "runs", type=click.Path(dir_okay=False), metavar="FILE",
              help="A run table (CSV, TSV, Parquet, JSONL, JSON), read as `moescale fit` reads it.")
@click.option("--map", "mapping", multiple=True, metavar="COLUMN=NAME",
              help="Rename a column of --runs to a run variable, e.g. \"Model Size=N\". Repeatable.")
@click.option("--derive", multiple=True, metavar="NAME=EXPR",
              help="Add a column to --runs from an expression, e.g. \"D=C/(6*N)\". Repeatable.")
@click.option("--where", default=None, metavar="EXPR",
              help="Keep only the --runs rows matching a pandas query.")
@click.option("--fit", "fits", multiple=True, type=click.Path(dir_okay=False),
              metavar="FIT.json", help="A fit from `moescale fit -o`. Repeatable.")
@click.option("--plan", "plan", type=click.Path(dir_okay=False), metavar="PLAN.json",
              help="A plan from `moescale plan -o` (or --json).")
@click.option("--compare", "compare", type=click.Path(dir_okay=False),
              metavar="COMPARE.json", help="A comparison from `moescale compare --json`.")
@click.option("--selection", "selection", type=click.Path(dir_okay=False),
              metavar="LEADERBOARD.json", help="A leaderboard from `moescale fit --law all --json`.")
@click.option("--sensitivity", "sensitivity", type=click.Path(dir_okay=False),
              metavar="SENS.json", help="A study from `moescale fit --sensitivity --json`.")
@click.option("--adaptive", "adaptive", type=click.Path(dir_okay=False),
              metavar="ADAPTIVE.json",
              help="Suggested vs grid runs from `benchmarks/bench_adaptive.py --json`.")
@click.option("--target", default=None, metavar="FLOPS",
              help="Compute of the extrapolated point on the frontier (default: the plan's "
                   "compute, else 10× the largest budget).")
@click.option("--figure", "figures", multiple=True, metavar="NAME",
              help="Draw only this figure (repeatable); see --list-figures.")
@click.option("--format", "formats", default="png,svg", show_default=True,
              help="Image formats to write (png, svg; the page shows the PNG).")
@click.option("--bootstrap", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Bootstrap resamples of the per-budget isoFLOP optima.")
@click.option("--title", default=None, help="Title of the page.")
@click.option("-o", "--output", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Folder for index.html and figures/ (required unless --list-figures).")
@click.option("--list-figures", is_flag=True, help="List every figure name and exit.")
@click.option("--json", "as_json", is_flag=True, help="Print the files written as JSON.")
def report(store, runs, mapping, derive, where, fits, plan, compare, target,
           figures, formats, bootstrap, title, output, list_figures, as_json,
           selection=None, sensitivity=None, adaptive=None):
    """Draw the figures of a sweep, a fit and a plan, and write one HTML page.

    Writes DIR/index.html (opens from disk, no network) and DIR/figures/NAME.png and .svg.
    Each figure is drawn only when its inputs are present: isoFLOP curves, the compute
    frontier, optima against compute, learning curves and loss against experts from runs;
    predicted against observed, residuals and the parameter table from each fit; the holistic
    landscape, d sweep, band width, experts against memory, FLOP savings and the
    architecture from a plan.

    \b
    Examples:
      moescale report --store sweep.db -o report/
      moescale report --store sweep.db --fit fit.json --plan plan.json -o report/ --json
      moescale report --runs chinchilla.csv --map "Model Size=N" --map "Training FLOP=C" \\
          --derive "D=C/(6*N)" --fit fit.json -o report/
      moescale report --plan plan.json --figure landscape --format svg -o figs/
      moescale report --list-figures
    """
    from moescale.reporting import build

    if list_figures:
        for name in build.figure_names():
            click.echo(name)
        return
    if not output:
        raise MoescaleError("give the output folder with -o DIR")
    from moescale.cli._options import parse_derive, parse_mapping
    from moescale.units import parse_positive

    result = build.report(
        output, store=store, runs=runs, mapping=parse_mapping(mapping),
        derive=parse_derive(derive), where=where, fits=fits, plan=plan, compare=compare,
        selection=selection, sensitivity=sensitivity, adaptive=adaptive,
        target_compute=parse_positive(target, "--target") if target is not None else None,
        bootstrap=bootstrap, figures=figures, formats=formats.split(","), title=title)
    if as_json:
        from moescale.cli._output import echo_json

        echo_json(result.to_dict())
        return
    for name, reason in result.skipped:
        click.echo(f"left out {name}: {reason}", err=True)
    click.echo(f"{len(result.figures)} figures in {result.seconds:.1f} s")
    click.echo(str(result.page))
