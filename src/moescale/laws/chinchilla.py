"""Chinchilla law ``L = E + A/N^α + B/D^β`` (Hoffmann et al. 2022, arXiv 2203.15556)."""

from __future__ import annotations

import numpy as np

from moescale.laws.base import Law, Preset


def _terms(p, v):
    """The three log-space terms ``(a − α·ln N, b − β·ln D, e)`` with ``a = ln A`` etc."""
    return (np.log(p["A"]) - p["alpha"] * np.log(v["N"]),
            np.log(p["B"]) - p["beta"] * np.log(v["D"]), np.log(p["E"]))


def _shifted(p, v):
    """``(m, e^(t−m) for each term)`` with ``m`` the largest term (a stable log-sum-exp).

    Differences below −60 are clipped there (e^−60 ≈ 1e−26 of the sum): exact to double
    precision and avoids numpy's slow subnormal path when a term is negligible.
    """
    t1, t2, t3 = _terms(p, v)
    m = np.maximum(np.maximum(t1, t2), t3)
    return m, tuple(np.exp(np.maximum(t - m, -60.0)) for t in (t1, t2, t3))


def _log_loss(p, v):
    m, (e1, e2, e3) = _shifted(p, v)
    return m + np.log(e1 + e2 + e3)


def _grad_log_loss(p, v):
    """∂ln L/∂θ in fit space ``(ln A, ln B, ln E, α, β)``: softmax weights of the terms."""
    _, (e1, e2, e3) = _shifted(p, v)
    inv = 1.0 / (e1 + e2 + e3)
    w1, w2 = e1 * inv, e2 * inv
    return {"A": w1, "B": w2, "E": e3 * inv, "alpha": -w1 * np.log(v["N"]),
            "beta": -w2 * np.log(v["D"])}


def _linear(p, v):
    """Variable projection: ``L = [1, N^−α, D^−β] @ (E, A, B)`` once α and β are fixed."""
    t_n, t_d = v["N"] ** -np.asarray(p["alpha"]), v["D"] ** -np.asarray(p["beta"])
    return ("E", "A", "B"), np.stack(np.broadcast_arrays(np.ones_like(t_n), t_n, t_d), axis=-1)


def _derived(p):
    """Tokens-per-parameter exponent split: ``N_opt ∝ C^a``, ``D_opt ∝ C^b`` (Eq. 4)."""
    a, b = p["alpha"], p["beta"]
    return {"N_opt_exponent": b / (a + b), "D_opt_exponent": a / (a + b)}


def compute_optimal(compute: float, p: dict[str, float]) -> tuple[float, float]:
    """Closed-form ``(N_opt, D_opt)`` for ``C = 6·N·D`` (Hoffmann et al. 2022, Eq. 4)."""
    a, b = p["alpha"], p["beta"]
    g = (a * p["A"] / (b * p["B"])) ** (1.0 / (a + b))
    n = g * (compute / 6.0) ** (b / (a + b))
    return n, compute / 6.0 / n


# Hoffmann et al.'s runs as read from their Figure 4 (Besiroglu et al. 2024's 245 points,
# shared/data/epoch_chinchilla_svg_extracted_data.csv; D = C/(6·N)): N 57M–16.2B, D 0.25B–318B.
CHINCHILLA_RUNS = {"N": (5.73e7, 1.62e10), "D": (2.45e8, 3.18e11)}

LAW = Law(
    name="chinchilla",
    citation="Hoffmann et al. 2022 (arXiv 2203.15556); replication Besiroglu et al. 2024",
    formula="E + A/N^alpha + B/D^beta",
    params=("A", "B", "E", "alpha", "beta"), variables=("N", "D"), convention="chinchilla",
    log_loss=_log_loss, allocates=True,
    # Fit space (ln A, ln B, ln E, α, β) and the replication's 4,500-point grid (Besiroglu et al. 2024, arXiv 2404.10102).
    log_params=("A", "B", "E"),
    init_grid={"A": (0, 5, 10, 15, 20, 25), "B": (0, 5, 10, 15, 20, 25),
               "E": (-1, -0.5, 0, 0.5, 1), "alpha": (0, 0.5, 1, 1.5, 2),
               "beta": (0, 0.5, 1, 1.5, 2)},
    # Exponents are positive (loss falls with N and D); the grid's largest value is 2.
    bounds={"alpha": (0.0, 3.0), "beta": (0.0, 3.0)},
    grad_log_loss=_grad_log_loss, linear=_linear, derived=_derived,
    presets={
        "hoffmann2022": Preset(dict(A=406.4, B=410.7, E=1.69, alpha=0.34, beta=0.28),
                               "Hoffmann et al. 2022, Approach 3", ranges=CHINCHILLA_RUNS),
        "besiroglu2024": Preset(dict(A=482.01, B=2085.43, E=1.8172, alpha=0.3478, beta=0.3658),
                                "Besiroglu et al. 2024 (arXiv 2404.10102), bootstrap MLE",
                                ranges=CHINCHILLA_RUNS),
    },
)
