"""The fitting objective: Huber loss on ``ln(target)`` residuals, **summed** over runs.

This is the objective of the papers' fits (Hoffmann et al. 2022; Besiroglu et al. 2024 with
δ = 1e-3, arXiv:2404.10102; Ludziejewski et al. 2025 with δ = 0.01, arXiv:2502.05172).
A sum rather than a mean matters: with a mean, L-BFGS-B's default tolerances stop early.

:class:`Problem` evaluates the objective, its gradient and the Jacobian of ``ln L`` for many
parameter vectors at once: ``theta`` has shape ``(starts, free params)`` in the law's fit space.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from moescale.laws.base import Law

HUBER_DELTA = 1e-3
"""The Huber δ (on ``ln`` residuals, dimensionless) of every fit — one law or a leaderboard —
for laws whose paper states none: Hoffmann et al. 2022 and Besiroglu et al. 2024 (1e-3)."""

def default_delta(law: str) -> float:
    """The Huber δ a fit of the law named ``law`` uses unless one is given: its paper's
    (:attr:`Law.huber_delta`: Ludziejewski et al. 2025, 0.01; Krajewski et al. 2024, 0.1),
    else :data:`HUBER_DELTA`. The single rule for ``moescale fit``, ``fit --law all`` and
    ``fit --sensitivity``."""
    from moescale.laws import get_law

    delta = get_law(law).huber_delta
    return HUBER_DELTA if delta is None else delta


def huber(r: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Huber value ``ρ(r)`` and derivative ``ψ(r)`` elementwise (quadratic for ``|r| ≤ δ``).

    With ``ψ = clip(r, −δ, δ)``: ``ρ = ψ·(r − ψ/2)``, i.e. ``r²/2`` inside and
    ``δ·|r| − δ²/2`` outside.
    """
    psi = np.clip(r, -delta, delta)
    return psi * (r - 0.5 * psi), psi


class Problem:
    """Summed Huber objective of ``law`` on runs ``variables`` with targets ``y``.

    ``weights`` (shape ``(runs,)`` or ``(starts, runs)``, e.g. bootstrap multiplicities) multiply
    each run's term. ``fixed`` holds fit-space values of parameters that are not optimised.
    """

    def __init__(self, law: Law, variables: Mapping[str, np.ndarray], y: np.ndarray,
                 delta: float = 1e-3, weights: np.ndarray | None = None,
                 fixed: Mapping[str, float] | None = None):
        self.law = law
        self.v = {k: np.asarray(variables[k], dtype=float) for k in law.variables}
        self.log_y = np.log(np.asarray(y, dtype=float))
        self.delta = float(delta)
        self.w = np.ones_like(self.log_y) if weights is None else np.asarray(weights, float)
        self.fixed = dict(fixed or {})
        self.free = tuple(k for k in law.params if k not in self.fixed)
        self.nfev = 0  # parameter vectors at which the law was evaluated (all starts counted)
        self.njev = 0  # parameter vectors at which the Jacobian was evaluated

    def params(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Natural-unit parameters, each of shape ``(starts, 1)``, from fit-space ``theta``."""
        theta = np.atleast_2d(theta)
        fit_space = {k: theta[:, i:i + 1] for i, k in enumerate(self.free)}
        fit_space.update({k: np.full((theta.shape[0], 1), v) for k, v in self.fixed.items()})
        return self.law.from_fit_space(fit_space)

    def log_pred(self, theta: np.ndarray) -> np.ndarray:
        """``ln L`` predicted for every start and run, shape ``(starts, runs)``."""
        self.nfev += np.atleast_2d(theta).shape[0]
        with np.errstate(all="ignore"):
            out = self.law.log_loss(self.params(theta), self.v)
        return np.broadcast_to(out, (np.atleast_2d(theta).shape[0], self.log_y.size))

    def value(self, theta: np.ndarray) -> np.ndarray:
        """Objective per start; ``inf`` where the law is undefined (NaN or infinite)."""
        val, _ = huber(self.log_pred(theta) - self.log_y, self.delta)
        f = np.sum(self.w * val, axis=-1)
        return np.where(np.isfinite(f), f, np.inf)

    def jacobian(self, theta: np.ndarray) -> np.ndarray:
        """``∂ln L/∂θ``, shape ``(starts, free params, runs)``: analytic or central differences.

        Non-finite entries (an undefined law) are zero, so a step simply does not move there.
        """
        theta = np.atleast_2d(theta)
        self.njev += theta.shape[0]
        out = np.empty((theta.shape[0], len(self.free), self.log_y.size))
        if self.law.grad_log_loss is not None:
            with np.errstate(all="ignore"):
                grads = self.law.grad_log_loss(self.params(theta), self.v)
            for i, k in enumerate(self.free):
                out[:, i, :] = grads[k]
        else:
            for i in range(len(self.free)):
                h = 1e-6 * np.maximum(1.0, np.abs(theta[:, i:i + 1]))
                up, down = theta.copy(), theta.copy()
                up[:, i:i + 1] += h
                down[:, i:i + 1] -= h
                out[:, i, :] = (self.log_pred(up) - self.log_pred(down)) / (2 * h)
        if not np.all(np.isfinite(out)):
            out[~np.isfinite(out)] = 0.0
        return out

    def value_grad(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Objective and its gradient per start: ``(starts,)`` and ``(starts, free params)``."""
        r = self.log_pred(theta) - self.log_y
        val, psi = huber(r, self.delta)
        f = np.sum(self.w * val, axis=-1)
        g = (self.jacobian(theta) @ np.nan_to_num(self.w * psi)[:, :, None])[:, :, 0]
        return np.where(np.isfinite(f), f, np.inf), g

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Fit-space lower and upper bounds of the free parameters (``±inf`` when unbounded)."""
        lo = np.array([self.law.bounds.get(k, (-np.inf, np.inf))[0] for k in self.free], float)
        hi = np.array([self.law.bounds.get(k, (-np.inf, np.inf))[1] for k in self.free], float)
        return lo, hi
