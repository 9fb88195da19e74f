"""Shared output helpers for CLI commands: JSON for machines, rich tables for people."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

import click

from moescale.jsonio import jsonable

_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x00, 0x20), 0x7f]}
_CONTROL.update({c: f"\\x{c:02x}" for c in range(0x80, 0xa0)})
_CONTROL.update({c: f"\\u{c:04x}" for c in (0x2028, 0x2029, 0x200e, 0x200f, 0x202a, 0x202b,
                                             0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068,
                                             0x2069)})


def safe(text: object) -> str:
    """``text`` with control characters (escape sequences, carriage returns, bidi overrides)
    written as ``\\xNN`` escapes, so a name from a file cannot drive the terminal."""
    return str(text).translate(_CONTROL)


_PARAMETER = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`(=True|=False)?")


def as_flags(message: str, command: click.Command) -> str:
    """A library message in ``command``'s words: the library names Python parameters in
    backticks (`` `memory_bytes` ``, `` `measure`=False ``); each becomes the command's flag
    for that parameter (``--memory``, ``--no-estimate``), or the metavar of an argument. A name
    the command has no option for is printed as the library wrote it."""
    params = {p.name: p for p in command.params if p.name}

    def flag(m: re.Match) -> str:
        param, value = params.get(m.group(1)), m.group(2)
        if isinstance(param, click.Option):
            if value == "=False" and param.secondary_opts:
                return param.secondary_opts[0]
            if value is None or param.is_flag:
                return next((o for o in param.opts if o.startswith("--")), param.opts[0])
        elif param is not None and value is None:
            return param.human_readable_name
        return m.group(1) + (value or "")

    return _PARAMETER.sub(flag, message)


def echo_json(obj: Any) -> None:
    """Print ``obj`` as indented JSON on stdout."""
    click.echo(json.dumps(jsonable(obj), indent=2, ensure_ascii=False))


def fmt_num(x: float | int | None, digits: int = 4) -> str:
    """Human-readable number: 46.7B, 131.1M, 12,345, 0.0123 (``digits`` significant digits)."""
    if x is None:
        return "-"
    if abs(x) >= 1e21 or not math.isfinite(x):  # beyond any count of parameters or tokens
        return f"{x:.{digits - 1}e}"
    for scale, suffix in ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "B"), (1e6, "M")):
        if abs(x) >= scale:
            return f"{x / scale:.{digits}g}{suffix}"
    if isinstance(x, int) or float(x).is_integer():
        return f"{int(x):,}"
    if x != 0 and abs(x) < 1e-3:
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}g}"


PIPE_WIDTH = 10_000  # a table piped to a file or another program is never cut or wrapped


def stdout_console():
    """A rich console on stdout: the terminal's width at a terminal, else wide enough that
    no table is cut at 80 columns when the output is piped."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=PIPE_WIDTH)


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Print a rich table; numbers right-aligned."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(safe(title)), title_justify="left")
    for i, col in enumerate(columns):
        table.add_column(escape(safe(col)), justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*[escape(safe(c)) if isinstance(c, str) else fmt_num(c) for c in row])
    stdout_console().print(table)


class StageProgress:
    """A rich progress bar on stderr for the multi-start and bootstrap stages (people at a
    terminal only: never in --json output, pipes or logs)."""

    def __init__(self, enabled: bool):
        self.enabled, self.bar, self.tasks = enabled, None, {}

    def __enter__(self):
        if not self.enabled:
            return None
        from rich.console import Console
        from rich.progress import Progress

        self.bar = Progress(console=Console(stderr=True), transient=True)
        self.bar.start()
        return self.update

    def update(self, stage: str, done: int, total: int) -> None:
        if stage not in self.tasks:
            label = "multi-start" if stage == "fit" else stage
            self.tasks[stage] = self.bar.add_task(label, total=total)
        self.bar.update(self.tasks[stage], completed=done)

    def __exit__(self, *exc):
        if self.bar:
            self.bar.stop()
        return False
