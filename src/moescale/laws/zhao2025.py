"""Comprehensive MoE law (Zhao et al. 2025, arXiv 2509.23678; papers.md §2).

    L = (e·G + f/G + m·S² + n·S)·(N^−α + k·N_a^−α + h·N_a/N) + a·N^−α + b·D^−β + c·N_a^−α + ε

``G`` activated experts per token (shared + routed), ``S`` shared fraction of them.
"""

from __future__ import annotations

import numpy as np

from moescale.laws.base import Law, Preset

TABLE2 = dict(e=0.1577, f=7.2446, m=5.1395, n=-3.2363, k=0.0013, h=0.0450, a=38.051,
              alpha=0.2383, b=27129.05, beta=0.4694, c=31.096, eps=1.8182)


def loss(N, N_a, D, G, S, p: dict[str, float] = TABLE2):
    """The law with coefficients ``p`` (default: the published Table 2)."""
    N, N_a, D = (np.asarray(v, dtype=float) for v in (N, N_a, D))
    factor = p["e"] * G + p["f"] / G + p["m"] * S**2 + p["n"] * S
    shape = N ** -p["alpha"] + p["k"] * N_a ** -p["alpha"] + p["h"] * N_a / N
    return (factor * shape + p["a"] * N ** -p["alpha"] + p["b"] * D ** -p["beta"]
            + p["c"] * N_a ** -p["alpha"] + p["eps"])


def optimal_G_S(p: dict[str, float] = TABLE2) -> tuple[float, float]:
    """``G* = sqrt(f/e)``, ``S* = −n/(2m)``: independent of N, D and N_a (separable factor)."""
    return float(np.sqrt(p["f"] / p["e"])), float(-p["n"] / (2 * p["m"]))


def optimal_activation_ratio(N: float, p: dict[str, float] = TABLE2) -> float:
    """Optimal ``N_a/N`` at fixed ``N`` (and any D, G*, S*): minimise the N_a terms numerically."""
    from scipy.optimize import minimize_scalar

    g, s = optimal_G_S(p)
    res = minimize_scalar(lambda r: float(loss(N, r * N, 1e12, g, s, p)), bounds=(1e-4, 1.0),
                          method="bounded", options={"xatol": 1e-8})
    return float(res.x)


LAW = Law(
    name="zhao2025",
    citation="Zhao, Fu, Li et al. 2025, comprehensive MoE scaling law (arXiv 2509.23678)",
    formula="(e·G+f/G+m·S²+n·S)·(N^−α+k·N_a^−α+h·N_a/N) + a·N^−α + b·D^−β + c·N_a^−α + ε",
    params=tuple(TABLE2), variables=("N", "N_a", "D", "G", "S"), convention="holistic",
    log_loss=lambda p, v: np.log(loss(v["N"], v["N_a"], v["D"], v["G"], v["S"], p)),
    presets={"zhao2025": Preset(dict(TABLE2), "Table 2 of arXiv 2509.23678")},
    # Positive coefficients fitted in log space; n (the linear S term) may be negative.
    # A modest grid over the exponents; the other coefficients start at round magnitudes.
    log_params=("e", "f", "m", "k", "h", "a", "b", "c", "eps"),
    init_grid={"alpha": (0.15, 0.3), "beta": (0.3, 0.6), "eps": (0.0, 0.7)},
    init={"e": np.log(0.1), "f": np.log(5.0), "m": np.log(3.0), "n": -1.0, "k": np.log(0.01),
          "h": np.log(0.1), "a": np.log(20.0), "b": np.log(1e4), "c": np.log(20.0)},
    bounds={"alpha": (0.01, 2.0), "beta": (0.01, 2.0)},
)
