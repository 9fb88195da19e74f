"""Plans driven by a loss law (``--method law``): the realisable member of the joint-MoE family
(:mod:`planning.family`) with the lowest predicted loss under every budget, per number of
experts, then the best over experts.

Per ``E`` the law's continuous optimum (compute-optimal, or inference-aware
``6·N·D + 2·N·D_inf = C``; Ludziejewski et al. 2025, arXiv:2502.05172) locates the window;
every aligned member in it is
counted exactly, trained on the tokens its budget leaves, ``D = (C − 2·N_act·D_inf)/(6·N_act)``,
and filtered by memory (weights + KV cache, exact, strictly). The member with the lowest loss
wins — memory-bound optima are thereby truncated at the compute-optimal point, and when the
embeddings alone exceed the continuous optimum (small budgets, large vocabularies) the plan is
re-solved over what is realisable and says so. A number of experts that cannot satisfy the
budget is skipped and reported; the plan fails only when none can.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from moescale.accounting.counting import count
from moescale.errors import MoescaleError
from moescale.planning import allocation as al
from moescale.planning import family as fam
from moescale.planning import training_values as tv
from moescale.planning.plan import Budget, Plan, check_realised, realised_numbers, with_warnings
from moescale.units import dtype_bytes

# Their training setup (Appendix E): batch ramped 64K → 128K → 256K tokens; a plan trains at
# the final batch up to the paper's largest run (the paper fits no batch-size law) and beyond it
# grows as C^0.263, the batch law of the holistic paper's Table 4 (an MoE batch law fitted at
# 1e18–3e20 FLOPs), so the step count does not grow without bound.
JOINT_BATCH_TOKENS = 262_144
# The largest run of Appendix E (shared/data/joint_moe_appendixE_run_grid_NO_LOSS.csv):
# 6·N_act·D = 6 × 1.103e9 × 80e9; the most optimizer steps any run took, 80e9 / 262,144.
JOINT_MAX_COMPUTE = 5.295e20
JOINT_MAX_STEPS = 305_176


def loss_function(law: str | None, preset: str | None = None, fit=None):
    """``(loss(N_act, D, E), law name, convention, fit result or None)`` for a preset or a fit
    (a :class:`~moescale.fitting.FitResult` or the path of a saved one)."""
    from moescale import laws

    if fit and law:
        raise MoescaleError("give either `law` (with `preset`) or `fit`, not both: a fit "
                            "already names its law")
    if preset and not law:
        raise MoescaleError("`preset` selects coefficients of `law`; give `law` too")
    if fit:
        from moescale.fitting import FitResult

        result = FitResult.coerce(fit)
        law_obj, params, law = laws.get_law(result.law), result.params, result.law
    else:
        law = law or "ludziejewski2025"
        law_obj = laws.get_law(law)
        if not law_obj.presets:
            raise MoescaleError(f"law {law!r} has no published coefficients; fit it first and "
                                "give the fit as `fit`")
        params, result = law_obj.preset(preset or next(iter(law_obj.presets))).values, None
    if not law_obj.allocates:
        usable = ", ".join(n for n in laws.LAWS if laws.get_law(n).allocates)
        raise MoescaleError(f"law {law!r} cannot drive a continuous allocation; use one of "
                            f"{usable} (or `method` holistic)")
    names = law_obj.variables

    def loss(n, d, e):
        values = {"N": n, "N_active": n, "D": d, "E": np.asarray(e, dtype=float)}
        with np.errstate(all="ignore"):
            return law_obj.predict(params, {k: np.asarray(values[k], dtype=float) for k in names})

    loss.has_experts = "E" in names
    return loss, law, law_obj.convention, result


def plan_with_law(budget: Budget, law: str | None = None, preset: str | None = None,
                  fit=None, experts: Sequence[int] = (1, 2, 4, 8, 16, 32),
                  top: int = 5, family: fam.FamilySettings | None = None) -> Plan:
    """Best realisable member over ``experts`` under every budget, as a complete plan."""
    s = family or fam.FamilySettings()
    loss, law_name, convention, fit_result = loss_function(law, preset, fit)
    if not loss.has_experts:
        experts = (1,)
    options, skipped = [], []
    for e in dict.fromkeys(experts):
        try:
            options.append(_best_member(loss, budget, int(e), s))
        except MoescaleError as exc:
            skipped.append({"experts": int(e), "reason": str(exc)})
    if not options:
        raise MoescaleError("no number of experts satisfies the budget: "
                            + "; ".join(f"E={k['experts']}: {k['reason']}" for k in skipped))
    best = min(options, key=lambda o: o["loss"])
    notes: list[str] = list(best.pop("notes"))
    arch, counts = best.pop("architecture"), best.pop("counts")
    n_act, tokens, e = best["active_params"], best["tokens"], best["experts"]
    extrap = _extrapolations(n_act, tokens, e, law_name, fit_result)
    predicted = tv.cap_loss(best["loss"], s.vocab_size, notes)
    non_emb = n_act - 2.0 * s.vocab_size * arch.hidden_size
    lr = tv.clip_lr(float(_joint_lr(non_emb, e)), notes, "the joint-MoE LR law (Eq. 8)")
    seqs = tv.batch_sequences(joint_batch_tokens(budget.compute), s.seq_len, tokens)
    # a fit's own range is warned of by with_warnings; a preset's range here
    warnings = ((tv.describe(extrap) if fit_result is None else [])
                + _edge_warnings(options, e, experts) + _step_warnings(tokens, seqs * s.seq_len))
    plan = Plan(
        budget=budget, method="law", law=law_name, convention=convention,
        allocation={**{k: v for k, v in best.items() if not k.startswith("_")},
                    "flops_per_token": 6 * n_act, "training_compute": 6 * n_act * tokens,
                    "realised_active_params": n_act, "realised_total_params": counts.params,
                    "active_params_non_embedding": non_emb},
        architecture=arch, counts=counts, predicted_loss=predicted,
        predicted_loss_ci=_loss_ci(fit_result, n_act, tokens, e),
        learning_rate=lr, batch_size_tokens=float(seqs * s.seq_len), batch_size_sequences=seqs,
        near_optimal_band=_band_over_experts(options, best),
        alternatives=[_public(o, s.vocab_size) for o in sorted(options, key=lambda o: o["loss"])
                      if o["experts"] != e][:top],
        binding_constraint=best["binding_constraint"],
        assumptions=_assumptions(law_name, fit_result, preset, convention, s) + notes,
        realised=realised_numbers(budget, counts, 6 * n_act, tokens, 2 * n_act, convention),
        extrapolation=extrap, skipped=skipped, warnings=warnings,
    )
    check_realised(plan)
    return with_warnings(plan, [fit_result])


def joint_batch_tokens(compute: float) -> float:
    """Batch in tokens: the joint-MoE paper's 256K up to its largest run
    (:data:`JOINT_MAX_COMPUTE`), beyond it ``256K·(C/C_max)^0.263`` (holistic Table 4's
    exponent)."""
    from moescale.laws import holistic2026

    growth = max(compute / JOINT_MAX_COMPUTE, 1.0) ** holistic2026.exponents()["batch"]
    return JOINT_BATCH_TOKENS * growth


def _edge_warnings(options: list[dict], best: int, searched: Sequence[int]) -> list[str]:
    """A warning when the best number of experts is the largest (or smallest) candidate
    searched: the optimum may lie beyond the candidates."""
    feasible = sorted(o["experts"] for o in options)
    if len(feasible) < 2:
        return []
    if best == max(searched):
        return [f"E = {best} is the largest number of experts searched ({', '.join(map(str, feasible))}): "
                "the law's optimum may lie beyond it (the joint-MoE paper's Table 2 reports such "
                "cells as ≥ 32); widen `experts` to see how far."]
    if best == min(searched) and best > 1:
        return [f"E = {best} is the smallest number of experts searched: the optimum may lie "
                "below it; widen `experts`."]
    return []


def _step_warnings(tokens: float, batch_tokens: float) -> list[str]:
    """A warning when the plan takes more optimizer steps than any run of the joint-MoE paper."""
    steps = tokens / batch_tokens
    if steps <= JOINT_MAX_STEPS:
        return []
    return [f"{steps:,.0f} optimizer steps ({tokens:.3g} tokens at a batch of {batch_tokens:,.0f}) "
            f"is {steps / JOINT_MAX_STEPS:.1f}× the most any joint-MoE run took "
            f"({JOINT_MAX_STEPS:,}): the law, LR and batch were never tested at this length."]


def _best_member(loss, budget: Budget, e: int, s: fam.FamilySettings) -> dict[str, Any]:
    """The lowest-loss realisable member with ``e`` experts (raises when none satisfies)."""
    target = _continuous(loss, budget, e)
    d_max = 4 * fam.continuous_hidden(target.active_params, s.vocab_size) + 4 * s.align
    m = fam.members(s, e, d_max)
    serve = 2.0 * m.active * budget.inference_tokens
    tokens = np.floor((budget.compute - serve) / (6.0 * m.active))
    valid = tokens >= s.seq_len
    if not valid.any():
        smallest = float(m.active[0]) if m.active.size else float("nan")
        raise MoescaleError(
            f"the smallest realisable model (d = {int(m.hidden[0]) if m.hidden.size else 8}, "
            f"N_act = {smallest:.3g} with a "
            f"{s.vocab_size}-token vocabulary) leaves less than one sequence of training tokens; "
            "raise `compute` or lower `vocab` / `inference_tokens`")
    losses = np.where(valid, loss(m.active, np.maximum(tokens, 1.0), e), np.inf)
    free = int(np.argmin(losses))
    binding = "inference" if budget.inference_tokens else "compute"
    if budget.memory_bytes is not None:
        per = dtype_bytes(budget.dtype)
        used = m.total * per + m.kv_per_token * budget.kv_tokens * per
        fits = valid & (used <= budget.memory_bytes)
        if not fits.any():
            raise MoescaleError(
                f"memory budget {budget.memory_bytes / 1e9:.3g} GB cannot hold even the smallest "
                f"model with E={e} ({float(used[valid].min()) / 1e9:.3g} GB, embeddings "
                f"{2 * s.vocab_size * int(m.hidden[valid][0]) * per / 1e9:.3g} GB)")
        losses = np.where(fits, losses, np.inf)
        binding = binding if fits[free] else "memory"
    i = int(np.argmin(losses))
    arch = fam.architecture(m, i, e, s)
    counts = count(arch, "chinchilla", inference_context=budget.kv_tokens or None)
    if counts.params_active != m.active[i] or counts.total_params != m.total[i] \
            or not budget.fits(counts):
        raise AssertionError(f"family counts differ from count() for {arch}")
    notes = []
    if i == 0 and target.active_params < m.active[0]:
        notes.append(f"Re-solved over realisable models: the law's optimum N_act = "
                     f"{target.active_params:.3g} (E={e}) is below the smallest model of the "
                     f"family (d = {int(m.hidden[0])}: {m.active[0]:.3g} with embeddings "
                     f"2·d·V = {2 * s.vocab_size * int(m.hidden[0]):.3g}); planned the realisable "
                     "model with the lowest predicted loss.")
    return {"experts": e, "active_params": float(m.active[i]), "total_params": float(counts.params),
            "tokens": int(tokens[i]), "loss": float(losses[i]), "binding_constraint": binding,
            "hidden_size": int(m.hidden[i]), "n_layers": int(m.layers[i]),
            "active_params_target": target.active_params, "tokens_target": target.tokens,
            "architecture": arch, "counts": counts, "notes": notes}


def _continuous(loss, budget: Budget, e: int) -> al.Allocation:
    """The law's continuous optimum over ``N_act`` (locates the window of members):
    compute-optimal, or inference-aware ``6·N·D + 2·N·D_inf = C``."""
    c, d_inf = budget.compute, budget.inference_tokens
    hi = c / 6.0 if not d_inf else min(c / 6.0, c / (2.0 * d_inf) * (1 - 1e-9))

    def tokens(n):
        return (c - 2.0 * n * d_inf) / (6.0 * n)

    if hi <= 10.0:
        raise MoescaleError(f"serving {d_inf:.3g} tokens leaves no compute for training; "
                            "raise `compute` or lower `inference_tokens`")
    n = al.argmin_log(lambda n: loss(n, tokens(n), e), 10.0, hi)
    return al.Allocation(experts=e, active_params=n, total_params=float("nan"),
                         tokens=tokens(n), loss=float(loss(n, tokens(n), e)),
                         training_compute=6 * n * tokens(n),
                         binding_constraint="inference" if d_inf else "compute")


def _public(o: dict[str, Any], vocab: int) -> dict[str, Any]:
    out = {k: v for k, v in o.items() if k not in ("architecture", "counts", "notes")}
    return {**out, "loss": min(out["loss"], math.log(vocab))}


def _band_over_experts(options: list[dict], best: dict, tolerance: float = 0.001) -> dict[str, Any]:
    """The numbers of experts (and their best sizes) whose loss is within ``tolerance`` of the
    best; a band of one candidate says why (``reason``)."""
    near = [o for o in options if o["loss"] <= best["loss"] * (1 + tolerance)]
    band = {"tolerance": tolerance, "candidates": len(near),
            "experts": [min(o["experts"] for o in near), max(o["experts"] for o in near)],
            "active_params": [min(o["active_params"] for o in near),
                              max(o["active_params"] for o in near)]}
    if len(near) == 1:
        if len(options) == 1:
            band["reason"] = "only one number of experts was considered (or satisfied the budget)"
        else:
            runner = min((o for o in options if o is not best), key=lambda o: o["loss"])
            band["reason"] = (f"the next best number of experts (E = {runner['experts']}) is "
                              f"{100 * (runner['loss'] / best['loss'] - 1):.2f} % worse, beyond "
                              f"the {100 * tolerance:g} % tolerance")
    return band


def _joint_lr(active_params_non_embedding: float, experts: int) -> float:
    """Ludziejewski et al. 2025 Eq. 8, ``exp(8.39 − 0.81·ln N_act − 0.25·ln E)``, with ``N_act``
    the *non-embedding* active parameters (the paper's convention for this law)."""
    from moescale.laws import ludziejewski2025

    return float(ludziejewski2025.learning_rate(max(active_params_non_embedding, 1.0), experts))


def _loss_ci(fit_result, n: float, d: float, e: int) -> tuple[float, float] | None:
    if fit_result is None or not getattr(fit_result, "bootstrap_params", None):
        return None
    lo, hi = fit_result.predict_interval(N=n, N_active=n, D=d, E=e)
    return float(lo), float(hi)


def _extrapolations(n: float, d: float, e: int, law: str, fit_result) -> list[dict]:
    """Where the plan lies outside the runs its law was fitted on: the joint-MoE paper's run
    grid for its preset, the fitted range recorded in a fit (N_act, D, E and C = 6·N·D)."""
    if fit_result is not None:
        ranges = fit_result.data.get("ranges") or {}
        values = {"N": n, "N_active": n, "N_a": n, "D": d, "E": e, "C": 6.0 * n * d}
        name = fit_result.describe()
        out = [tv.extrapolation(k, values[k], lo, hi, law=name)
               for k, (lo, hi) in ranges.items() if k in values and lo and hi]
        return [x for x in out if x]
    if law != "ludziejewski2025":
        return []
    from moescale.laws.ludziejewski2025 import RUNS

    name = law + " (Appendix E run grid)"
    out = [tv.extrapolation("N_act", n, *RUNS["N_active"], law=name),
           tv.extrapolation("D", d, *RUNS["D"], law=name),
           tv.extrapolation("E", e, *RUNS["E"], law=name)]
    return [x for x in out if x]


def _assumptions(law: str, fit, preset: str | None, convention: str,
                 s: fam.FamilySettings) -> list[str]:
    fit_name = (fit.data.get("saved_as") and "fit " + fit.data["saved_as"]) or fit.describe() \
        if fit is not None else None
    lines = [
        f"Law {law} ({fit_name or 'preset ' + (preset or 'default')}), training "
        f"compute 6·N_act·D ({convention} convention, embeddings included); the realised "
        "compute lies within 0.1 % below the budget, memory is the exact weights (+ KV cache).",
        f"Architecture: the joint-MoE paper's family (d on a grid whose step is a power of "
        f"two of at most d/8 and {s.align}, round(d/64) "
        f"blocks, heads of {s.head_dim if not s.n_heads else 'd/' + str(s.n_heads)}, SwiGLU "
        f"3·d, top-1 routing, vocabulary {s.vocab_size}, sequence length {s.seq_len}).",
        "Memory-constrained optima are truncated at the compute-optimal point.",
        "Learning rate: joint-MoE Eq. 8 applied to the non-embedding active parameters.",
        *([] if fit is not None else [
            "Predicted loss: published coefficients carry no interval (the paper gives none); "
            "fit the law to your runs with `bootstrap` for one."]),
        f"Batch: {JOINT_BATCH_TOKENS} tokens up to the paper's largest run "
        f"(C = {JOINT_MAX_COMPUTE:.3g}), the joint-MoE paper's own setup (the final batch of its "
        "64K → 128K → 256K ramp; it fits no batch-size law); beyond it 256K·(C/C_max)^0.263, "
        "the holistic paper's Table 4 batch law, as whole sequences.",
    ]
    return lines
