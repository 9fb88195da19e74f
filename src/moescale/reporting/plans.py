"""Figures of the laws and a plan: the holistic landscape with its near-optimal band, the
``d`` sweep, band width against compute, the best number of experts against memory, FLOP
savings of MoE over dense, and the planned architecture's per-component shares.

A plan is a :class:`~moescale.reporting.inputs.PlanData`, a :class:`~moescale.planning.Plan`
or its ``to_dict`` (the ``moescale plan --json`` object), read once by ``PlanData.of``: a missing
or renamed key is an error there. A figure the plan cannot support (the landscape of a law
plan) raises :class:`~moescale.reporting.inputs.FigureUnavailable` with the reason.
Candidates, bands and comparisons come from the planning library's public functions
(``planning.holistic.enumerate_candidates``, ``plan_holistic``, ``planning.compare``), never
from a second copy of their formulas.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any

import numpy as np
import pandas as pd

from moescale.errors import MoescaleError
from moescale.reporting import style
from moescale.reporting.inputs import FigureUnavailable, PlanData

HOLISTIC_NEEDED = "needs a holistic plan (a `plan` made with method='holistic')"


# ----- holistic candidates (from the library) -------------------------------------------------
def _settings(plan: PlanData):
    """``HolisticSettings`` rebuilt from the plan's architecture (only fields the class has)."""
    from moescale.planning.holistic import HolisticSettings

    arch = plan.architecture
    d, dm = int(arch.hidden_size or 8), int(arch.expert_ffn or 8)
    align = next((a for a in (128, 64, 32, 16, 8) if d % a == 0 and dm % a == 0), 8)
    values = {
        "seq_len": arch.seq_len, "top_k": arch.top_k, "n_experts": arch.n_experts,
        "n_shared_experts": arch.n_shared_experts, "vocab_size": arch.vocab_size,
        "dense_ffn_ratio": (arch.dense_ffn // d) if arch.dense_ffn else None,
        "heads": (arch.head_dim, arch.n_heads, arch.n_kv_heads)
        if all((arch.head_dim, arch.n_heads, arch.n_kv_heads)) else None,
        "tolerance": plan.band.get("tolerance"),
        # holistic plans do not record their alignment: the largest the shape allows
        "align": plan.allocation.get("align") or align,
    }
    known = {f.name for f in fields(HolisticSettings)}
    return HolisticSettings(**{k: v for k, v in values.items() if k in known and v is not None})


def holistic_candidates(plan: Any):
    """``(candidates, settings)`` around the plan's targets, enumerated by the library (with
    the plan's landscape scale when the planner reports one)."""
    from moescale.planning import holistic as hs
    from moescale.planning.holistic_plan import search_shapes

    plan = PlanData.of(plan)
    if not plan.holistic:
        raise FigureUnavailable(f"the landscape {HOLISTIC_NEEDED}")
    s = _settings(plan)
    a = plan.allocation
    heads, every_shape = search_shapes(plan.training_compute, s)  # the planner's own shapes
    # older plan files report no landscape scale
    kw = {"scale": float(a["landscape_scale"])} if a.get("landscape_scale") else {}
    args = (float(a["flops_per_token_target"]), float(a["M_over_Na_target"]),
            float(a["N_over_Na_target"]), s, heads)
    try:
        cands = hs.enumerate_candidates(*args, **kw, every_shape=every_shape)
    except MoescaleError:  # no candidate in the usual window: the library's wider one
        cands = hs.enumerate_candidates(*args, **kw, wide=True, every_shape=every_shape)
    return cands, s


def _tolerance(plan: PlanData, s) -> float:
    """The band's tolerance in percent (the settings' default when the plan has none)."""
    return 100.0 * float(plan.band.get("tolerance", s.tolerance))


def landscape(plan: Any):
    """Relative loss excess over (M/N_a, N/N_a) — the best ``d`` of each pair — with the
    near-optimal band and the chosen point."""
    plan = PlanData.of(plan)
    cands, s = holistic_candidates(plan)
    frame = pd.DataFrame({"x": cands.target_M_over_Na, "y": cands.target_N_over_Na,
                          "e": 100.0 * (cands.excess - cands.excess.min())})
    grid = frame.groupby(["x", "y"])["e"].min().unstack("y")
    xs, ys, z = grid.index.to_numpy(float), grid.columns.to_numpy(float), grid.to_numpy(float)
    fig, ax = style.figure()
    from matplotlib.colors import LogNorm

    floor = 1e-3
    finite = z[np.isfinite(z)]
    norm = LogNorm(vmin=floor, vmax=min(max(float(np.nanmax(finite)), floor * 10), 10.0))
    mesh = ax.pcolormesh(xs, ys, np.clip(z, floor, 10.0).T, shading="nearest",
                         cmap=style.HEATMAP, norm=norm, rasterized=True)
    fig.colorbar(mesh, ax=ax, label="loss above the best (%, capped at 10)", pad=0.01,
                 fraction=0.05)
    tol = _tolerance(plan, s)
    X, Y = np.meshgrid(xs, ys, indexing="ij")
    if np.nanmin(z) <= tol <= np.nanmax(z):
        ax.contour(X, Y, np.where(np.isfinite(z), z, np.nanmax(finite)), levels=[tol],
                   colors="white", linewidths=1.4)
    band = plan.band
    handles = []
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    if band.get("M_over_Na") and band.get("N_over_Na"):  # the ranges a holistic band has
        (x0, x1), (y0, y1) = band["M_over_Na"], band["N_over_Na"]
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec=style.OKABE_ITO[1],
                               lw=1.6, ls="--", zorder=4))
        handles.append(Line2D([], [], color=style.OKABE_ITO[1], ls="--",
                              label=f"near-optimal band (within {tol:g} %)"))
    handles.append(Line2D([], [], color="white", lw=1.4, label=f"{tol:g} % contour"))
    cx, cy = plan.ratios["M_over_Na"], plan.ratios["N_over_Na"]
    ax.scatter([cx], [cy], marker="*", s=200, color=style.OKABE_ITO[3], ec="white",
               lw=0.8, zorder=5)
    handles.append(Line2D([], [], marker="*", ls="", ms=12, color=style.OKABE_ITO[3],
                          label=f"plan: M/N_a = {cx:.2f}, N/N_a = {cy:.1f}"))
    y_t = float(plan.allocation["N_over_Na_target"])
    ax.set_ylim(max(float(ys.min()), y_t - 8.0) - 0.5, min(float(ys.max()), y_t + 8.0) + 0.5)
    ax.set_xlabel(style.label("M_over_Na"))
    ax.set_ylabel(style.label("N_over_Na"))
    ax.set_title(f"holistic landscape at C = {style.sci(plan.training_compute)} FLOPs")
    leg = ax.legend(handles=handles, loc="lower right", facecolor="0.2", framealpha=0.7,
                    frameon=True, labelcolor="white")
    leg.get_frame().set_edgecolor("none")
    return fig


