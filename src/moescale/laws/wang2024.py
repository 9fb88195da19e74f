"""Dense-vs-MoE law (Wang et al. 2024, arXiv 2410.05661), fit-only:

    L(N, D, E) = A/(N^α·E^γ) + B/D^β + σ        with C = 6·N·D

At fixed ``E`` it is Chinchilla-shaped with ``A' = A·E^−γ``, so the compute optimum is
``N_opt = G·(C/6)^(β/(α+β))``, ``D_opt = (C/6)/N_opt``, ``G = (α·A'/(β·B))^(1/(α+β))``.
The paper's optimal batch-size and learning-rate laws are ``wang2024_batch`` and ``wang2024_lr``.

Counting convention (a stated choice). The paper defines its ``N`` as ``C/D`` — compute per
token, "instead of the model size" (its Figure 1) — and publishes no constants. moescale's
``N`` is the parameter count with ``C = 6·N·D`` (``chinchilla`` convention), i.e. the paper's
``N`` divided by 6. A constant factor only rescales ``A`` (``A_paper = A·6^α``): fitted
exponents, ``γ``, ``B``, ``β``, ``σ`` and the compute-optimal allocation are identical under the
two readings, and a parameter count is what a plan needs.
"""

from __future__ import annotations

import numpy as np

from moescale.laws._forms import lse
from moescale.laws.base import Law

N_FACTOR = 6.0  # the paper's N = C/D = 6·(moescale's N) under C = 6·N·D
_CITE = "Wang et al. 2024, Dense vs MoE scaling laws (arXiv 2410.05661)"


def _terms(p, v):
    return (np.log(p["A"]) - p["alpha"] * np.log(v["N"]) - p["gamma"] * np.log(v["E"]),
            np.log(p["B"]) - p["beta"] * np.log(v["D"]), np.log(p["sigma"]))


def _grad_log_loss(p, v):
    _, (wa, wb, ws) = lse(*_terms(p, v))
    return {"A": wa, "alpha": -wa * np.log(v["N"]), "gamma": -wa * np.log(v["E"]),
            "B": wb, "beta": -wb * np.log(v["D"]), "sigma": ws}


def _linear(p, v):
    """``L = [N^−α·E^−γ, D^−β, 1] @ (A, B, σ)`` once the exponents are fixed."""
    t_n = v["N"] ** -np.asarray(p["alpha"]) * v["E"] ** -np.asarray(p["gamma"])
    t_d = v["D"] ** -np.asarray(p["beta"])
    return ("A", "B", "sigma"), np.stack(np.broadcast_arrays(t_n, t_d, np.ones_like(t_n)), -1)


def compute_optimal(compute: float, E: float, p) -> tuple[float, float]:
    """Closed-form ``(N_opt, D_opt)`` for ``6·N·D = compute`` at ``E`` experts."""
    a, b = p["alpha"], p["beta"]
    g = (a * p["A"] * E ** -p["gamma"] / (b * p["B"])) ** (1.0 / (a + b))
    n = g * (compute / 6.0) ** (b / (a + b))
    return n, compute / 6.0 / n


def _derived(p):
    return {"N_opt_exponent": p["beta"] / (p["alpha"] + p["beta"]),
            "D_opt_exponent": p["alpha"] / (p["alpha"] + p["beta"])}


LAW = Law(
    name="wang2024", citation=_CITE, formula="A/(N^α·E^γ) + B/D^β + σ",
    params=("A", "alpha", "gamma", "B", "beta", "sigma"), variables=("N", "D", "E"),
    convention="chinchilla",
    log_loss=lambda p, v: lse(*_terms(p, v))[0], allocates=True,
    log_params=("A", "B", "sigma"),
    init_grid={"alpha": (0.1, 0.3, 0.6), "beta": (0.1, 0.3, 0.6), "gamma": (0.0, 0.2, 0.5),
               "A": tuple(np.log([10.0, 100.0, 1000.0])), "B": tuple(np.log([10.0, 100.0, 1000.0])),
               "sigma": tuple(np.log([0.5, 1.5]))},
    bounds={"alpha": (0.0, 3.0), "beta": (0.0, 3.0), "gamma": (-1.0, 3.0)},
    grad_log_loss=_grad_log_loss, linear=_linear, derived=_derived,
)
