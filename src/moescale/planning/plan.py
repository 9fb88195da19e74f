"""The answer to "what should I train?": the :class:`Plan` and the holistic planner.

>>> from moescale.planning import Budget, plan_holistic
>>> p = plan_holistic(Budget(compute=1e20))
>>> 0.95 < p.counts.ratios["M"] / p.allocation["flops_per_token_target"] < 1.05
True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from moescale.architecture import Architecture
from moescale.counting import Counts, count
from moescale.errors import MoescaleError
from moescale.laws import holistic2026 as h26
from moescale.planning import holistic as hs
from moescale.units import dtype_bytes


@dataclass(frozen=True)
class Budget:
    """What the user has: training compute (FLOPs) and, optionally, memory and serving load.

    ``memory_bytes`` bounds the weights (``N_total × bytes(dtype)``) plus, with ``kv_tokens``,
    the KV cache of that many tokens. ``inference_tokens`` tokens served at ``2·N_act`` FLOPs
    each (papers.md §3) come out of ``compute``.
    """

    compute: float
    memory_bytes: float | None = None
    kv_tokens: int = 0
    dtype: str = "bf16"
    inference_tokens: float = 0.0

    def __post_init__(self) -> None:
        if not np.isfinite(self.compute) or self.compute <= 0:
            raise MoescaleError(f"compute budget must be positive, got {self.compute!r}")
        if self.memory_bytes is not None and self.memory_bytes <= 0:
            raise MoescaleError(f"memory budget must be positive, got {self.memory_bytes!r}")
        if self.kv_tokens < 0 or self.inference_tokens < 0:
            raise MoescaleError("kv-tokens and inference-tokens must be non-negative")
        dtype_bytes(self.dtype)

    def memory_used(self, c: Counts) -> float:
        """Bytes of weights plus the KV cache of ``kv_tokens`` tokens."""
        return c.weights_bytes(self.dtype) + (c.kv_cache_bytes(self.kv_tokens, self.dtype)
                                              if self.kv_tokens else 0.0)


@dataclass(frozen=True)
class Plan:
    """A complete, trainable recommendation and the assumptions behind it."""

    budget: Budget
    method: str
    law: str
    convention: str
    allocation: dict[str, float]
    architecture: Architecture
    counts: Counts
    predicted_loss: float | None
    predicted_loss_ci: tuple[float, float] | None
    learning_rate: float | None
    batch_size_tokens: float | None
    near_optimal_band: dict[str, Any]
    alternatives: list[dict[str, Any]]
    binding_constraint: str
    assumptions: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The ``moescale plan --json`` object."""
        b = self.budget
        return {
            "compute": b.compute,
            "budget": {"compute": b.compute, "memory_bytes": b.memory_bytes, "kv_tokens": b.kv_tokens,
                       "dtype": b.dtype, "inference_tokens": b.inference_tokens},
            "method": self.method,
            "law": self.law,
            "convention": self.convention,
            "allocation": self.allocation,
            "architecture": self.architecture.to_dict(),
            "counts": _counts_summary(self.counts, b),
            "predicted_loss": self.predicted_loss,
            "predicted_loss_ci": list(self.predicted_loss_ci) if self.predicted_loss_ci else None,
            "learning_rate": self.learning_rate,
            "batch_size_tokens": self.batch_size_tokens,
            "near_optimal_band": self.near_optimal_band,
            "binding_constraint": self.binding_constraint,
            "alternatives": self.alternatives,
            "assumptions": self.assumptions,
        }


def _counts_summary(c: Counts, b: Budget) -> dict[str, Any]:
    return {
        "total_params": c.total_params,
        "active_params": c.active_params,
        "total_params_non_embedding": c.total_params_non_embedding,
        "active_params_non_embedding": c.active_params_non_embedding,
        "training_flops_per_token": c.training_flops_per_token,
        "inference_flops_per_token": c.inference_flops_per_token,
        "weights_bytes": c.weights_bytes(b.dtype),
        "kv_cache_bytes": c.kv_cache_bytes(b.kv_tokens, b.dtype) if b.kv_tokens else 0.0,
        "training_state_bytes": c.training_state_bytes(),
        "ratios": c.ratios,
    }


