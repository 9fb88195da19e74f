"""Continuous allocation with a loss law: compute-, memory- and inference-constrained optima.

The law is any callable ``loss(N_act, D, E)`` (numpy-vectorised), with training compute
``6·N_act·D`` (the chinchilla / joint-MoE convention, arXiv 2502.05172). Problems (Ludziejewski
et al. 2025, §"Optimisation problems"):

- compute-optimal: ``min L  s.t.  6·N_act·D = C``;
- memory-constrained: also ``(N_total + KV cache) × bytes ≤ memory``, where ``N_total`` follows
  the paper's model family (Eq. 9/10); the optimum is truncated at the compute-optimal point
  (a larger, under-trained model is both bigger and worse);
- inference-aware: ``6·N_act·D + 2·N_act·D_inf = C``.

The isoFLOP loss is unimodal in ``log N_act``, so a bounded scalar minimisation is robust; the
result says which constraint binds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from moescale.errors import MoescaleError

LossFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
GPT2_VOCAB = 50257
N_MIN, N_MAX = 1e5, 1e14  # search bounds on N_act


@dataclass(frozen=True)
class Allocation:
    """An optimum of one law for one number of experts ``E``."""

    experts: int
    active_params: float  # N_act, embeddings included
    total_params: float  # N_total of the paper's model family
    tokens: float  # D
    loss: float
    training_compute: float  # 6·N_act·D
    binding_constraint: str  # "compute", "memory" or "inference"

    def to_dict(self) -> dict[str, float | int | str]:
        return dict(self.__dict__)


# ----- the joint-MoE paper's model family (arXiv 2502.05172, Eq. 9/10) -----------------------------
def family_hidden(active_params: float, vocab: int = GPT2_VOCAB) -> float:
    """``d`` with ``N_act = 2·d·V + 13·N_blocks·d²`` and ``N_blocks = d/64`` (continuous)."""
    from scipy.optimize import brentq

    def f(d: float) -> float:
        return 2 * d * vocab + 13 * d**3 / 64 - active_params

    if f(1.0) >= 0:
        raise MoescaleError(
            f"{active_params:.3g} active parameters is less than a 1-wide embedding; "
            "raise the compute budget"
        )
    hi = 1e6
    while f(hi) < 0:  # brentq needs a bracket; huge budgets need a wider one
        hi *= 10
    return brentq(f, 1.0, hi)


def family_total(active_params: float, experts: int, vocab: int = GPT2_VOCAB) -> float:
    """``N_total = 2·d·V + (4 + 9E)·N_blocks·d²`` of the family member with ``N_act``."""
    d = family_hidden(active_params, vocab)
    return 2 * d * vocab + (4 + 9 * experts) * d**3 / 64


def family_kv_values(active_params: float, tokens: int, vocab: int = GPT2_VOCAB) -> float:
    """KV cache values ``2·T·N_blocks·d`` for ``T`` cached tokens."""
    d = family_hidden(active_params, vocab)
    return 2 * tokens * d * d / 64


# ----- optimisation -------------------------------------------------------------------------
def compute_optimal(loss: LossFn, compute: float, experts: int) -> Allocation:
    """``min L(N, C/(6N), E)`` over ``N`` (bounded scalar search in ``log N``)."""
    n = argmin_log(lambda n: loss(n, compute / (6 * n), experts), N_MIN, compute / 6 / 1.0)
    return _allocation(loss, n, compute / (6 * n), experts, "compute")


class DoesNotFit(MoescaleError):
    """Even the smallest model of the family exceeds the memory budget (a result for
    comparisons over budgets, an error for a single plan)."""


def memory_constrained(loss: LossFn, compute: float, experts: int, memory_bytes: float,
                       bytes_per_value: float, kv_tokens: int = 0) -> Allocation:
    """Compute-optimal, unless the family member that large would not fit in ``memory_bytes``;
    then the largest member that fits (never larger than compute-optimal)."""
    from scipy.optimize import brentq

    best = compute_optimal(loss, compute, experts)

    def used(n: float) -> float:
        kv = family_kv_values(n, kv_tokens) if kv_tokens else 0.0
        return (family_total(n, experts) + kv) * bytes_per_value

    if used(best.active_params) <= memory_bytes:
        return best
    smallest = 2 * 64 * GPT2_VOCAB + 13 * 64**3 / 64
    if used(smallest) > memory_bytes:
        raise DoesNotFit(
            f"memory budget {memory_bytes / 1e9:.3g} GB cannot hold even the smallest model "
            f"with E={experts} ({used(smallest) / 1e9:.3g} GB, mostly embeddings); raise `memory_bytes`"
        )
    n = brentq(lambda n: used(n) - memory_bytes, smallest, best.active_params, rtol=1e-10)
    return _allocation(loss, n, compute / (6 * n), experts, "memory")


def argmin_log(f: Callable[[float], float], lo: float, hi: float) -> float:
    """Minimiser of ``f`` over ``[lo, hi]`` in log space (grid, then bounded Brent): the
    continuous optimum of a law over ``N`` that every allocation here and the law planner use."""
    from scipy.optimize import minimize_scalar

    if hi <= lo:
        raise MoescaleError("the compute budget is too small for any model; raise `compute`")
    grid = np.geomspace(lo, hi, 200)
    vals = np.array([f(x) for x in grid])
    vals[~np.isfinite(vals)] = np.inf
    i = int(np.argmin(vals))
    a, b = np.log(grid[max(i - 1, 0)]), np.log(grid[min(i + 1, grid.size - 1)])
    res = minimize_scalar(lambda t: f(np.exp(t)), bounds=(a, b), method="bounded",
                          options={"xatol": 1e-10})
    return float(np.exp(res.x))


def _allocation(loss: LossFn, n: float, d: float, e: int, binding: str) -> Allocation:
    return Allocation(experts=e, active_params=n, total_params=family_total(n, e), tokens=d,
                      loss=float(loss(n, d, e)), training_compute=6 * n * d,
                      binding_constraint=binding)


def best_over_experts(allocations: list[Allocation]) -> Allocation:
    """The allocation with the lowest predicted loss."""
    return min(allocations, key=lambda a: a.loss)
