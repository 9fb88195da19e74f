"""Parsers of option values shared by several commands (one clear error line each)."""

from __future__ import annotations

import numbers
from collections.abc import Iterable

import click

from moescale.errors import MoescaleError
from moescale.units import parse_number, parse_positive, shown


def parse_int_list(text: str, what: str = "--experts") -> tuple[int, ...]:
    """Positive integers from ``1,4,8,32`` (one clear line when they are not)."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise MoescaleError(f"{what} must be a comma-separated list of integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise MoescaleError(f"{what} must list positive integers, got {text!r}")
    return values


def parse_int(text: str | None, what: str, minimum: int = 1) -> int | None:
    """An integer option given as text (one clear line when it is not one)."""
    if text is None:
        return None
    try:
        value = float(str(text).strip())
    except ValueError:
        raise MoescaleError(f"{what} must be an integer, got {text!r}") from None
    if not value.is_integer() or value < minimum:
        raise MoescaleError(f"{what} must be an integer ≥ {minimum}, got {text!r}")
    return int(value)


def parse_mapping(items: Iterable[str]) -> dict[str, str]:
    """``["Model Size=N", "Training FLOP=C"]`` → ``{"Model Size": "N", ...}`` (``--map``)."""
    return parse_pairs(items, "--map", "COLUMN=NAME")


def parse_derive(items: Iterable[str]) -> dict[str, str]:
    """``["D=C/(6*N)"]`` → ``{"D": "C/(6*N)"}`` (``--derive``)."""
    return parse_pairs(items, "--derive", "NAME=EXPRESSION")


def parse_pairs(items: Iterable[str], flag: str, form: str = "NAME=VALUE") -> dict[str, str]:
    """``["a=1", "b = x"]`` → ``{"a": "1", "b": "x"}``; a malformed or repeated item is one
    clear error naming ``flag``."""
    out: dict[str, str] = {}
    for item in [items] if isinstance(items, str) else items:
        key, sep, value = str(item).partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise MoescaleError(f"{flag} {item!r} must look like {form}")
        if key in out:
            raise MoescaleError(f"{flag} gives {key!r} twice ({key}={out[key]} and {item})")
        out[key] = value
    return out


# ----- click parameter types: the grammar of moescale.units --------------------------------

class _Strict(click.ParamType):
    """Shared conversion: the library parser; its MoescaleError (which names the option)
    becomes click's usage error, printed by the CLI as one ``Error: …`` line."""

    def _parse(self, value, what: str):  # pragma: no cover - overridden
        raise NotImplementedError

    def convert(self, value, param, ctx):
        what = (max(param.opts, key=len) if getattr(param, "opts", None)
                else getattr(param, "name", None)) or "value"
        if isinstance(value, (str, numbers.Real)):
            try:
                return self._parse(value, what)
            except MoescaleError as exc:
                raise click.UsageError(str(exc), ctx) from None
        raise click.UsageError(f"{what} must be a number, got {shown(value)}", ctx)


class FiniteFloat(_Strict):
    """A finite float (NaN and ±inf rejected), optionally inside ``[min, max]``.

    ``min_open``/``max_open`` make a limit exclusive. For ``--lr``, ``--tolerance``, ``--level``,
    fitted-parameter values, … (no size suffixes; use :class:`PositiveNumber` for those).
    """

    name = "number"

    def __init__(self, min: float | None = None, max: float | None = None,
                 min_open: bool = False, max_open: bool = False) -> None:
        self.min, self.max, self.min_open, self.max_open = min, max, min_open, max_open

    def _parse(self, value, what: str) -> float:
        x = parse_number(value, what)
        if self.min is not None and (x < self.min or (self.min_open and x == self.min)):
            raise MoescaleError(f"{what} must be {'>' if self.min_open else '>='} {self.min:g}, "
                                f"got {shown(value)}")
        if self.max is not None and (x > self.max or (self.max_open and x == self.max)):
            raise MoescaleError(f"{what} must be {'<' if self.max_open else '<='} {self.max:g}, "
                                f"got {shown(value)}")
        return x

    def __repr__(self) -> str:
        return f"FiniteFloat({self.min}, {self.max})"


class PositiveNumber(_Strict):
    """A positive finite number with optional suffix (``2e6``, ``7B``, ``300M``).

    ``integer=True`` requires a whole number and returns an ``int`` (token counts);
    ``maximum`` is an inclusive upper limit (a sanity bound, e.g. 1e15 training tokens).
    """

    name = "number"

    def __init__(self, integer: bool = False, maximum: float | None = None) -> None:
        self.integer, self.maximum = integer, maximum

    def _parse(self, value, what: str):
        x = parse_positive(value, what, integer=self.integer, maximum=self.maximum)
        return int(x) if self.integer else x

    def __repr__(self) -> str:
        return f"PositiveNumber(integer={self.integer}, maximum={self.maximum})"


def cap_threads(threads: int | None) -> int | None:
    """``--threads`` at most the CPUs this process may use (more only slows every run down,
    and a thousand threads on two cores looks like a hang); a note says so."""
    from moescale.sweeps.executors.local import available_cpus

    cpus = available_cpus()
    if threads is not None and threads > cpus:
        click.echo(f"note: --threads {threads} is more than the {cpus} CPU(s) available; "
                   f"using {cpus}", err=True)
        return cpus
    return threads
