"""Multi-start optimisation vectorised across starts.

Every start is refined by a damped Gauss–Newton (Levenberg–Marquardt) iteration with Huber
IRLS weights, all starts advancing together as stacked numpy arrays (batched ``P×P`` solves):
no Python loop over starts and no per-start scipy call. Starts that have converged leave the
active set; starts that land on the same point merge (their trajectories would coincide).
Large grids are screened by successive halving: after 2, 4, 8, 16 and 32 iterations only the best
quarter of the still-active starts (at least 64) go on — on the Chinchilla grid every start
that ends at the optimum is among them (benchmarks/RESULTS.md). The best few distinct results
are then polished with scipy's L-BFGS-B (analytic or automatic
gradient), whose ``success`` and ``message`` the fit reports.

Starting points: the law's published initialisation grid (``Law.init_grid``, fit space), or,
for laws linear in some coefficients once the exponents are fixed (``Law.linear``), variable
projection: a grid over the nonlinear parameters with the linear coefficients solved by
non-negative least squares on the target.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from moescale.errors import MoescaleError
from moescale.fitting.objective import Problem, huber

CHUNK = 2048  # starts refined together at most …
CHUNK_FLOATS = 2e7  # … and at most this many Jacobian entries (160 MB) for large run tables
SCREEN_AT = (2, 4, 8, 16, 32)  # after these iterations only the best SCREEN_KEEP of active starts go on
SCREEN_KEEP, SCREEN_MIN = 0.25, 64


def grid_starts(problem: Problem, grid: Mapping[str, Sequence[float]] | None = None) -> np.ndarray:
    """Cartesian product of ``grid`` (default: the law's published grid) in fit space.

    Free parameters off the grid start at ``law.init`` (0 when absent). Shape
    ``(starts, free params)``.
    """
    law = problem.law
    grid = dict(law.init_grid if grid is None else grid)
    unknown = sorted(set(grid) - set(law.params))
    if unknown:
        raise MoescaleError(f"grid names unknown parameters {', '.join(unknown)} of law "
                            f"{law.name!r} (it has {', '.join(law.params)})")
    axes = [np.asarray(grid.get(k, (law.init.get(k, 0.0),)), dtype=float) for k in problem.free]
    return np.array(list(itertools.product(*axes)), dtype=float).reshape(-1, len(problem.free))


def varpro_starts(problem: Problem, grid: Mapping[str, Sequence[float]] | None = None) -> np.ndarray:
    """Starts from variable projection: for each point of the grid over the *nonlinear*
    parameters, the linear coefficients by NNLS on the target (zeros become 1e-12)."""
    from scipy.optimize import nnls

    law = problem.law
    names, _ = law.linear(law.from_fit_space(
        {k: np.asarray(law.init.get(k, 0.0)) for k in law.params}), problem.v)
    nonlinear = {k: v for k, v in (law.init_grid if grid is None else grid).items()
                 if k not in names}
    theta = grid_starts(problem, nonlinear)
    _, basis = law.linear(problem.params(theta), problem.v)  # (starts, runs, k)
    y = np.exp(problem.log_y)
    for s in range(theta.shape[0]):
        if not np.all(np.isfinite(basis[s])):
            continue
        coef, _ = nnls(basis[s], y)
        for name, c in zip(names, coef, strict=True):
            if name in problem.free:
                theta[s, problem.free.index(name)] = np.log(max(c, 1e-12)) \
                    if name in law.log_params else c
    return theta


@dataclass(frozen=True)
class MultiStart:
    """Outcome of the vectorised refinement: final points and objectives of every start."""

    theta: np.ndarray        # (starts, free params), fit space
    objective: np.ndarray    # (starts,)
    iterations: int
    converged: int           # starts that met the tolerance or merged into a better one
    screened: int            # starts stopped early by successive halving
    converged_mask: np.ndarray | None = None  # (starts,) per start: met the tolerance (or
    # found no descent step: a stationary point at machine precision)
    nfev: int = 0            # parameter vectors evaluated (objective), all starts together
    njev: int = 0            # parameter vectors at which the Jacobian was evaluated


def refine(problem: Problem, theta0: np.ndarray, max_iter: int = 200, tol: float = 1e-12,
           screen: bool = True, progress=None) -> MultiStart:
    """Levenberg–Marquardt with Huber IRLS weights for every start.

    Starts advance in stages that end at the :data:`SCREEN_AT` iterations; after each stage the
    screening keeps the best share of *all* still-active starts. Within a stage starts are
    processed in chunks of at most :data:`CHUNK` (fewer for large run tables, see
    :data:`CHUNK_FLOATS`). When the problem carries one weight row per start (bootstrap
    resamples), every start is a different problem: no screening and no merging then.
    ``progress(stage, stages)`` is called after each stage.
    """
    per_start = problem.w.ndim == 2
    screen, merge = screen and not per_start, not per_start
    lo, hi = problem.bounds()
    theta = np.clip(theta0.astype(float), lo, hi)
    n = theta.shape[0]
    w_all = np.broadcast_to(problem.w, (n, problem.log_y.size))
    f, lam = np.full(n, np.inf), np.full(n, 1e-3)
    done, screened = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    conv = np.zeros(n, dtype=bool)
    nfev0, njev0 = problem.nfev, problem.njev
    chunk = int(np.clip(CHUNK_FLOATS / (problem.log_y.size * (len(problem.free) + 4)), 16, CHUNK))
    edges = [0, *(s for s in SCREEN_AT if s < max_iter), max_iter] if screen else [0, max_iter]
    iterations = 0
    for stage, (a, b) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        todo = np.flatnonzero(~done)
        for c in range(0, todo.size, chunk):
            rows = todo[c:c + chunk]
            th, ff, la, dn, cv = theta[rows], f[rows], lam[rows], done[rows], conv[rows]
            used = _iterate(problem, th, np.array(w_all[rows]), ff, la, dn, b - a, tol, merge,
                            cv)
            theta[rows], f[rows], lam[rows], done[rows], conv[rows] = th, ff, la, dn, cv
            iterations = max(iterations, a + used)
        if screen and b < max_iter:
            screened |= ~done & ~_best_share(f, ~done)  # these stop where they are
            done |= screened
        if progress:
            progress(stage + 1, len(edges) - 1)
    return MultiStart(theta, f, iterations, int(np.sum(done & ~screened)), int(np.sum(screened)),
                      conv, problem.nfev - nfev0, problem.njev - njev0)


def _iterate(problem: Problem, theta: np.ndarray, w: np.ndarray, f: np.ndarray,
             lam: np.ndarray, done: np.ndarray, iters: int, tol: float, merge: bool,
             conv: np.ndarray | None = None) -> int:
    """Advance one chunk of starts by up to ``iters`` LM steps, updating the arrays in place.

    A start is done when its objective stops improving (``tol``), its damping explodes, or (with
    ``merge``) it sits on the same point as a better start; ``conv`` marks the first two (a
    measured convergence, not a start that merely ran out of iterations or merged). Returns the
    iterations used.
    """
    conv = np.zeros_like(done) if conv is None else conv
    lo, hi = problem.bounds()
    r = problem.log_pred(theta) - problem.log_y          # residuals at the current points
    f[:] = _objective(r, w, problem.delta)
    done |= ~np.isfinite(f)
    for it in range(1, iters + 1):
        idx = np.flatnonzero(~done)
        if idx.size == 0:
            return it - 1
        trial = np.clip(theta[idx] + _lm_step(problem, theta[idx], r[idx], w[idx], lam[idx]),
                        lo, hi)
        r_new = problem.log_pred(trial) - problem.log_y
        f_new = _objective(r_new, w[idx], problem.delta)
        better = f_new < f[idx]
        gain = np.where(better, f[idx] - f_new, 0.0)
        acc = idx[better]
        theta[acc], r[acc], f[acc] = trial[better], r_new[better], f_new[better]
        lam[idx] = np.where(better, np.maximum(lam[idx] / 3, 1e-12), lam[idx] * 4)
        met = idx[(better & (gain <= tol * (1.0 + f[idx]))) | (lam[idx] > 1e10)]
        done[met] = conv[met] = True
        if merge:
            done |= ~done & ~_distinct(theta, f, ~done)
    return iters


def newton_decrement(problem: Problem, theta: np.ndarray) -> np.ndarray:
    """The decrease of the summed Huber objective that a Gauss–Newton step from ``theta`` (fit
    space, one row per start) predicts, the step clipped to the parameters' bounds: for an
    interior point half the squared decrement ``gᵀ(JᵀWJ)⁻¹g / 2``. It is invariant to the
    parameters' scales, so ``≤ tol·(1 + f)`` is a first-order optimality test (Boyd &
    Vandenberghe 2004, §9.5.1) that also holds at a bound the data push against (the
    projected, KKT form); ``inf`` where the objective is undefined."""
    theta = np.atleast_2d(theta)
    w = np.broadcast_to(problem.w, (theta.shape[0], problem.log_y.size))
    r = problem.log_pred(theta) - problem.log_y
    _, psi = huber(r, problem.delta)
    jac = problem.jacobian(theta)                                    # (starts, P, runs)
    g = (jac @ np.nan_to_num(w * psi)[:, :, None])[:, :, 0]
    step = _lm_step(problem, theta, r, np.array(w), np.full(theta.shape[0], 1e-12))
    lo, hi = problem.bounds()
    step = np.clip(theta + step, lo, hi) - theta                     # feasible part of the step
    irls = w * np.divide(psi, r, out=np.ones_like(r), where=r != 0)
    js = np.einsum("spn,sp->sn", jac, step)
    model = np.sum(g * step, axis=1) + 0.5 * np.sum(irls * js * js, axis=1)
    out = np.maximum(-model, 0.0)
    return np.where(np.isfinite(out) & np.all(np.isfinite(r), axis=1), out, np.inf)


def _best_share(f: np.ndarray, active: np.ndarray) -> np.ndarray:
    """Mask of the best :data:`SCREEN_KEEP` share (at least :data:`SCREEN_MIN`) of ``active``."""
    idx = np.flatnonzero(active)
    keep = max(SCREEN_MIN, int(np.ceil(SCREEN_KEEP * idx.size)))
    mask = np.zeros_like(active)
    mask[idx[np.argsort(f[idx])[:keep]]] = True
    return mask


def _objective(r: np.ndarray, w: np.ndarray, delta: float) -> np.ndarray:
    val, _ = huber(r, delta)
    f = np.sum(w * val, axis=-1)
    return np.where(np.isfinite(f), f, np.inf)


def _lm_step(problem: Problem, theta: np.ndarray, r: np.ndarray, w: np.ndarray,
             lam: np.ndarray) -> np.ndarray:
    """One damped Gauss–Newton step per start: ``(JᵀWJ + λ·diag) Δ = −Jᵀψ``, Huber IRLS W."""
    _, psi = huber(r, problem.delta)
    irls = w * np.divide(psi, r, out=np.ones_like(r), where=r != 0)  # ψ(r)/r: 1 inside, δ/|r| out
    jac = problem.jacobian(theta)                                    # (starts, P, runs)
    g = (jac @ (w * psi)[:, :, None])[:, :, 0]
    h = (jac * irls[:, None, :]) @ jac.transpose(0, 2, 1)
    idx = np.arange(h.shape[1])
    h[:, idx, idx] += lam[:, None] * (h[:, idx, idx] + 1e-12)
    try:
        return -np.linalg.solve(h, g[:, :, None])[:, :, 0]
    except np.linalg.LinAlgError:  # a singular system somewhere in the batch
        return -(np.linalg.pinv(h) @ g[:, :, None])[:, :, 0]


def _distinct(theta: np.ndarray, f: np.ndarray, mask: np.ndarray, decimals: int = 7) -> np.ndarray:
    """``mask`` minus starts that sit on the same point as a better one (they would coincide)."""
    keep = mask.copy()
    idx = np.flatnonzero(mask)
    if idx.size < 2:
        return keep
    key = np.round(theta[idx], decimals)
    order = np.lexsort((f[idx], *key.T[::-1]))
    dup = np.zeros(idx.size, dtype=bool)
    dup[1:] = np.all(key[order][1:] == key[order][:-1], axis=1)
    keep[idx[order][dup]] = False
    return keep


def best_distinct(result: MultiStart, k: int, decimals: int = 4) -> np.ndarray:
    """Indices of the ``k`` lowest-objective starts that differ at ``decimals`` places."""
    order = np.argsort(result.objective)
    seen, out = set(), []
    for i in order:
        if not np.isfinite(result.objective[i]):
            break
        key = tuple(np.round(result.theta[i], decimals))
        if key not in seen:
            seen.add(key)
            out.append(int(i))
        if len(out) == k:
            break
    return np.array(out, dtype=int)


def polish(problem: Problem, theta: np.ndarray, ftol: float = 1e-15, gtol: float = 1e-10,
           max_iter: int = 2000):
    """scipy L-BFGS-B from one point (the reference optimiser of the papers' fits)."""
    from scipy.optimize import minimize

    lo, hi = problem.bounds()

    def fun(x):
        f, g = problem.value_grad(x[None])
        return (float(f[0]), g[0]) if np.isfinite(f[0]) else (1e300, np.zeros_like(x))

    return minimize(fun, theta, jac=True, method="L-BFGS-B",
                    bounds=list(zip(lo, hi, strict=True)),
                    options={"ftol": ftol, "gtol": gtol, "maxiter": max_iter})
