"""Joint MoE scaling law (Ludziejewski et al. 2025, arXiv 2502.05172).

    L(N_act, D, Ê) = a·Ê^δ·N_act^(α + γ·ln Ê) + b·Ê^ω·D^(β + ζ·ln Ê) + c
    1/Ê = 1/(E − 1 + (1/E_start − 1/E_max)^−1) + 1/E_max

Exponents are signed as printed (α, β < 0). ``N_act`` includes embeddings; training compute is
``6·N_act·D`` (the ``chinchilla`` convention).
"""

from __future__ import annotations

import numpy as np

from moescale.laws._forms import lse
from moescale.laws.base import Law, Preset

PARAMS = ("a", "alpha", "delta", "gamma", "b", "beta", "omega", "zeta", "E_start", "E_max", "c")
TABLE3 = dict(a=35.91, alpha=-0.1889, delta=-0.2285, gamma=0.0098, b=35.98, beta=-0.1775,
              omega=0.5529, zeta=-0.0259, E_start=2.0732, E_max=290.4521, c=1.3637)


def e_hat(E, E_start: float, E_max: float):
    """Saturating transform of the number of experts (``Ê(1) = E_start``)."""
    E = np.asarray(E, dtype=float)
    return 1.0 / (1.0 / (E - 1.0 + 1.0 / (1.0 / E_start - 1.0 / E_max)) + 1.0 / E_max)


def log_e_hat_grads(E, E_start, E_max):
    """``(ln Ê, ∂ln Ê/∂ln E_start, ∂ln Ê/∂ln E_max)`` (derivatives for the fitter).

    With ``q = 1/E_start − 1/E_max`` and ``u = E − 1 + 1/q``: ``1/Ê = 1/u + 1/E_max``, so
    ``∂ln Ê/∂ln E_start = Ê/(u²q²E_start)`` and ``∂ln Ê/∂ln E_max = Ê/E_max·(1 − 1/(uq)²)``.
    """
    q = 1.0 / E_start - 1.0 / E_max
    u = np.asarray(E, dtype=float) - 1.0 + 1.0 / q
    eh = 1.0 / (1.0 / u + 1.0 / E_max)
    return np.log(eh), eh / (u * u * q * q * E_start), eh / E_max * (1.0 - 1.0 / (u * q) ** 2)


def reduce_to_chinchilla(E: float, p: dict[str, float] = TABLE3) -> tuple[float, float, float, float]:
    """``(m, μ, n, ν)`` with ``L = m·N_act^μ + n·D^ν + c`` at fixed ``E`` (Table 4)."""
    eh = float(e_hat(E, p["E_start"], p["E_max"]))
    return (p["a"] * eh ** p["delta"], p["alpha"] + p["gamma"] * np.log(eh),
            p["b"] * eh ** p["omega"], p["beta"] + p["zeta"] * np.log(eh))


def compute_optimal(compute: float, E: float, p: dict[str, float] = TABLE3) -> tuple[float, float]:
    """Closed-form ``(N_opt, D_opt)`` for ``6·N·D = F`` at fixed ``E`` (arXiv 2502.05172):
    ``N = G·(F/6)^{ν/(μ+ν)}``, ``D = (F/6)/N``, ``G = (μ·m/(ν·n))^{1/(μ+ν)}`` (magnitudes)."""
    m, mu, n, nu = reduce_to_chinchilla(E, p)
    mu, nu = abs(mu), abs(nu)
    g = (mu * m / (nu * n)) ** (1.0 / (mu + nu))
    n_opt = g * (compute / 6.0) ** (nu / (mu + nu))
    return n_opt, compute / 6.0 / n_opt


def learning_rate(active_params, E):
    """Learning rate used by the paper: ``exp(8.39 − 0.81·ln N_act − 0.25·ln E)`` (constants of
    their code), ``active_params`` without embeddings (Eq. 8's text; :data:`LR_CONVENTION`)."""
    return np.exp(8.391640956234012 - 0.8121798244457074 * np.log(active_params)
                  - 0.25 * np.log(E))


def _terms(p, v, le):
    t1 = np.log(p["a"]) + p["delta"] * le + (p["alpha"] + p["gamma"] * le) * np.log(v["N_active"])
    t2 = np.log(p["b"]) + p["omega"] * le + (p["beta"] + p["zeta"] * le) * np.log(v["D"])
    return t1, t2, np.log(p["c"])


def _log_loss(p, v):
    le = np.log(e_hat(v["E"], p["E_start"], p["E_max"]))
    return lse(*_terms(p, v, le))[0]


def _grad_log_loss(p, v):
    """∂ln L/∂θ in fit space (ln a, ln b, ln c, ln E_start, ln E_max, exponents as they are)."""
    le, dls, dlm = log_e_hat_grads(v["E"], p["E_start"], p["E_max"])
    _, (w1, w2, w3) = lse(*_terms(p, v, le))
    ln_n, ln_d = np.log(v["N_active"]), np.log(v["D"])
    d_le = w1 * (p["delta"] + p["gamma"] * ln_n) + w2 * (p["omega"] + p["zeta"] * ln_d)
    return {"a": w1, "delta": w1 * le, "alpha": w1 * ln_n, "gamma": w1 * le * ln_n,
            "b": w2, "omega": w2 * le, "beta": w2 * ln_d, "zeta": w2 * le * ln_d, "c": w3,
            "E_start": d_le * dls, "E_max": d_le * dlm}


