"""Fitting scaling laws to runs (issue 3): robust, fast and reproducible.

- :func:`fit` — one law on arrays: summed Huber on ``ln(target)``, multi-start from the law's
  published grid (or variable-projection starts), vectorised across starts, best few polished
  by L-BFGS-B.
- :func:`fit_runs` — the same on a :class:`~moescale.runs.RunTable` with a held-out split and
  bootstrap confidence intervals (resampled runs, all refits vectorised together), returning a
  serialisable :class:`FitResult`.

>>> import numpy as np
>>> from moescale.laws import get_law
>>> law = get_law("chinchilla")
>>> N, D = np.meshgrid(np.geomspace(1e8, 1e10, 6), np.geomspace(1e9, 1e11, 6))
>>> y = law.predict("hoffmann2022", {"N": N.ravel(), "D": D.ravel()})
>>> round(fit(law, {"N": N.ravel(), "D": D.ravel()}, y).params["alpha"], 3)
0.34
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from moescale.errors import MoescaleError
from moescale.fitting import multistart as ms
from moescale.fitting.holdout import holdout_mask, metrics
from moescale.fitting.objective import Problem
from moescale.fitting.result import FitResult
from moescale.laws import Law, get_law

__all__ = ["FitResult", "Fitted", "fit", "fit_runs", "DEFAULT_DELTA"]

# Huber δ (on ln L residuals) each paper used; 1e-3 (Hoffmann / Besiroglu) otherwise.
DEFAULT_DELTA = {"ludziejewski2025": 0.01, "krajewski2024": 0.1}


@dataclass(frozen=True)
class Fitted:
    """A point estimate: natural-unit ``params``, fit-space ``theta`` and optimiser report."""

    params: dict[str, float]
    theta: np.ndarray
    objective: float
    success: bool
    message: str
    starts: int
    screened: int
    iterations: int
    method: str
    top_theta: np.ndarray   # fit-space points of the best distinct starts (bootstrap warm starts)


def fit(law: Law | str, variables: Mapping[str, np.ndarray], y: np.ndarray, *,
        delta: float | None = None, weights: np.ndarray | None = None,
        fixed: Mapping[str, float] | None = None, grid: Mapping[str, Sequence[float]] | None = None,
        method: str = "grid", polish_top: int = 5, screen: bool = True,
        progress: Callable[[int, int], None] | None = None) -> Fitted:
    """Fit ``law`` to targets ``y`` at ``variables`` (arrays of equal length).

    ``fixed`` holds natural-unit values of parameters not to fit. ``method`` is ``"grid"``
    (the law's published initialisation grid, or ``grid``) or ``"varpro"`` (variable
    projection starts; laws with a linear basis only). Returns the best of the polished starts.
    """
    law = get_law(law) if isinstance(law, str) else law
    _check_options(law, delta, grid, method)
    variables, y = _check_data(law, variables, y, weights)
    problem = Problem(law, variables, y, delta or DEFAULT_DELTA.get(law.name, 1e-3),
                      weights, _fixed_fit_space(law, fixed))
    if not problem.free:
        raise MoescaleError("every parameter is fixed; nothing to fit")
    if method == "varpro":
        if law.linear is None:
            raise MoescaleError(f"law {law.name!r} has no linear coefficients; use --method grid")
        theta0 = ms.varpro_starts(problem, grid)
    elif method == "grid":
        theta0 = ms.grid_starts(problem, grid)
    else:
        raise MoescaleError(f"unknown fit method {method!r}; use grid or varpro")
    multi = ms.refine(problem, theta0, screen=screen, progress=progress)
    top = ms.best_distinct(multi, polish_top)
    if top.size == 0:
        raise MoescaleError(f"law {law.name!r} is undefined at every starting point on these "
                            "runs; check the variables' units or give a --grid")
    best = _polish(problem, multi.theta[top])
    params = {k: float(v[0, 0]) for k, v in problem.params(best[0][None]).items()}
    return Fitted(params, best[0], best[1], best[2], best[3], theta0.shape[0], multi.screened,
                  multi.iterations, method, multi.theta[top])


def _fixed_fit_space(law: Law, fixed: Mapping[str, float] | None) -> dict[str, float]:
    """Fit-space values of the parameters held fixed (natural units in ``fixed``), each
    checked against the law's parameter domain (``--fix alpha=-5`` is an error)."""
    fixed = {k: law.check_param(k, v, "fixed parameter") for k, v in dict(fixed or {}).items()}
    with np.errstate(divide="ignore"):  # a log-space parameter fixed at 0 is ln 0 = -inf
        theta = law.to_fit_space({**{k: 1.0 for k in law.params}, **fixed})
    return {k: theta[k] for k in fixed}


