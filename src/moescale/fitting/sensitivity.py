"""How much does the fitted optimum move under the choices the literature shows matter?.

One law is refitted to the same runs under variations of one choice at a time, and the
compute-optimal point at a target budget (``N_opt``, ``D_opt``, and ``E_opt``/``G_opt`` where
the law has them; :func:`moescale.fitting.selection.optimum`) is compared with the baseline's:

- **objective** — the Huber threshold ``δ`` on ``ln L`` residuals (1e-3 in Hoffmann et al. and
  Besiroglu et al., 1e-2 in Ludziejewski et al., 0.1 in Krajewski et al.; ``δ = ∞`` is least
  squares), and residuals of ``L`` itself instead of ``ln L`` (``δ`` scaled by the median
  loss so that the same runs count as outliers);
- **start grid** — the law's published initialisation grid against a coarse grid (each
  parameter's two extreme values) and a shifted one (the midpoints between published values):
  Besiroglu et al. traced part of the Chinchilla discrepancy to the optimiser's set-up;
- **data** — dropping the runs of the smallest or the largest model size (or budget), which
  moves the fitted exponents most (Besiroglu et al. 2024; Porian et al. 2024).

Refits that fail are reported with their error, not dropped silently.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from moescale.errors import MoescaleError
from moescale.laws import Law, get_law

__all__ = ["SENSITIVITY_DELTAS", "Sensitivity", "Variant", "coarse_grid", "linear_residual_law",
           "sensitivity", "shifted_grid"]

SENSITIVITY_DELTAS = (1e-3, 1e-2, 1e-1, math.inf)   # the papers' thresholds, and least squares
LEAST_SQUARES_DELTA = 1e6                           # a δ no ln-loss residual reaches
QUANTITIES = ("N_opt", "D_opt", "E_opt", "G_opt", "K_opt", "loss_opt")


def coarse_grid(law: Law | str) -> dict[str, tuple[float, ...]]:
    """The published grid thinned to each parameter's smallest and largest start."""
    law = get_law(law) if isinstance(law, str) else law
    return {k: tuple(sorted({min(v), max(v)})) for k, v in law.init_grid.items()}


def shifted_grid(law: Law | str) -> dict[str, tuple[float, ...]]:
    """Starts between the published ones: the midpoints of consecutive grid values (a
    parameter with one published value keeps it)."""
    law = get_law(law) if isinstance(law, str) else law
    out = {}
    for k, v in law.init_grid.items():
        s = sorted(v)
        out[k] = tuple((a + b) / 2 for a, b in zip(s, s[1:], strict=False)) or tuple(s)
    return out


def linear_residual_law(law: Law | str) -> Law:
    """``law`` with the fitter's residuals on ``L`` instead of ``ln L``.

    The fitter minimises Huber of ``log_loss(p, v) − ln y``; this law's ``log_loss`` returns
    ``L`` itself, so fitting it to targets ``exp(L_obs)`` minimises Huber of
    ``L_pred − L_obs``. Its parameters are those of ``law`` (predict with ``law``).
    """
    law = get_law(law) if isinstance(law, str) else law

    def value(p, v):
        return np.exp(law.log_loss(p, v))

    grad = None
    if law.grad_log_loss is not None:
        def grad(p, v):
            lin = np.exp(law.log_loss(p, v))
            return {k: g * lin for k, g in law.grad_log_loss(p, v).items()}

    return dataclasses.replace(law, log_loss=value, grad_log_loss=grad, linear=None,
                               derived=None, presets={})


@dataclass(frozen=True)
class Variant:
    """One refit: what was changed (``group``: baseline, objective, start grid, data), the
    fitted parameters, the optimum at the target budget and its ratio to the baseline's."""

    name: str
    group: str
    description: str
    n_runs: int = 0
    params: dict[str, float] = field(default_factory=dict)
    train_rmse: float = float("nan")
    optimum: dict[str, Any] | None = None
    ratios: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class Sensitivity:
    """The baseline fit, every variant, and per quantity the range of ratios to the baseline
    (``summary[q] = {"min_ratio", "max_ratio", "spread", "min_variant", "max_variant"}``, with
    ``spread = max_ratio / min_ratio``; for ``E_opt`` the values chosen)."""

    law: str
    target_compute: float
    size_variable: str
    baseline: Variant
    variants: tuple[Variant, ...]
    summary: dict[str, dict[str, Any]]
    choices: dict[str, list[float]]
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"law": self.law, "target_compute": self.target_compute,
                "size_variable": self.size_variable, "baseline": self.baseline.to_dict(),
                "variants": [v.to_dict() for v in self.variants], "summary": self.summary,
                "choices": self.choices, "seconds": round(self.seconds, 3)}


def _drop_column(runs, law: Law) -> tuple[str, np.ndarray]:
    """The column by which the smallest/largest runs are dropped: the law's size variable
    (``N_active`` or ``N``), else the size or budget column of the default split."""
    from moescale.fitting.selection import group_column, size_variable

    col = size_variable(law)
    if col is None or col not in runs.frame.columns:
        found = group_column(runs.frame)
        if found is None:
            raise MoescaleError("the runs have no size or budget column to drop runs by")
        col = found[0]
    return col, runs.frame[col].to_numpy(dtype=float)


