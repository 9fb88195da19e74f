"""Registry of scaling-law families; each module registers one :class:`~moescale.laws.base.Law`.

>>> from moescale.laws import get_law
>>> round(float(get_law("chinchilla").predict("hoffmann2022", {"N": 70e9, "D": 1.4e12})), 3)
1.937
"""

from __future__ import annotations

import importlib

from moescale.errors import MoescaleError
from moescale.laws.base import Law, Preset

__all__ = ["LAWS", "Law", "Preset", "get_law"]

LAWS = ("chinchilla", "ludziejewski2025", "zhao2025", "holistic2026")


def get_law(name: str) -> Law:
    """The registered law called ``name``."""
    if name not in LAWS:
        raise MoescaleError(f"unknown law {name!r}; choose one of {', '.join(LAWS)}")
    return importlib.import_module(f"moescale.laws.{name}").LAW
