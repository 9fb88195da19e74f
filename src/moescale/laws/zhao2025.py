"""Comprehensive MoE law (Zhao et al. 2025, arXiv 2509.23678).

    L = (e·G + f/G + m·S² + n·S)·(N^−α + k·N_a^−α + h·N_a/N) + a·N^−α + b·D^−β + c·N_a^−α + ε

``G`` activated experts per token (shared + routed), ``S`` shared fraction of them.

Counting convention (a stated choice: the paper states none). ``N`` and ``N_a`` are counted
without embeddings, router and norms (the ``holistic`` convention): the holistic planner, the
law's main user here, counts that way, and the paper's reported optima (``N_a/N`` ≈ 40 % at
N = 30B, ≈ 22 % at 671B) are ratios of MoE models whose embeddings are a small share at
those sizes. ``D`` is tokens; the law has no FLOP term.
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
    with np.errstate(divide="ignore", invalid="ignore"):  # a refit with e or m = 0: inf
        return (float(np.sqrt(np.float64(p["f"]) / p["e"])),
                float(-np.float64(p["n"]) / (2 * p["m"])))


def optimal_activation_ratio(N: float, p: dict[str, float] = TABLE2) -> float:
    """Optimal ``N_a/N`` at fixed ``N`` (and any D, G*, S*): minimise the N_a terms numerically."""
    from scipy.optimize import minimize_scalar

    g, s = optimal_G_S(p)
    res = minimize_scalar(lambda r: float(loss(N, r * N, 1e12, g, s, p)), bounds=(1e-4, 1.0),
                          method="bounded", options={"xatol": 1e-8})
    return float(res.x)


def efficiency_aware_optimum(N: float, tolerance: float = 0.005,
                             p: dict[str, float] = TABLE2) -> dict[str, float]:
    """The cheapest configuration whose predicted loss is within ``tolerance`` (relative) of
    the loss-optimal one at total size ``N`` (moescale's documented criterion; the paper's exact
    definition is not public, arXiv 2509.23678).

    Cheaper means fewer activated experts ``G`` (routing and communication per token) and a
    smaller activation ratio ``N_a/N`` (FLOPs per token). Each is lowered, the other factors
    held at their loss optimum, until the loss would rise by more than ``tolerance`` — the
    loss is separable in ``G`` and ``S``, so the two searches do not interact. ``S`` keeps its
    optimum (shared experts cost no extra compute at fixed ``G``). ``D`` does not matter.
    """
    from scipy.optimize import brentq

    g_opt, s_opt = optimal_G_S(p)
    r_opt = optimal_activation_ratio(N, p)
    best = float(loss(N, r_opt * N, 1e12, g_opt, s_opt, p))
    limit = best * (1.0 + tolerance)

    def cheapest(f, lo: float, hi: float) -> float:
        """Smallest x in [lo, hi] with f(x) ≤ limit (f decreasing on it)."""
        return lo if f(lo) <= limit else float(brentq(lambda x: f(x) - limit, lo, hi, xtol=1e-10))

    g = cheapest(lambda x: float(loss(N, r_opt * N, 1e12, x, s_opt, p)), 1.0, g_opt)
    r = cheapest(lambda x: float(loss(N, x * N, 1e12, g_opt, s_opt, p)), 1e-4, r_opt)
    return {"G": g, "S": s_opt, "activation_ratio": r, "tolerance": tolerance,
            "loss_increase_G": float(loss(N, r_opt * N, 1e12, g, s_opt, p)) / best - 1.0,
            "G_opt": g_opt, "activation_ratio_opt": r_opt}


def _grad_log_loss(p, v):
    """∂ln L/∂θ in fit space (``ln`` of every coefficient except ``n``; ``α``, ``β`` as they are):
    ``∂L/∂θ`` of the sum divided by ``L``."""
    N, N_a, D, G, S = (v[k] for k in ("N", "N_a", "D", "G", "S"))
    ln_n, ln_na = np.log(N), np.log(N_a)
    n_pow, na_pow = np.exp(-p["alpha"] * ln_n), np.exp(-p["alpha"] * ln_na)
    d_pow = np.exp(-p["beta"] * np.log(D))
    factor = p["e"] * G + p["f"] / G + p["m"] * S**2 + p["n"] * S
    shape = n_pow + p["k"] * na_pow + p["h"] * N_a / N
    total = (factor * shape + p["a"] * n_pow + p["b"] * d_pow + p["c"] * na_pow + p["eps"])
    grads = {"e": p["e"] * G * shape, "f": p["f"] / G * shape, "m": p["m"] * S**2 * shape,
             "n": S * shape, "k": factor * p["k"] * na_pow, "h": factor * p["h"] * N_a / N,
             "a": p["a"] * n_pow, "b": p["b"] * d_pow, "c": p["c"] * na_pow,
             "eps": p["eps"] + 0 * total,
             "alpha": -(factor * (ln_n * n_pow + p["k"] * ln_na * na_pow)
                        + p["a"] * ln_n * n_pow + p["c"] * ln_na * na_pow),
             "beta": -p["b"] * np.log(D) * d_pow}
    return {k: g / total for k, g in grads.items()}


def _derived(p):
    g, s = optimal_G_S(p)
    return {"G_opt": g, "S_opt": s}


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
    grad_log_loss=_grad_log_loss, derived=_derived,
    relations=(("N_a", "<=", "N"),),
)
