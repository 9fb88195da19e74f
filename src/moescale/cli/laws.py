"""``moescale laws``: the registered scaling laws, their variables, parameters and presets."""

from __future__ import annotations

import click

from moescale.cli._output import echo_json, print_table


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the registry as JSON.")
def laws(as_json):
    """List the scaling laws with citations, variables, conventions and presets.

    \b
    Examples:
      moescale laws
      moescale laws --json
    """
    from moescale.laws import LAWS, get_law

    described = [get_law(name).describe() for name in LAWS]
    if as_json:
        echo_json(described)
        return
    print_table("scaling laws (moescale laws --json for formulas and citations)",
                ["law", "predicts", "variables", "presets", "source"],
                [(d["name"], d["target"], ", ".join(d["variables"]),
                  ", ".join(d["presets"]) or "fit only", d["citation"].split(" (")[0])
                 for d in described])
