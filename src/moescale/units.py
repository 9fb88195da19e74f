"""Parsing and formatting of the quantities users type: FLOPs, token counts, bytes, dtypes.

The grammar is strict and the same everywhere (library and command line)::

    number  := [+-]? ( digits [ "." digits? ] | "." digits ) [ ("e"|"E") [+-]? digits ]
    count   := number [ k | M | B | G | T ]          (thousand … trillion, any case)
    bytes   := number [ B | kB | MB | GB | TB | KiB | MiB | GiB | TiB ]   (any case)

Only ASCII digits; spaces around the number and before the unit are allowed. ``nan``, ``inf``,
``1.2.3``, ``1..5GB``, ``1_000``, ``0x10`` and the empty string are errors, and so is any value
that overflows to infinity (``1e400``). Every mistake is a :class:`~moescale.errors.MoescaleError`
whose message names the option.

Command-line options use click parameter types that apply the same grammar
(:mod:`moescale.cli._options`).
"""

from __future__ import annotations

import math
import numbers
import re

from moescale.errors import MoescaleError

__all__ = ["DTYPE_BYTES", "dtype_bytes", "parse_bytes", "parse_count", "parse_number",
           "parse_positive"]

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


def shown(text: object) -> str:
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
            raise MoescaleError(f"{what} must be a finite number, got {shown(value)}") from None
    return None


def _finite(value: float, text: object, what: str) -> float:
    if not math.isfinite(value):
        raise MoescaleError(f"{what} must be a finite number, got {shown(text)}")
    return value


def _match(pattern: re.Pattern, text: object, what: str, expected: str) -> re.Match:
    m = pattern.fullmatch(text) if isinstance(text, str) and len(text) <= _MAX_TEXT else None
    if not m:
        raise MoescaleError(f"{what} must {expected}, got {shown(text)}")
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
        raise MoescaleError(f"{what} must be positive, got {shown(text)}")
    if integer and not float(value).is_integer():
        raise MoescaleError(f"{what} must be a whole number, got {shown(text)}")
    if maximum is not None and value > maximum:
        raise MoescaleError(f"{what} must be at most {maximum:g}, got {shown(text)}")
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
            raise MoescaleError(f"{what} must look like 80GB, 80GiB or 1e11, got {shown(text)} "
                                f"(units: B, kB, MB, GB, TB, KiB, MiB, GiB, TiB)")
        value = float(m.group(1)) * _BYTE_UNITS[unit]
    _finite(value, text, what)
    if value <= 0:
        raise MoescaleError(f"{what} must be positive, got {shown(text)}")
    return value
