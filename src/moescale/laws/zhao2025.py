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


def gs_factor(G, S, p: dict[str, float] = TABLE2):
    """The law's G/S factor ``F = e·G + f/G + m·S² + n·S`` (it multiplies the N, N_a terms)."""
    return p["e"] * G + p["f"] / G + p["m"] * S**2 + p["n"] * S


def loss(N, N_a, D, G, S, p: dict[str, float] = TABLE2):
    """The law with coefficients ``p`` (default: the published Table 2)."""
    N, N_a, D = (np.asarray(v, dtype=float) for v in (N, N_a, D))
    factor = gs_factor(G, S, p)
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


#: Default threshold of the marginal efficiency-aware criterion, in nats of loss per unit of
#: activation ratio ``N_a/N`` (the loss is in nats). With Table 2 it gives N_a/N = 9.04 % at
#: N = 30B and 4.97 % at N = 671B, the paper's practical 9 % and 5 % (arXiv 2509.23678);
#: every threshold in [0.363, 0.426] reproduces both to the paper's rounding.
MARGINAL_THRESHOLD = 0.39
#: Default relative loss tolerance of the older ``criterion="tolerance"``.
DEFAULT_TOLERANCE = 0.005

CRITERIA = ("marginal", "tolerance")


def marginal_gain(N, ratio, G=None, S=None, p: dict[str, float] = TABLE2):
    """``−∂L/∂(N_a/N)`` at fixed ``N``, ``G``, ``S`` (default ``G*``, ``S*``), in nats per unit
    of ratio: the loss a unit of activation ratio still buys. With ``r = N_a/N`` and
    ``F = e·G + f/G + m·S² + n·S``,

        −∂L/∂r = α·N^−α·r^(−α−1)·(F·k + c) − F·h        (``D`` drops out)

    zero at the loss-optimal ratio, growing as ``r`` falls below it."""
    g_opt, s_opt = optimal_G_S(p)
    G = g_opt if G is None else G
    S = s_opt if S is None else S
    factor = gs_factor(G, S, p)
    N, r = np.asarray(N, dtype=float), np.asarray(ratio, dtype=float)
    return (p["alpha"] * N ** -p["alpha"] * r ** (-p["alpha"] - 1) * (factor * p["k"] + p["c"])
            - factor * p["h"])


