"""The holistic planner (Wan et al. 2026, arXiv 2603.21862): from a budget to a ranked architecture.

``C → (M_opt, D_opt)`` from the paper's classical law; target ratios ``M/N_a(C)`` and
``N/N_a(C)`` from the values the paper used (or the user's fits); every aligned candidate near
them is enumerated (:func:`holistic.enumerate_candidates`), filtered by the memory budget with
exact counts (:mod:`planning.exact`, equal to :func:`count`), ranked by the surrogate; the
absolute loss comes from ``loss_law`` at the chosen candidate.

Outside the paper's budgets (1e18–3e20 FLOPs) the targets are extrapolated and the plan says
so: ``M/N_a`` beyond 3e20 continues as ``6 + k·C^p`` (a power law in the attention share
``M/N_a − 6`` fitted to the paper's values, so it approaches the realisable edge ``M/N_a → 6``
without crossing it); ``N/N_a`` follows its power law but stays at most 90 % of the way to its
edge ``(N_e+n_s)/(K+n_s)``. When no structure realises the targets (micro budgets, frontier
budgets beyond ``max_layers``, few experts) the search spans every realisable ratio and the
surrogate picks the structure nearest the targets — the edge of the realisable region.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from moescale.accounting.counting import count
from moescale.errors import MoescaleError
from moescale.laws import holistic2026 as h26
from moescale.planning import exact
from moescale.planning import holistic as hs
from moescale.planning import training_values as tv
from moescale.planning.plan import Budget, Plan, check_realised, realised_numbers
from moescale.units import dtype_bytes

PAPER_BUDGETS = (1e18, 3e20)  # the holistic paper's fitted range of C
PAPER_SEQ_LEN = 8192  # S of every run in the paper
WIDE_SEARCH_EXCESS = 0.01  # search every realisable ratio when the best near the targets is worse
# Frontier shapes (beyond 3e20): d/L nearest 128 inside the near-optimal band, never above 256
# (Kaplan et al. 2020 Fig. 5; open MoE models 44–128; see _frontier_shape_first).
ASPECT_TARGET = 128.0
ASPECT_MAX = 256.0
ASPECT_SLACK = 1.1  # d/L within 10 % of the target counts as on target
_U = h26.M_OVER_NA - 6.0
_P_U = float(np.polyfit(np.log(h26.BUDGETS), np.log(_U), 1)[0])  # ≈ −0.140


@dataclass(frozen=True)
class Targets:
    """Per-budget targets of the holistic pipeline: ``C → (M_opt, D_opt)``, optimal ``M/N_a``
    and ``N/N_a``. Defaults are the paper's laws (arXiv 2603.21862); :meth:`from_fits` replaces any
    of them with the user's own fits (``moescale fit --law holistic2026`` for ``D_opt(C)``,
    ``--law power_law_C`` for each ratio)."""

    flops_per_token: Callable = h26.optimal_flops_per_token
    tokens: Callable = h26.optimal_tokens
    m_over_na: Callable = h26.optimal_M_over_Na
    n_over_na: Callable = h26.optimal_N_over_Na
    sources: tuple[str, ...] = ()
    fitted_ratios: bool = False

    @classmethod
    def from_fits(cls, tokens_fit: str | None = None, m_ratio_fit: str | None = None,
                  n_ratio_fit: str | None = None) -> Targets:
        """Targets with the given fit files (``None`` keeps the paper's law)."""
        from moescale.fitting import FitResult

        def load(path, law, what):  # a FitResult or the path of a saved one
            res = FitResult.coerce(path)
            if res.law != law:
                raise MoescaleError(f"{res.data.get('saved_as', 'the fit')} fits {res.law!r}; "
                                    f"{what} needs a fit of {law!r}")
            return lambda c: res.predict(C=c, warn=False)  # the plan reports its range

        t: dict[str, Any] = {}
        if tokens_fit:
            tokens = load(tokens_fit, "holistic2026", "`fit` with `method` holistic")
            t.update(tokens=tokens, flops_per_token=lambda c: np.asarray(c) / tokens(c))
        if m_ratio_fit:
            t["m_over_na"] = load(m_ratio_fit, "power_law_C", "`m_ratio_fit`")
        if n_ratio_fit:
            t["n_over_na"] = load(n_ratio_fit, "power_law_C", "`n_ratio_fit`")
        used = tuple(f if isinstance(f, str) else FitResult.coerce(f).describe()
                     for f in (tokens_fit, m_ratio_fit, n_ratio_fit) if f)
        return cls(**t, sources=used, fitted_ratios=bool(m_ratio_fit or n_ratio_fit))

    def ratios(self, compute: float, s: hs.HolisticSettings, notes: list[str]) -> tuple[float, float]:
        """Target ``(M/N_a, N/N_a)`` at ``compute``, extrapolated to the realisable region."""
        x, y = float(self.m_over_na(compute)), float(self.n_over_na(compute))
        inside = PAPER_BUDGETS[0] * (1 - 1e-9) <= compute <= PAPER_BUDGETS[1] * (1 + 1e-9)
        if inside and self.m_over_na is h26.optimal_M_over_Na:
            x = paper_value(compute, h26.M_OVER_NA)
        if inside and self.n_over_na is h26.optimal_N_over_Na:
            y = paper_value(compute, h26.N_OVER_NA)
        if self.fitted_ratios:
            if not (x > 6 and 1 < y < s.ratio_max):
                raise MoescaleError(
                    f"targets M/N_a = {x:.3g}, N/N_a = {y:.3g} at C = {compute:.3g} are outside "
                    "what any MoE can realise (M/N_a > 6, 1 < N/N_a < (N_e+1)/(K+1)); check "
                    "the ratio fits")
            return x, y
        if self.m_over_na is h26.optimal_M_over_Na and compute > PAPER_BUDGETS[1]:
            edge = PAPER_BUDGETS[1]
            x = 6.0 + (float(self.m_over_na(edge)) - 6.0) * (compute / edge) ** _P_U
            notes.append(f"M/N_a beyond the paper's budgets: 6 + (M/N_a(3e20) − 6)·(C/3e20)^"
                         f"{_P_U:.3f} = {x:.4g} (the attention share's power law through the "
                         "paper's values, approaching the realisable edge M/N_a → 6).")
        if s.seq_len != PAPER_SEQ_LEN:
            x = 6.0 + (x - 6.0) * s.seq_len / PAPER_SEQ_LEN
            notes.append(f"M/N_a target scaled to S = {s.seq_len}: the attention-score share "
                         f"M/N_a − 6 = 6·S·N_q·d_qkv·L/N_a grows with S, so the paper's value "
                         f"(S = {PAPER_SEQ_LEN}) is multiplied by S/{PAPER_SEQ_LEN} → {x:.4g}.")
        y_edge = 1.0 + 0.9 * (s.ratio_max - 1.0)
        if y > y_edge:
            notes.append(f"N/N_a target {y:.4g} lies beyond the realisable edge for N_e = "
                         f"{s.n_experts}, K = {s.top_k} ((N_e+n_s)/(K+n_s) = {s.ratio_max:.4g}); "
                         f"planned at the edge, {y_edge:.4g} (90 % of the way).")
            y = y_edge
        return x, y


def paper_value(compute: float, values: np.ndarray) -> float:
    """The paper's per-budget value at ``compute`` inside its budgets: the values themselves at
    1e18 … 3e20, straight lines in ``(log C, log value)`` between them (so a plan at one of the
    paper's budgets uses exactly the paper's ratio there, not the power law's smoothed one)."""
    return float(np.exp(np.interp(np.log(compute), np.log(h26.BUDGETS), np.log(values))))


def landscape_scale(compute: float, x: float, y: float, t: Targets, s: hs.HolisticSettings) -> float:
    """``s = ρ(C)/ρ(1e18)``, ``ρ = (L − ε)/L`` of zhao2025 at the targets (holistic docstring)."""
    from moescale.laws import zhao2025

    s0 = dataclasses.replace(s, seq_len=PAPER_SEQ_LEN)

    def rho(c, x_c, y_c):
        n_a = float(t.flops_per_token(c)) / x_c
        g = s.top_k + s.n_shared_experts
        loss = float(zhao2025.loss(N=y_c * n_a, N_a=n_a, D=float(t.tokens(c)), G=g,
                                   S=s.n_shared_experts / g))
        return (loss - zhao2025.TABLE2["eps"]) / loss

    c0 = hs.CALIBRATION_BUDGET
    return rho(compute, x, y) / rho(c0, *Targets().ratios(c0, s0, []))


def plan_holistic(budget: Budget, settings: hs.HolisticSettings | None = None, top: int = 5,
                  loss_law: str = "zhao2025", targets: Targets | None = None) -> Plan:
    """Plan with the holistic paper's pipeline (module docstring) and rank every candidate."""
    s, t = settings or hs.HolisticSettings(), targets or Targets()
    notes: list[str] = []
    c_train, binding = _training_compute(budget, t)
    m_opt, d_opt = float(t.flops_per_token(c_train)), float(t.tokens(c_train))
    x_t, y_t = t.ratios(c_train, s, notes)
    scale = landscape_scale(c_train, x_t, y_t, t, s)
    cands = _search(m_opt, x_t, y_t, s, c_train, scale, notes)
    cands, binding, fits = _apply_memory(cands, budget, s, binding)
    if is_frontier(c_train, s):
        order = _frontier_shape_first(cands, fits, s, notes)
    else:
        order = _paper_depth_first(cands, fits, m_opt, x_t, s, notes)
    arch, counts, best = None, None, -1
    for i in order[fits[order]]:  # exact re-check with count(); the first one holds
        arch = hs.to_architecture(cands, int(i), s, name=f"moescale-holistic-C{c_train:.0e}")
        counts = count(arch, "holistic", inference_context=budget.kv_tokens or None)
        if budget.fits(counts):
            best = int(i)
            break
    if best < 0:
        raise MoescaleError("no candidate fits the memory budget; raise `memory_bytes`")
    r = counts.ratios
    tokens = math.floor((budget.compute - 2.0 * r["N_a"] * budget.inference_tokens) / r["M"])
    if tokens < s.seq_len:
        raise MoescaleError(f"the budget leaves {max(tokens, 0)} training tokens for the planned "
                            f"model, less than one sequence of {s.seq_len}; raise `compute` or "
                            "lower `inference_tokens` / `seq_len`")
    extrap = _extrapolations(c_train, r, tokens)
    base_loss = _law_loss(loss_law, arch, tokens)
    loss = tv.cap_loss(None if base_loss is None else base_loss * (1 + float(cands.excess[best])),
                       s.vocab_size, notes)
    lr = tv.clip_lr(table4_value(c_train, h26.LR, h26.learning_rate), notes,
                    "the holistic LR (Table 4)")
    seqs = tv.batch_sequences(table4_value(c_train, h26.BATCH_SEQUENCES, h26.batch_sequences)
                              * PAPER_SEQ_LEN, s.seq_len, tokens)
    band = hs.near_optimal_band(cands.take(np.flatnonzero(fits)), s)
    warnings = tv.describe(extrap)
    if cands.excess[best] > cands.excess[fits].min() + s.tolerance:
        warnings.append(f"The plan lies outside its near-optimal band: its predicted loss is "
                        f"{100 * (cands.excess[best] - cands.excess[fits].min()):.2g} % above "
                        "the band's best (see the notes for why).")
    by_excess = np.argsort(cands.excess, kind="stable")
    ranked = [int(i) for i in _distinct_triads(cands, by_excess[fits[by_excess]]) if i != best]
    alts = [_alternative(cands, i, s, budget, base_loss) for i in ranked[:top]]
    plan = Plan(
        budget=budget, method="holistic", law="holistic2026", convention="holistic",
        allocation={
            "training_compute": r["M"] * tokens,
            "flops_per_token_target": m_opt, "tokens_target": d_opt,
            "flops_per_token": r["M"], "tokens": tokens,
            "active_params": r["N_a"], "total_params": r["N"],
            "experts": s.n_experts, "top_k": s.top_k, "shared_experts": s.n_shared_experts,
            "G": arch.activated_experts, "S": arch.shared_ratio,
            "M_over_Na_target": x_t, "N_over_Na_target": y_t,
            "M_over_Na": r["M_over_Na"], "N_over_Na": r["N_over_Na"],
            "width_ratio": float(cands.width_ratio(s)[best]),
            "median_feasible_hidden_size": float(cands.median_d[best]),
            "landscape_scale": scale,
            "candidates_enumerated": len(cands),
        },
        architecture=arch, counts=counts, predicted_loss=loss, predicted_loss_ci=None,
        learning_rate=lr, batch_size_tokens=float(seqs * s.seq_len), batch_size_sequences=seqs,
        near_optimal_band=band,
        alternatives=alts, binding_constraint=binding,
        assumptions=_assumptions(s, loss_law, t.sources, cands.heads(best),
                                 is_frontier(c_train, s)) + notes,
        realised=realised_numbers(budget, counts, r["M"], tokens, 2.0 * r["N_a"], "holistic"),
        extrapolation=extrap, warnings=warnings,
    )
    check_realised(plan)
    return plan


def _search(m_opt: float, x_t: float, y_t: float, s: hs.HolisticSettings, c_train: float,
            scale: float, notes: list[str]) -> hs.Candidates:
    """Candidates near the targets (each with the widest ladder shape that fits its ``d``),
    else anywhere in the realisable region (the surrogate then picks the nearest)."""
    ladder, frontier = search_shapes(c_train, s)
    near = None
    try:
        near = hs.enumerate_candidates(m_opt, x_t, y_t, s, ladder, scale, every_shape=frontier)
        if near.excess.min() <= WIDE_SEARCH_EXCESS:
            return near
    except MoescaleError:
        pass
    try:
        cands = hs.enumerate_candidates(m_opt, x_t, y_t, s, ladder, scale, wide=True,
                                        every_shape=frontier)
        if near is not None and near.excess.min() <= cands.excess.min():
            return near
    except MoescaleError:
        if near is not None:
            return near
        raise MoescaleError(
            f"no feasible architecture for M = {m_opt:.4g} FLOPs/token: the compute budget is "
            f"too small for one layer at sequence length {s.seq_len} even with "
            f"{ladder[-1][1]} heads of {ladder[-1][0]} (raise the compute or lower the "
            "sequence length)") from None
    best = int(np.argmin(cands.excess))
    depth = paper_depth(m_opt, x_t, s, cands.heads(best))
    why = (f"the targets' depth with {cands.heads(best)[1]} heads of {cands.heads(best)[0]} is "
           f"L = {depth}, beyond the {s.max_layers}-layer limit" if depth > s.max_layers else
           f"no aligned d solves the structure there (L_d ≥ {s.min_dense_layers}, expert width ≥ "
           f"{s.align}, realised M within 5 %)")
    notes.append(f"No structure realises the targets M/N_a = {x_t:.4g}, N/N_a = {y_t:.4g} at "
                 f"M = {m_opt:.4g} FLOPs/token: {why}; planned at the nearest realisable ratios "
                 f"({cands.M_over_Na[best]:.4g}, {cands.N_over_Na[best]:.4g}), the edge of the "
                 "realisable region.")
    return cands


def search_shapes(compute: float, s: hs.HolisticSettings) -> tuple[list, bool]:
    """``(head shapes, every_shape)`` the search enumerates at ``compute``: every frontier
    shape beyond the paper's budgets, else Table 4's ladder (the first shape that fits)."""
    if is_frontier(compute, s):
        return hs.frontier_head_shapes(), True
    return s.head_ladder(compute), False


def is_frontier(compute: float, s: hs.HolisticSettings) -> bool:
    """Whether ``compute`` lies beyond the paper's budgets with the default head rule, where
    the frontier shape rule applies (:func:`_frontier_shape_first`)."""
    return compute > PAPER_BUDGETS[1] * (1 + 1e-9) and s.heads is None


def table4_value(compute: float, values: np.ndarray, law: Callable) -> float:
    """Table 4's value at one of its six budgets (the paper's LR or batch exactly, as the
    ratios use the paper's values), else the power law fitted through the table."""
    at = np.flatnonzero(np.isclose(h26.BUDGETS, compute, rtol=1e-9, atol=0))
    return float(values[at[0]]) if at.size else float(law(compute))


def paper_depth(m_opt: float, x_t: float, s: hs.HolisticSettings, heads) -> int:
    """``L`` of the paper's closed-form pipeline: ``M = 6·N_a + 6·S·N_q·d_qkv·L`` at the
    targets ``M_opt`` and ``N_a = M_opt/(M/N_a)`` (arXiv 2603.21862, Appendix A), rounded."""
    dq, nq, _ = heads
    return max(1, int(np.rint((m_opt - 6.0 * m_opt / x_t) / (6.0 * s.seq_len * nq * dq))))


def _paper_depth_first(c: hs.Candidates, fits: np.ndarray, m_opt: float, x_t: float,
                       s: hs.HolisticSettings, notes: list[str]) -> np.ndarray:
    """Candidates ranked by the surrogate, except that those with the paper's depth
    (:func:`paper_depth`) come first when one of them is near-optimal (within ``tolerance`` of
    the best that fits): the paper's pipeline fixes ``L`` from the targets, and the surrogate
    cannot tell near-optimal depths apart (their excesses differ by a few 0.001 %)."""
    order = np.argsort(c.excess, kind="stable")
    order = order[fits[order]]
    if order.size == 0:
        return order
    depth = paper_depth(m_opt, x_t, s, c.heads(int(order[0])))
    near = c.excess[order] <= c.excess[order[0]] + s.tolerance
    paper = (c.n_layers[order] == depth) & near
    if paper.any() and not paper[0]:
        notes.append(f"Depth: the paper's pipeline gives L = {depth} at the targets "
                     f"(M = 6·N_a + 6·S·N_q·d_qkv·L); the best structure of that depth is "
                     f"within {100 * s.tolerance:g} % of the surrogate's best and is planned.")
    return np.concatenate([order[paper], order[~paper]])


def _frontier_shape_first(c: hs.Candidates, fits: np.ndarray, s: hs.HolisticSettings,
                          notes: list[str]) -> np.ndarray:
    """Candidates ranked for budgets beyond the paper: inside the near-optimal band, the one
    whose aspect ratio ``d/L`` is nearest :data:`ASPECT_TARGET` (among those with
    ``d/L ≤`` :data:`ASPECT_MAX`) comes first; the rest follow by the surrogate.

    The rule and its source: Kaplan et al. 2020 (arXiv 2001.08361, Fig. 5) measure loss flat
    within a few per cent for ``d/L`` from about 10 to 200, and open MoE models sit at 44–128
    (Qwen3-235B 44, DeepSeek-V3 and Kimi K2 117, Mixtral 128); the paper's own largest plan
    (3e20) has 117. Since the surrogate cannot tell near-optimal shapes apart, fixing ``d/L``
    makes depth grow with the budget (``L ∝ N_a^{1/3}``) instead of following accidents of
    alignment — at most to the layer limit, after which ``d/L`` grows up to ``ASPECT_MAX``.
    """
    order = np.argsort(c.excess, kind="stable")
    order = order[fits[order]]
    if order.size == 0:
        return order
    aspect = c.hidden[order] / c.n_layers[order]
    sane = aspect <= ASPECT_MAX
    near = c.excess[order] <= c.excess[order[0]] + s.tolerance
    pref = near & sane
    if not pref.any():
        if sane.any():
            i = int(order[sane][0])
            notes.append(f"The near-optimal band holds no shape with d/L ≤ {ASPECT_MAX}; planned "
                         f"the best that has one (d = {c.hidden[i]}, L = {c.n_layers[i]}), "
                         f"{100 * (c.excess[i] - c.excess[order[0]]):.2g} % above the band's best.")
            return np.concatenate([order[sane], order[~sane]])
        notes.append(f"No realisable shape has d/L ≤ {ASPECT_MAX} at this budget (layers ≤ "
                     f"{s.max_layers}); planned the surrogate's best.")
        return order
    # shapes within ASPECT_SLACK of the target count as equal; the surrogate ranks those
    distance = np.maximum(np.abs(np.log(aspect / ASPECT_TARGET)) - np.log(ASPECT_SLACK), 0.0)
    first = order[pref][np.argsort(distance[pref], kind="stable")]
    return np.concatenate([first, order[~pref]])


def _training_compute(budget: Budget, t: Targets) -> tuple[float, str]:
    """Training compute left after serving ``inference_tokens`` at ``2·N_a`` FLOPs each.

    N_a depends on the plan, so iterate ``C_train = C − 2·N_a(C_train)·D_inf`` to a fixed point
    (the realised plan then re-derives its tokens from its exact ``N_a``).
    """
    if not budget.inference_tokens:
        return budget.compute, "compute"
    c_train = budget.compute
    for _ in range(60):
        n_a = float(t.flops_per_token(c_train)) / float(t.m_over_na(c_train))
        nxt = budget.compute - 2.0 * n_a * budget.inference_tokens
        if nxt <= 0:
            c_train *= 0.5
            continue
        if abs(nxt - c_train) <= 1e-9 * budget.compute:
            break
        c_train = 0.5 * (c_train + nxt)
    if budget.compute - 2.0 * float(t.flops_per_token(c_train)) / float(t.m_over_na(c_train)) \
            * budget.inference_tokens <= 0.01 * budget.compute:
        raise MoescaleError(
            f"serving {budget.inference_tokens:.3g} tokens costs more than the whole compute "
            f"budget {budget.compute:.3g} FLOPs; raise `compute` or lower `inference_tokens`")
    return c_train, "inference"


def _apply_memory(c: hs.Candidates, budget: Budget, s: hs.HolisticSettings,
                  binding: str) -> tuple[hs.Candidates, str, np.ndarray]:
    """Mark candidates whose exact weights (+ KV cache) fit the memory budget.

    Returns the candidates (excess re-based on the best that fits when memory binds), the
    binding constraint and the mask of candidates that fit.
    """
    if budget.memory_bytes is None:
        return c, binding, np.ones(len(c), dtype=bool)
    per = dtype_bytes(budget.dtype)
    heads = (c.head_dim, c.n_heads, c.n_kv_heads)
    params = exact.total_params(c.hidden, c.n_layers, c.dense_layers,
                                s.dense_ffn_ratio * c.hidden, s.n_experts, c.expert_ffn,
                                s.n_shared_experts, heads, s.vocab_size)
    kv = exact.kv_cache_values(c.n_layers, heads, budget.kv_tokens)
    used = params * per + kv * per
    fits = used <= budget.memory_bytes
    if not fits.any():
        i = int(np.argmin(used))
        raise MoescaleError(
            f"memory budget {budget.memory_bytes / 1e9:.3g} GB is below the smallest candidate "
            f"({used[i] / 1e9:.3g} GB of weights and KV cache, embeddings alone "
            f"{2 * s.vocab_size * int(c.hidden[i]) * per / 1e9:.3g} GB); raise `memory_bytes` or "
            "lower `compute`")
    if fits[int(np.argmin(c.excess))]:
        return c, binding, fits
    shifted = dataclasses.replace(c, excess=c.excess - c.excess[fits].min())
    return shifted, "memory", fits


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


def _alternative(c: hs.Candidates, i: int, s: hs.HolisticSettings, budget: Budget,
                 base_loss: float | None) -> dict[str, Any]:
    arch = hs.to_architecture(c, i, s)
    tokens = (budget.compute - 2.0 * float(c.N_a[i]) * budget.inference_tokens) / float(c.M[i])
    return {
        "hidden_size": arch.hidden_size, "n_layers": arch.n_layers,
        "first_dense_layers": arch.first_dense_layers, "expert_ffn": arch.expert_ffn,
        "M_over_Na": float(c.M_over_Na[i]), "N_over_Na": float(c.N_over_Na[i]),
        "active_params": float(c.N_a[i]), "total_params": float(c.N[i]),
        "tokens": tokens,
        "relative_loss_excess": float(c.excess[i]),
        "predicted_loss": None if base_loss is None else
        min(base_loss * (1 + float(c.excess[i])), math.log(s.vocab_size)),
        "architecture": arch.to_dict(),
    }


def _law_loss(law: str, arch, tokens: float) -> float | None:
    """Absolute loss of ``arch`` trained on ``tokens`` under a preset law (None if unavailable)."""
    if law != "zhao2025":
        return None
    from moescale.laws import zhao2025

    r = count(arch, "holistic").ratios
    return float(zhao2025.loss(N=r["N"], N_a=r["N_a"], D=tokens, G=arch.activated_experts,
                               S=arch.shared_ratio))


def _extrapolations(c_train: float, r: dict[str, float], tokens: float) -> list[dict[str, Any]]:
    """Every law of the plan used outside the range of its paper's runs (the presets' ranges)."""
    from moescale.laws import zhao2025

    out = [tv.extrapolation("C", c_train, *PAPER_BUDGETS,
                            law="the holistic laws (D_opt, ratios, LR, batch)")]
    for name, value in (("N", r["N"]), ("N_a", r["N_a"]), ("D", tokens)):
        out.append(tv.extrapolation(name, value, *zhao2025.RUNS[name], law="zhao2025 (loss)"))
    return [e for e in out if e]


def _assumptions(s: hs.HolisticSettings, loss_law: str, fits: tuple[str, ...], heads,
                 frontier: bool) -> list[str]:
    dq, nq, nkv = heads
    frontier_lines = [
        f"Frontier shape (beyond the paper's 3e20): heads of {hs.FRONTIER_HEAD_DIM}, N_q a power "
        "of two with N_kv = N_q/2 and attention width between d and 2·d (open models span "
        f"1.0–2.0); inside the near-optimal band, d/L nearest {ASPECT_TARGET:g} and at most "
        f"{ASPECT_MAX:g} (Kaplan et al. 2020 Fig. 5: loss flat for d/L ≈ 10–200; DeepSeek-V3 "
        "117, Mixtral 128, Qwen3-235B 44), so depth grows with the budget.",
        f"Context stays at the paper's S = {PAPER_SEQ_LEN} beyond its budgets (frontier models "
        "pretrain at 4K–8K and extend the context afterwards).",
    ] if frontier else []
    lines = [
        "C → (M_opt, D_opt): D_opt = 22.8929·C^0.4563, M_opt = 0.04368·C^0.5437 (Wan et al. 2026)"
        + (f", except where replaced by the fits {', '.join(fits)}." if fits else "."),
        "Target M/N_a and N/N_a: the values the paper used per budget (derived), log-linear "
        "between its budgets; beyond them, power laws through those values.",
        f"Fixed engineering constants: S={s.seq_len}, K={s.top_k}, N_e={s.n_experts}, "
        f"{s.n_shared_experts} shared expert(s) of width d_m, d_d={s.dense_ffn_ratio}·d, "
        f"vocabulary {s.vocab_size}, alignment {s.align}, heads {nq} (KV {nkv}) × {dq}, "
        f"L_d ≥ {s.min_dense_layers}, L ≤ {s.max_layers}.",
        "Compute is counted in the holistic convention (M·D, no embeddings or logits) and "
        "lies within 0.1 % below the budget; memory is the exact weights (+ KV cache).",
        "Ranking and near-optimal band: surrogate built from the paper's curve forms; "
        "curvatures calibrated to the paper's flatness statements at 1e18 and scaled with the "
        "reducible loss share, so bands widen with compute (see planning.holistic).",
        f"Absolute loss: {loss_law} preset at the planned (N, N_a, D, G, S), non-embedding counts; "
        "a different data set shifts it. Published coefficients carry no interval (the paper "
        "gives none): the loss's uncertainty is unknown.",
        "LR and batch: Table 4's values at its six budgets, else its power laws (LR ∝ "
        f"C^{h26.exponents()['lr']:.3f}, batch ∝ C^{h26.exponents()['batch']:.3f} sequences of "
        f"8192) as whole sequences of {s.seq_len}; beyond 3e20 the batch law agrees with "
        "DeepSeek LLM's B_opt = 0.292·C^0.3271 tokens (arXiv 2401.02954) within a factor "
        "1.7 from 3e20 to 1e26.",
    ]
    return lines + frontier_lines
