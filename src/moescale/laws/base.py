"""The :class:`Law` object every law family registers: named parameters, variables, a log-space
predictor, its counting convention and published presets."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from moescale.errors import MoescaleError


@dataclass(frozen=True)
class Preset:
    """Published coefficients of a law, with where they come from."""

    values: dict[str, float]
    citation: str
    notes: str = ""


@dataclass(frozen=True)
class Law:
    """A scaling-law family.

    ``log_loss(p, v)`` returns ``ln L`` for parameter dict ``p`` and variable dict ``v`` (numpy
    arrays); :meth:`predict` exponentiates it after checking the variables.
    """

    name: str
    citation: str
    formula: str
    params: tuple[str, ...]
    variables: tuple[str, ...]
    convention: str
    log_loss: Callable[[Mapping[str, float], Mapping[str, np.ndarray]], np.ndarray]
    presets: dict[str, Preset] = field(default_factory=dict)

    def predict(self, params: Mapping[str, float] | str,
                variables: Mapping[str, float | np.ndarray]) -> np.ndarray:
        """Loss at ``variables``; ``params`` is a dict or the name of a preset."""
        p = self.preset(params).values if isinstance(params, str) else params
        return np.exp(self.log_loss(p, self.check_variables(variables)))

    def preset(self, name: str) -> Preset:
        if not self.presets:
            raise MoescaleError(f"law {self.name!r} has no published coefficients; "
                                "fit it to your runs first (moescale fit)")
        if name not in self.presets:
            raise MoescaleError(f"law {self.name!r} has no preset {name!r}; choose one of "
                                f"{', '.join(self.presets)}")
        return self.presets[name]

    def check_variables(self, variables: Mapping[str, float | np.ndarray]) -> dict[str, np.ndarray]:
        """The law's variables as float arrays; missing or non-positive values are errors."""
        out = {}
        for name in self.variables:
            if name not in variables or variables[name] is None:
                raise MoescaleError(f"law {self.name!r} needs variable {name} "
                                    f"(it uses {', '.join(self.variables)})")
            value = np.asarray(variables[name], dtype=float)
            if not np.all(np.isfinite(value)) or np.any(value <= 0):
                raise MoescaleError(f"{name} must be positive and finite, got {variables[name]!r}")
            out[name] = value
        return out

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "citation": self.citation, "formula": self.formula,
                "params": list(self.params), "variables": list(self.variables),
                "convention": self.convention,
                "presets": {k: {"values": p.values, "citation": p.citation, "notes": p.notes}
                            for k, p in self.presets.items()}}