def _derived(p):
    """Compute-optimal exponents at E = 1 and E = 8: ``N_opt ∝ C^(ν/(μ+ν))``."""
    out = {}
    for e in (1, 8):
        _, mu, _, nu = reduce_to_chinchilla(e, p)
        out[f"N_opt_exponent_E{e}"] = float(abs(nu) / (abs(mu) + abs(nu)))
    return out


# The runs of Appendix E (shared/data/joint_moe_appendixE_run_grid_NO_LOSS.csv): N_act with
# embeddings 7.87e7–2.72e9 (13·N_blocks·d² without them: 2.73e7–2.48e9), D 5e8–8e10, E 1–32.
RUNS = {"N_active": (7.87e7, 2.72e9), "D": (5e8, 8e10), "E": (1.0, 32.0)}
LR_RUNS = {"N_active": (2.73e7, 2.48e9), "E": (1.0, 32.0)}

def _scope(runs):
    """The paper's family: dense runs, or top-1 experts as wide as the dense FFN of equal
    active size (``K = 1``, ``G = 1``; arXiv 2502.05172 §2). A table that names no top-k
    (no ``K`` column, as a sweep export has) is taken as that family."""
    frame = runs.frame
    ok = np.ones(len(frame), dtype=bool)
    if "K" not in frame:
        return ok, ""
    dense = frame["E"].to_numpy(float) == 1 if "E" in frame else ~ok
    for col in ("K", "G"):
        if col in frame:
            ok &= dense | (frame[col].to_numpy(float) == 1)
    return ok, "dense runs and top-1 experts as wide as the dense FFN (K = 1, G = 1)"


LAW = Law(
    name="ludziejewski2025",
    citation="Ludziejewski et al. 2025, Joint MoE Scaling Laws (arXiv 2502.05172)",
    formula="a·Ê^δ·N_act^(α+γ·lnÊ) + b·Ê^ω·D^(β+ζ·lnÊ) + c",
    params=PARAMS, variables=("N_active", "D", "E"), convention="chinchilla",
    log_loss=_log_loss, allocates=True, huber_delta=0.01,  # the paper's fit (§3)
    scope=_scope,
    presets={"ludziejewski2025": Preset(dict(TABLE3), "Table 3 of arXiv 2502.05172",
                                        ranges=RUNS)},
    # The paper's grid (arXiv 2502.05172): |α|, |β| ∈ {0.05, 0.25, 0.5} (signed negative here),
    # a, b ∈ {30, 100, 300}, c ∈ {0.5, 1, 2}, δ, γ, ω, ζ ∈ {−0.5, 0, 0.5}: 3^9 = 19,683 starts.
    # E_start and E_max start at 2 and 300 (off-grid) and stay in 1 < E_start < 20 < 25 < E_max.
    log_params=("a", "b", "c", "E_start", "E_max"),
    init_grid={"alpha": (-0.05, -0.25, -0.5), "beta": (-0.05, -0.25, -0.5),
               "a": tuple(np.log([30, 100, 300])), "b": tuple(np.log([30, 100, 300])),
               "c": tuple(np.log([0.5, 1, 2])), "delta": (-0.5, 0, 0.5),
               "gamma": (-0.5, 0, 0.5), "omega": (-0.5, 0, 0.5), "zeta": (-0.5, 0, 0.5)},
    init={"E_start": float(np.log(2.0)), "E_max": float(np.log(300.0))},
    bounds={"a": (float(np.log(1e-3)), float(np.log(1e6))),
            "b": (float(np.log(1e-3)), float(np.log(1e6))),
            "c": (float(np.log(1e-2)), float(np.log(10.0))),  # irreducible loss, nats
            "E_start": (float(np.log(1.001)), float(np.log(20.0))),
            "E_max": (float(np.log(25.0)), float(np.log(1e5))),
            **{k: (-3.0, 3.0) for k in ("alpha", "beta", "delta", "gamma", "omega", "zeta")}},
    grad_log_loss=_grad_log_loss, derived=_derived,
)

# Counting convention of the LR law (a stated choice: the paper is ambiguous). Eq. 8's text
# defines N_act without embeddings; the released code feeds it N_act with embeddings, which at
# 1e20 changes the LR by about 17 %. moescale follows the text, as the law planner does
# (non-embedding active parameters): the "kaplan" convention counts exactly those.
LR_CONVENTION = "kaplan"

LR_LAW = Law(
    name="ludziejewski2025_lr",
    citation="Ludziejewski et al. 2025 (arXiv 2502.05172), Eq. 8 with the constants of their code",
    formula="LR = exp(c0 + c_N·ln N_act + c_E·ln E), N_act without embeddings (Eq. 8's text)",
    params=("c0", "c_N", "c_E"), variables=("N_active", "E"), convention=LR_CONVENTION,
    log_loss=lambda p, v: p["c0"] + p["c_N"] * np.log(v["N_active"]) + p["c_E"] * np.log(v["E"]),
    presets={"ludziejewski2025": Preset(
        dict(c0=8.391640956234012, c_N=-0.8121798244457074, c_E=-0.25),
        "constants in the paper's code (arXiv 2502.05172)", ranges=LR_RUNS)},
    init_grid={"c0": (0.0, 8.0), "c_N": (-1.0, 0.0), "c_E": (-0.5, 0.0)},
    grad_log_loss=lambda p, v: {"c0": np.ones_like(np.log(v["N_active"]) + 0 * p["c0"]),
                                "c_N": np.log(v["N_active"]) + 0 * p["c0"],
                                "c_E": np.log(v["E"]) + 0 * p["c0"]},
    target="lr",
)