def d_sweep(plan: Any):
    """Loss excess against hidden size ``d`` at the plan's (M/N_a, N/N_a), with the band."""
    plan = PlanData.of(plan)
    cands, s = holistic_candidates(plan)
    best = int(np.argmin(cands.excess))
    pair = (cands.target_M_over_Na == cands.target_M_over_Na[best]) & \
           (cands.target_N_over_Na == cands.target_N_over_Na[best])
    d = cands.hidden[pair].astype(float)
    e = 100.0 * (cands.excess[pair] - cands.excess.min())
    order = np.argsort(d)
    d, e = d[order], e[order]
    tol = _tolerance(plan, s)
    fig, ax = style.figure()
    inside = e <= tol
    ax.plot(d, e, color="0.55", lw=1, zorder=1)
    ax.scatter(d[~inside], e[~inside], s=12, color=style.OKABE_ITO[0], zorder=2,
               label="feasible aligned d")
    ax.scatter(d[inside], e[inside], s=16, color=style.OKABE_ITO[2], zorder=3,
               label=f"within {tol:g} % of the best")
    if inside.any():
        ax.axvspan(d[inside].min(), d[inside].max(), color=style.OKABE_ITO[2], alpha=0.12, lw=0)
    ax.axhline(tol, color=style.OKABE_ITO[2], ls=":", lw=1)
    band_d = plan.band.get("hidden_size")  # the holistic band's range of d
    if band_d:
        ax.axvline(band_d[0], color=style.OKABE_ITO[1], ls="--", lw=1)
        ax.axvline(band_d[1], color=style.OKABE_ITO[1], ls="--", lw=1,
                   label=f"plan's band of d: {band_d[0]}–{band_d[1]}")
    chosen = plan.architecture.hidden_size
    ce = np.interp(chosen, d, e) if d.size else 0.0
    ax.scatter([chosen], [ce], marker="*", s=180, color=style.OKABE_ITO[3], zorder=5,
               ec="0.1", lw=0.5, label=f"plan: d = {chosen}")
    median = plan.allocation.get("median_feasible_hidden_size")  # reported by newer planners
    if median:
        ax.axvline(median, color="0.4", ls="-.", lw=1, label=f"median feasible d = {median:g}")
    ax.set_xlabel(style.label("d"))
    ax.set_ylabel("loss above the best (%)")
    ax.set_title(f"d sweep at M/N_a ≈ {cands.target_M_over_Na[best]:.2f}, "
                 f"N/N_a ≈ {cands.target_N_over_Na[best]:.1f}")
    ax.legend(loc="best")
    return fig


