"""Parsing and formatting of the quantities users type: FLOPs, token counts, bytes, dtypes.

The grammar is strict and the same everywhere (library and command line)::

    number  := [+-]? ( digits [ "." digits? ] | "." digits ) [ ("e"|"E") [+-]? digits ]
    count   := number [ k | M | B | G | T ]          (thousand … trillion, any case)
    bytes   := number [ B | kB | MB | GB | TB | KiB | MiB | GiB | TiB ]   (any case)

Only ASCII digits; spaces around the number and before the unit are allowed. ``nan``, ``inf``,
``1.2.3``, ``1..5GB``, ``1_000``, ``0x10`` and the empty string are errors, and so is any value
that overflows to infinity (``1e400``). Every mistake is a :class:`~moescale.errors.MoescaleError`
whose message names the option.

Command-line options use the click parameter types at the end of this module
(:class:`FiniteFloat`, :class:`PositiveNumber`, :class:`ByteSize`), which apply the same
grammar and report a mistake as one ``Error: --x must …`` line (a click ``UsageError``).
"""

from __future__ import annotations

import math
import numbers
import re

import click

from moescale.errors import MoescaleError

__all__ = ["DTYPE_BYTES", "dtype_bytes", "parse_number", "parse_positive", "parse_count",
           "parse_bytes", "FiniteFloat", "PositiveNumber", "ByteSize"]

DTYPE_BYTES: dict[str, float] = {
    "fp32": 4, "float32": 4, "tf32": 4,
    "bf16": 2, "bfloat16": 2, "fp16": 2, "float16": 2,
    "fp8": 1, "float8": 1, "int8": 1,
    "fp4": 0.5, "int4": 0.5, "mxfp4": 0.53125,  # mxfp4: 4 bits + one 8-bit scale per 32 values
}

_BYTE_UNITS = {
    "": 1, "b": 1,
    "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}
_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}

_NUMBER = r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
_COUNT_RE = re.compile(rf"\s*({_NUMBER})\s*([kmbgt]?)\s*", re.IGNORECASE | re.ASCII)
_BYTES_RE = re.compile(rf"\s*({_NUMBER})\s*([a-z]*)\s*", re.IGNORECASE | re.ASCII)
_MAX_TEXT = 100  # longer strings are not numbers a person typed


def dtype_bytes(dtype: str) -> float:
    """Bytes per value of a dtype name (``bf16`` → 2)."""
    if not isinstance(dtype, str):
        raise MoescaleError(f"dtype must be a name like bf16, got {dtype!r}")
    try:
        return DTYPE_BYTES[dtype.lower()]
    except KeyError:
        raise MoescaleError(
            f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPE_BYTES)}"
        ) from None


def _show(text: object) -> str:
    s = repr(text)
    return s if len(s) <= 40 else s[:37] + "..."


def _from_python_number(value: object, what: str) -> float | None:
    """``value`` as a float when it is a real number (not a bool), else None."""
    if isinstance(value, bool):
        raise MoescaleError(f"{what} must be a number, got {value!r}")
    if isinstance(value, numbers.Real):
        try:
            return float(value)
        except (OverflowError, ValueError, TypeError):
            raise MoescaleError(f"{what} must be a finite number, got {_show(value)}") from None
    return None


def _finite(value: float, text: object, what: str) -> float:
    if not math.isfinite(value):
        raise MoescaleError(f"{what} must be a finite number, got {_show(text)}")
    return value


def _match(pattern: re.Pattern, text: object, what: str, expected: str) -> re.Match:
    m = pattern.fullmatch(text) if isinstance(text, str) and len(text) <= _MAX_TEXT else None
    if not m:
        raise MoescaleError(f"{what} must {expected}, got {_show(text)}")
    return m


def parse_number(text: str | float | int, what: str) -> float:
    """A finite number (any sign) from ``0.3``, ``-1e-3`` or a Python number; no suffixes."""
    value = _from_python_number(text, what)
    if value is None:
        m = _match(re.compile(rf"\s*({_NUMBER})\s*", re.ASCII), text, what, "be a number like 0.5 or 1e-3")
        value = float(m.group(1))
    return _finite(value, text, what)


def parse_positive(text: str | float | int, what: str, *, integer: bool = False,
                   maximum: float | None = None) -> float:
    """A positive finite number from ``1e21``, ``6e9``, ``7B``, ``300M`` or a number.

    ``integer`` asks for a whole number (a count); ``maximum`` is an inclusive upper limit.
    """
    value = _from_python_number(text, what)
    if value is None:
        m = _match(_COUNT_RE, text, what, "be a number like 1e21 or 7B")
        value = float(m.group(1)) * _SUFFIX[m.group(2).lower()]
    _finite(value, text, what)
    if value <= 0:
        raise MoescaleError(f"{what} must be positive, got {_show(text)}")
    if integer and not float(value).is_integer():
        raise MoescaleError(f"{what} must be a whole number, got {_show(text)}")
    if maximum is not None and value > maximum:
        raise MoescaleError(f"{what} must be at most {maximum:g}, got {_show(text)}")
    return value


def parse_count(text: str | float | int, what: str, maximum: float | None = None) -> int:
    """A positive whole number (``2e6``, ``5M``, ``4096``) as an ``int``."""
    return int(parse_positive(text, what, integer=True, maximum=maximum))


def parse_bytes(text: str | float | int, what: str = "memory") -> float:
    """Bytes from ``80GB`` (10^9), ``80GiB`` (2^30), ``1.5TB`` or a plain number of bytes."""
    value = _from_python_number(text, what)
    if value is None:
        m = _match(_BYTES_RE, text, what, "look like 80GB, 80GiB or 1e11")
        unit = m.group(2).lower()
        if unit not in _BYTE_UNITS:
            raise MoescaleError(f"{what} must look like 80GB, 80GiB or 1e11, got {_show(text)} "
                                f"(units: B, kB, MB, GB, TB, KiB, MiB, GiB, TiB)")
        value = float(m.group(1)) * _BYTE_UNITS[unit]
    _finite(value, text, what)
    if value <= 0:
        raise MoescaleError(f"{what} must be positive, got {_show(text)}")
    return value


# ----- click parameter types ---------------------------------------------------------------

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
        raise click.UsageError(f"{what} must be a number, got {_show(value)}", ctx)


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
                                f"got {_show(value)}")
        if self.max is not None and (x > self.max or (self.max_open and x == self.max)):
            raise MoescaleError(f"{what} must be {'<' if self.max_open else '<='} {self.max:g}, "
                                f"got {_show(value)}")
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


class ByteSize(_Strict):
    """A memory size: ``80GB``, ``24GiB``, ``1e11`` (bytes, float)."""

    name = "size"

    def _parse(self, value, what: str) -> float:
        return parse_bytes(value, what)