def _check_data(law: Law, variables, y, weights):
    """Variables inside their domains, targets positive and finite, one value per run."""
    variables = law.check_variables(variables)
    try:
        y = np.asarray(y, dtype=float)
    except (TypeError, ValueError):
        raise MoescaleError(f"the {law.target} values must be numbers") from None
    if y.ndim != 1 or y.size == 0 or not np.all(np.isfinite(y)) or np.any(y <= 0):
        raise MoescaleError(f"the {law.target} values must be a non-empty list of positive "
                            "finite numbers, one per run")
    for k, v in variables.items():
        if v.shape not in ((), y.shape):
            raise MoescaleError(f"variable {k} has {v.size} values for {y.size} runs")
    if weights is not None:
        w = np.asarray(weights, dtype=float)
        if not np.all(np.isfinite(w)) or np.any(w < 0) or not np.any(w > 0):
            raise MoescaleError("weights must be finite, non-negative and not all zero")
    return variables, y


def _check_options(law: Law, delta, grid, method: str) -> None:
    """The fit options a user gives, checked before any work."""
    if delta is not None and (isinstance(delta, bool) or not isinstance(delta, (int, float))
                              or not np.isfinite(delta) or delta <= 0):
        raise MoescaleError(f"delta (the Huber threshold) must be a positive number, got {delta!r}")
    if method not in ("grid", "varpro"):
        raise MoescaleError(f"unknown fit method {method!r}; use grid or varpro")
    for k, values in (grid or {}).items():
        if k not in law.params:
            raise MoescaleError(f"grid names unknown parameter {k} of law {law.name!r} "
                                f"(it has {', '.join(law.params)})")
        try:
            arr = np.asarray(values, dtype=float).ravel()
        except (TypeError, ValueError):
            raise MoescaleError(f"grid values of {k} must be numbers, got {values!r}") from None
        if arr.size == 0 or not np.all(np.isfinite(arr)):
            raise MoescaleError(f"grid values of {k} must be finite numbers, got {values!r}")


def _polish(problem: Problem, starts: np.ndarray) -> tuple[np.ndarray, float, bool, str]:
    """Tighten the best starts (LM without screening, then L-BFGS-B); keep the lowest."""
    tight = ms.refine(problem, starts, max_iter=100, tol=1e-15, screen=False)
    best = None
    for theta, f in zip(tight.theta, tight.objective, strict=True):
        res = ms.polish(problem, theta)
        cand = (res.x, float(res.fun), bool(res.success), str(res.message)) \
            if res.fun <= f else (theta, float(f), True, "converged (Levenberg–Marquardt)")
        if best is None or cand[1] < best[1]:
            best = cand
    return best


