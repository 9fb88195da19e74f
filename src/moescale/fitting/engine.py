"""The fitting engine: one law fitted by summed Huber on ``ln(target)``, multi-start from the
law's published grid (or variable-projection starts), vectorised across starts, the best few
polished by L-BFGS-B; a held-out split; bootstrap intervals (resampled runs, all refits
vectorised together).

- :func:`fit` — a law on runs (a :class:`~moescale.runs.RunTable`, a data frame or a file);
- :func:`fit_arrays` — the same on arrays of the law's variables and the target.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from moescale.errors import MoescaleError
from moescale.fitting import diagnostics as dg
from moescale.fitting import multistart as ms
from moescale.fitting import support
from moescale.fitting.holdout import holdout_mask, metrics
from moescale.fitting.objective import Problem, default_delta
from moescale.fitting.result import FitResult
from moescale.laws import Law, get_law


@dataclass(frozen=True)
class _Point:
    """The optimiser's point estimate (internal): natural-unit ``params``, fit-space ``theta``
    and its report; :func:`fit` and :func:`fit_arrays` turn it into a :class:`FitResult`."""

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
    problem: Problem
    nfev: int = 0
    njev: int = 0
    converged_starts: int = 0




def fit_arrays(law: Law | str, variables: Mapping[str, np.ndarray], y: np.ndarray, *,
               delta: float | None = None, weights: np.ndarray | None = None,
        fixed: Mapping[str, float] | None = None, grid: Mapping[str, Sequence[float]] | None = None,
        method: str = "grid", polish_top: int = 5, screen: bool = True,
        bootstrap: int = 0, level: float = 0.95, seed: int = 0,
        progress: Callable[[int, int], None] | None = None) -> FitResult:
    """Fit ``law`` to targets ``y`` at ``variables`` (arrays of equal length).

    Parameters
    ----------
    law : Law or str
        The law object or its registered name (``moescale laws``).
    variables : mapping of str to array
        The law's variables, one value per run (or a scalar shared by all).
    y : array
        The observed target (loss, or the law's ``target``), positive.
    delta : float, optional
        Huber threshold on ``ln`` residuals (default:
        :func:`~moescale.fitting.objective.default_delta`, the law's paper, else 1e-3).
    weights : array, optional
        Non-negative per-run weights of the objective.
    fixed : mapping, optional
        Natural-unit values of parameters not to fit.
    grid : mapping, optional
        Starting values per parameter (fit space) replacing the law's published grid.
    method : {"grid", "varpro"}
        Starts from the grid, or by variable projection (laws with a linear basis only).
    bootstrap : int
        Refits on resampled runs for intervals (see :func:`fit`).

    Returns
    -------
    FitResult
        The best of the polished starts, with per-run residuals and warnings.

    Examples
    --------
    >>> import numpy as np
    >>> N = np.geomspace(1e8, 1e10, 8)
    >>> D = 20 * N
    >>> r = fit_arrays("chinchilla", {"N": N, "D": D}, 1.7 + 400 / N**0.34 + 410 / D**0.28,
    ...                fixed={"beta": 0.28, "B": 410})
    >>> r.success, round(r.params["alpha"], 3)
    (True, 0.34)
    """
    law = get_law(law) if isinstance(law, str) else law
    variables, y = _check_data(law, variables, y, weights)
    runs = {k: np.broadcast_to(np.asarray(v, float), y.shape) for k, v in variables.items()}
    return _fit_arrays(law, runs, y, np.zeros(y.size, dtype=bool), weights, bootstrap, level,
                       seed, None, {"source": "arrays", "n_runs": int(y.size), "holdout": None,
                                    "weights": None if weights is None else "array"},
                       dict(delta=delta, fixed=fixed, grid=grid, method=method,
                            polish_top=polish_top, screen=screen, progress=progress))


def _fit_point(law: Law, variables: Mapping[str, np.ndarray], y: np.ndarray, *,
               delta: float | None = None, weights: np.ndarray | None = None,
               fixed: Mapping[str, float] | None = None,
               grid: Mapping[str, Sequence[float]] | None = None, method: str = "grid",
               polish_top: int = 5, screen: bool = True,
               progress: Callable[[int, int], None] | None = None) -> _Point:
    """The multi-start fit itself: the best of the polished starts, its convergence measured."""
    _check_options(law, delta, grid, method)
    variables, y = _check_data(law, variables, y, weights)
    problem = Problem(law, variables, y, delta or default_delta(law.name),
                      weights, _fixed_fit_space(law, fixed))
    if not problem.free:
        raise MoescaleError("every parameter is fixed; nothing to fit")
    if method == "varpro":
        if law.linear is None:
            raise MoescaleError(f"law {law.name!r} has no linear coefficients; use `method` grid")
        theta0 = ms.varpro_starts(problem, grid)
    else:
        theta0 = ms.grid_starts(problem, grid)
    multi = ms.refine(problem, theta0, screen=screen, progress=progress)
    top = ms.best_distinct(multi, polish_top)
    if top.size == 0:
        raise MoescaleError(f"law {law.name!r} is undefined at every starting point on these "
                            "runs; check the variables' units or give a `grid`")
    best = _polish(problem, multi.theta[top])
    params = {k: float(v[0, 0]) for k, v in problem.params(best[0][None]).items()}
    converged = int(np.sum(multi.converged_mask)) if multi.converged_mask is not None else 0
    return _Point(params, best[0], best[1], best[2], best[3], theta0.shape[0], multi.screened,
                  multi.iterations, method, multi.theta[top], problem, problem.nfev,
                  problem.njev, converged)


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
    """Tighten the best starts (LM without screening, then L-BFGS-B); keep the lowest.

    ``success`` is measured either way: L-BFGS-B's own flag when its point wins, else whether
    the Levenberg–Marquardt iteration met its tolerance (a start that ran out of iterations is
    not converged, even when L-BFGS-B did worse from there)."""
    tight = ms.refine(problem, starts, max_iter=100, tol=1e-15, screen=False)
    conv = tight.converged_mask
    best = None
    for i, (theta, f) in enumerate(zip(tight.theta, tight.objective, strict=True)):
        res = ms.polish(problem, theta)
        if res.fun <= f:
            cand = (res.x, float(res.fun), bool(res.success), f"{res.message} (L-BFGS-B)")
        elif conv is not None and conv[i]:
            cand = (theta, float(f), True, "converged (Levenberg–Marquardt)")
        else:
            cand = (theta, float(f), False,
                    "Levenberg–Marquardt stopped at its iteration limit without meeting its "
                    f"tolerance, and L-BFGS-B did not improve on it ({res.message})")
        if best is None or cand[1] < best[1]:
            best = cand
    return best


def fit(law: Law | str, runs, *, holdout: str | None = None, bootstrap: int = 0,
        level: float = 0.95, seed: int = 0, weights: str | None = None,
        delta: float | None = None, fixed: Mapping[str, float] | None = None,
        grid: Mapping[str, Sequence[float]] | None = None, method: str = "grid",
        screen: bool = True, polish_top: int = 5,
        progress: Callable[[str, int, int], None] | None = None) -> FitResult:
    """Fit ``law`` to runs; hold out, bootstrap, score and diagnose (``moescale.fit``).

    Parameters
    ----------
    law : Law or str
        The law object or its registered name.
    runs : RunTable, pandas.DataFrame, str or Path
        The runs (a data frame or a file is read with :meth:`RunTable.from_frame` /
        :meth:`RunTable.from_file`).
    holdout : str, optional
        Held-out runs: ``largest-C:5``, ``largest-N:1``, ``lowest-loss:30``,
        ``tag:COL=VALUE``, ``query:EXPR``; ``None`` holds out nothing.
    bootstrap : int
        Refits on resampled training runs for parameter, derived and prediction intervals.
    level : float
        Confidence level of the intervals.
    seed : int
        Seed of the bootstrap resampling.
    weights : str, optional
        Column of positive per-run weights of the objective.
    delta, fixed, grid, method, screen, polish_top
        The optimiser's options, as :func:`fit_arrays` takes them.
    progress : callable, optional
        ``progress(stage, done, total)`` as the fit and the bootstrap advance.

    Returns
    -------
    FitResult

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> N = np.geomspace(1e8, 1e10, 12)
    >>> D = np.tile([1e10, 4e10, 1.6e11], 4)
    >>> frame = pd.DataFrame({"N": N, "D": D, "loss": 1.69 + 406.4 / N**0.34 + 410.7 / D**0.28})
    >>> r = fit("chinchilla", frame, holdout="largest-N:2")
    >>> r.data["n_train"], r.holdout["n"], r.holdout["rmse"] < 0.01
    (10, 2, True)
    """
    if not isinstance(law, (str, Law)):
        raise MoescaleError(f"law must be a law name or a Law, got {type(law).__name__}")
    if holdout is not None and not isinstance(holdout, str):
        raise MoescaleError(f"holdout must be a rule such as 'largest-C:5' (a string), got "
                            f"{type(holdout).__name__}")
    for name, value in (("bootstrap", bootstrap), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise MoescaleError(f"{name} must be a whole number, got {value!r}")
        if value < 0:
            raise MoescaleError(f"{name} must be at least 0, got {value!r}")
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not level > 0:
        raise MoescaleError(f"level must be a number above 0, got {level!r}")
    if level >= 1:
        raise MoescaleError(f"level must be less than 1, got {level!r}")
    fit_options = dict(delta=delta, fixed=fixed, grid=grid, method=method, screen=screen,
                       polish_top=polish_top)
    law = _as_law(law)
    runs, _, scope_warnings = law_runs(law, _as_runs(runs))
    _check_options(law, delta, grid, method)
    runs.require([*law.variables, *([weights] if weights else [])], target=law.target)
    runs.check_domains(law)
    test = holdout_mask(runs.frame, holdout) if holdout else np.zeros(len(runs), dtype=bool)
    v_all, y_all = runs.arrays(law.variables), runs.target(law.target)
    if (~test).sum() < len(law.params) - len(fixed or {}):
        raise MoescaleError(f"{int((~test).sum())} training runs cannot determine the "
                            f"{len(law.params)} parameters of {law.name!r}")
    w_all = runs.target(weights) if weights else None
    data = {"source": runs.source, "hash": runs.data_hash(), "n_runs": len(runs),
            "holdout": holdout, "weights": weights}
    corpus = _corpus_tokens(runs.frame)
    if corpus:
        data["corpus_tokens"] = corpus
    noise = support.seed_noise(runs.frame, law.target, level)  # σ is no fit: every run informs it
    if noise.sd is not None:
        data["seed_noise"] = noise.to_dict()
    result = _fit_arrays(law, v_all, y_all, test, w_all, bootstrap, level, seed, progress, data,
                         {**fit_options, "progress": (lambda d, t: progress("fit", d, t))
                          if progress else None}, ids=_run_ids(runs.frame), noise=noise)
    if scope_warnings:
        result = dataclasses.replace(result, warnings=[*scope_warnings, *result.warnings])
    return result


def _run_ids(frame) -> list[str] | None:
    """Each run's id (an ``id`` or ``spec_hash`` column, as a sweep store exports), or None
    (runs are then named by their row, the residual table's ``run``)."""
    for col in ("id", "spec_hash"):
        if col in frame.columns:
            return [str(x) for x in frame[col].tolist()]
    return None


def _corpus_tokens(frame) -> float | None:
    """Training tokens of the corpus the runs trained on, when the runs show it: a run that
    repeated tokens (``repeated_tokens > 0``) saw every window, so its ``unique_tokens`` is the
    whole training split. None when no run repeated (the corpus is then at least the largest
    ``unique_tokens``, of unknown size) or the columns are absent."""
    if "unique_tokens" not in frame.columns or "repeated_tokens" not in frame.columns:
        return None
    import pandas as pd

    unique = pd.to_numeric(frame["unique_tokens"], errors="coerce").to_numpy(float)
    repeated = pd.to_numeric(frame["repeated_tokens"], errors="coerce").to_numpy(float)
    full = np.isfinite(unique) & (unique > 0) & (repeated > 0)
    return float(np.max(unique[full])) if full.any() else None


def _as_law(law: Law | str) -> Law:
    if isinstance(law, Law):
        return law
    if isinstance(law, str):
        return get_law(law)
    raise MoescaleError(f"law must be a registered name or a Law, got {type(law).__name__}")


def _as_runs(runs):
    """A RunTable from a RunTable, a data frame or a path."""
    from pathlib import Path

    from moescale.runs import RunTable

    if isinstance(runs, RunTable):
        table = runs
    elif isinstance(runs, (str, Path)):
        table = RunTable.from_file(runs)
    elif hasattr(runs, "columns") and hasattr(runs, "to_numpy"):
        table = RunTable.from_frame(runs)
    else:
        raise MoescaleError(f"runs must be a RunTable, a data frame or a file path, got "
                            f"{type(runs).__name__}")
    check_one_corpus(table.frame)
    return table


def law_runs(law: Law, runs):
    """``(runs as law reads them, mask of the runs kept, warnings)``: each variable the law
    maps to another column (:attr:`Law.columns`: Zhao's G from ``G_act``) read from it, and
    only the runs in the law's scope (:attr:`Law.scope`) — the others left out and named in
    one warning; none in scope is an error naming the law's definition."""
    from moescale.runs import RunTable

    frame = runs.frame
    mapped = {var: col for var, col in law.columns.items() if col in frame.columns}
    if mapped:
        frame = frame.assign(**{var: frame[col] for var, col in mapped.items()})
        runs = RunTable(frame, runs.source, runs.derived, runs._rows)
    if law.scope is None:
        return runs, np.ones(len(runs), dtype=bool), []
    mask, what = law.scope(runs)
    mask = np.asarray(mask, dtype=bool)
    if mask.all():
        return runs, mask, []
    names = ([str(x) for x in frame["id"].to_numpy()[~mask]] if "id" in frame.columns
             else [f"row {r}" for r in runs._rows[~mask]])
    shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
    if not mask.any():
        raise MoescaleError(f"law {law.name!r} is defined for {what}; none of the {len(runs)} "
                            f"runs is ({shown})")
    return runs.subset(mask), mask, [f"{law.name} is defined for {what}: left out "
                                     f"{int((~mask).sum())} of {len(runs)} runs outside it "
                                     f"({shown})"]


def check_one_corpus(frame) -> None:
    """Refuse runs of different corpora or tokenizers in one fit (the ``corpus`` and
    ``tokenizer`` columns a sweep store exports): their losses are not on one scale. The
    error names each corpus with its number of runs and how to keep one."""
    for column, what in (("corpus", "corpora"), ("tokenizer", "tokenizers")):
        if column not in frame.columns:
            continue
        values = frame[column].dropna().astype(str)
        counts = values.value_counts(sort=False)
        if len(counts) > 1:
            listing = ", ".join(f"{name} ({n} run{'s' if n != 1 else ''})"
                                for name, n in counts.items())
            first = str(counts.index[0])
            raise MoescaleError(
                f"the runs mix {len(counts)} {what}: {listing}; losses measured on different "
                f"{'text' if column == 'corpus' else 'tokens'} are not on one scale, so fit one "
                f"at a time, e.g. the runs where {column} == '{first}'")


def _fit_arrays(law: Law, v_all: dict, y_all: np.ndarray, test: np.ndarray, w_all,
                bootstrap: int, level: float, seed: int, progress, data: dict,
                fit_options: dict, ids: Sequence[str] | None = None,
                noise: support.SeedNoise | None = None) -> FitResult:
    """Fit on the training rows, score both splits, bootstrap, diagnose; one FitResult
    (``ids``: the runs' ids for the residual table, else they are named by row; ``noise``: the
    runs' seed noise, against which outliers are judged when it is known)."""
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise MoescaleError(f"level must be a number in (0, 1), got {level!r}")
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, int) or bootstrap < 0:
        raise MoescaleError(f"bootstrap must be a non-negative whole number, got {bootstrap!r}")
    t0 = time.perf_counter()
    v_train = {k: a[~test] for k, a in v_all.items()}
    w_train = None if w_all is None else np.asarray(w_all, float)[~test]
    point = _fit_point(law, v_train, y_all[~test], weights=w_train, **fit_options)
    seconds = time.perf_counter() - t0
    delta = fit_options.get("delta") or default_delta(law.name)
    grid = fit_options.get("grid") or law.init_grid
    optimizer = {"method": point.method, "starts": point.starts, "screened": point.screened,
                 "iterations": point.iterations, "success": point.success,
                 "message": point.message, "nfev": point.nfev, "njev": point.njev,
                 "converged_starts": point.converged_starts, "seconds": round(seconds, 3),
                 "grid": {k: list(map(float, v)) for k, v in grid.items()}}
    derived = _derived(law, point.params)
    boot: dict[str, Any] = {}
    if bootstrap:
        boot = _bootstrap(law, v_train, y_all[~test], w_train, point, bootstrap, seed, level,
                          (lambda d, t: progress("bootstrap", d, t)) if progress else None,
                          fit_options, derived)
        optimizer["bootstrap_converged"] = boot.pop("converged")
        optimizer["bootstrap_refits"] = bootstrap
        optimizer["bootstrap_refused"] = boot.pop("refused")
        optimizer["ci_mc_error"] = boot.pop("mc_error")
    pred = law.predict(point.params, v_all)
    residuals = dg.residual_table(y_all, pred, ~test, v_all, ids, noise)
    data = {**data, "n_train": int((~test).sum()), "variables": list(law.variables),
            "seed": seed, "ranges": dg.fitted_ranges(v_train)}
    holdout = metrics(y_all[test], pred[test]) if test.any() else None
    verdict_warnings = []
    if holdout is not None and noise is not None:
        verdict = support.holdout_verdict(holdout["rmse"], int(test.sum()), noise,
                                          f"the {law.name} fit")
        data |= {"extrapolates": verdict.extrapolates, "verdict": verdict.text}
        if verdict.extrapolates is False:
            verdict_warnings.append("not validated: " + verdict.text)
    return FitResult(
        law=law.name, convention=law.convention, target=law.target, params=point.params,
        objective={"name": "huber_log", "reduction": "sum", "value": point.objective,
                   "delta": delta},
        optimizer=optimizer, data=data,
        train=metrics(y_all[~test], pred[~test]),
        holdout=holdout,
        derived=derived, fixed=dict(fit_options.get("fixed") or {}), ci_level=level,
        residuals=residuals,
        warnings=_warnings(law, point, residuals, optimizer, fit_options, noise)
        + _interval_warnings({**point.params, **derived}, boot.get("ci", {}), level)
        + verdict_warnings,
        **boot)


def _interval_warnings(values: Mapping[str, float], ci: Mapping[str, list[float]],
                       level: float) -> list[str]:
    """Point estimates that lie outside their own bootstrap interval: the refits do not centre
    on the fit (a second optimum, a bound, a skewed or degenerate resample), so neither the
    estimate nor the interval should be read alone."""
    out = []
    for k, (lo, hi) in ci.items():
        x = values.get(k)
        if x is None or not all(np.isfinite([x, lo, hi])) or lo <= x <= hi:
            continue
        out.append(f"{k} = {x:.4g} lies outside its own {level:.0%} bootstrap interval "
                   f"[{lo:.4g}, {hi:.4g}]: the refits do not centre on the estimate (another "
                   "optimum, a bound or a skewed resample); distrust both")
    return out


def _warnings(law: Law, point: _Point, residuals: list[dict], optimizer: dict,
              fit_options: Mapping[str, Any], noise: support.SeedNoise | None = None) -> list[str]:
    """Everything :mod:`~moescale.fitting.diagnostics` finds, and the optimiser's failures."""
    out = []
    if not point.success:
        out.append(f"the optimiser did not converge: {point.message}")
    fixed = list(fit_options.get("fixed") or {})
    theta = dict(zip(point.problem.free, point.theta, strict=True))
    theta.update(point.problem.fixed)
    out += dg.parameter_warnings(law, theta, point.params, fixed)
    out += dg.identifiability_warnings(point.problem, point.theta)
    n_boot, conv = optimizer.get("bootstrap_refits"), optimizer.get("bootstrap_converged")
    if optimizer.get("bootstrap_refused"):
        out.append(optimizer["bootstrap_refused"])
    elif n_boot and conv is not None and conv < n_boot:
        out.append(f"{n_boot - conv} of {n_boot} bootstrap refits did not converge (left out "
                   f"of the intervals, which rest on the other {conv})")
    outliers = [r for r in residuals if r["outlier"]]
    if outliers:
        shown = ", ".join(f"run {dg.run_name(r)} ({r['split']}, z = {r['z']:+.1f})"
                          for r in sorted(outliers, key=lambda r: -abs(r["z"]))[:5])
        scale = ("the seed noise allows (z in units of its σ)" if noise is not None and noise.sd
                 else f"{dg.OUTLIER_Z:g} robust standard deviations of the residuals allow (the "
                      "seed noise is unknown)")
        out.append(f"{len(outliers)} run(s) lie farther from the law than {scale}: {shown}")
    return out


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


BOOTSTRAP_LM_ITER = 100       # Levenberg–Marquardt iterations per refit (warm starts)
BOOTSTRAP_DECREMENT_TOL = 1e-10  # a refit whose Gauss–Newton step would gain ≤ this·(1 + f)
BOOTSTRAP_MIN_CONVERGED = 20  # an interval needs at least this many converged refits …
BOOTSTRAP_MIN_SHARE = 0.5     # … and at least this share of the refits asked for


def bootstrap_needed(n: int) -> int:
    """Converged refits an interval from ``n`` bootstrap refits needs:
    ``max(BOOTSTRAP_MIN_CONVERGED, ceil(BOOTSTRAP_MIN_SHARE · n))`` — 20 of up to 40, half of
    more. With fewer the interval is refused (a 95 % percentile interval from a handful of
    refits, or from the minority that happened to converge, is not an interval)."""
    return max(BOOTSTRAP_MIN_CONVERGED, math.ceil(BOOTSTRAP_MIN_SHARE * n))


def _bootstrap(law: Law, v: dict, y: np.ndarray, w: np.ndarray | None, point: _Point,
               n: int, seed: int, level: float, progress, fit_options: Mapping[str, Any],
               derived: Mapping[str, float]) -> dict[str, Any]:
    """Refit on ``n`` resamples of the runs (multinomial counts as weights), every refit
    warm-started from each of the best distinct full-data optima, all vectorised together.

    A refit has converged when its objective is finite and either the Levenberg–Marquardt
    iteration met its step tolerance (an accepted step decreasing the objective by ≤ 1e-14 of
    ``1 + f``, or no descent step left at any damping) within :data:`BOOTSTRAP_LM_ITER`
    iterations, or the point passes the first-order test: half the squared Gauss–Newton
    decrement (the decrease a full step would still bring,
    :func:`~moescale.fitting.multistart.newton_decrement`) at most
    :data:`BOOTSTRAP_DECREMENT_TOL` of ``1 + f``. Refits that did not converge are counted
    and left out of every interval and standard error; with fewer converged refits than
    :func:`bootstrap_needed` the interval is refused (no ``ci``, ``se`` or refits; ``refused``
    says why, with the count).

    Resamples are drawn for the runs in :func:`~moescale.fitting.support.canonical_order`, so
    the same runs and ``seed`` give the same refits whatever their order; each interval
    endpoint's Monte-Carlo standard error is returned as ``mc_error``.

    Returns the FitResult fields ``bootstrap_params``, ``ci``, ``se``, the number of refits
    that ``converged`` and the ``refused`` reason (``None`` when the interval stands)."""
    rng = np.random.default_rng(seed)
    # drawn for the runs in a canonical order: the same runs give the same interval in any order
    order = support.canonical_order([*(np.broadcast_to(v[k], y.shape) for k in law.variables), y,
                                     *(() if w is None else (w,))])
    counts = rng.multinomial(y.size, np.full(y.size, 1.0 / y.size), size=n).astype(float)
    counts = counts[:, support.position_in(order)]
    if w is not None:
        counts *= w
    starts = point.top_theta[:3]
    fixed = _fixed_fit_space(law, fit_options.get("fixed"))
    problem = Problem(law, v, y, point.problem.delta, np.repeat(counts, len(starts), 0), fixed)
    multi = ms.refine(problem, np.tile(starts, (n, 1)), max_iter=BOOTSTRAP_LM_ITER, tol=1e-14,
                      screen=False, progress=progress)
    f = multi.objective.reshape(n, len(starts))
    pick = np.argmin(f, axis=1)
    theta = multi.theta.reshape(n, len(starts), -1)[np.arange(n), pick]
    f = f[np.arange(n), pick]
    ok = multi.converged_mask.reshape(n, len(starts))[np.arange(n), pick]
    stalled = np.flatnonzero(~ok)  # LM ran out of iterations: is the point stationary anyway?
    if stalled.size:
        gain = ms.newton_decrement(Problem(law, v, y, point.problem.delta, counts[stalled],
                                           fixed), theta[stalled])
        ok[stalled] = gain <= BOOTSTRAP_DECREMENT_TOL * (1 + np.abs(f[stalled]))
    ok &= np.isfinite(f)
    converged = int(ok.sum())
    needed = bootstrap_needed(n)
    if converged < needed:
        return {"bootstrap_params": [], "ci": {}, "se": {}, "converged": converged,
                "mc_error": {},
                "refused": f"bootstrap interval refused: {'only ' if converged < n else ''}"
                           f"{converged} of {n} refits converged; an interval needs at least "
                           f"{needed} (max({BOOTSTRAP_MIN_CONVERGED}, "
                           f"{BOOTSTRAP_MIN_SHARE:.0%} of the refits))"}
    params = problem.params(theta[ok])
    boots = [{k: float(a[i, 0]) for k, a in params.items()} for i in range(converged)]
    rows = [{**b, **_derived(law, b, list(derived))} for b in boots]
    table = {k: np.array([r.get(k, np.nan) for r in rows]) for k in (*law.params, *derived)}
    finite = {k: a[np.isfinite(a)] for k, a in table.items()}  # undefined refits left out
    intervals = {k: support.percentile_interval(a, level) for k, a in finite.items()}
    ci = {k: [lo, hi] for k, (lo, hi, _) in intervals.items()}
    mc_error = {k: err for k, (_, _, err) in intervals.items()}
    # one refit has no spread: its standard error is unknown (NaN, saved as null)
    with np.errstate(over="ignore"):  # a spread beyond the float range is inf (saved as null)
        se = {k: float(np.std(a, ddof=1)) if a.size > 1 else float("nan")
              for k, a in finite.items()}
    return {"bootstrap_params": boots, "ci": ci, "se": se, "converged": converged,
            "refused": None, "mc_error": mc_error}
