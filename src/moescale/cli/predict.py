"""``moescale predict``: a law's predicted loss at given run variables."""

from __future__ import annotations

import click

from moescale.cli._output import echo_json
from moescale.errors import MoescaleError

_VARS = ("N", "N_active", "N_a", "D", "E", "G", "S", "C")


@click.command()
@click.option("--law", "law_name", required=True, help="Law name (see `moescale laws`).")
@click.option("--preset", default=None, help="Preset coefficients (default: the law's first).")
@click.option("--N", "N", default=None, help="Parameters N.")
@click.option("--N-active", "N_active", default=None, help="Active parameters N_act.")
@click.option("--N-a", "N_a", default=None, help="Active parameters N_a (comprehensive law).")
@click.option("--D", "D", default=None, help="Training tokens D.")
@click.option("--E", "E", default=None, help="Routed experts E.")
@click.option("--G", "G", default=None, help="Activated experts G.")
@click.option("--S", "S", default=None, help="Shared-expert ratio S.")
@click.option("--C", "C", default=None, help="Compute C (FLOPs).")
@click.option("--json", "as_json", is_flag=True, help="Print {\"loss\": …} as JSON.")
def predict(law_name, preset, as_json, **values):
    """Predict the loss of a run from a law's published coefficients.

    \b
    Examples:
      moescale predict --law chinchilla --preset hoffmann2022 --N 70e9 --D 1.4e12
      moescale predict --law ludziejewski2025 --N-active 1e9 --D 2e10 --E 8 --json
    """
    from moescale.laws import get_law
    from moescale.units import parse_positive

    law = get_law(law_name)
    preset = preset or (next(iter(law.presets)) if law.presets else "")
    given = {k: parse_positive(v, f"--{k}") for k, v in values.items() if v is not None}
    unused = sorted(set(given) - set(law.variables))
    if unused:
        raise MoescaleError(f"law {law.name!r} does not use {', '.join(unused)}; "
                            f"it needs {', '.join(law.variables)}")
    loss = float(law.predict(preset, given))
    if as_json:
        echo_json({"law": law.name, "preset": preset, "variables": given, "loss": loss})
    else:
        click.echo(f"{law.name} ({preset}): loss = {loss:.5f}")
