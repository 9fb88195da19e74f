"""Parsers of option values shared by several commands (one clear error line each)."""

from __future__ import annotations

from collections.abc import Iterable

from moescale.errors import MoescaleError


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