def fit_runs(law_name: str, runs, *, holdout: str | None = None, bootstrap: int = 0,
             level: float = 0.95, seed: int = 0, weights: str | None = None,
             progress: Callable[[str, int, int], None] | None = None,
             **fit_options: Any) -> FitResult:
    """Fit ``law_name`` to a :class:`~moescale.runs.RunTable`; hold out, bootstrap, score.

    ``weights`` names a column of positive per-run weights of the objective. ``fit_options``
    go to :func:`fit` (``delta``, ``fixed``, ``grid``, ``method``, …).
    """
    law = get_law(law_name)
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, int) or bootstrap < 0:
        raise MoescaleError(f"bootstrap must be a non-negative whole number, got {bootstrap!r}")
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise MoescaleError(f"level must be a number in (0, 1), got {level!r}")
    _check_options(law, fit_options.get("delta"), fit_options.get("grid"),
                   fit_options.get("method", "grid"))
    runs.require([*law.variables, *([weights] if weights else [])], target=law.target)
    runs.check_domains(law)
    test = holdout_mask(runs.frame, holdout) if holdout else np.zeros(len(runs), dtype=bool)
    v_all, y_all = runs.arrays(law.variables), runs.target(law.target)
    v_train = {k: a[~test] for k, a in v_all.items()}
    if (~test).sum() < len(law.params) - len(fit_options.get("fixed") or {}):
        raise MoescaleError(f"{int((~test).sum())} training runs cannot determine the "
                            f"{len(law.params)} parameters of {law.name!r}")
    t0 = time.perf_counter()
    step = (lambda d, t: progress("fit", d, t)) if progress else None
    w_train = runs.target(weights)[~test] if weights else None
    fitted = fit(law, v_train, y_all[~test], weights=w_train, progress=step, **fit_options)
    seconds = time.perf_counter() - t0
    result = FitResult(
        law=law.name, convention=law.convention, target=law.target, params=fitted.params,
        objective={"name": "huber_log", "reduction": "sum", "value": fitted.objective,
                   "delta": fit_options.get("delta") or DEFAULT_DELTA.get(law.name, 1e-3)},
        optimizer={"method": fitted.method, "starts": fitted.starts, "screened": fitted.screened,
                   "iterations": fitted.iterations, "success": fitted.success,
                   "message": fitted.message, "seconds": round(seconds, 3),
                   "grid": {k: list(map(float, v)) for k, v in
                            (fit_options.get("grid") or law.init_grid).items()}},
        data={"source": runs.source, "hash": runs.data_hash(), "n_runs": len(runs),
              "n_train": int((~test).sum()), "variables": list(law.variables),
              "holdout": holdout, "seed": seed, "weights": weights},
        train=_score(law, fitted.params, v_all, y_all, ~test),
        holdout=_score(law, fitted.params, v_all, y_all, test) if test.any() else None,
        derived=_derived(law, fitted.params),
        fixed=dict(fit_options.get("fixed") or {}), ci_level=level,
    )
    if bootstrap:
        _bootstrap(result, law, v_train, y_all[~test], w_train, fitted, bootstrap, seed, level,
                   (lambda d, t: progress("bootstrap", d, t)) if progress else None,
                   fit_options)
    return result


def _score(law: Law, params: Mapping[str, float], v: dict, y: np.ndarray,
           rows: np.ndarray) -> dict[str, float]:
    """Errors of the fitted law on the selected runs (target units)."""
    return metrics(y[rows], law.predict(params, {k: a[rows] for k, a in v.items()}))


def _derived(law: Law, params: Mapping[str, float],
             keys: Sequence[str] = ()) -> dict[str, float]:
    """The law's derived quantities; NaN where a degenerate refit makes them undefined (a
    scale that underflowed to 0 in a ratio), rather than an exception or a warning."""
    if not law.derived:
        return {}
    try:
        with np.errstate(all="ignore"):
            return {k: float(v) for k, v in law.derived(params).items()}
    except (ZeroDivisionError, OverflowError, FloatingPointError, ValueError):
        return dict.fromkeys(keys, float("nan"))


def _bootstrap(result: FitResult, law: Law, v: dict, y: np.ndarray, w: np.ndarray | None,
               fitted: Fitted, n: int, seed: int, level: float, progress,
               fit_options: Mapping[str, Any]) -> None:
    """Refit on ``n`` resamples of the runs (multinomial counts as weights), every refit
    warm-started from each of the best distinct full-data optima, all vectorised together."""
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(y.size, np.full(y.size, 1.0 / y.size), size=n).astype(float)
    if w is not None:
        counts *= w
    starts = fitted.top_theta[:3]
    problem = Problem(law, v, y, result.objective["delta"], np.repeat(counts, len(starts), 0),
                      _fixed_fit_space(law, fit_options.get("fixed")))
    multi = ms.refine(problem, np.tile(starts, (n, 1)), max_iter=100, tol=1e-14,
                      screen=False, progress=progress)
    f = multi.objective.reshape(n, len(starts))
    theta = multi.theta.reshape(n, len(starts), -1)[np.arange(n), np.argmin(f, axis=1)]
    boots = [{k: float(a[i, 0]) for k, a in problem.params(theta).items()} for i in range(n)]
    result.bootstrap_params = boots
    q = (1 - level) / 2
    rows = [{**b, **_derived(law, b, list(result.derived))} for b in boots]
    table = {k: np.array([r.get(k, np.nan) for r in rows])
             for k in (*law.params, *result.derived)}
    finite = {k: a[np.isfinite(a)] for k, a in table.items()}  # undefined refits left out
    result.ci = {k: [float(np.quantile(a, q)), float(np.quantile(a, 1 - q))]
                 if a.size else [float("nan")] * 2 for k, a in finite.items()}
    # one refit has no spread: its standard error is unknown (NaN, saved as null)
    with np.errstate(over="ignore"):  # a spread beyond the float range is inf (saved as null)
        result.se = {k: float(np.std(a, ddof=1)) if a.size > 1 else float("nan")
                     for k, a in finite.items()}
