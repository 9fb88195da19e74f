"""Comparisons users ask for next to a plan (joint-MoE and comprehensive-law questions).

- :func:`flop_savings` — dense vs MoE at the same budget: the fraction of compute an MoE with
  ``E`` experts saves to match a compute-optimal dense model (Ludziejewski et al. 2025, Fig. 2b).
- :func:`experts_by_memory` — the memory-optimal number of experts for a grid of memory budgets
  (the joint-MoE paper's question, Fig. 1a / 3).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from moescale.planning import allocation as al


def flop_savings(loss: al.LossFn, compute: float, experts: Sequence[int]) -> list[dict[str, float]]:
    """For each ``E``: compute-optimal loss at ``compute`` and the compute ``C_E`` at which the
    compute-optimal MoE matches the dense (``E = 1``) loss; savings ``1 − C_E/compute``."""
    from scipy.optimize import brentq

    dense = al.compute_optimal(loss, compute, 1).loss
    rows = []
    for e in experts:
        here = al.compute_optimal(loss, compute, e)

        def gap(log_c, e=e):
            return al.compute_optimal(loss, float(np.exp(log_c)), e).loss - dense

        lo, hi = np.log(compute) - 8.0, np.log(compute) + 2.0
        matched = float(np.exp(brentq(gap, lo, hi, xtol=1e-6))) if gap(lo) > 0 > gap(hi) else np.nan
        rows.append({"experts": e, "loss": here.loss, "active_params": here.active_params,
                     "tokens": here.tokens, "compute_to_match_dense": matched,
                     "flop_savings": 1.0 - matched / compute})
    return rows


def experts_by_memory(loss: al.LossFn, compute: float, memories_bytes: Sequence[float],
                      experts: Sequence[int], bytes_per_value: float = 2.0,
                      kv_tokens: int = 0) -> list[dict[str, float]]:
    """For each memory budget, the number of experts with the lowest loss (memory-constrained
    optimum truncated at the compute-optimal point) and its allocation. A budget no number of
    experts fits is reported as a row with ``experts = None`` and the ``reason``."""
    rows = []
    for mem in memories_bytes:
        allocs, reasons = [], []
        for e in experts:
            try:
                allocs.append(al.memory_constrained(loss, compute, e, mem, bytes_per_value, kv_tokens))
            except al.DoesNotFit as exc:  # the smallest model with E experts does not fit;
                # every other error (a bad law, a bad budget) is the caller's and propagates
                reasons.append(f"E={e}: {exc}")
        if not allocs:
            rows.append({"memory_bytes": mem, "experts": None, "loss": None,
                         "active_params": None, "total_params": None, "tokens": None,
                         "training_compute": None, "binding_constraint": "does not fit",
                         "reason": reasons[0] if len(reasons) == 1 else "; ".join(reasons)})
            continue
        best = al.best_over_experts(allocs)
        rows.append({"memory_bytes": mem, **best.to_dict()})
    return rows