def _extreme_rows(values: np.ndarray, largest: bool) -> np.ndarray:
    """Rows of the smallest (largest) value of a grid of ≤ 20 values, else the bottom (top)
    tenth of the runs."""
    distinct = np.unique(values)
    if distinct.size <= 20:
        return values == (distinct[-1] if largest else distinct[0])
    k = max(1, int(round(0.1 * values.size)))
    order = np.argsort(values, kind="stable")
    rows = np.zeros(values.size, dtype=bool)
    rows[order[-k:] if largest else order[:k]] = True
    return rows


def sensitivity(runs, law: Law | str, target_compute: float, *, delta: float | None = None,
                deltas: Sequence[float] = SENSITIVITY_DELTAS, linear: bool = True,
                grids: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
                drop: Sequence[str] = ("smallest", "largest"),
                grid: Mapping[str, Sequence[float]] | None = None,
                at: Mapping[str, float] | None = None, screen: bool = True,
                fit_options: Mapping[str, Any] | None = None,
                progress: Callable[[str, int, int], None] | None = None) -> Sensitivity:
    """Refit ``law`` under each variation and compare the optimum at ``target_compute``.

    Parameters
    ----------
    runs : RunTable
        The runs the law is fitted to (all of them: no held-out split).
    law : Law or str
        A loss law with a compute-optimal point (``N``/``N_active`` and ``D``, optionally
        ``E``, ``G``, ``K``; :func:`~moescale.fitting.selection.size_variable`).
    target_compute : float
        The budget ``C = 6·N·D`` (FLOPs) of the optimum.
    delta : float, optional
        The baseline's Huber δ (default: the law's paper, else 1e-3).
    deltas : sequence of float
        δ values of the objective variants (``inf``: least squares); the baseline's is skipped.
    linear : bool
        Add the variant with residuals on ``L`` instead of ``ln L``.
    grids : mapping, optional
        Start-grid variants ``{name: grid}`` (fit space); default ``coarse`` and ``shifted``
        (:func:`coarse_grid`, :func:`shifted_grid`). Variants equal to the baseline's grid are
        skipped.
    drop : sequence of str
        ``"smallest"`` and/or ``"largest"``: drop the runs of the smallest (largest) size.
    grid : mapping, optional
        The baseline's start grid (default: the law's published grid).
    at : mapping, optional
        Fixed ``E``/``G``/``K`` at the optimum (default: searched over the runs' values).
    screen : bool
        Successive-halving screening of the starts.
    fit_options : mapping, optional
        More options of :func:`~moescale.fitting.fit` for every refit (``polish_top``).

    Returns
    -------
    Sensitivity
    """
    from moescale import fitting
    from moescale.fitting.objective import default_delta
    from moescale.fitting.selection import choice_values, law_status, optimum, size_variable

    t_start = time.perf_counter()
    law = get_law(law) if isinstance(law, str) else law
    size = size_variable(law)
    if size is None:
        raise MoescaleError(f"law {law.name!r} has no compute-optimal point (it needs "
                            "N or N_active and D, and at most E, G, K besides); sensitivity "
                            "compares optima — choose chinchilla, wang2024, ludziejewski2025 or "
                            "krajewski2024")
    if (isinstance(target_compute, bool) or not isinstance(target_compute, (int, float))
            or not math.isfinite(target_compute) or target_compute <= 0):
        raise MoescaleError(f"`target_compute` must be a positive number of FLOPs, got "
                            f"{target_compute!r}")
    bad = [d for d in deltas if not (isinstance(d, (int, float)) and d > 0)]
    if bad:
        raise MoescaleError(f"Huber δ values must be positive, got {bad[0]!r}")
    unknown = sorted(set(drop) - {"smallest", "largest"})
    if unknown:
        raise MoescaleError(f"drop {unknown[0]!r}: choose smallest or largest")
    status, reason = law_status(law, runs)
    if status != "ok":
        raise MoescaleError(f"law {law.name!r} is {status} on these runs: {reason}")
    base_delta = float(delta or default_delta(law.name))
    base_grid = dict(grid or law.init_grid)
    choices = choice_values(law, runs, at)
    y = runs.target(law.target)
    v_all = runs.arrays(law.variables)

    plans: list[tuple[str, str, str, dict]] = [
        ("baseline", "baseline",
         f"Huber δ = {base_delta:g} on ln L, {'given' if grid else 'published'} start grid, "
         f"all {len(runs)} runs", {})]
    for d in deltas:
        if math.isclose(d, base_delta):
            continue
        name = "least squares (δ = ∞)" if math.isinf(d) else f"Huber δ = {d:g}"
        desc = "squared ln-L residuals" if math.isinf(d) else f"Huber δ = {d:g} on ln L"
        plans.append((name, "objective", desc,
                      {"delta": LEAST_SQUARES_DELTA if math.isinf(d) else float(d)}))
    if linear:
        d_lin = base_delta * float(np.median(y))
        plans.append(("linear residuals", "objective",
                      f"Huber δ = {d_lin:.3g} on L (δ × median loss)", {"linear": d_lin}))
    for gname, g in (grids if grids is not None else
                     {"coarse grid": coarse_grid(law), "shifted grid": shifted_grid(law)}).items():
        g = {k: tuple(float(x) for x in v) for k, v in g.items()}
        if g == {k: tuple(float(x) for x in v) for k, v in base_grid.items()}:
            continue
        starts = math.prod(len(v) for v in g.values())
        plans.append((gname, "start grid", f"{starts} starts instead of "
                      f"{math.prod(len(v) for v in base_grid.values())}", {"grid": g}))
    col, values = _drop_column(runs, law)
    for which in drop:
        rows = _extreme_rows(values, which == "largest")
        what = f"{col} = {values[rows][0]:.3g}" if np.unique(values[rows]).size == 1 \
            else f"{int(rows.sum())} runs"
        plans.append((f"drop {which} {col}", "data", f"without the {which} runs ({what}, "
                      f"{int(rows.sum())} of {len(runs)})", {"keep": ~rows}))

    variants: list[Variant] = []
    for i, (name, group, desc, change) in enumerate(plans):
        if progress:
            progress("variants", i, len(plans))
        t0 = time.perf_counter()
        keep = change.get("keep", np.ones(len(runs), dtype=bool))
        sub = runs.subset(keep) if not keep.all() else runs
        try:
            status, reason = law_status(law, sub)
            if status != "ok":
                raise MoescaleError(f"{status}: {reason}")
            g = change.get("grid", base_grid)
            if "linear" in change:
                params = _fit_linear(law, sub, change["linear"], g, screen, fit_options)
            else:
                res = fitting.fit(law, sub, delta=change.get("delta", base_delta), grid=g,
                               screen=screen, **dict(fit_options or {}))
                params = dict(res.params)
            pred = law.predict(params, {k: a[keep] for k, a in v_all.items()})
            rmse = float(np.sqrt(np.mean((pred - y[keep]) ** 2)))
            opt = optimum(law, params, float(target_compute), choices)
            variants.append(Variant(name, group, desc, int(keep.sum()), params, rmse, opt,
                                    seconds=time.perf_counter() - t0))
        except MoescaleError as exc:
            if group == "baseline":
                raise
            variants.append(Variant(name, group, desc, int(keep.sum()), error=str(exc),
                                    seconds=time.perf_counter() - t0))
    if progress:
        progress("variants", len(plans), len(plans))
    base = variants[0]
    out = [base] + [dataclasses.replace(v, ratios=_ratios(v.optimum, base.optimum))
                    for v in variants[1:]]
    return Sensitivity(law.name, float(target_compute), size, out[0], tuple(out[1:]),
                       _summary(out[0], out[1:]),
                       {k: [float(x) for x in v] for k, v in choices.items()},
                       time.perf_counter() - t_start)


