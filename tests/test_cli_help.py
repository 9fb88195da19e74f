"""Every CLI command has --help with an example (users first)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from moescale.cli import COMMANDS, cli


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_exists_and_has_help_with_example(name):
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0, f"`moescale {name}` is missing or broken: {result.output}"
    assert "Example" in result.output
    assert "moescale " + name in result.output


def test_every_registered_command_module_exists():
    """A command listed in COMMANDS must import (no silent gaps in the CLI)."""
    from moescale.cli import LazyGroup

    assert all(LazyGroup._load(name) is not None for name in COMMANDS)


def test_top_level_help_lists_commands():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    assert "count" in result.output


@pytest.mark.parametrize("sub", ["plan", "run", "status", "retire", "export", "analyze", "suggest",
                                 "import"])
def test_every_sweep_subcommand_has_help_with_example(sub):
    from moescale.cli.sweep import sweep

    assert sub in sweep.commands
    result = CliRunner().invoke(cli, ["sweep", sub, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output and f"moescale sweep {sub}" in result.output