# ----- the holistic two-phase planner -------------------------------------------------------
@dataclass(frozen=True)
class Targets:
    """Per-budget targets of the holistic pipeline: ``C → (M_opt, D_opt)``, optimal ``M/N_a``
    and ``N/N_a``. Defaults are the paper's laws (papers.md §1); :meth:`from_fits` replaces any
    of them with the user's own fits (``moescale fit --law holistic2026`` for ``D_opt(C)``,
    ``--law power_law_C`` for each ratio)."""

    flops_per_token: Callable = h26.optimal_flops_per_token
    tokens: Callable = h26.optimal_tokens
    m_over_na: Callable = h26.optimal_M_over_Na
    n_over_na: Callable = h26.optimal_N_over_Na
    sources: tuple[str, ...] = ()

    @classmethod
    def from_fits(cls, tokens_fit: str | None = None, m_ratio_fit: str | None = None,
                  n_ratio_fit: str | None = None) -> Targets:
        """Targets with the given fit files (``None`` keeps the paper's law)."""
        from moescale.fitting import FitResult

        def load(path, law, what):
            res = FitResult.load(path)
            if res.law != law:
                raise MoescaleError(f"{path} fits {res.law!r}; {what} needs a fit of {law!r}")
            return lambda c: res.predict(C=c)

        t = {}
        if tokens_fit:
            tokens = load(tokens_fit, "holistic2026", "--fit with --method holistic")
            t.update(tokens=tokens, flops_per_token=lambda c: np.asarray(c) / tokens(c))
        if m_ratio_fit:
            t["m_over_na"] = load(m_ratio_fit, "power_law_C", "--m-ratio-fit")
        if n_ratio_fit:
            t["n_over_na"] = load(n_ratio_fit, "power_law_C", "--n-ratio-fit")
        used = tuple(f for f in (tokens_fit, m_ratio_fit, n_ratio_fit) if f)
        return cls(**t, sources=used)


def plan_holistic(budget: Budget, settings: hs.HolisticSettings | None = None, top: int = 5,
                  loss_law: str = "zhao2025", targets: Targets | None = None) -> Plan:
    """Plan with the holistic paper's pipeline (papers.md §1) and rank every aligned candidate.

    ``C → (M_opt, D_opt)`` from the paper's classical law; target ratios ``M/N_a(C)`` and
    ``N/N_a(C)`` from the values the paper used (or ``targets`` from the user's fits); every
    aligned candidate near them is
    enumerated (:func:`holistic.enumerate_candidates`), filtered by the memory budget, ranked by
    the surrogate; the absolute loss comes from ``loss_law`` at the chosen candidate.
    """
    s, t = settings or hs.HolisticSettings(), targets or Targets()
    c_train, binding = _training_compute(budget, t)
    m_opt, d_opt = float(t.flops_per_token(c_train)), float(t.tokens(c_train))
    x_t, y_t = float(t.m_over_na(c_train)), float(t.n_over_na(c_train))
    if not (x_t > 6 and 1 < y_t < (s.n_experts + 1) / (s.top_k + 1)):
        raise MoescaleError(f"targets M/N_a = {x_t:.3g}, N/N_a = {y_t:.3g} at C = {c_train:.3g} "
                            "are outside what any MoE can realise (M/N_a > 6, 1 < N/N_a < "
                            "(N_e+1)/(K+1)); check the ratio fits")
    heads = s.heads_for(c_train)
    cands = hs.enumerate_candidates(m_opt, x_t, y_t, s, heads)
    cands, binding = _apply_memory(cands, budget, s, binding)
    order = np.argsort(cands.excess, kind="stable")
    best = int(order[0])
    arch = hs.to_architecture(cands, best, s, heads, name=f"moescale-holistic-C{c_train:.0e}")
    counts = count(arch, "holistic", inference_context=budget.kv_tokens or None)
    tokens = c_train / counts.ratios["M"]
    base_loss = _law_loss(loss_law, arch, tokens)
    alts = [_alternative(cands, int(i), s, heads, c_train, base_loss)
            for i in _distinct_triads(cands, order)[1:top + 1]]
    return Plan(
        budget=budget, method="holistic", law="holistic2026", convention="holistic",
        allocation={
            "training_compute": c_train,
            "flops_per_token_target": m_opt, "tokens_target": d_opt,
            "flops_per_token": counts.ratios["M"], "tokens": tokens,
            "active_params": counts.ratios["N_a"], "total_params": counts.ratios["N"],
            "experts": s.n_experts, "top_k": s.top_k, "shared_experts": s.n_shared_experts,
            "G": arch.activated_experts, "S": arch.shared_ratio,
            "M_over_Na_target": x_t, "N_over_Na_target": y_t,
            "median_feasible_hidden_size": float(cands.median_d[best]),
            "candidates_enumerated": len(cands),
        },
        architecture=arch, counts=counts,
        predicted_loss=None if base_loss is None else base_loss * (1 + float(cands.excess[best])),
        predicted_loss_ci=None,
        learning_rate=float(h26.learning_rate(c_train)),
        batch_size_tokens=float(h26.batch_sequences(c_train)) * s.seq_len,
        near_optimal_band=hs.near_optimal_band(cands, s.tolerance),
        alternatives=alts, binding_constraint=binding,
        assumptions=_holistic_assumptions(s, loss_law, t.sources),
    )


def _training_compute(budget: Budget, t: Targets) -> tuple[float, str]:
    """Training compute left after serving ``inference_tokens`` at ``2·N_a`` FLOPs each.

    N_a depends on the plan, so iterate ``C_train = C − 2·N_a(C_train)·D_inf`` to a fixed point.
    """
    if not budget.inference_tokens:
        return budget.compute, "compute"
    c_train = budget.compute
    for _ in range(50):
        n_a = float(t.flops_per_token(c_train)) / float(t.m_over_na(c_train))
        nxt = budget.compute - 2.0 * n_a * budget.inference_tokens
        if nxt <= 0:
            raise MoescaleError(
                f"serving {budget.inference_tokens:.3g} tokens costs more than the whole compute "
                f"budget {budget.compute:.3g} FLOPs; raise --compute or lower --inference-tokens"
            )
        if abs(nxt - c_train) <= 1e-9 * budget.compute:
            break
        c_train = 0.5 * (c_train + nxt)
    return c_train, "inference"