def _fit_linear(law: Law, runs, delta: float, grid, screen: bool,
                fit_options: Mapping[str, Any] | None = None) -> dict[str, float]:
    """Parameters of ``law`` fitted with Huber on ``L`` residuals (:func:`linear_residual_law`)."""
    import pandas as pd

    from moescale import fitting
    from moescale.runs import RunTable

    frame = pd.DataFrame({k: a for k, a in runs.arrays(law.variables).items()})
    frame[law.target] = np.exp(runs.target(law.target))
    res = fitting.fit(linear_residual_law(law), RunTable.from_frame(frame, source=runs.source),
                   delta=delta, grid=grid, screen=screen, **dict(fit_options or {}))
    return dict(res.params)


def _ratios(opt: Mapping[str, Any] | None, base: Mapping[str, Any] | None) -> dict[str, float]:
    if not opt or not base:
        return {}
    return {k: float(opt[k]) / float(base[k]) for k in QUANTITIES
            if k in opt and k in base and float(base[k]) != 0}


def _summary(base: Variant, variants: Sequence[Variant]) -> dict[str, dict[str, Any]]:
    """Per quantity: the smallest and largest ratio to the baseline and which variant."""
    out: dict[str, dict[str, Any]] = {}
    if not base.optimum:
        return out
    for q in QUANTITIES:
        if q not in base.optimum:
            continue
        rows = [(v.ratios[q], v.name) for v in variants if q in v.ratios
                and math.isfinite(v.ratios[q])]
        if not rows:
            continue
        lo, hi = min(rows), max(rows)
        entry = {"baseline": float(base.optimum[q]), "min_ratio": min(1.0, lo[0]),
                 "max_ratio": max(1.0, hi[0]), "min_variant": lo[1] if lo[0] < 1 else "baseline",
                 "max_variant": hi[1] if hi[0] > 1 else "baseline"}
        entry["spread"] = entry["max_ratio"] / entry["min_ratio"]
        if q[:-4] in ("E", "G", "K"):
            entry["values"] = sorted({float(v.optimum[q]) for v in (base, *variants)
                                      if v.optimum and q in v.optimum})
        out[q] = entry
    return out
