"""Parsing and formatting of the quantities users type: FLOPs, token counts, bytes, dtypes."""

from __future__ import annotations

import math
import re

from moescale.errors import MoescaleError

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


def dtype_bytes(dtype: str) -> float:
    """Bytes per value of a dtype name (``bf16`` → 2)."""
    try:
        return DTYPE_BYTES[dtype.lower()]
    except KeyError:
        raise MoescaleError(
            f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPE_BYTES)}"
        ) from None


def parse_positive(text: str | float | int, what: str) -> float:
    """A positive finite number from ``1e21``, ``6e9``, ``7B``, ``300M`` or a number."""
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        m = re.fullmatch(r"\s*([-+]?[\d.]+(?:e[-+]?\d+)?)\s*([kmbgt]?)\s*", str(text), re.I)
        if not m:
            raise MoescaleError(f"{what} must be a number like 1e21 or 7B, got {text!r}")
        value = float(m.group(1)) * _SUFFIX[m.group(2).lower()]
    if not math.isfinite(value) or value <= 0:
        raise MoescaleError(f"{what} must be positive, got {text!r}")
    return value


def parse_bytes(text: str | float | int, what: str = "memory") -> float:
    """Bytes from ``80GB`` (10^9), ``80GiB`` (2^30), ``1.5TB`` or a plain number of bytes."""
    if isinstance(text, (int, float)):
        return parse_positive(text, what)
    m = re.fullmatch(r"\s*([-+]?[\d.]+(?:e[-+]?\d+)?)\s*([kmgt]?i?b?)\s*", str(text), re.I)
    if not m or m.group(2).lower() not in _BYTE_UNITS:
        raise MoescaleError(f"{what} must look like 80GB, 80GiB or 1e11, got {text!r}")
    value = float(m.group(1)) * _BYTE_UNITS[m.group(2).lower()]
    if not math.isfinite(value) or value <= 0:
        raise MoescaleError(f"{what} must be positive, got {text!r}")
    return value
