"""Sweep axes that are not plain :class:`~moescale.architecture.Architecture` fields.

MoE ratios (``[grid]`` keys, resolved against the run's other fields):

- ``granularity`` ``G`` (Krajewski et al. 2024, arXiv 2402.07871 §3): every expert of the
  ``G = 1`` model (``expert_ffn`` of the base, or the dense width ``d_ff`` when none is given)
  is split into ``G`` experts of width ``d_ff/G``; ``n_experts`` and ``top_k`` are multiplied by
  ``G``, so active and total expert parameters stay fixed while ``G`` varies.
- ``activation_ratio`` — routed experts used per token as a share of all routed experts,
  ``top_k = round(ratio · n_experts)`` (at least 1).
- ``shared_ratio`` ``S`` (Zhao et al. 2025, arXiv 2509.23678): shared experts as
  a share of the activated experts ``G_act = top_k + n_shared``; ``G_act`` is the base's
  ``top_k + n_shared_experts`` and stays fixed, ``n_shared = round(S · G_act)``.

Dense as one value of the experts axis: ``n_experts = 0`` or ``1`` is the dense model (the
papers' convention is dense = one expert, Clark et al. 2022, Ludziejewski et al. 2025). Its FFN
is as wide as the MoE layer's active experts, ``top_k · expert_ffn`` plus any shared experts,
so active parameters match the MoE runs of the same grid point (for top-1: the expert width);
every layer is dense and the routing fields are cleared. A base without ``expert_ffn`` keeps its
``dense_ffn``.

Holistic grids (Wan et al. 2026, arXiv 2603.21862, §3 phases 1 and 2): a budget ``C`` fixes
``M`` (``C/D_opt(C)`` from the ``holistic2026`` law, or ``flops_per_token`` given in the spec);
each target ``(M/N_a, N/N_a)`` fixes ``(M, N_a, N)`` (realised within ``tolerance``, the
planner's 2 % by default; micro models with few layers may need more) and the structure is
solved with the
planner's own solver (:func:`moescale.planning.holistic.feasible_d`,
:func:`~moescale.planning.holistic.solve_structure`); phase 1 takes ``d`` at the median of its
feasible range (the paper's rank-preserving proxy), phase 2 (``d_points``) spreads ``d`` over
that range.
"""

from __future__ import annotations

import numpy as np

from moescale.errors import MoescaleError

RATIO_AXES = ("granularity", "activation_ratio", "shared_ratio")
HOLISTIC_KEYS = {"m_over_na", "n_over_na", "flops_per_token", "d_points", "dense_ffn_ratio",
                 "align", "tolerance"}


def resolve_ratios(fields: dict) -> dict:
    """Replace the ratio axes in ``fields`` by the Architecture fields they stand for."""
    out = {k: v for k, v in fields.items() if k not in RATIO_AXES}
    if "granularity" in fields:
        g = _positive(fields["granularity"], "granularity")
        if not float(g).is_integer():
            raise MoescaleError(f"granularity must be a whole number, got {g}")
        g = int(g)
        width = out.get("expert_ffn") or out.get("dense_ffn")
        if not width:
            raise MoescaleError("granularity needs expert_ffn (or dense_ffn) in [base] as the "
                                "width of one G = 1 expert")
        if width % g:
            raise MoescaleError(f"granularity {g} does not divide the expert width {width}")
        out.update(expert_ffn=width // g, n_experts=out.get("n_experts", 0) * g,
                   top_k=out.get("top_k", 0) * g)
    if "activation_ratio" in fields:
        r = _positive(fields["activation_ratio"], "activation_ratio")
        if r > 1:
            raise MoescaleError(f"activation_ratio must be at most 1, got {r}")
        out["top_k"] = max(1, round(r * out.get("n_experts", 0)))
    if "shared_ratio" in fields:
        s = float(fields["shared_ratio"])
        if not 0 <= s < 1:
            raise MoescaleError(f"shared_ratio must be in [0, 1), got {s}")
        activated = out.get("top_k", 0) + out.get("n_shared_experts", 0)
        shared = round(s * activated)
        if activated - shared < 1:
            raise MoescaleError(f"shared_ratio {s} leaves no routed expert of {activated}")
        out.update(n_shared_experts=shared, top_k=activated - shared)
    return out