def efficiency_aware_optimum(N: float, tolerance: float | None = None,
                             p: dict[str, float] = TABLE2, *, criterion: str | None = None,
                             threshold: float = MARGINAL_THRESHOLD) -> dict[str, float]:
    """A cheaper-than-loss-optimal configuration at total size ``N`` (the paper's
    "efficiency-aware" optimum, arXiv 2509.23678, whose exact definition is not public).

    ``criterion="marginal"`` (the default): lower the activation ratio ``r = N_a/N`` from its
    loss optimum until the loss it still buys per unit of ratio falls to ``threshold`` (nats of
    loss per unit of ``N_a/N``; the law's loss is in nats), at fixed ``N`` and with ``G``, ``S``
    at their optima ``G*``, ``S*`` (``D`` drops out)::

        −∂L/∂r = α·N^−α·r^(−α−1)·(F·k + c) − F·h = threshold,   F = e·G* + f/G* + m·S*² + n·S*
        ⇒  r = [α·N^−α·(F·k + c) / (threshold + F·h)]^(1/(α+1))

    With Table 2 and the default :data:`MARGINAL_THRESHOLD` = 0.39 this reproduces the paper's
    practical ratios: 9.0 % at N = 30B and 5.0 % at N = 671B (loss-optimal: 40 %, 22 %). A
    larger threshold gives a larger ratio; ``threshold=0`` gives the loss optimum. ``G`` stays
    at ``G*`` (``loss_increase_G`` is 0).

    ``criterion="tolerance"`` (moescale's earlier criterion; chosen when ``tolerance`` is given
    and ``criterion`` is not, so ``efficiency_aware_optimum(N, tol)`` keeps its meaning): the
    cheapest ``G`` and ``N_a/N`` whose predicted loss is within ``tolerance`` (relative, default
    0.5 %) of the loss-optimal one. Each is lowered, the other factors held at their loss
    optimum, until the loss would rise by more than ``tolerance`` — the loss is separable in
    ``G`` and ``S``, so the two searches do not interact. It gives 17.2 % at 30B and 7.1 % at
    671B: it does not reproduce the paper.

    In both, ``S`` keeps its optimum (shared experts cost no extra compute at fixed ``G``).
    Keys: ``G``, ``S``, ``activation_ratio``, ``G_opt``, ``activation_ratio_opt``,
    ``criterion``, ``tolerance`` (None for "marginal"), ``threshold`` (None for "tolerance"),
    ``marginal_gain`` (``−∂L/∂r`` at the chosen ratio and ``G*``), ``loss_increase`` (relative
    loss increase of the chosen ratio at ``G*``) and ``loss_increase_G`` (that of the chosen
    ``G`` at the optimal ratio).
    """
    from scipy.optimize import brentq

    from moescale.errors import MoescaleError

    if criterion is None:
        criterion = "marginal" if tolerance is None else "tolerance"
    if criterion not in CRITERIA:
        raise MoescaleError(f"unknown efficiency-aware criterion {criterion!r}; "
                            f"use one of {', '.join(CRITERIA)}")
    if criterion == "marginal" and tolerance is not None:
        raise MoescaleError('tolerance applies to criterion="tolerance" only; the marginal '
                            'criterion takes threshold')
    g_opt, s_opt = optimal_G_S(p)
    r_opt = optimal_activation_ratio(N, p)
    best = float(loss(N, r_opt * N, 1e12, g_opt, s_opt, p))

    if criterion == "marginal":
        if not threshold >= 0:
            raise MoescaleError(f"threshold must be ≥ 0 (nats per unit of N_a/N), got {threshold}")
        factor = gs_factor(g_opt, s_opt, p)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = float((p["alpha"] * N ** -p["alpha"] * (factor * p["k"] + p["c"])
                       / (threshold + factor * p["h"])) ** (1.0 / (p["alpha"] + 1.0)))
        if not (np.isfinite(r) and r > 0):
            raise MoescaleError("the marginal criterion has no solution for these coefficients")
        r, g = min(r, 1.0), g_opt
    else:
        tolerance = DEFAULT_TOLERANCE if tolerance is None else tolerance
        limit = best * (1.0 + tolerance)

        def cheapest(f, lo: float, hi: float) -> float:
            """Smallest x in [lo, hi] with f(x) ≤ limit (f decreasing on it)."""
            return (lo if f(lo) <= limit
                    else float(brentq(lambda x: f(x) - limit, lo, hi, xtol=1e-10)))

        g = cheapest(lambda x: float(loss(N, r_opt * N, 1e12, x, s_opt, p)), 1.0, g_opt)
        r = cheapest(lambda x: float(loss(N, x * N, 1e12, g_opt, s_opt, p)), 1e-4, r_opt)
    return {"G": g, "S": s_opt, "activation_ratio": r, "criterion": criterion,
            "tolerance": tolerance if criterion == "tolerance" else None,
            "threshold": threshold if criterion == "marginal" else None,
            "marginal_gain": float(marginal_gain(N, r, g_opt, s_opt, p)),
            "loss_increase": float(loss(N, r * N, 1e12, g_opt, s_opt, p)) / best - 1.0,
            "loss_increase_G": float(loss(N, r_opt * N, 1e12, g, s_opt, p)) / best - 1.0,
            "G_opt": g_opt, "activation_ratio_opt": r_opt}


def _grad_log_loss(p, v):
    """∂ln L/∂θ in fit space (``ln`` of every coefficient except ``n``; ``α``, ``β`` as they are):
    ``∂L/∂θ`` of the sum divided by ``L``."""
    N, N_a, D, G, S = (v[k] for k in ("N", "N_a", "D", "G", "S"))
    ln_n, ln_na = np.log(N), np.log(N_a)
    n_pow, na_pow = np.exp(-p["alpha"] * ln_n), np.exp(-p["alpha"] * ln_na)
    d_pow = np.exp(-p["beta"] * np.log(D))
    factor = gs_factor(G, S, p)
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


# The paper's 446 runs (papers.md §2): N 133M–3.4B, N_a 30M–2.2B, D 10–50B, G 1–20, S 0–0.7.
RUNS = {"N": (1.33e8, 3.4e9), "N_a": (3.0e7, 2.2e9), "D": (1e10, 5e10), "G": (1.0, 20.0),
        "S": (0.0, 0.7)}

LAW = Law(
    name="zhao2025",
    citation="Zhao, Fu, Li et al. 2025, comprehensive MoE scaling law (arXiv 2509.23678)",
    formula="(e·G+f/G+m·S²+n·S)·(N^−α+k·N_a^−α+h·N_a/N) + a·N^−α + b·D^−β + c·N_a^−α + ε",
    params=tuple(TABLE2), variables=("N", "N_a", "D", "G", "S"), convention="holistic",
    log_loss=lambda p, v: np.log(loss(v["N"], v["N_a"], v["D"], v["G"], v["S"], p)),
    presets={"zhao2025": Preset(dict(TABLE2), "Table 2 of arXiv 2509.23678", ranges=RUNS)},
    # the paper's G is the activated experts (shared + routed), moescale's column G_act; a
    # dense run is one activated expert with no shared one (G_act = 1, S = 0)
    columns={"G": "G_act"},
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
