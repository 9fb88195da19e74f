"""Chinchilla law ``L = E + A/N^α + B/D^β`` (Hoffmann et al. 2022; papers.md §5)."""

from __future__ import annotations

import numpy as np

from moescale.laws.base import Law, Preset


def _log_loss(p, v):
    t1 = np.log(p["A"]) - p["alpha"] * np.log(v["N"])
    t2 = np.log(p["B"]) - p["beta"] * np.log(v["D"])
    return np.logaddexp(np.logaddexp(t1, t2), np.log(p["E"]))


def compute_optimal(compute: float, p: dict[str, float]) -> tuple[float, float]:
    """Closed-form ``(N_opt, D_opt)`` for ``C = 6·N·D`` (Hoffmann et al. 2022, Eq. 4)."""
    a, b = p["alpha"], p["beta"]
    g = (a * p["A"] / (b * p["B"])) ** (1.0 / (a + b))
    n = g * (compute / 6.0) ** (b / (a + b))
    return n, compute / 6.0 / n


LAW = Law(
    name="chinchilla",
    citation="Hoffmann et al. 2022 (arXiv 2203.15556); replication Besiroglu et al. 2024",
    formula="E + A/N^alpha + B/D^beta",
    params=("A", "B", "E", "alpha", "beta"), variables=("N", "D"), convention="chinchilla",
    log_loss=_log_loss,
    presets={
        "hoffmann2022": Preset(dict(A=406.4, B=410.7, E=1.69, alpha=0.34, beta=0.28),
                               "Hoffmann et al. 2022, Approach 3"),
        "besiroglu2024": Preset(dict(A=482.01, B=2085.43, E=1.8172, alpha=0.3478, beta=0.3658),
                                "Besiroglu et al. 2024 (arXiv 2404.10102), bootstrap MLE"),
    },
)
