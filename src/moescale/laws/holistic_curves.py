"""The holistic paper's per-budget curve laws (Wan et al. 2026, arXiv 2603.21862), fit-only.

- ``holistic2026_m_ratio``: ``L(x) = a/(x − 6) + b·x + c`` with ``x = M/N_a`` (> 6 always).
- ``holistic2026_n_ratio``: ``L(x) = a/(x − 1) + b/(x_max − x) + c`` with ``x = N/N_a`` and
  ``x_max = (N_e + 1)/(K + 1)`` given per run (a variable, since it is fixed by the experts
  and top-k the runs used, not fitted).
  ``derived`` reports the minimiser at the paper's ``x_max = 289/9`` (``N_e = 288``, ``K = 8``);
  :func:`optimal_N_over_Na` takes any ``x_max``.
- ``holistic2026_d``: the phase-2 quadratic ``L(d) = q·(d − d0)² + L0``; ``d_opt = d0``.

Each is fitted to the runs of one budget; the optima's trends in ``C`` are ``power_law_C``.
"""

from __future__ import annotations

import numpy as np

from moescale.laws._forms import lse
from moescale.laws.base import Law

_CITE = "Wan, Han, Zhang, Jin 2026, holistic MoE architecture optimisation (arXiv 2603.21862)"


def _m_terms(p, v):
    x = v["M_over_Na"]
    return np.log(p["a"]) - np.log(x - 6.0), np.log(p["b"]) + np.log(x), np.log(p["c"])


def _m_grad(p, v):
    _, (wa, wb, wc) = lse(*_m_terms(p, v))
    return {"a": wa, "b": wb, "c": wc}


def _m_derived(p):
    """Minimiser ``x* = 6 + sqrt(a/b)`` of ``a/(x−6) + b·x``."""
    return {"optimal_M_over_Na": float(6.0 + np.sqrt(p["a"] / p["b"]))}


def _n_terms(p, v):
    x = v["N_over_Na"]
    return (np.log(p["a"]) - np.log(x - 1.0), np.log(p["b"]) - np.log(v["x_max"] - x),
            np.log(p["c"]))


def _n_grad(p, v):
    _, (wa, wb, wc) = lse(*_n_terms(p, v))
    return {"a": wa, "b": wb, "c": wc}


PAPER_X_MAX = 289.0 / 9.0  # (N_e + 1)/(K + 1) with N_e = 288, K = 8 (arXiv 2603.21862)


def optimal_N_over_Na(p, x_max: float = PAPER_X_MAX) -> float:
    """Minimiser of ``a/(x−1) + b/(x_max−x)`` on ``1 < x < x_max``: with ``s = sqrt(b/a)``,
    ``x* = (x_max + s)/(1 + s)`` (where ``a/(x−1)² = b/(x_max−x)²``)."""
    s = float(np.sqrt(p["b"] / p["a"]))
    return (x_max + s) / (1.0 + s)


def _d_terms(p, v):
    with np.errstate(divide="ignore"):
        return np.log(p["q"]) + 2.0 * np.log(np.abs(v["d"] - p["d0"])), np.log(p["L0"])


def _d_grad(p, v):
    _, (wq, wl) = lse(*_d_terms(p, v))
    diff = v["d"] - p["d0"]
    return {"q": wq, "L0": wl,
            "d0": np.divide(-2.0 * wq, diff, out=np.zeros_like(wq * diff), where=diff != 0)}


M_RATIO = Law(
    name="holistic2026_m_ratio", citation=_CITE, formula="L = a/(x−6) + b·x + c, x = M/N_a",
    params=("a", "b", "c"), variables=("M_over_Na",), convention="holistic",
    log_loss=lambda p, v: lse(*_m_terms(p, v))[0], log_params=("a", "b", "c"),
    init_grid={"a": tuple(np.log([0.01, 0.1, 1.0])), "b": tuple(np.log([1e-4, 1e-3, 1e-2])),
               "c": tuple(np.log([1.0, 2.0, 3.0]))},
    grad_log_loss=_m_grad, derived=_m_derived,
)
N_RATIO = Law(
    name="holistic2026_n_ratio", citation=_CITE,
    formula="L = a/(x−1) + b/(x_max−x) + c, x = N/N_a, x_max = (N_e+1)/(K+1)",
    params=("a", "b", "c"), variables=("N_over_Na", "x_max"), convention="holistic",
    log_loss=lambda p, v: lse(*_n_terms(p, v))[0], log_params=("a", "b", "c"),
    init_grid={"a": tuple(np.log([0.01, 0.1, 1.0])), "b": tuple(np.log([0.01, 0.1, 1.0])),
               "c": tuple(np.log([1.0, 2.0, 3.0]))},
    grad_log_loss=_n_grad,
    derived=lambda p: {"optimal_N_over_Na": optimal_N_over_Na(p)},
    relations=(("N_over_Na", "<", "x_max"),),
)
D_QUADRATIC = Law(
    name="holistic2026_d", citation=_CITE, formula="L = q·(d − d0)² + L0; d_opt = d0",
    params=("q", "d0", "L0"), variables=("d",), convention="holistic",
    log_loss=lambda p, v: lse(*_d_terms(p, v))[0], log_params=("q", "L0"),
    init_grid={"q": tuple(np.log([1e-8, 1e-6, 1e-4])), "d0": (512.0, 1024.0, 2048.0, 4096.0),
               "L0": tuple(np.log([2.0, 3.0]))},
    bounds={"d0": (1.0, 1e6)},
    grad_log_loss=_d_grad, derived=lambda p: {"d_opt": float(p["d0"])},
)
