"""Joint MoE scaling law (Ludziejewski et al. 2025, arXiv 2502.05172; papers.md §3).

    L(N_act, D, Ê) = a·Ê^δ·N_act^(α + γ·ln Ê) + b·Ê^ω·D^(β + ζ·ln Ê) + c
    1/Ê = 1/(E − 1 + (1/E_start − 1/E_max)^−1) + 1/E_max

Exponents are signed as printed (α, β < 0). ``N_act`` includes embeddings; training compute is
``6·N_act·D`` (the ``chinchilla`` convention).
"""

from __future__ import annotations

import numpy as np

from moescale.laws.base import Law, Preset

PARAMS = ("a", "alpha", "delta", "gamma", "b", "beta", "omega", "zeta", "E_start", "E_max", "c")
TABLE3 = dict(a=35.91, alpha=-0.1889, delta=-0.2285, gamma=0.0098, b=35.98, beta=-0.1775,
              omega=0.5529, zeta=-0.0259, E_start=2.0732, E_max=290.4521, c=1.3637)


def e_hat(E, E_start: float, E_max: float):
    """Saturating transform of the number of experts (``Ê(1) = E_start``)."""
    E = np.asarray(E, dtype=float)
    return 1.0 / (1.0 / (E - 1.0 + 1.0 / (1.0 / E_start - 1.0 / E_max)) + 1.0 / E_max)


def reduce_to_chinchilla(E: float, p: dict[str, float] = TABLE3) -> tuple[float, float, float, float]:
    """``(m, μ, n, ν)`` with ``L = m·N_act^μ + n·D^ν + c`` at fixed ``E`` (Table 4)."""
    eh = float(e_hat(E, p["E_start"], p["E_max"]))
    return (p["a"] * eh ** p["delta"], p["alpha"] + p["gamma"] * np.log(eh),
            p["b"] * eh ** p["omega"], p["beta"] + p["zeta"] * np.log(eh))


def compute_optimal(compute: float, E: float, p: dict[str, float] = TABLE3) -> tuple[float, float]:
    """Closed-form ``(N_opt, D_opt)`` for ``6·N·D = F`` at fixed ``E`` (papers.md §3):
    ``N = G·(F/6)^{ν/(μ+ν)}``, ``D = (F/6)/N``, ``G = (μ·m/(ν·n))^{1/(μ+ν)}`` (magnitudes)."""
    m, mu, n, nu = reduce_to_chinchilla(E, p)
    mu, nu = abs(mu), abs(nu)
    g = (mu * m / (nu * n)) ** (1.0 / (mu + nu))
    n_opt = g * (compute / 6.0) ** (nu / (mu + nu))
    return n_opt, compute / 6.0 / n_opt


def learning_rate(active_params, E):
    """Learning rate used by the paper: ``exp(8.39 − 0.81·ln N_act − 0.25·ln E)`` (their code)."""
    return np.exp(8.391640956234012 - 0.8121798244457074 * np.log(active_params)
                  - 0.25 * np.log(E))


def _log_loss(p, v):
    eh = e_hat(v["E"], p["E_start"], p["E_max"])
    le = np.log(eh)
    t1 = np.log(p["a"]) + p["delta"] * le + (p["alpha"] + p["gamma"] * le) * np.log(v["N_active"])
    t2 = np.log(p["b"]) + p["omega"] * le + (p["beta"] + p["zeta"] * le) * np.log(v["D"])
    return np.logaddexp(np.logaddexp(t1, t2), np.log(p["c"]))


LAW = Law(
    name="ludziejewski2025",
    citation="Ludziejewski et al. 2025, Joint MoE Scaling Laws (arXiv 2502.05172)",
    formula="a·Ê^δ·N_act^(α+γ·lnÊ) + b·Ê^ω·D^(β+ζ·lnÊ) + c",
    params=PARAMS, variables=("N_active", "D", "E"), convention="chinchilla",
    log_loss=_log_loss,
    presets={"ludziejewski2025": Preset(dict(TABLE3), "Table 3 of arXiv 2502.05172")},
)
