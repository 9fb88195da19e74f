"""The :class:`Law` object every law family registers: named parameters, variables, a log-space
predictor, its counting convention and published presets."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from moescale.errors import MoescaleError

MAX_EXPERTS = 2**20  # the largest expert count anyone has trained (PEER: 1024² experts)


@dataclass(frozen=True)
class Domain:
    """The values one law variable may take.

    ``lower``/``upper`` (with ``*_open`` for a strict inequality) and ``integer`` are *hard*
    limits: outside them the law is undefined or the quantity impossible (half an expert,
    a shared fraction above 1, ``M/N_a ≤ 6``). ``sane`` is the range of magnitudes a real run
    can have (at least one parameter or token, at most 1e16 parameters, …); it is enforced on
    user input (``strict=True``: ``moescale predict``, run tables given to a fit) but not on the
    points a planner's search visits internally, which may sit just beyond it.
    """

    what: str
    lower: float = 0.0
    lower_open: bool = True
    upper: float = math.inf
    upper_open: bool = False
    integer: bool = False
    sane: tuple[float, float] | None = None

    def violation(self, value: np.ndarray, strict: bool = False) -> tuple[np.ndarray, str] | None:
        """``(mask of bad entries, what is required)`` for the first broken rule, or None."""
        value = np.asarray(value, dtype=float)
        rules = [(~np.isfinite(value), "must be a finite number")]
        if self.lower > -math.inf:
            bad = value <= self.lower if self.lower_open else value < self.lower
            rules.append((bad, f"must be {'>' if self.lower_open else '>='} {self.lower:g}"
                               if self.lower != 0 or not self.lower_open else "must be positive"))
        if self.upper < math.inf:
            bad = value >= self.upper if self.upper_open else value > self.upper
            rules.append((bad, f"must be {'<' if self.upper_open else '<='} {self.upper:g}"))
        if self.integer:
            with np.errstate(invalid="ignore"):
                rules.append((np.isfinite(value) & (value != np.round(value)),
                              f"must be a whole number ({self.what})"))
        if strict and self.sane is not None:
            lo, hi = self.sane
            rules.append(((value < lo) | (value > hi),
                          f"must be between {lo:g} and {hi:g} {self.what}"))
        for bad, message in rules:
            if np.any(bad):
                return np.broadcast_to(bad, value.shape), message
        return None


# Domains of the run variables by name (units as in moescale.runs.UNITS); a law may override
# one (``Law.domains``), e.g. Krajewski's G is a granularity, not a number of experts.
VARIABLE_DOMAINS: dict[str, Domain] = {
    "N": Domain("parameters", sane=(1.0, 1e16)),
    "N_active": Domain("parameters", sane=(1.0, 1e16)),
    "N_a": Domain("parameters", sane=(1.0, 1e16)),
    "D": Domain("tokens", sane=(1.0, 1e18)),
    "C": Domain("FLOPs", sane=(1.0, 1e36)),
    "M": Domain("FLOPs per token", sane=(1.0, 1e18)),
    "E": Domain("routed experts", lower=1.0, lower_open=False, integer=True,
                sane=(1.0, MAX_EXPERTS)),
    "K": Domain("experts per token", lower=1.0, lower_open=False, integer=True,
                sane=(1.0, MAX_EXPERTS)),
    # Zhao et al.'s G (shared + routed experts per token) is continuous in their law: its
    # optimum G* ≈ 6.78 is not a whole number, so only G ≥ 1 is required.
    "G": Domain("activated experts", lower=1.0, lower_open=False, sane=(1.0, MAX_EXPERTS)),
    "S": Domain("shared fraction", lower=0.0, lower_open=False, upper=1.0),
    "loss": Domain("nats per token", sane=(1e-6, 1e3)),
    "d": Domain("features", sane=(1.0, 1e6)),
    "M_over_Na": Domain("M/N_a", lower=6.0, sane=(6.0, 1e4)),
    "N_over_Na": Domain("N/N_a", lower=1.0, sane=(1.0, MAX_EXPERTS)),
    "x_max": Domain("N/N_a", lower=1.0, sane=(1.0, MAX_EXPERTS)),
}
GENERIC_DOMAIN = Domain("units", sane=(1e-300, 1e300))


@dataclass(frozen=True)
class Preset:
    """Published coefficients of a law, with where they come from."""

    values: dict[str, float]
    citation: str
    notes: str = ""
    # The range of each variable over the runs the coefficients were fitted on (the paper's):
    # a prediction outside it is an extrapolation (fitting.support.preset_warnings). Empty when
    # the paper's runs are not in moescale's reference set.
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)


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
    # The runs the law is defined for, beyond its variables' domains: ``scope(runs)`` returns
    # ``(mask, description)`` (e.g. top-1 experts as wide as the dense FFN); fits leave the
    # other runs out and say so (moescale.fitting.engine.law_runs). None: every run.
    scope: Callable[[Any], tuple[np.ndarray, str]] | None = None
    # Run-table columns a variable is read from when the paper's letter means another
    # quantity than moescale's (Zhao et al.'s G is the activated experts, column ``G_act``).
    columns: dict[str, str] = field(default_factory=dict)
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
    # Domains of variables that differ from :data:`VARIABLE_DOMAINS`, and relations between
    # variables that must hold: ``(a, "<=" or "<", b)``, e.g. ``("N_a", "<=", "N")``.
    domains: dict[str, Domain] = field(default_factory=dict)
    relations: tuple[tuple[str, str, str], ...] = ()
    # The Huber δ (on ln residuals) the paper fitted with; None → moescale.fitting's default
    # (1e-3, Hoffmann et al. 2022 and Besiroglu et al. 2024).
    huber_delta: float | None = None
    # Whether the law can drive `plan --method law`: a loss in (N or N_active, D[, E]) whose
    # compute-optimal allocation moescale.planning.allocation solves.
    allocates: bool = False

    def __repr__(self) -> str:
        return (f"Law({self.name!r}: {self.formula}; variables {', '.join(self.variables)}; "
                f"presets {', '.join(self.presets) or 'none'})")

    def predict(self, params: Mapping[str, float] | str,
                variables: Mapping[str, float | np.ndarray], *, strict: bool = False) -> np.ndarray:
        """Loss at ``variables``; ``params`` is a dict or the name of a preset.

        Parameters are checked (:meth:`check_params`) and so are the variables
        (:meth:`check_variables`). ``strict`` (user input) adds the realistic-magnitude limits
        and makes a non-finite prediction an error; otherwise (a planner's search) it is
        returned as ``inf``/``nan`` for the caller to discard.
        """
        p = self.preset(params).values if isinstance(params, str) else self.check_params(params)
        v = self.check_variables(variables, strict=strict)
        with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
            out = np.exp(self.log_loss(p, v))
        if strict and not np.all(np.isfinite(out)):
            raise MoescaleError(f"law {self.name!r} is undefined or overflows at these "
                                f"variables ({_describe(variables, self.variables)})")
        return out

    def preset(self, name: str) -> Preset:
        if not self.presets:
            raise MoescaleError(f"law {self.name!r} has no published coefficients; "
                                "fit it to your runs first (moescale fit)")
        if name not in self.presets:
            raise MoescaleError(f"law {self.name!r} has no preset {name!r}; choose one of "
                                f"{', '.join(self.presets)}")
        return self.presets[name]

    def domain(self, name: str) -> Domain:
        """The :class:`Domain` of variable ``name`` for this law."""
        return self.domains.get(name) or VARIABLE_DOMAINS.get(name, GENERIC_DOMAIN)

    def check_variables(self, variables: Mapping[str, float | np.ndarray],
                        strict: bool = False) -> dict[str, np.ndarray]:
        """The law's variables as float arrays; a missing, non-numeric or out-of-domain value
        (see :class:`Domain`; ``strict`` adds the realistic magnitudes) is an error naming it."""
        if not isinstance(variables, Mapping):
            raise MoescaleError(f"variables must be a mapping of names to values, got "
                                f"{type(variables).__name__}")
        out = {}
        for name in self.variables:
            if name not in variables or variables[name] is None:
                raise MoescaleError(f"law {self.name!r} needs variable {name} "
                                    f"(it uses {', '.join(self.variables)})")
            out[name] = _as_floats(variables[name], name)
            problem = self.domain(name).violation(out[name], strict)
            if problem is not None:
                bad, rule = problem
                raise MoescaleError(f"{name} {rule}, got {_first(out[name], bad)}")
        for a, op, b in self.relations:
            with np.errstate(invalid="ignore"):
                bad = out[a] > out[b] if op == "<=" else out[a] >= out[b]
            if np.any(bad):
                raise MoescaleError(f"{a} must be {op} {b} (law {self.name!r}), got "
                                    f"{a}={_first(out[a], bad)} and {b}={_first(out[b], bad)}")
        return out

    def param_domain(self, name: str) -> tuple[float, float, bool]:
        """``(low, high, low_open)`` of parameter ``name`` in natural units: its fit bounds
        (exponentiated for log-space parameters), else ≥ 0 for log-space parameters (0 switches
        a term off, as Krajewski's dense preset g = 0 or a fit whose scale underflowed), else
        any finite number."""
        lo, hi = self.bounds.get(name, (-math.inf, math.inf))
        if name in self.log_params:
            lo = math.exp(lo) if lo > -math.inf else 0.0
            hi = math.exp(hi) if hi < math.inf else math.inf
        return lo, hi, False

    def check_params(self, params: Mapping[str, object], what: str = "parameter") -> dict[str, float]:
        """Every parameter present, a finite number inside :meth:`param_domain`; returns floats.

        Extra keys are an error too (a fit of another law, a typo)."""
        if not isinstance(params, Mapping):
            raise MoescaleError(f"{what}s of law {self.name!r} must be a mapping of names to "
                                f"numbers, got {type(params).__name__}")
        missing = [k for k in self.params if k not in params]
        if missing:
            raise MoescaleError(f"{what} {', '.join(missing)} of law {self.name!r} is missing "
                                f"(it has {', '.join(self.params)})")
        extra = sorted(str(k) for k in params if k not in self.params)
        if extra:
            raise MoescaleError(f"law {self.name!r} has no {what} {', '.join(extra)} "
                                f"(it has {', '.join(self.params)})")
        return {k: self.check_param(k, params[k], what) for k in self.params}

    def check_param(self, name: str, value: object, what: str = "parameter") -> float:
        """One parameter value checked against :meth:`param_domain` (natural units)."""
        if name not in self.params:
            raise MoescaleError(f"law {self.name!r} has no {what} {name} "
                                f"(it has {', '.join(self.params)})")
        x = _scalar(value)
        if x is None:
            raise MoescaleError(f"{what} {name} of law {self.name!r} must be a finite number, "
                                f"got {value!r}"[:300])
        lo, hi, lo_open = self.param_domain(name)
        if x < lo or x > hi or (lo_open and x == lo):
            low = f"({lo:g}" if lo_open else f"[{lo:g}"
            raise MoescaleError(f"{what} {name}={x:g} of law {self.name!r} is outside its "
                                f"domain {low}, {hi:g}]")
        return x

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


def _scalar(value: object) -> float | None:
    """``value`` as a finite float, or None (bools, text, NaN, inf, arrays are not numbers)."""
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return x if math.isfinite(x) else None


def _as_floats(value: object, name: str) -> np.ndarray:
    if isinstance(value, (str, bytes, bool, np.bool_)) or value is None:
        raise MoescaleError(f"{name} must be a number, got {value!r}"[:300])
    try:
        out = np.asarray(value, dtype=float)
    except (TypeError, ValueError, OverflowError):
        raise MoescaleError(f"{name} must be a number or an array of numbers, "
                            f"got {value!r}"[:300]) from None
    if out.dtype.kind == "b" or out.size == 0:
        raise MoescaleError(f"{name} must hold at least one number")
    return out


def _first(values: np.ndarray, bad: np.ndarray) -> str:
    picked = np.broadcast_to(values, np.shape(bad))[bad]
    x = float(picked.flat[0]) if picked.size else float(np.ravel(values)[0])
    more = f" (and {picked.size - 1} more)" if picked.size > 1 else ""
    return f"{x:g}{more}"


def _describe(variables: Mapping, names) -> str:
    parts = []
    for k in names:
        v = np.ravel(np.asarray(variables.get(k), dtype=float))
        parts.append(f"{k}={v[0]:g}" + ("…" if v.size > 1 else ""))
    return ", ".join(parts)