def _apply_memory(c: hs.Candidates, budget: Budget, s: hs.HolisticSettings,
                  binding: str) -> tuple[hs.Candidates, str]:
    """Drop candidates whose weights (+ KV cache) exceed the memory budget."""
    if budget.memory_bytes is None:
        return c, binding
    dq, nq, nkv = s.heads_for(budget.compute)
    per_byte = dtype_bytes(budget.dtype)
    embed = 2 * s.vocab_size * c.hidden  # untied input embedding + output head
    norms = c.hidden * (2 * c.n_layers + 1)
    router = c.hidden * s.n_experts * (c.n_layers - c.dense_layers)
    weights = (c.N + embed + norms + router) * per_byte
    kv = 2 * nkv * dq * c.n_layers * budget.kv_tokens * per_byte
    fits = weights + kv <= budget.memory_bytes
    if not fits.any():
        smallest = float(np.min(weights + kv))
        raise MoescaleError(
            f"memory budget {budget.memory_bytes / 1e9:.3g} GB is below the smallest candidate "
            f"({smallest / 1e9:.3g} GB of weights and KV cache, embeddings alone "
            f"{float(np.min(embed)) * per_byte / 1e9:.3g} GB); raise --memory or lower --compute"
        )
    if fits[np.argmin(c.excess)]:
        return c.take(np.flatnonzero(fits)), binding
    kept = c.take(np.flatnonzero(fits))
    from dataclasses import replace

    return replace(kept, excess=kept.excess - kept.excess.min()), "memory"


def _distinct_triads(c: hs.Candidates, order: np.ndarray) -> np.ndarray:
    """Ranked candidates, keeping the best ``d`` of each target ``(M/N_a, N/N_a)`` pair and
    each realised structure once, so alternatives differ in more than one alignment step."""
    keys = np.stack([c.target_M_over_Na[order], c.target_N_over_Na[order]], axis=1)
    _, first = np.unique(keys, axis=0, return_index=True)
    ranked = order[np.sort(first)]
    shapes = np.stack([c.hidden[ranked], c.n_layers[ranked], c.dense_layers[ranked],
                       c.expert_ffn[ranked]], axis=1)
    _, first = np.unique(shapes, axis=0, return_index=True)
    return ranked[np.sort(first)]


def _alternative(c: hs.Candidates, i: int, s: hs.HolisticSettings, heads, c_train: float,
                 base_loss: float | None) -> dict[str, Any]:
    arch = hs.to_architecture(c, i, s, heads)
    return {
        "hidden_size": arch.hidden_size, "n_layers": arch.n_layers,
        "first_dense_layers": arch.first_dense_layers, "expert_ffn": arch.expert_ffn,
        "M_over_Na": float(c.M_over_Na[i]), "N_over_Na": float(c.N_over_Na[i]),
        "active_params": float(c.N_a[i]), "total_params": float(c.N[i]),
        "tokens": c_train / float(c.M[i]),
        "relative_loss_excess": float(c.excess[i]),
        "predicted_loss": None if base_loss is None else base_loss * (1 + float(c.excess[i])),
        "architecture": arch.to_dict(),
    }


def _law_loss(law: str, arch: Architecture, tokens: float) -> float | None:
    """Absolute loss of ``arch`` trained on ``tokens`` under a preset law (None if unavailable)."""
    if law != "zhao2025":
        return None
    from moescale.laws import zhao2025

    r = count(arch, "holistic").ratios
    return float(zhao2025.loss(N=r["N"], N_a=r["N_a"], D=tokens, G=arch.activated_experts,
                               S=arch.shared_ratio))


def _holistic_assumptions(s: hs.HolisticSettings, loss_law: str,
                          fits: tuple[str, ...] = ()) -> list[str]:
    return [
        "C → (M_opt, D_opt): D_opt = 22.8929·C^0.4563, M_opt = 0.04368·C^0.5437 (Wan et al. 2026)"
        + (f", except where replaced by the fits {', '.join(fits)}." if fits else "."),
        "Target M/N_a and N/N_a: power laws through the values the paper used per budget (derived).",
        f"Fixed engineering constants: S={s.seq_len}, K={s.top_k}, N_e={s.n_experts}, "
        f"{s.n_shared_experts} shared expert(s) of width d_m, d_d={s.dense_ffn_ratio}·d, "
        f"vocabulary {s.vocab_size}, alignment {s.align}.",
        "Ranking and near-optimal band: surrogate built from the paper's curve forms; "
        "curvatures calibrated to the paper's flatness statements (see planning.holistic).",
        f"Absolute loss: {loss_law} preset at the planned (N, N_a, D, G, S), non-embedding counts; "
        "a different data set shifts it.",
    ]