def band_series(plan: Any, budgets: Sequence[float] | None = None) -> list[PlanData]:
    """Plans at budgets around ``plan``'s compute (``plan_holistic`` with the same settings):
    the input of :func:`band_width`. A budget the planner cannot realise is left out."""
    from moescale.planning import Budget, plan_holistic

    plan = PlanData.of(plan)
    c = plan.training_compute
    if budgets is None:
        lo = math.floor(math.log10(c)) - 2
        budgets = [10.0**k for k in range(max(lo, 18), max(lo, 18) + 5)]
        if not any(abs(math.log10(b / c)) < 1e-6 for b in budgets):
            budgets = sorted([*budgets, c])
    s = _settings(plan)
    out = []
    for b in budgets:
        try:
            out.append(PlanData.of(plan_holistic(Budget(compute=float(b)), s)))
        except MoescaleError:  # a budget outside what the planner can realise: leave it out
            continue
    return out


def band_width(plans: Sequence[Any]):
    """Width of the near-optimal band (M/N_a and d, relative to its centre) against compute."""
    rows = []
    for p in map(PlanData.of, plans):
        row = {"C": p.training_compute}
        for key in ("M_over_Na", "N_over_Na", "hidden_size", "width_ratio"):
            if p.band.get(key):  # the ranges a holistic band has
                lo, hi = map(float, p.band[key])
                row[key] = 2.0 * (hi - lo) / (hi + lo) * 100.0
        rows.append(row)
    frame = pd.DataFrame(rows).sort_values("C") if rows else pd.DataFrame()
    keys = [k for k in ("M_over_Na", "N_over_Na", "hidden_size", "width_ratio")
            if k in frame.columns]
    if len(frame) < 2 or not keys:
        raise FigureUnavailable("needs holistic plans with a near-optimal band at two or more "
                                "budgets")
    fig, ax = style.figure()
    names = {"M_over_Na": "M/N_a", "N_over_Na": "N/N_a", "hidden_size": "hidden size d",
             "width_ratio": "MoE width ratio (K+1)·d_m/d"}
    for i, k in enumerate(keys):
        ax.plot(frame["C"], frame[k], "o-", color=style.OKABE_ITO[i], label=names[k])
    style.logscale(ax, "x")
    ax.set_xlabel(style.label("C"))
    ax.set_ylabel("band width (% of its centre)")
    ax.set_ylim(bottom=0)
    ax.set_title("width of the near-optimal band against compute")
    ax.legend(loc="upper left")
    return fig


# ----- joint-MoE questions ---------------------------------------------------------------------
def experts_memory(rows: Sequence[Mapping], law: str = "", memory: float | None = None):
    """The loss-optimal number of experts for each memory budget (``compare.experts_by_memory``
    rows), with the optimum's loss; ``memory`` marks the plan's own budget."""
    frame = pd.DataFrame(list(rows))
    if frame.empty or not {"memory_bytes", "experts"} <= set(frame.columns):
        raise FigureUnavailable("needs rows with memory_bytes and experts")
    frame = frame.sort_values("memory_bytes")
    fig, ax = style.figure()
    gb = frame["memory_bytes"].to_numpy(float) / 1e9
    ax.step(gb, frame["experts"], where="mid", color=style.OKABE_ITO[0], lw=1.2, alpha=0.6)
    ax.plot(gb, frame["experts"], "o", color=style.OKABE_ITO[0], label="best E (lowest loss)")
    if "loss" in frame.columns:
        for x, e, loss in zip(gb, frame["experts"], frame["loss"], strict=True):
            ax.annotate(f"{loss:.3f}", (x, e), textcoords="offset points", xytext=(0, 7),
                        ha="center", fontsize=7.5, color="0.3")
    if memory:
        ax.axvline(memory / 1e9, color=style.OKABE_ITO[3], ls="--", lw=1,
                   label=f"plan's memory: {memory / 1e9:g} GB")
    style.logscale(ax, "x")
    style.logscale(ax, "y", base=2)
    ax.yaxis.set_major_formatter(_int_formatter())
    ax.xaxis.set_major_formatter(_int_formatter())
    ax.set_xlabel("memory budget for weights (GB)")
    ax.set_ylabel(style.label("E"))
    ax.set_title("optimal number of experts against memory" + (f" ({style.text(law)})" if law
                                                                else ""))
    style.note(ax, "labels: loss of the optimum (nats/token)", "lower right")
    ax.legend(loc="upper left")
    return fig


