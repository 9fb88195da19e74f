"""Holistic MoE laws (Wan et al. 2026, arXiv 2603.21862): the per-budget targets
the holistic planner starts from.

- ``C → (M_opt, D_opt)``: the paper's classical law, ``D_opt = 22.8929·C^0.4563``,
  ``M_opt = 0.04368·C^0.5437`` (``M`` in FLOPs per token).
- Optimal ``M/N_a`` and ``N/N_a``: power laws in ``C`` fitted (least squares in log space) to the
  values the paper used per budget (*derived*: ``N/N_a`` = 19, 20, 21, 21, 22, 22; ``M/N_a`` ≈
  10.9, 9.9, 9.2, 8.8, 8.34, 8.22 at C = 1e18, 3e18, 1e19, 3e19, 1e20, 3e20).
- Learning rate and batch size: power laws in ``C`` fitted to Table 4 (LR ∝ C^−0.160,
  batch ∝ C^0.263).
"""

from __future__ import annotations

import numpy as np

from moescale.laws.base import Law, Preset

BUDGETS = np.array([1e18, 3e18, 1e19, 3e19, 1e20, 3e20])
M_OVER_NA = np.array([10.9, 9.9, 9.2, 8.8, 8.34, 8.22])
N_OVER_NA = np.array([19.0, 20.0, 21.0, 21.0, 22.0, 22.0])
LR = np.array([1.20e-3, 1.00e-3, 8.28e-4, 6.95e-4, 5.74e-4, 4.82e-4])
BATCH_SEQUENCES = np.array([64, 80, 128, 160, 208, 288])


def _power_law(values: np.ndarray):
    """``(k, p)`` of ``y = k·C^p`` fitted in log space to ``values`` at :data:`BUDGETS`."""
    p, log_k = np.polyfit(np.log(BUDGETS), np.log(values), 1)
    return float(np.exp(log_k)), float(p)


_FITS = {name: _power_law(v) for name, v in
         (("M_over_Na", M_OVER_NA), ("N_over_Na", N_OVER_NA), ("lr", LR), ("batch", BATCH_SEQUENCES))}


def _eval(name: str, compute):
    k, p = _FITS[name]
    return k * np.asarray(compute, dtype=float) ** p


def optimal_flops_per_token(compute):
    """``M_opt(C) = 0.04368·C^0.5437`` FLOPs per token."""
    return 0.04368 * np.asarray(compute, dtype=float) ** 0.5437


def optimal_tokens(compute):
    """``D_opt(C) = 22.8929·C^0.4563`` tokens."""
    return 22.8929 * np.asarray(compute, dtype=float) ** 0.4563


def optimal_M_over_Na(compute):
    """Optimal ``M/N_a`` at budget ``C`` (derived power law; ≈ 10.9 at 1e18, 8.2 at 3e20)."""
    return _eval("M_over_Na", compute)


def optimal_N_over_Na(compute):
    """Optimal ``N/N_a`` at budget ``C`` (derived power law through 19 … 22)."""
    return _eval("N_over_Na", compute)


def learning_rate(compute):
    """Peak learning rate (Table 4 power law, ∝ C^−0.160)."""
    return _eval("lr", compute)


def batch_sequences(compute):
    """Global batch in sequences of 8192 tokens (Table 4 power law, ∝ C^0.263)."""
    return _eval("batch", compute)


def exponents() -> dict[str, float]:
    """The fitted exponents ``p`` of each power law (for reports and tests)."""
    return {name: p for name, (_, p) in _FITS.items()}



LAW = Law(
    name="holistic2026",
    citation="Wan, Han, Zhang, Jin 2026, Holistic MoE architecture optimisation (arXiv 2603.21862)",
    formula="D_opt = k_D·C^p_D (preset 22.8929·C^0.4563); M_opt = C/D_opt (C = M·D)",
    params=("k_D", "p_D"), variables=("C",), convention="holistic",
    log_loss=lambda p, v: np.log(p["k_D"]) + p["p_D"] * np.log(v["C"]),
    presets={"wan2026": Preset(dict(k_D=22.8929, p_D=0.4563),
                               "Wan et al. 2026, step 1 (classical law)",
                               "predicts D_opt(C) in tokens; M_opt = C/D_opt = 0.04368·C^0.5437",
                               ranges={"C": (1e18, 3e20)})},
    log_params=("k_D",),
    init_grid={"k_D": tuple(np.log([1.0, 10.0, 100.0])), "p_D": (0.3, 0.5, 0.7)},
    grad_log_loss=lambda p, v: {"k_D": np.ones_like(np.log(v["C"]) + 0 * p["p_D"]),
                                "p_D": np.log(v["C"]) + 0 * p["p_D"]},
    target="D",
)
