"""The ``moescale`` command line: a thin shell over the library.

Sub-commands are imported only when invoked (a lazy click group), so ``moescale count``
never imports torch, scipy.optimize or matplotlib.
"""

from __future__ import annotations

import importlib
import sys

import click

from moescale import __version__
from moescale.cli._output import as_flags
from moescale.errors import EXTRAS, MoescaleError

# name -> "module:attribute"; each module holds one command (or a small group of commands).
COMMANDS: dict[str, str] = {
    "count": "moescale.cli.count:count",
    "laws": "moescale.cli.laws:laws",
    "fit": "moescale.cli.fit:fit",
    "predict": "moescale.cli.predict:predict",
    "plan": "moescale.cli.plan:plan",
    "compare": "moescale.cli.compare:compare",
    "train": "moescale.cli.train:train",
    "data": "moescale.cli.data:data",
    "sweep": "moescale.cli.sweep:sweep",
    "report": "moescale.cli.report:report",
}


class LazyGroup(click.Group):
    """A click group that imports a sub-command's module only when that command runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._load(cmd_name)

    @staticmethod
    def _load(name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        return getattr(importlib.import_module(module_name), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="moescale")
def cli() -> None:
    """moescale: plan Mixture-of-Experts language models before spending the compute.

    \b
    Examples:
      moescale count --hf-config config.json
      moescale laws
      moescale fit runs.csv --law chinchilla --holdout largest-C:5 --bootstrap 200
      moescale predict --law ludziejewski2025 --N-active 1e9 --D 2e10 --E 8
      moescale plan --compute 1e21
    """


def _one_line(message: object) -> str:
    """A message as one line: its lines joined with '; ', surrounding blanks dropped."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    return "; ".join(lines) or "unknown error"


def _invoked_command(argv: list[str]) -> click.Command:
    """The (sub-)command that ``argv`` names: ``["sweep", "run", "x.toml"]`` → ``sweep run``."""
    command: click.Command = cli
    for token in argv:
        if not isinstance(command, click.Group):
            break
        sub = command.get_command(click.Context(command), token)
        if sub is not None:
            command = sub
    return command


def _fail(message: object, status: int = 2) -> None:
    click.echo(f"Error: {_one_line(message)}", err=True)
    sys.exit(status)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script: user errors become one line and exit status 2.

    A :class:`MoescaleError`, a click usage error (missing option, bad value, unknown command)
    and an unreadable file print exactly one ``Error: …`` line on stderr — no usage text — and
    exit with status 2. Any other exception is a bug and keeps its traceback.
    """
    argv = sys.argv[1:] if argv is None else argv
    try:
        cli.main(args=argv, prog_name="moescale", standalone_mode=False)
    except MoescaleError as exc:
        _fail(as_flags(str(exc), _invoked_command(argv)))
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.exceptions.NoArgsIsHelpError as exc:  # `moescale` alone: the help, no error
        click.echo(exc.ctx.get_help() if exc.ctx else exc.format_message())
        sys.exit(0)
    except click.ClickException as exc:
        _fail(exc.format_message(), 2 if exc.exit_code in (1, 2) else exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except ModuleNotFoundError as exc:  # an optional dependency the command needs
        top = (exc.name or "").partition(".")[0]
        if top not in EXTRAS:
            raise
        _fail(f"this command needs {top}, which is not installed: "
              f"pip install 'moescale[{EXTRAS[top]}]'")
    except OSError as exc:  # missing or unreadable file given by the user
        _fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else exc)


if __name__ == "__main__":
    main()
