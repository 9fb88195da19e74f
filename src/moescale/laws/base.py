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
    arrays); :meth:`predict` exponentiates it after checking the variables. Every callable must
    broadcast: the fitter passes each parameter as an array of shape ``(starts, 1)`` and each
    variable of shape ``(runs,)``, and expects ``(starts, runs)`` back.
    """

    name: str
    citation: str
    formula: str
    params: tuple[str, ...]
    variables: tuple[str, ...]
    convention: str
    log_loss: Callable[[Mapping[str, float], Mapping[str, np.ndarray]], np.ndarray]
    presets: dict[str, Preset] = field(default_factory=dict)
    # --- fitting metadata (see moescale.fitting) -------------------------------------------
    # "Fit space": a parameter listed in ``log_params`` is optimised as its natural logarithm
    # (positive scale coefficients, as in the papers' log-sum-exp parametrisation); every other
    # parameter as itself. ``bounds``, ``init_grid`` and ``init`` are in fit space.
    log_params: tuple[str, ...] = ()
    bounds: dict[str, tuple[float, float]] = field(default_factory=dict)
    init_grid: dict[str, tuple[float, ...]] = field(default_factory=dict)
    init: dict[str, float] = field(default_factory=dict)
    # Optional analytic gradient: ``grad_log_loss(p, v)`` → {param: ∂ln L/∂θ} in fit space,
    # arrays broadcast like ``log_loss``. Without it the fitter uses central differences.
    grad_log_loss: Callable[[Mapping[str, float], Mapping[str, np.ndarray]],
                            dict[str, np.ndarray]] | None = None
    # Optional variable projection: ``linear(p, v)`` → (coefficient names, basis of shape
    # (..., n_runs, k)) with ``L = basis @ coefficients`` once the other parameters are fixed.
    linear: Callable[[Mapping[str, float], Mapping[str, np.ndarray]],
                     tuple[tuple[str, ...], np.ndarray]] | None = None
    # Optional derived quantities of a parameter set (optima, exponents, …) for reports and CIs.
    derived: Callable[[Mapping[str, float]], dict[str, float]] | None = None
    # The name of the predicted quantity (a loss for most laws; an LR or batch for some).
    target: str = "loss"

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

    def to_fit_space(self, p: Mapping[str, float]) -> dict[str, float]:
        """Parameters as the fitter sees them (``log`` of those in :attr:`log_params`)."""
        return {k: float(np.log(p[k])) if k in self.log_params else float(p[k])
                for k in self.params}

    def from_fit_space(self, theta: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Inverse of :meth:`to_fit_space` (works on arrays of starts too)."""
        return {k: np.exp(theta[k]) if k in self.log_params else theta[k] for k in self.params}

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "citation": self.citation, "formula": self.formula,
                "target": self.target,
                "params": list(self.params), "variables": list(self.variables),
                "convention": self.convention,
                "presets": {k: {"values": p.values, "citation": p.citation, "notes": p.notes}
                            for k, p in self.presets.items()}}