def resolve_dense(fields: dict) -> dict:
    """``fields`` unchanged for an MoE; for ``n_experts`` 0 or 1 the dense model of equal
    active FFN width (see the module docstring)."""
    if fields.get("n_experts", 0) not in (0, 1):
        return fields
    out = dict(fields)
    width = out.get("expert_ffn") or 0
    if width:
        shared = out.get("n_shared_experts", 0) * (out.get("shared_expert_ffn") or width)
        out["dense_ffn"] = max(out.get("top_k") or 1, 1) * width + shared
    for key in ("n_experts", "top_k", "expert_ffn", "n_shared_experts", "first_dense_layers"):
        out[key] = 0
    for key in ("shared_expert_ffn", "moe_layers", "moe_layer_step", "router_bias",
                "shared_expert_gate"):
        out.pop(key, None)
    return out


def _positive(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise MoescaleError(f"{name} must be a positive number, got {value!r}")
    return float(value)


# ----- holistic grids -------------------------------------------------------------------------
def holistic_flops_per_token(budget: float, given: float | None) -> float:
    """``M`` of a holistic grid at ``budget``: the given value, or ``C / D_opt(C)`` of the
    ``holistic2026`` law's published preset (Wan et al. 2026, Step 1)."""
    if given is not None:
        return _positive(given, "[holistic] flops_per_token")
    from moescale.laws import get_law

    law = get_law("holistic2026")
    d_opt = float(law.predict("wan2026", {"C": budget}))
    return budget / d_opt


def holistic_architectures(base: dict, budget: float, m_over_na: float, n_over_na: float,
                           settings: dict) -> list[tuple[dict, dict]]:
    """Architectures for one holistic target at ``budget``: ``[(fields, tags), …]``.

    One entry (``d`` at the median of its feasible range) unless ``settings['d_points']``
    asks for a ``d`` sweep over the feasible range. ``tags`` records the targets and ``M``.
    """
    from moescale.planning import holistic as hs

    s, heads = _holistic_settings(base, settings)
    M = holistic_flops_per_token(budget, settings.get("flops_per_token"))
    if not (m_over_na > 6 and 1 < n_over_na < s.ratio_max):
        raise MoescaleError(
            f"holistic target M/N_a={m_over_na:g}, N/N_a={n_over_na:g} is impossible: M/N_a "
            f"must exceed 6 and N/N_a lie in (1, {s.ratio_max:.3g}) for these experts")
    _refuse_solved(base)
    N_a = M / m_over_na
    N = n_over_na * N_a
    feasible = hs.feasible_d(M, N_a, N, s, heads)
    if feasible.size == 0:
        raise MoescaleError(
            f"no architecture realises M/N_a={m_over_na:g}, N/N_a={n_over_na:g} at budget "
            f"{budget:g} (M = {M:.4g} FLOPs/token) with {_dense_text(s)}; raise the "
            "budget, lower seq_len or heads, or change the targets")
    picks = _d_picks(feasible, settings.get("d_points"))
    # the feasible d nearest each pick; a median halfway between two takes the larger
    d = np.array([feasible[::-1][np.argmin(np.abs(feasible[::-1] - v))] for v in picks])
    L, L_d, L_m, d_m, _ = np.broadcast_arrays(*hs.solve_structure(M, N_a, N, d, s, heads))
    out = {}
    for i, dv in enumerate(d):
        fields = {**base, "hidden_size": int(dv), "n_layers": int(L[i]),
                  "first_dense_layers": int(L_d[i]), "expert_ffn": int(d_m[i]),
                  "dense_ffn": s.dense_ffn_ratio * int(dv), "moe_layer_step": 1,
                  "n_shared_experts": s.n_shared_experts, "ffn_type": "swiglu"}
        tags = {"m_over_na_target": m_over_na, "n_over_na_target": n_over_na,
                "M_target": M, "d_feasible": [int(feasible.min()), int(feasible.max())]}
        out[int(dv)] = (fields, tags)
    return list(out.values())


def _d_picks(feasible_d: np.ndarray, points) -> list[float]:
    if points is None:
        return [float(np.median(feasible_d))]
    if isinstance(points, bool) or not isinstance(points, int) or points < 2:
        raise MoescaleError(f"[holistic] d_points must be an integer >= 2, got {points!r}")
    return list(np.geomspace(feasible_d.min(), feasible_d.max(), points))


def _dense_text(s) -> str:
    if s.max_dense_layers is not None and s.max_dense_layers == s.min_dense_layers:
        return f"exactly {s.min_dense_layers} dense layer(s) (first_dense_layers in [base])"
    return f"at least {s.min_dense_layers} dense layer(s)"


# [base] fields a holistic grid solves for itself: giving them would be silently overwritten.
# (``first_dense_layers`` may be given: it then fixes L_d, as every Table 9 row has L_d = 1.)
HOLISTIC_SOLVED = ("hidden_size", "n_layers", "expert_ffn", "dense_ffn",
                   "shared_expert_ffn", "moe_layers")
# [base] fields the holistic accounting (arXiv 2603.21862, Appendix A) fixes to one value.
HOLISTIC_FIXED = {"moe_layer_step": 1, "ffn_type": "swiglu"}


def _refuse_solved(base: dict) -> None:
    """Refuse ``[base]`` fields the holistic grid solves for (they would be overwritten)."""
    solved = [k for k in HOLISTIC_SOLVED if base.get(k) not in (None, 0)]
    if solved:
        raise MoescaleError(
            f"a [holistic] sweep solves {', '.join(solved)} from its targets; remove "
            f"{'it' if len(solved) == 1 else 'them'} from [base]")


def _holistic_settings(base: dict, settings: dict):
    """The planner's settings from ``[base]``: every field is honoured (``seq_len`` is the
    ``S`` of ``M = 6·N_a + 6·S·N_q·d_qkv·L``; heads, experts, vocabulary as given) or refused
    with the reason (fields the grid solves for, or values the accounting cannot represent)."""
    from moescale.planning.holistic import HolisticSettings

    need = [k for k in ("n_heads", "n_experts", "top_k", "seq_len") if k not in base]
    if need:
        raise MoescaleError(f"a [holistic] sweep needs {', '.join(need)} in [base]")
    for key, value in HOLISTIC_FIXED.items():
        if key in base and base[key] != value:
            raise MoescaleError(f"a [holistic] sweep needs {key} = {value!r} (the holistic "
                                f"accounting, arXiv 2603.21862 Appendix A), got {base[key]!r}")
    nq = base["n_heads"]
    nkv = base.get("n_kv_heads") or nq
    dq = base.get("head_dim")
    if not dq:
        raise MoescaleError("a [holistic] sweep needs head_dim in [base] (hidden size varies)")
    fixed_dense = base.get("first_dense_layers")
    if fixed_dense is not None and (isinstance(fixed_dense, bool) or not isinstance(fixed_dense, int)
                                    or fixed_dense < 0):
        raise MoescaleError(f"first_dense_layers must be a whole number ≥ 0, got {fixed_dense!r}")
    dense = {} if fixed_dense is None else {"min_dense_layers": fixed_dense,
                                            "max_dense_layers": fixed_dense}
    s = HolisticSettings(seq_len=base["seq_len"], top_k=base["top_k"],
                         n_experts=base["n_experts"],
                         n_shared_experts=base.get("n_shared_experts", 1),
                         vocab_size=base.get("vocab_size", 256),
                         dense_ffn_ratio=settings.get("dense_ffn_ratio", 3),
                         align=settings.get("align", 8), heads=(dq, nq, nkv), **dense,
                         **({"proxy_tolerance": settings["tolerance"]}
                            if "tolerance" in settings else {}))
    return s, (dq, nq, nkv)
