"""Plans driven by a loss law (``--method law``): continuous allocation per number of experts,
then the nearest complete architecture of the law's model family."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from moescale.counting import count
from moescale.errors import MoescaleError
from moescale.planning import allocation as al
from moescale.planning.plan import Budget, Plan
from moescale.units import dtype_bytes

ALLOCATABLE = ("ludziejewski2025", "chinchilla", "wang2024")


def loss_function(law: str, preset: str | None = None, fit: str | None = None):
    """``(loss(N_act, D, E), law name, convention, fit result or None)`` for a preset or a fit."""
    from moescale import laws

    if fit:
        try:
            from moescale.fitting import FitResult
        except ModuleNotFoundError:
            raise MoescaleError("--fit needs moescale's fitting module, which is not part of "
                                "this version yet; use --law with its preset") from None
        result = FitResult.load(fit)
        law_obj, params, law = laws.get_law(result.law), result.params, result.law
    else:
        law = law or "ludziejewski2025"
        law_obj = laws.get_law(law)
        if not law_obj.presets:
            raise MoescaleError(f"law {law!r} has no published coefficients; fit it first and "
                                "pass --fit fit.json")
        params, result = law_obj.preset(preset or next(iter(law_obj.presets))).values, None
    if law not in ALLOCATABLE:
        raise MoescaleError(f"law {law!r} cannot drive a continuous allocation; use one of "
                            f"{', '.join(ALLOCATABLE)} (or --method holistic)")
    names = law_obj.variables

    def loss(n, d, e):
        values = {"N": n, "N_active": n, "D": d, "E": np.asarray(e, dtype=float)}
        return law_obj.predict(params, {k: np.asarray(values[k], dtype=float) for k in names})

    return loss, law, law_obj.convention, result


def plan_with_law(budget: Budget, law: str | None = None, preset: str | None = None,
                  fit: str | None = None, experts: Sequence[int] = (1, 2, 4, 8, 16, 32),
                  top: int = 5) -> Plan:
    """Best allocation over ``experts`` under the budget's constraints, as a complete plan."""
    loss, law_name, convention, fit_result = loss_function(law, preset, fit)
    if law_name == "chinchilla":
        experts = (1,)
    allocs = [_allocate(loss, budget, e) for e in experts]
    best = al.best_over_experts(allocs)
    arch = al.family_architecture(best.active_params, best.experts)
    counts = count(arch, "chinchilla", inference_context=budget.kv_tokens or None)
    return Plan(
        budget=budget, method="law", law=law_name, convention=convention,
        allocation={**best.to_dict(), "flops_per_token": 6 * best.active_params,
                    "realised_active_params": counts.params_active,
                    "realised_total_params": counts.params},
        architecture=arch, counts=counts, predicted_loss=best.loss,
        predicted_loss_ci=_loss_ci(fit_result, best),
        learning_rate=_joint_lr(best.active_params, best.experts),
        batch_size_tokens=None,
        near_optimal_band=_band_over_experts(allocs, best),
        alternatives=[a.to_dict() for a in sorted(allocs, key=lambda a: a.loss)[1:top + 1]],
        binding_constraint=best.binding_constraint,
        assumptions=[
            f"Law {law_name} ({'fit ' + fit if fit else 'preset ' + (preset or 'default')}), "
            f"training compute 6·N_act·D ({convention} convention, embeddings included).",
            "Architecture: the joint-MoE paper's family (d multiple of 64, d/64 blocks and heads, "
            "SwiGLU 3·d, top-1 routing, GPT-2 vocabulary 50257).",
            "Memory-constrained optima are truncated at the compute-optimal point.",
        ],
    )


def _allocate(loss, budget: Budget, experts: int) -> al.Allocation:
    if budget.inference_tokens:
        return al.inference_aware(loss, budget.compute, experts, budget.inference_tokens)
    if budget.memory_bytes is not None:
        return al.memory_constrained(loss, budget.compute, experts, budget.memory_bytes,
                                     dtype_bytes(budget.dtype), budget.kv_tokens)
    return al.compute_optimal(loss, budget.compute, experts)


def _band_over_experts(allocs: list[al.Allocation], best: al.Allocation,
                       tolerance: float = 0.001) -> dict[str, Any]:
    near = [a for a in allocs if a.loss <= best.loss * (1 + tolerance)]
    return {"tolerance": tolerance, "candidates": len(near),
            "experts": [min(a.experts for a in near), max(a.experts for a in near)],
            "active_params": [min(a.active_params for a in near), max(a.active_params for a in near)]}


def _joint_lr(active_params: float, experts: int) -> float:
    """Ludziejewski et al. 2025 learning rate ``exp(8.39 − 0.81·ln N_act − 0.25·ln E)``."""
    from moescale.laws import ludziejewski2025

    return float(ludziejewski2025.learning_rate(active_params, experts))


def _loss_ci(fit_result, best: al.Allocation) -> tuple[float, float] | None:
    if fit_result is None or not getattr(fit_result, "bootstrap_params", None):
        return None
    lo, hi = fit_result.predict_interval(N=best.active_params, N_active=best.active_params,
                                         D=best.tokens, E=best.experts)
    return float(lo), float(hi)
