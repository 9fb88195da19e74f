"""What a reader of a fit should distrust: per-run residuals, parameters at their bounds or
collapsed, parameters the data cannot identify, and predictions far outside the fitted range.

Every check returns plain data (lists of dicts or of strings) that :class:`~moescale.fitting.
FitResult` stores and ``moescale fit`` prints; nothing here changes a fit.

- :func:`residual_table` — one row per run: observed, predicted, residual, ``ln`` residual
  and a robust z-score (residual over 1.4826·MAD of the training residuals); ``|z| > 3`` flags
  an outlier (Hampel's rule).
- :func:`parameter_warnings` — a parameter on a bound of its fit space (the optimiser was
  stopped by the box, not by the data) or collapsed (a positive scale below 1e-30 or above
  1e30, e.g. ``E → 1e-110``: that term left the law).
- :func:`identifiability_warnings` — the Gauss–Newton curvature ``JᵀWJ`` of the summed loss in
  fit space at the optimum: a direction with almost no curvature (relative eigenvalue below
  1e-10) is a combination of parameters the runs do not pin down, named by its largest
  components; a variable with fewer distinct values than the parameters that act through it
  is named too (the joint-MoE law's ``E_start``/``E_max`` from 3 values of ``E``).
- :func:`fitted_ranges` / :func:`extrapolation_warnings` — the range of every variable (and of
  ``C = 6·N·D`` when the law takes ``N`` and ``D``) over the training runs, and the variables
  of a prediction that lie more than :data:`EXTRAPOLATION_FACTOR` beyond it.

>>> import numpy as np
>>> rows = residual_table(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.1, 3.0]),
...                       np.array([True, True, True]), {"N": np.array([1.0, 2.0, 3.0])})
>>> [round(r["residual"], 3) for r in rows]
[0.0, 0.1, 0.0]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

OUTLIER_Z = 3.0  # robust |z| above which a run is flagged (Hampel)
COLLAPSE = 1e-30  # a positive scale below this (or above its inverse) has left the law
FLAT_CURVATURE = 1e-10  # eigenvalue of JᵀWJ relative to the largest: a flat direction
EXTRAPOLATION_FACTOR = 2.0  # beyond max × this or below min / this is "far" outside the fit


def residual_table(y: np.ndarray, pred: np.ndarray, train: np.ndarray,
                   variables: Mapping[str, np.ndarray],
                   ids: Sequence[str] | None = None, noise=None) -> list[dict[str, Any]]:
    """One row per run (in input order): ``run`` (0-based index), ``id`` (the run's id, when
    ``ids`` are given: a sweep's ``id``/``spec_hash``), ``split`` (train/holdout),
    the law's variables, ``observed``, ``predicted``, ``residual`` (predicted − observed),
    ``log_residual`` (``ln`` predicted − ``ln`` observed), ``z`` and ``outlier``.

    With the runs' seed ``noise`` known (a :class:`~moescale.fitting.support.SeedNoise`), ``z``
    is the residual in units of the seed noise σ and a run is an outlier beyond Student's ``t``
    at the two-sided 99.73 % level (the 3σ rule, widened for the noise's degrees of freedom):
    a run is judged against how much runs scatter, not against how well the law fits the
    others. Without it, ``z`` is the robust z-score of the ``ln`` residual against the
    training runs and the outlier rule ``|z| > 3`` (Hampel)."""
    y, pred = np.asarray(y, float), np.asarray(pred, float)
    with np.errstate(all="ignore"):
        log_r = np.log(pred) - np.log(y)
    bound = OUTLIER_Z
    if noise is not None and noise.sd:
        from scipy.stats import t as student

        z = (pred - y) / noise.sd
        bound = float(student.ppf(0.5 + 0.9973 / 2, noise.dof))
    else:
        scale = _robust_scale(log_r[train])
        z = log_r / scale if scale > 0 else np.zeros_like(log_r)
    rows = []
    for i in range(y.size):
        row: dict[str, Any] = {"run": i, "split": "train" if train[i] else "holdout"}
        if ids is not None:
            row["id"] = str(ids[i])
        row.update({k: float(np.broadcast_to(v, y.shape)[i]) for k, v in variables.items()})
        row.update(observed=float(y[i]), predicted=float(pred[i]),
                   residual=float(pred[i] - y[i]), log_residual=float(log_r[i]),
                   z=float(z[i]), outlier=bool(abs(z[i]) > bound))
        rows.append(row)
    return rows


def run_name(row: Mapping[str, Any]) -> str:
    """How a residual row names its run: its id when known, else its row (``run``, 0-based)."""
    return str(row["id"]) if row.get("id") else str(row["run"])


def _robust_scale(r: np.ndarray) -> float:
    """1.4826 · median absolute deviation (a consistent σ for normal residuals); falls back to
    the standard deviation when more than half the residuals are identical."""
    r = r[np.isfinite(r)]
    if r.size < 3:
        return 0.0
    mad = 1.4826 * float(np.median(np.abs(r - np.median(r))))
    return mad if mad > 0 else float(np.std(r))


def parameter_warnings(law, theta: Mapping[str, float], params: Mapping[str, float],
                       fixed: Sequence[str] = ()) -> list[str]:
    """Parameters at a bound of their fit space or collapsed to a vanishing/huge scale."""
    out = []
    for k in law.params:
        if k in fixed:
            continue
        lo, hi = law.bounds.get(k, (-np.inf, np.inf))
        for side, b in (("lower", lo), ("upper", hi)):
            if np.isfinite(b) and abs(theta[k] - b) <= 1e-6 * max(1.0, abs(b)):
                out.append(f"{k} = {params[k]:.4g} sits at its {side} bound; the optimiser was "
                           "stopped by the bound, not by the data")
        v = abs(params[k])
        if k in law.log_params and (v < COLLAPSE or v > 1 / COLLAPSE):
            out.append(f"{k} = {params[k]:.3g} has collapsed: the term it scales has left the "
                       "law (the data do not support it; fix it with `fixed` or drop the term)")
    return out


def identifiability_warnings(problem, theta: np.ndarray) -> list[str]:
    """Flat directions of the Gauss–Newton curvature at ``theta`` (fit space, free params) and
    variables with too few distinct values for the parameters that act through them."""
    free = list(problem.free)
    if not free:
        return []
    jac = problem.jacobian(np.atleast_2d(theta))[0]            # (P, runs)
    w = np.broadcast_to(problem.w, problem.log_y.shape)
    h = (jac * w) @ jac.T
    out = []
    evals, evecs = np.linalg.eigh(h)
    top = float(evals[-1]) if evals.size else 0.0
    flat = []
    for lam, vec in zip(evals, evecs.T, strict=True):
        if top <= 0 or lam > FLAT_CURVATURE * top:
            continue
        names = [free[i] for i in np.argsort(-np.abs(vec))[:3] if abs(vec[i]) > 0.2]
        flat.extend(names)
        out.append(f"{' and '.join(names) or 'a combination of parameters'} are not identifiable "
                   f"from these runs (flat direction of the loss: curvature {max(lam / top, 0.0):.1e} of "
                   "the largest); fix one or add runs that vary what they describe")
    out.extend(_few_values(problem, jac, free))
    return out


def _few_values(problem, jac: np.ndarray, free: list[str]) -> list[str]:
    """A variable with ``k`` distinct values can determine at most ``k`` parameters that act
    only through it (whose ``∂ln L/∂θ`` is constant across runs sharing its value)."""
    out = []
    for name, values in problem.v.items():
        values = np.broadcast_to(values, problem.log_y.shape)
        distinct = np.unique(values)
        if distinct.size >= len(free) or distinct.size == values.size:
            continue
        through = []
        for i, k in enumerate(free):
            col = jac[i]
            if np.allclose(col, 0):
                continue
            spread = max(np.ptp(col[values == u]) for u in distinct)
            # acts only through this variable: constant within each group, varies across them
            if spread <= 1e-9 * max(1.0, np.max(np.abs(col))) and np.ptp(col) > 0:
                through.append(k)
        if len(through) > distinct.size - 1:
            shown = ", ".join(f"{u:g}" for u in distinct[:6])
            out.append(f"{', '.join(through)} act only through {name}, which takes "
                       f"{distinct.size} distinct value(s) ({shown}) in the training runs: "
                       f"at most {distinct.size - 1} such parameter(s) can be identified "
                       "beyond the level")
    return out


def fitted_ranges(variables: Mapping[str, np.ndarray]) -> dict[str, list[float]]:
    """``[min, max]`` of every variable over the training runs, plus ``C = 6·N·D`` when the
    law takes a parameter count and tokens but not ``C`` (the compute the runs spanned)."""
    out = {k: [float(np.min(v)), float(np.max(v))] for k, v in variables.items()
           if np.size(v)}
    n = variables.get("N_active", variables.get("N_a", variables.get("N")))
    if "C" not in variables and n is not None and "D" in variables:
        c = 6.0 * np.asarray(n, float) * np.asarray(variables["D"], float)
        out["C"] = [float(np.min(c)), float(np.max(c))]
    return out


def extrapolation_warnings(ranges: Mapping[str, Sequence[float]],
                           variables: Mapping[str, Any],
                           factor: float = EXTRAPOLATION_FACTOR) -> list[str]:
    """Variables of a prediction (or plan) more than ``factor`` outside the fitted range."""
    v = {k: np.asarray(x, float) for k, x in variables.items() if x is not None}
    n = v.get("N_active", v.get("N_a", v.get("N")))
    if "C" in ranges and "C" not in v and n is not None and "D" in v:
        v["C"] = 6.0 * n * v["D"]
    out = []
    for k, (lo, hi) in ranges.items():
        if k not in v or lo is None or hi is None or not (lo > 0 and hi > 0):
            continue
        x = v[k][np.isfinite(v[k])]
        if x.size == 0:
            continue
        if np.max(x) > hi * factor:
            out.append(f"{k} = {np.max(x):.3g} is {np.max(x) / hi:.3g}× the largest fitted "
                       f"value ({hi:.3g}): an extrapolation")
        if 0 < np.min(x) < lo / factor:
            out.append(f"{k} = {np.min(x):.3g} is {lo / np.min(x):.3g}× below the smallest "
                       f"fitted value ({lo:.3g}): an extrapolation")
    return out
