"""Sweep axes that are not plain :class:`~moescale.accounting.architecture.Architecture` fields.

MoE ratio axes (``[grid]``, ``[[points]]`` or ``[[arms]]`` keys, resolved against the run's
other fields in this order). Each holds the active parameters fixed (the vocabulary is the
README's "One vocabulary" table):

- ``granularity`` ``G`` (Krajewski et al. 2024, arXiv 2402.07871 §3), measured against the
  dense model of equal active size: the FFN width one token uses, ``W = top_k·expert_ffn`` of
  the base (``dense_ffn`` when it has no experts), is split into ``G`` experts of width ``W/G``
  of which ``G`` are chosen, and ``n_experts`` grows so that total expert parameters stay
  fixed (``n_experts·expert_ffn`` unchanged). 8 experts top-1 as wide as the dense FFN are
  ``G = 1``; 16 of half width top-2 are ``G = 2``. The gate's top-k renormalisation is the
  ``G = 1`` model's (Switch: none) unless the spec sets ``norm_topk_prob``.
- ``shared_ratio`` ``S`` (Zhao et al. 2025, arXiv 2509.23678): shared experts as a share of
  the activated experts ``G_act = top_k + n_shared``; ``G_act`` and the expert width stay
  fixed, ``n_shared = S · G_act`` (a whole number, else an error).
- ``activation_ratio`` — routed experts chosen per token over routed experts, ``top_k/E``:
  ``E = top_k / ratio`` (a whole number ≥ ``top_k``, else an error) at fixed ``top_k`` and
  expert width, so active parameters stay fixed and total parameters grow as it falls. The
  realised ``N_a/N`` (attention and embeddings included) is the export's column
  ``activation_ratio``.

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
    """Replace the ratio axes in ``fields`` by the Architecture fields they stand for; an
    axis value no architecture realises is an error naming it."""
    out = {k: v for k, v in fields.items() if k not in RATIO_AXES}
    if "granularity" in fields:
        g = _whole(fields["granularity"], "granularity")
        if out.get("n_shared_experts"):
            raise MoescaleError("granularity splits routed experts; give shared experts with "
                                "shared_ratio (applied after it) instead of n_shared_experts")
        k = out.get("top_k") or 1
        width = k * out["expert_ffn"] if out.get("expert_ffn") else out.get("dense_ffn")
        if not width:
            raise MoescaleError("granularity needs expert_ffn (or dense_ffn) in [base]: the "
                                "FFN width one token uses is split into G experts")
        if width % g:
            raise MoescaleError(f"granularity {g} does not divide the FFN width one token uses, "
                                f"{width} (top_k × expert_ffn)")
        total = out.get("n_experts", 0) * (out.get("expert_ffn") or width)
        if out.get("n_experts", 0) > 1 and total % (width // g):
            raise MoescaleError(f"granularity {g}: {out['n_experts']} experts of "
                                f"{out.get('expert_ffn') or width} do not split into experts of "
                                f"{width // g}")
        out.update(expert_ffn=width // g, top_k=g,
                   n_experts=total // (width // g) if out.get("n_experts", 0) > 1
                   else out.get("n_experts", 0))
    if "shared_ratio" in fields:
        s = float(fields["shared_ratio"])
        if not 0 <= s < 1:
            raise MoescaleError(f"shared_ratio must be in [0, 1), got {s}")
        activated = out.get("top_k", 0) + out.get("n_shared_experts", 0)
        shared = s * activated
        if abs(shared - round(shared)) > 1e-9:
            raise MoescaleError(f"shared_ratio {s} of {activated} activated expert(s) is "
                                f"{shared:g} shared experts, not a whole number")
        shared = round(shared)
        if activated - shared < 1:
            raise MoescaleError(f"shared_ratio {s} leaves no routed expert of {activated}")
        if out.get("n_experts", 0) > 1 and shared > out["n_experts"]:
            raise MoescaleError(f"shared_ratio {s}: {shared} shared experts exceed the "
                                f"{out['n_experts']} experts")
        out.update(n_shared_experts=shared, top_k=activated - shared)
    if "activation_ratio" in fields:
        r = _positive(fields["activation_ratio"], "activation_ratio")
        if r > 1:
            raise MoescaleError(f"activation_ratio must be at most 1, got {r}")
        k = out.get("top_k") or 1
        e = k / r
        if abs(e - round(e)) > 1e-6 or round(e) < 2:
            raise MoescaleError(f"activation_ratio {r} with top_k {k} needs {e:g} experts: "
                                "not a whole number of at least 2")
        out["n_experts"] = round(e)
    return out


def routing_of_ratio_axes(fields: dict, train: dict) -> dict:
    """``train`` with the gate's renormalisation of the ``G = 1`` model when a granularity
    axis raised top-k (so the arms differ in granularity only), unless the spec sets it."""
    if "granularity" not in fields or "norm_topk_prob" in train:
        return train
    from moescale.training.routing import resolve_norm_topk_prob

    return {**train, "norm_topk_prob": resolve_norm_topk_prob(None, fields.get("top_k") or 1)}


def _whole(value, name: str) -> int:
    v = _positive(value, name)
    if not float(v).is_integer():
        raise MoescaleError(f"{name} must be a whole number, got {value!r}")
    return int(v)


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
