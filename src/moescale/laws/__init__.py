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

# name -> "module:attribute"; modules are imported only when their law is asked for.
REGISTRY: dict[str, str] = {
    "chinchilla": "chinchilla:LAW",
    "clark2022": "clark2022:LAW",
    "krajewski2024": "krajewski2024:LAW",
    "ludziejewski2025": "ludziejewski2025:LAW",
    "ludziejewski2025_lr": "ludziejewski2025:LR_LAW",
    "zhao2025": "zhao2025:LAW",
    "wang2024": "wang2024:LAW",
    "wang2024_batch": "power_laws:WANG_BATCH",
    "wang2024_lr": "power_laws:WANG_LR",
    "holistic2026": "holistic2026:LAW",
    "holistic2026_m_ratio": "holistic_curves:M_RATIO",
    "holistic2026_n_ratio": "holistic_curves:N_RATIO",
    "holistic2026_d": "holistic_curves:D_QUADRATIC",
    "holistic2026_lr": "power_laws:HOLISTIC_LR",
    "holistic2026_batch": "power_laws:HOLISTIC_BATCH",
    "power_law_C": "power_laws:POWER_LAW_C",
}
LAWS = tuple(REGISTRY)


def get_law(name: str) -> Law:
    """The registered law called ``name``."""
    if name not in REGISTRY:
        raise MoescaleError(f"unknown law {name!r}; choose one of {', '.join(LAWS)}")
    module, attr = REGISTRY[name].split(":")
    return getattr(importlib.import_module(f"moescale.laws.{module}"), attr)
