"""Fine-grained MoE law (Krajewski et al. 2024, arXiv 2402.07871):

    L(N, D, G) = c + (g/G^γ + a)/N^α + b/D^β

``G = d_ff/d_expert`` the granularity, ``N`` non-embedding total parameters, ``D`` tokens. The
dense preset has no granularity term: it is the MoE form with ``g = 0`` (any ``G`` gives the
same loss). Fitted in the paper with Huber δ = 0.1 and BFGS.
"""

from __future__ import annotations

import numpy as np

from moescale.laws._forms import lse
from moescale.laws.base import Domain, Law, Preset

_CITE = "Krajewski et al. 2024, Scaling laws for fine-grained MoE (arXiv 2402.07871)"


def _terms(p, v):
    ln_n = np.log(v["N"])
    with np.errstate(divide="ignore"):  # g = 0 (dense preset) → a vanishing term
        tg = np.log(p["g"]) - p["gamma"] * np.log(v["G"]) - p["alpha"] * ln_n
    return (np.log(p["c"]), tg, np.log(p["a"]) - p["alpha"] * ln_n,
            np.log(p["b"]) - p["beta"] * np.log(v["D"]))


def _log_loss(p, v):
    return lse(*_terms(p, v))[0]


def _grad_log_loss(p, v):
    _, (wc, wg, wa, wb) = lse(*_terms(p, v))
    ln_n = np.log(v["N"])
    return {"c": wc, "g": wg, "a": wa, "b": wb, "gamma": -wg * np.log(v["G"]),
            "alpha": -(wg + wa) * ln_n, "beta": -wb * np.log(v["D"])}


def _linear(p, v):
    """``L = [1, G^−γ·N^−α, N^−α, D^−β] @ (c, g, a, b)`` once the exponents are fixed."""
    n_a = v["N"] ** -np.asarray(p["alpha"])
    cols = np.broadcast_arrays(np.ones_like(n_a), v["G"] ** -np.asarray(p["gamma"]) * n_a, n_a,
                               v["D"] ** -np.asarray(p["beta"]))
    return ("c", "g", "a", "b"), np.stack(cols, axis=-1)


def compute_optimal_granularity(n_params: float, tokens: float, p, grid=None) -> float:
    """The ``G`` of lowest loss at fixed ``N`` and ``D`` within ``grid`` (default 1 … 64).

    The law alone always prefers larger ``G``; Krajewski et al. bound it through the routing
    cost ``F = (12·d²·c_f + d·E·G·c_r)·D·n_blocks`` — pass a grid of affordable ``G`` values.
    """
    grid = np.asarray(grid if grid is not None else 2.0 ** np.arange(7))
    losses = np.exp(_log_loss(p, {"N": n_params, "D": tokens, "G": grid}))
    return float(grid[np.argmin(losses)])


LAW = Law(
    name="krajewski2024", citation=_CITE, formula="c + (g/G^γ + a)/N^α + b/D^β",
    params=("a", "alpha", "b", "beta", "g", "gamma", "c"), variables=("N", "D", "G"),
    convention="kaplan",
    log_loss=_log_loss, huber_delta=0.1,  # the paper's fit (Krajewski et al. 2024)
    scope=lambda runs: (runs.frame["E"].to_numpy(float) > 1
                        if {"E", "K"} <= set(runs.frame.columns)
                        else np.ones(len(runs.frame), dtype=bool),
                        "MoE runs (E > 1; the dense fit is its own preset); a table that names "
                        "no top-k K is taken as MoE runs"),
    presets={
        "moe": Preset(dict(a=18.1, alpha=0.115, b=30.8, beta=0.147, g=2.1, gamma=0.58, c=0.47),
                      f"{_CITE}, MoE fit"),
        "dense": Preset(dict(a=16.3, alpha=0.126, b=26.7, beta=0.127, g=0.0, gamma=0.0, c=0.47),
                        f"{_CITE}, dense fit", "no granularity term (g = 0)"),
    },
    log_params=("a", "b", "g", "c"),
    init_grid={"alpha": (0.1, 0.3), "beta": (0.1, 0.3), "gamma": (0.3, 0.9),
               "a": tuple(np.log([5.0, 30.0])), "b": tuple(np.log([5.0, 30.0])),
               "g": tuple(np.log([0.5, 5.0])), "c": tuple(np.log([0.5, 1.5]))},
    bounds={k: (0.0, 3.0) for k in ("alpha", "beta", "gamma")},
    grad_log_loss=_grad_log_loss, linear=_linear,
    # G is the granularity d_ff/d_expert here (a ratio, not a count of experts).
    domains={"G": Domain("granularity (d_ff/d_expert)", sane=(1e-3, 1e4))},
)
