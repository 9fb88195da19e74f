"""AIC and BIC under the Huber objective (:mod:`moescale.fitting.selection` ranks laws by them).

The summed Huber loss is the negative log-likelihood (up to a scale) of the residual density

.. math::

    f(r) = \\exp(-\\rho_\\delta(r)/s^2) / Z(s, \\delta), \\quad
    Z = s\\sqrt{2\\pi}\\,\\mathrm{erf}\\big(\\delta/(s\\sqrt2)\\big)
        + 2\\,(s^2/\\delta)\\,e^{-\\delta^2/(2 s^2)},

Gaussian with standard deviation ``s`` inside ``|r| ≤ δ`` and Laplace outside (Huber's
least-favourable density), for ``r = ln L_obs − ln L_pred``. For any fixed ``s`` its maximum
over the law's parameters is exactly the Huber fit, so the fitted parameters are the maximum
likelihood estimate jointly with the profiled scale ``ŝ = argmin_s S/s² + n·ln Z(s, δ)``
(``S`` the summed Huber loss of the ``n`` training runs). Then, with ``k`` the fitted
parameters plus one for ``s``,

``ln L̂ = −S/ŝ² − n·ln Z(ŝ, δ)``, ``AIC = 2k − 2·ln L̂``, ``BIC = k·ln n − 2·ln L̂``.

As ``δ → ∞`` this is the Gaussian AIC/BIC of least squares on ``ln L``; for small ``δ`` (the
papers' 1e-3 against residuals of ~1e-2) it is the Laplace (least absolute deviations) one.
The density is of ``ln L``, the same response for every law, so the criteria compare laws
(each with the noise model of its ``δ``).

>>> import numpy as np
>>> r = np.random.default_rng(0).normal(0, 0.01, 400)
>>> ll, s = huber_log_likelihood(r, delta=10.0)      # δ → ∞: Gaussian, ŝ = RMS residual
>>> round(float(s / np.sqrt(np.mean(r**2))), 6)
1.0
"""

from __future__ import annotations

import math

import numpy as np


def _huber_sum(r: np.ndarray, delta: float) -> float:
    psi = np.clip(r, -delta, delta)
    return float(np.sum(psi * (r - 0.5 * psi)))


def _log_z(s: np.ndarray, delta: float) -> np.ndarray:
    from scipy.special import erf

    inner = s * math.sqrt(2 * math.pi) * erf(delta / (s * math.sqrt(2)))
    outer = 2 * s * s / delta * np.exp(-delta * delta / (2 * s * s))
    return np.log(inner + outer)


def huber_log_likelihood(residuals: np.ndarray, delta: float) -> tuple[float, float]:
    """Maximised log-likelihood and scale ``ŝ`` of residuals under the Huber density.

    Parameters
    ----------
    residuals : array
        ``ln L_obs − ln L_pred`` of the training runs at the fitted parameters.
    delta : float
        The Huber threshold the fit used.

    Returns
    -------
    (float, float)
        ``ln L̂ = −S/ŝ² − n·ln Z(ŝ, δ)`` and ``ŝ`` (module docstring). A perfect fit
        (all residuals 0) is scored at ``ŝ = 1e-9``.
    """
    from scipy.optimize import minimize_scalar

    r = np.asarray(residuals, dtype=float)
    if r.size == 0 or not np.all(np.isfinite(r)):
        return float("nan"), float("nan")
    n, s_sum = r.size, _huber_sum(r, delta)
    scale = max(float(np.sqrt(np.mean(r * r))), 1e-9)

    def nll(t: float) -> float:
        s = math.exp(t)
        return s_sum / (s * s) + n * float(_log_z(np.float64(s), delta))

    laplace = math.sqrt(delta * max(float(np.mean(np.abs(r))), 1e-12))  # s where b = s²/δ
    lo, hi = math.log(max(min(scale, laplace) / 1e3, 1e-12)), math.log(scale * 1e3)
    grid = np.linspace(lo, hi, 121)
    vals = np.array([nll(t) for t in grid])
    i = int(np.argmin(vals))
    res = minimize_scalar(nll, bounds=(grid[max(i - 1, 0)], grid[min(i + 1, 120)]),
                          method="bounded", options={"xatol": 1e-10})
    return -float(res.fun), math.exp(float(res.x))


def information_criteria(residuals: np.ndarray, delta: float, n_params: int) -> dict[str, float]:
    """AIC, BIC, log-likelihood and scale of a Huber fit with ``n_params`` fitted parameters
    (the scale ``s`` counts as one more), under :func:`huber_log_likelihood`."""
    ll, s = huber_log_likelihood(residuals, delta)
    n, k = int(np.size(residuals)), int(n_params) + 1
    return {"log_likelihood": ll, "sigma": s, "aic": 2 * k - 2 * ll,
            "bic": k * math.log(max(n, 1)) - 2 * ll}