def _int_formatter():
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _: f"{v:g}")


def flop_savings(series: Mapping[float, Sequence[Mapping]], law: str = ""):
    """FLOP savings of a compute-optimal MoE over a compute-optimal dense model against compute,
    one line per number of experts (``compare.flop_savings`` rows per budget)."""
    rows = [{"C": float(c), **r} for c, rs in series.items() for r in rs]
    frame = pd.DataFrame(rows)
    if frame.empty or not {"experts", "flop_savings"} <= set(frame.columns):
        raise FigureUnavailable("no FLOP-savings rows to draw (rows need experts and "
                                "flop_savings)")
    frame = frame[frame["experts"] > 1]
    fig, ax = style.figure()
    experts = sorted(frame["experts"].unique())
    colours = style.sequential(len(experts))
    single = frame["C"].nunique() == 1
    for colour, e in zip(colours, experts, strict=True):
        g = frame[frame["experts"] == e].sort_values("C")
        if single:
            ax.bar(str(int(e)), 100 * g["flop_savings"].iloc[0], color=colour)
        else:
            ax.plot(g["C"], 100 * g["flop_savings"], "o-", color=colour, label=f"E = {int(e)}")
    if single:
        ax.set_xlabel(style.label("E"))
        ax.set_title(f"FLOP savings of MoE over dense at C = {style.sci(frame['C'].iloc[0])}")
    else:
        style.logscale(ax, "x")
        ax.set_xlabel(style.label("C"))
        ax.set_title("FLOP savings of MoE over dense, compute-optimal"
                     + (f" ({style.text(law)})" if law else ""))
        ax.legend(loc="upper left", ncols=2)
    ax.set_ylabel("compute saved to match dense loss (%)")
    return fig


# ----- the planned architecture ------------------------------------------------------------------
COMPONENT_NAMES = {"embedding": "embedding", "attention": "attention",
                   "attention_scores": "attention scores", "dense_ffn": "dense FFN",
                   "routed_experts": "routed experts", "shared_experts": "shared experts",
                   "router": "router", "norms": "norms", "unembedding": "unembedding"}


def component_shares(plan: Any) -> list[dict[str, Any]]:
    """Per-component parameters and training FLOPs of the planned architecture (exact count by
    ``counting.count``) and their shares of the totals."""
    from moescale.accounting.counting import count

    c = count(PlanData.of(plan).architecture, "exact")
    tot_p, tot_a = max(c.total_params, 1), max(c.active_params, 1)
    tot_f = max(sum(x.training_flops for x in c.components), 1.0)
    return [{"component": x.name, "params": x.params, "active_params": x.active_params,
             "training_flops": x.training_flops, "params_share": x.params / tot_p,
             "active_share": x.active_params / tot_a, "flops_share": x.training_flops / tot_f}
            for x in c.components if x.params or x.training_flops]


def architecture(plan: Any):
    """Per-component shares of total parameters, active parameters and training FLOPs."""
    plan = PlanData.of(plan)
    rows = component_shares(plan)
    names = [COMPONENT_NAMES.get(r["component"], style.text(r["component"])) for r in rows]
    y = np.arange(len(rows))
    fig, ax = style.figure(height=0.42 * len(rows) + 1.6)
    h = 0.26
    for i, (key, what) in enumerate((("params_share", "total parameters"),
                                     ("active_share", "active parameters"),
                                     ("flops_share", "training FLOPs per token"))):
        vals = np.array([100 * r[key] for r in rows])
        bars = ax.barh(y + (i - 1) * h, vals, height=h, color=style.OKABE_ITO[i], label=what)
        for b, v in zip(bars, vals, strict=True):
            if v >= 0.05:
                ax.text(b.get_width() + 0.6, b.get_y() + h / 2, f"{v:.1f}", va="center",
                        fontsize=7)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlim(0, 112)
    ax.set_xlabel("share of the model's total (%)")
    ax.set_title(f"planned architecture {style.text(plan.architecture.name or '')}: "
                 "where parameters and FLOPs go", fontsize=10)
    ax.legend(loc="lower right")
    return fig
