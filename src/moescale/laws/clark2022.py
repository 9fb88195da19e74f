"""Unified scaling law for routed language models (Clark et al. 2022, arXiv 2202.01169),
at fixed training tokens:

    ln L = a·ln N + b·ln Ê + c·ln N·ln Ê + d

``N`` is the dense-equivalent non-embedding parameter count (``counting.clark2022_counts``),
``Ê`` the saturating transform of the expert count shared with the joint-MoE law
(``E_start``, ``E_max``). Natural logarithms (Clark et al. print log10; the form is the same
with rescaled coefficients). No published coefficients in the reference set: fit-only.
"""

from __future__ import annotations

import numpy as np

from moescale.laws.base import Law
from moescale.laws.ludziejewski2025 import e_hat, log_e_hat_grads


def _log_loss(p, v):
    le = np.log(e_hat(v["E"], p["E_start"], p["E_max"]))
    ln_n = np.log(v["N"])
    return p["a"] * ln_n + p["b"] * le + p["c"] * ln_n * le + p["d"]


def _grad_log_loss(p, v):
    le, dls, dlm = log_e_hat_grads(v["E"], p["E_start"], p["E_max"])
    ln_n = np.log(v["N"]) + 0 * le
    d_le = p["b"] + p["c"] * ln_n
    return {"a": ln_n, "b": le + 0 * ln_n, "c": ln_n * le, "d": np.ones_like(ln_n),
            "E_start": d_le * dls, "E_max": d_le * dlm}


def _derived(p):
    """Clark et al.'s effective-parameter view: the loss slope in ln N at E = 1 and E = 64."""
    le = {e: float(np.log(e_hat(e, p["E_start"], p["E_max"]))) for e in (1, 64)}
    return {f"slope_lnN_E{e}": float(p["a"] + p["c"] * le[e]) for e in (1, 64)}


LAW = Law(
    name="clark2022",
    citation="Clark et al. 2022, Unified scaling laws for routed language models (arXiv 2202.01169)",
    formula="ln L = a·ln N + b·ln Ê + c·ln N·ln Ê + d",
    params=("a", "b", "c", "d", "E_start", "E_max"), variables=("N", "E"),
    convention="clark2022",
    log_loss=_log_loss,
    log_params=("E_start", "E_max"),
    init_grid={"a": (-0.1, -0.05, -0.02), "b": (-0.2, -0.05, 0.0), "c": (-0.005, 0.0, 0.005),
               "d": (1.0, 2.0, 3.0), "E_start": tuple(np.log([1.5, 3.0])),
               "E_max": tuple(np.log([100.0, 500.0]))},
    bounds={"E_start": (float(np.log(1.001)), float(np.log(20.0))),
            "E_max": (float(np.log(25.0)), float(np.log(1e6)))},
    grad_log_loss=_grad_log_loss, derived=_derived,
)
