"""Checks of values at the library's boundary, in one vocabulary: each names the parameter
(``compute must be positive``), which the command line shows as its flag, and a wrong type
says what was given. Used by :mod:`moescale.api` and the commands that take
numbers the library does not parse (``compare``'s criteria)."""

from __future__ import annotations

import math
import numbers as _numbers_abc
from collections.abc import Sequence
from typing import Any

from moescale.errors import MoescaleError


def kind(value: Any) -> str:
    shown = repr(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    return f"{shown} ({type(value).__name__})"


def number(value: Any, name: str, *, positive: bool = False, minimum: float | None = None,
           maximum: float | None = None, below: float | None = None, integer: bool = False,
           optional: bool = False) -> float | int | None:
    """``value`` as a finite real number (an ``int`` with ``integer``); one MoescaleError
    naming ``name`` otherwise. A string is not a number here (give ``1e21``, not ``"1e21"``)."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, _numbers_abc.Real):
        hint = ", not a string" if isinstance(value, str) else ""
        raise MoescaleError(f"{name} must be a {'whole ' if integer else ''}number{hint}, "
                            f"got {kind(value)}")
    x = float(value)
    if not math.isfinite(x):
        raise MoescaleError(f"{name} must be finite, got {value!r}")
    if integer and not x.is_integer():
        raise MoescaleError(f"{name} must be a whole number, got {value!r}")
    if positive and x <= 0:
        raise MoescaleError(f"{name} must be positive, got {value!r}")
    if minimum is not None and x < minimum:
        raise MoescaleError(f"{name} must be at least {minimum:g}, got {value!r}")
    if maximum is not None and x > maximum:
        raise MoescaleError(f"{name} must be at most {maximum:g}, got {value!r}")
    if below is not None and x >= below:
        raise MoescaleError(f"{name} must be less than {below:g}, got {value!r}")
    return int(x) if integer else x


def numbers(values: Any, name: str, *, integer: bool = False) -> list:
    """A non-empty sequence (not a string) of positive numbers."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
        raise MoescaleError(f"{name} must be a non-empty list of positive "
                            f"{'whole ' if integer else ''}numbers, got {kind(values)}")
    return [number(v, f"{name}[{i}]", positive=True, integer=integer)
            for i, v in enumerate(values)]


def choice(value: Any, name: str, choices: Sequence[str] | None = None,
           optional: bool = True) -> str | None:
    """A name given as a string (one of ``choices`` when given); ``None`` when ``optional``."""
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise MoescaleError(f"{name} must be a name (a string), got {kind(value)}")
    if choices is not None and value not in choices:
        raise MoescaleError(f"{name} must be one of {', '.join(map(repr, choices))}, "
                            f"got {value!r}")
    return value
