"""Figures of runs and sweeps: isoFLOP curves, the compute frontier, optima against compute,
learning curves and loss against the number of experts.

Inputs are the sweep store's frames (or a run table's frame: one row per run with ``C``,
``N``, ``D``, ``loss`` and optionally ``budget``, ``E``, ``N_active``, ``status``) and the
library's results: a :class:`~moescale.sweeps.analyze.SweepAnalysis` (per-budget parabolas
``loss = a·u² + b·u + c`` with ``u = log10 x``, optima with intervals, power laws
``y = k·C^p``) and a :class:`~moescale.fitting.FitResult`. Nothing here fits anything: the
figures draw what those objects hold (a fitted law is only evaluated to draw its curve).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from moescale.errors import MoescaleError
from moescale.reporting import style
from moescale.reporting.inputs import FigureUnavailable
from moescale.reporting.style import label


def attr(obj: Any, name: str, default: Any = None) -> Any:
    """``obj.name`` or ``obj[name]`` (library objects or their ``to_dict()`` JSON)."""
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def done_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Finished runs with a finite loss (every run of a plain run table)."""
    keep = np.ones(len(runs), dtype=bool)
    if "status" in runs.columns:
        keep &= (runs["status"].astype(str) == "done").to_numpy()
    if "loss" in runs.columns:
        keep &= np.isfinite(pd.to_numeric(runs["loss"], errors="coerce").to_numpy(dtype=float))
    return runs.loc[keep]


def _budgets(analysis) -> list:
    return sorted(attr(analysis, "budgets") or [], key=lambda b: float(attr(b, "budget")))


def _budget_colorbar(fig, ax, norm, label_text: str = "compute budget C (FLOPs)") -> None:
    from matplotlib.cm import ScalarMappable

    sm = ScalarMappable(norm=norm, cmap=style.SEQUENTIAL)
    fig.colorbar(sm, ax=ax, label=label_text, pad=0.01, fraction=0.05)


# ----- isoFLOP curves -------------------------------------------------------------------------
def _members(runs: pd.DataFrame, opt) -> pd.DataFrame:
    """The runs behind one optimum: its budget and its group (``by`` values) if any."""
    keep = np.isclose(runs["budget"].to_numpy(float), float(attr(opt, "budget")), rtol=1e-9)
    for k, v in (attr(opt, "group") or {}).items():
        if k in runs.columns:
            keep &= (runs[k] == v).to_numpy()
    return runs.loc[keep]


def run_arms(runs: pd.DataFrame) -> pd.Series | None:
    """Each run's arm, named by its axes (the export's ``arm``, else its number of experts:
    ``dense``, ``E 8``, ``E 16, K 2, G 2``), or None when the runs are one arm."""
    from moescale.sweeps.experts import arm_keys

    by = "arm" if "arm" in runs.columns else "E" if "E" in runs.columns else None
    if by is None:
        return None
    keys = arm_keys(runs, by)
    return keys if keys.nunique() > 1 else None


def arm_colours(arms) -> dict[str, Any]:
    """One colour per arm, the same in every figure: dense near-black, the others Okabe–Ito in
    the arms' order (dense first, then by their axis value)."""
    from moescale.sweeps.experts import arm_order

    ordered = sorted(set(arms), key=arm_order)
    palette = [c for c in style.OKABE_ITO if c != style.OKABE_ITO[0]] + [style.OKABE_ITO[0]]
    others = iter(palette * (len(ordered) // len(palette) + 1))
    return {a: "0.15" if a == "dense" else next(others) for a in ordered}


def isoflop(runs: pd.DataFrame, analysis=None, x: str | None = None, y: str = "loss"):
    """Loss against ``x`` (model size, or ``M_over_Na``, ``N_over_Na``, ``d``) per budget, with
    each budget's fitted parabola, its minimum and the minimum's interval from ``analysis``.
    When the runs form several arms (numbers of experts, granularities, shared experts), one
    panel per arm named by its axes (dense first), each with the parabolas of its own group:
    sizes of different arms are not pooled."""
    from moescale.sweeps.experts import arm_order

    x = x or attr(analysis, "x") or "N"
    runs = done_runs(runs)
    _require(runs, [x, y, "budget"], "isoflop")
    arms = run_arms(runs)
    panels = ([(a, runs[arms == a]) for a in sorted(arms.unique(), key=arm_order)]
              if arms is not None else [(None, runs)])
    width = style.WIDTH if len(panels) == 1 else min(4.2 * len(panels), 13.0)
    fig, axes = style.figure(ncols=len(panels), width=width, sharey=True)
    axes = np.atleast_1d(axes)
    budgets = sorted(runs["budget"].unique())
    norm = style.budget_norm(budgets)
    optima = _budgets(analysis) if analysis is not None else []
    edge_seen = False
    for ax, (e, members) in zip(axes, panels, strict=True):
        mine = [o for o in optima if e is None or (attr(o, "group") or {}).get("arm_key", e) == e]
        edge_seen |= _isoflop_panel(ax, members, mine, x, y, norm)
        ax.set_xlabel(label(x))
        if e is not None:
            ax.set_title(e, color=arm_colours(arms)[e] if e != "dense" else "0.15")
    axes[0].set_ylabel(label(y))
    _budget_colorbar(fig, axes[-1] if len(axes) == 1 else list(axes), norm)
    what = {"N": "model size", "N_active": "active size"}.get(x, style.label(x).split(" (")[0])
    title = f"isoFLOP curves: loss against {what} at fixed compute"
    if len(panels) == 1:
        axes[0].set_title(title)
    else:
        fig.suptitle(title + ", per arm")
    if analysis is not None:
        msg = "◆ parabola minimum with its interval"
        if edge_seen:
            msg += "\nminimum at the grid's edge: curve only, no optimum"
        style.note(axes[-1], msg, "upper right")
    return fig


def _isoflop_panel(ax, runs: pd.DataFrame, optima: list, x: str, y: str, norm) -> bool:
    """One isoFLOP panel; returns whether a budget had its minimum at the grid's edge."""
    cmap = style.pyplot().get_cmap(style.SEQUENTIAL)
    points = ax.scatter(runs[x], runs[y], s=16, c=cmap(norm(runs["budget"].to_numpy(float))),
                        alpha=0.8, linewidths=0, zorder=2, rasterized=len(runs) > 3000)
    points.set_in_layout(False)
    log_x = True
    edge_seen = False
    for opt in optima:
        colour = cmap(norm(float(attr(opt, "budget"))))
        status, coeffs = attr(opt, "status", "ok"), attr(opt, "coeffs")
        log_x = bool(attr(opt, "log_x", True))
        rng = attr(opt, "x_range")
        if rng is None:
            xs = _members(runs, opt)[x].to_numpy(float)
            rng = (xs.min(), xs.max()) if xs.size else None
        if coeffs is not None and status != "too-few" and rng is not None and rng[0] > 0:
            a, b, c = (float(v) for v in coeffs)
            if log_x:
                u = np.linspace(np.log10(rng[0]) - 0.06, np.log10(rng[1]) + 0.06, 120)
                ax.plot(10**u, a * u**2 + b * u + c, color=colour, lw=1.3, zorder=3)
            else:
                span = rng[1] - rng[0]
                u = np.linspace(rng[0] - 0.04 * span, rng[1] + 0.04 * span, 120)
                ax.plot(u, a * u**2 + b * u + c, color=colour, lw=1.3, zorder=3)
        edge_seen |= status in ("edge-low", "edge-high")
        x_opt, loss_opt = attr(opt, "x_opt"), attr(opt, "loss_opt")
        if x_opt is None or loss_opt is None or not np.isfinite([x_opt, loss_opt]).all():
            continue
        ci = attr(opt, "x_opt_ci")
        if ci is not None and np.isfinite(np.asarray(ci, dtype=float)).all():
            ax.errorbar([x_opt], [loss_opt], xerr=[[max(x_opt - ci[0], 0)],
                                                   [max(ci[1] - x_opt, 0)]],
                        fmt="none", ecolor="0.15", elinewidth=1.1, capsize=3, zorder=4)
        ax.scatter([x_opt], [loss_opt], marker="D", s=38, zorder=5, edgecolors="0.1",
                   facecolors=colour, linewidths=1.1)
    if log_x:
        style.logscale(ax, "x")
    return edge_seen


# ----- the compute frontier --------------------------------------------------------------------
def frontier_curve(fit, compute: np.ndarray, params=None, n_grid: int = 240,
                   flops_per_nd: float = 6.0, held: Mapping[str, float] | None = None) -> np.ndarray:
    """The fitted law's compute-optimal loss at each ``compute``, with ``C = k·N·D``
    (``k = flops_per_nd``, 6 by default): the law evaluated on a grid of sizes per budget and
    minimised over it (vectorised). ``held`` fixes the law's other variables (e.g. ``E``)."""
    law = fit.law_object()
    size = next(v for v in law.variables if v in ("N", "N_active"))
    compute = np.asarray(compute, dtype=float)
    n = np.geomspace(1e3, 1e14, n_grid)[None, :]
    d = compute[:, None] / (flops_per_nd * n)
    values = {size: np.broadcast_to(n, d.shape).ravel(), "D": d.ravel()}
    for var in law.variables:
        if var not in values:
            values[var] = np.full(d.size, (held or {}).get(var, 1.0))
    loss = law.predict(params or fit.params, values).reshape(d.shape)
    return np.nanmin(np.where(np.isfinite(loss), loss, np.nan), axis=1)


def compute_relation(runs: pd.DataFrame, fit) -> tuple[float, dict[str, float]]:
    """``k`` in ``C = k·N·D`` as the runs realise it (the median over runs, in the law's size
    variable; 6 when the runs do not say), and the law's other variables at their most common
    value. For an MoE fitted in total ``N``, ``k`` is about ``6·N_active/N``, not 6."""
    law = fit.law_object()
    size = next(v for v in law.variables if v in ("N", "N_active"))
    k = 6.0
    if {"C", "D", size} <= set(runs.columns):
        ratio = runs["C"].to_numpy(float) / (runs[size].to_numpy(float) * runs["D"].to_numpy(float))
        ratio = ratio[np.isfinite(ratio) & (ratio > 0)]
        if ratio.size:
            k = float(np.median(ratio))
    held = {v: float(runs[v].mode().iloc[0]) for v in law.variables
            if v not in (size, "D") and v in runs.columns}
    return k, held


def frontier_supported(fit) -> bool:
    """Whether ``fit``'s law is a loss law of (N or N_active, D[, E]) with ``C = 6·N·D``."""
    try:
        law = fit.law_object()
    except MoescaleError:  # a law this version does not know (a foreign fit file)
        return False
    names = set(law.variables)
    return law.target == "loss" and "D" in names and bool(names & {"N", "N_active"}) and \
        names <= {"N", "N_active", "D", "E"}


def frontier(runs: pd.DataFrame, analysis=None, fit=None, target_compute: float | None = None):
    """Best loss against compute: every run, the best per budget (and the parabola minima of
    ``analysis``), the fitted law's compute-optimal loss with its bootstrap band, and the
    extrapolated point at ``target_compute``."""
    runs = done_runs(runs)
    _require(runs, ["C", "loss"], "frontier")
    fig, ax = style.figure()
    c, loss = runs["C"].to_numpy(float), runs["loss"].to_numpy(float)
    every = ax.scatter(c, loss, s=9, color="0.72", linewidths=0, label="runs", zorder=1,
                       rasterized=len(runs) > 5000)
    every.set_in_layout(False)
    group = "budget" if "budget" in runs.columns else "C"
    arms = run_arms(runs)
    if arms is not None:  # one best-per-budget line per arm, dense marked, the arms' colours
        from moescale.sweeps.experts import arm_order

        colours = arm_colours(arms)
        for e in sorted(arms.unique(), key=arm_order):
            sub = runs[arms == e]
            best = sub.loc[sub.groupby(group)["loss"].idxmin()].sort_values("C")
            ax.plot(best["C"], best["loss"], "s--" if e == "dense" else "o-", ms=5, lw=1.1,
                    color=colours[e], zorder=3,
                    label="best dense run per budget" if e == "dense" else f"best {e} run")
    else:
        best = runs.loc[runs.groupby(group)["loss"].idxmin()].sort_values("C")
        ax.plot(best["C"], best["loss"], "o-", color=style.OKABE_ITO[1], ms=5, lw=1.1,
                label="best run per budget", zorder=3)
    if analysis is not None:
        opts = [b for b in _budgets(analysis) if attr(b, "loss_opt") is not None
                and attr(b, "status", "ok") != "too-few"]
        if opts:
            ax.scatter([float(attr(b, "budget")) for b in opts],
                       [float(attr(b, "loss_opt")) for b in opts], marker="D", s=30,
                       color=style.OKABE_ITO[2], edgecolors="0.1", linewidths=0.6, zorder=4,
                       label="isoFLOP minimum (parabola)")
    lo_c, hi_c = float(np.nanmin(c)), float(np.nanmax(c))
    if target_compute:
        hi_c = max(hi_c, float(target_compute))
    if fit is not None and frontier_supported(fit):
        grid = np.geomspace(lo_c / 1.5, hi_c * 1.5, 60)
        k, held = compute_relation(runs, fit)
        curve = frontier_curve(fit, grid, flops_per_nd=k, held=held)
        ax.plot(grid, curve, color=style.FIT, lw=1.8, zorder=5,
                label=f"{style.text(fit.law)} fit, compute-optimal")
        boots = list(fit.bootstrap_params or [])[:200]
        band = None
        if boots:
            curves = np.array([frontier_curve(fit, grid, p, flops_per_nd=k, held=held)
                               for p in boots])
            q = (1 - float(fit.ci_level)) / 2
            curves = np.where(np.isfinite(curves), curves, np.nan)
            with np.errstate(invalid="ignore"):
                band = np.nanquantile(curves, [q, 1 - q], axis=0)
            ax.fill_between(grid, band[0], band[1], color=style.FIT, alpha=0.18, lw=0, zorder=0,
                            label=f"{fit.ci_level:.0%} bootstrap band")
        if target_compute:
            t = float(target_compute)
            y_t = float(frontier_curve(fit, np.array([t]), flops_per_nd=k, held=held)[0])
            yerr = None
            if band is not None:
                lo, hi = (float(np.interp(np.log(t), np.log(grid), b)) for b in band)
                yerr = [[max(y_t - lo, 0.0)], [max(hi - y_t, 0.0)]]
            ax.errorbar([t], [y_t], yerr=yerr, fmt="*", ms=13, color=style.OKABE_ITO[3],
                        mec="0.1", capsize=4, zorder=6,
                        label=f"target C = {style.sci(t)}: {y_t:.3f}")
    elif target_compute:
        ax.axvline(float(target_compute), color=style.OKABE_ITO[3], ls="--", lw=1,
                   label=f"target C = {style.sci(float(target_compute))}")
    style.logscale(ax, "x")
    style.logscale(ax, "y")
    _log_loss_ticks(ax)
    ax.set_xlabel(label("C"))
    ax.set_ylabel(label("loss"))
    ax.set_title("compute frontier: best loss against training compute")
    ax.legend(loc="upper right")
    return fig


def _log_loss_ticks(ax) -> None:
    """Plain decimal ticks on a log loss axis (losses span less than a decade)."""
    from matplotlib.ticker import FormatStrFormatter, MaxNLocator, NullLocator

    lo, hi = ax.get_ylim()
    ticks = [t for t in MaxNLocator(7).tick_values(lo, hi) if lo <= t <= hi and t > 0]
    ax.yaxis.set_minor_locator(NullLocator())
    ax.set_yticks(ticks)
    ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
    ax.set_ylim(lo, hi)


# ----- optima against compute -----------------------------------------------------------------
def _optimum_points(analysis, field: str, ci_field: str | None, arm: str | None = None):
    opts = [b for b in _budgets(analysis) if attr(b, field) is not None
            and (arm is None or (attr(b, "group") or {}).get("arm_key") == arm)]
    cs = np.array([float(attr(b, "budget")) for b in opts])
    ys = np.array([float(attr(b, field)) for b in opts])
    cis = np.array([(attr(b, ci_field) if ci_field else None) or (np.nan, np.nan)
                    for b in opts], float).reshape(-1, 2)
    return cs, ys, cis


def optima(analyses: Mapping[str, Any]):
    """One panel per optimised quantity: ``x_opt`` of each analysis (``N``, ``M_over_Na``, …)
    and the optimal tokens ``D_opt``, per budget with intervals, and the analysis' power laws
    ``y = k·C^p``."""
    panels = []
    for x, analysis in analyses.items():
        if analysis is None or not _budgets(analysis):
            continue
        if any(attr(b, "x_opt") is not None for b in _budgets(analysis)):
            panels.append((x, analysis, "x_opt", "x_opt_ci", f"{x}_opt"))
    first = next((a for _, a in analyses.items() if a is not None
                  and any(attr(b, "D_opt") is not None for b in _budgets(a))), None)
    if first is not None:
        panels.append(("D", first, "D_opt", None, "D_opt"))
    if not panels:
        raise FigureUnavailable("optima needs a sweep analysis with at least one interior optimum")
    fig, axes = style.figure(ncols=len(panels), width=min(3.5 * len(panels), 10.5) + 0.6,
                             height=3.9)
    axes = np.atleast_1d(axes)
    for ax, (x, analysis, field, ci_field, law_name) in zip(axes, panels, strict=True):
        arms = sorted({(attr(b, "group") or {}).get("arm_key") for b in _budgets(analysis)}
                      - {None})
        colours = arm_colours(arms) if arms else {}
        for arm in arms or [None]:  # one colour per arm, the same as in the other figures
            cs, ys, cis = _optimum_points(analysis, field, ci_field, arm)
            if not cs.size:
                continue
            colour = colours.get(arm, style.OKABE_ITO[0])
            err = np.vstack([ys - cis[:, 0], cis[:, 1] - ys])
            err = np.where(np.isfinite(err), np.maximum(err, 0), 0)
            ax.errorbar(cs, ys, yerr=err, fmt="o", color=colour, capsize=3, zorder=3,
                        label=(arm + ": " if arm else "") + "isoFLOP optimum"
                        + (" ± interval" if ci_field else ""))
            law = (attr(analysis, "power_laws") or {}).get(law_name + (f"[{arm}]" if arm else ""))
            params = attr(law, "params") or {}
            if "k" in params and "p" in params:
                k, p = float(params["k"]), float(params["p"])
                grid = np.geomspace(cs.min() / 1.5, cs.max() * 1.5, 50)
                ci = (attr(law, "ci") or {}).get("p")
                extra = f", p in [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
                ax.plot(grid, k * grid**p, color=colour if arm else style.OKABE_ITO[1], lw=1.5,
                        zorder=2, label=f"${k:.3g}\\cdot C^{{{p:.3f}}}${extra}")
        style.logscale(ax, "x")
        if x != "N_over_Na":
            style.logscale(ax, "y")
        ax.set_xlabel(label("budget"))
        ax.set_ylabel("optimal " + label(x))
        ax.set_title(f"optimal {style.label(x).split(' (')[0]}", fontsize=10)
        ax.legend(loc="upper left", fontsize=7.5)
    return fig


# ----- learning curves ------------------------------------------------------------------------
def _decimate(order_keys: np.ndarray, max_points: int) -> np.ndarray:
    """Indices keeping at most ``max_points`` points per curve (log-spaced in position, ends
    kept), for sorted ``order_keys`` (curve id per row)."""
    starts = np.flatnonzero(np.r_[True, order_keys[1:] != order_keys[:-1]])
    ends = np.r_[starts[1:], order_keys.size]
    lengths = ends - starts
    keep = []
    for s, n in zip(starts, lengths, strict=True):
        if n <= max_points:
            keep.append(np.arange(s, s + n))
        else:
            idx = np.unique(np.rint(np.geomspace(1, n, max_points)).astype(np.int64) - 1)
            keep.append(s + idx)
    return np.concatenate(keep) if keep else np.zeros(0, dtype=np.int64)


def learning_curves(curves: pd.DataFrame, runs: pd.DataFrame | None = None,
                    color_by: str = "budget", x: str | None = None, y: str | None = None,
                    max_points: int = 120):
    """Loss against FLOPs (or tokens) for every run, coloured by the run's budget (or
    ``color_by``); long curves are decimated and the lines rasterised, so hundreds of
    thousands of points draw in well under a second."""
    from matplotlib.collections import LineCollection

    if curves is None or len(curves) == 0:
        raise FigureUnavailable("learning_curves needs curve points")
    x = x or next((c for c in ("flops", "tokens", "step") if c in curves.columns
                   and curves[c].notna().any()), None)
    y = y or next((c for c in ("eval_loss", "train_loss", "loss") if c in curves.columns
                   and curves[c].notna().any()), None)
    if x is None or y is None or "run_id" not in curves.columns:
        raise FigureUnavailable("learning_curves needs run_id, flops or tokens, and a loss column")
    frame = curves[["run_id", x, y]].dropna()
    frame = frame[(frame[x] > 0) & np.isfinite(frame[y].to_numpy(float))]
    frame = frame.sort_values(["run_id", x], kind="stable")
    ids = frame["run_id"].to_numpy()
    codes = pd.factorize(ids)[0]
    keep = _decimate(codes, max_points)
    xs, ys, codes = (np.log10(frame[x].to_numpy(float)[keep]), frame[y].to_numpy(float)[keep],
                     codes[keep])
    run_ids = pd.unique(ids)
    colour_value = None
    if runs is not None and "id" in runs.columns and color_by in runs.columns:
        lookup = pd.Series(pd.to_numeric(runs[color_by], errors="coerce").to_numpy(float),
                           index=runs["id"].astype(str))
        colour_value = lookup.reindex(pd.Index(run_ids).astype(str)).to_numpy(float)
    elif color_by in curves.columns:
        first = curves.groupby("run_id", sort=False)[color_by].first()
        colour_value = first.reindex(run_ids).to_numpy(float)
    fig, ax = style.figure()
    bounds = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1], True])
    segments = [np.column_stack([xs[a:b], ys[a:b]]) for a, b in zip(bounds[:-1], bounds[1:],
                                                                    strict=True)]
    seg_codes = codes[bounds[:-1]]
    norm = None
    if colour_value is not None and np.isfinite(colour_value).any():
        finite = colour_value[np.isfinite(colour_value)]
        norm = style.budget_norm(finite)
        cmap = style.pyplot().get_cmap(style.SEQUENTIAL)
        values = colour_value[seg_codes]
        colours = cmap(norm(np.where(np.isfinite(values), values, np.nanmin(finite))))
        colours[~np.isfinite(values)] = (0.6, 0.6, 0.6, 1.0)
    else:
        colours = [style.OKABE_ITO[0]]
    alpha = 0.85 if len(segments) <= 60 else max(0.15, 0.85 * (60 / len(segments)) ** 0.5)
    lines = LineCollection(segments, colors=colours, linewidths=0.9, alpha=alpha,
                           rasterized=len(segments) > 50)
    lines.set_in_layout(False)  # thousands of paths: keep them out of the layout's bbox pass
    ax.add_collection(lines, autolim=False)
    lo, hi = float(xs.min()), float(xs.max()) + 0.02
    ax.set_xlim(lo, hi)
    style.log10_axis(ax, "x", lo, hi)  # x drawn as log10: no per-path log transform
    lo, hi = np.nanquantile(ys, [0.0, 0.995])
    ax.set_ylim(lo - 0.03 * (hi - lo), hi + 0.03 * (hi - lo))
    ax.set_xlabel(label(x) if x != "step" else "optimizer step")
    ax.set_ylabel(label(y))
    if norm is not None:
        _budget_colorbar(fig, ax, norm, label(color_by))
    trunks = sum(str(i).startswith("trunk-") for i in run_ids)  # reuse = "trunk" (sweeps.reuse)
    ax.set_title(f"learning curves of {len(run_ids) - trunks:,} runs"
                 + (f" and {trunks:,} trunks" if trunks else ""))
    if trunks:
        style.note(ax, "grey: trunks at the peak LR; each run's curve is its cooldown",
                   "lower left")
    if len(frame) > len(keep):
        style.note(ax, f"{len(frame):,} points, drawn with ≤ {max_points} per curve",
                   "upper right")
    return fig


# ----- loss against the number of experts ------------------------------------------------------
def size_groups(values: np.ndarray, tolerance: float = 0.05) -> np.ndarray:
    """Each value replaced by the geometric mean of its group: sorted values within
    ``tolerance`` (relative) of their neighbour belong together (router weights make the
    active size of the same model shape differ slightly between numbers of experts)."""
    values = np.asarray(values, float)
    order = np.argsort(values)
    v = values[order]
    with np.errstate(divide="ignore", invalid="ignore"):
        new = np.r_[True, v[1:] / v[:-1] - 1 > tolerance]
    ids = np.cumsum(new) - 1
    logs = np.log(np.where(v > 0, v, np.nan))
    means = np.exp(pd.Series(logs).groupby(ids).transform("mean").to_numpy())
    out = np.empty_like(values)
    out[order] = means
    return out


def experts(comparison):
    """Best loss ``L*(C)`` of each arm (dense, numbers of experts, granularities …; categorical
    axis in the arms' order, dense drawn as a square), one line per budget, with the seed
    noise as error bars: an :class:`~moescale.sweeps.experts.ArmsComparison`."""
    from moescale.sweeps.experts import arm_order

    best = list(attr(comparison, "best") or [])
    arms = sorted({attr(b, "arm") for b in best}, key=arm_order)
    if len(arms) < 2:
        raise FigureUnavailable("experts needs runs of two or more arms (e.g. dense and E 8)")
    noise = attr(comparison, "noise")
    sd = attr(noise, "sd") if noise is not None else None
    fig, ax = style.figure()
    budgets = sorted({float(attr(b, "budget")) for b in best})
    norm = style.budget_norm(budgets)
    cmap = style.pyplot().get_cmap(style.SEQUENTIAL)
    pos = {a: i for i, a in enumerate(arms)}
    for budget in budgets:
        rows = sorted((b for b in best if float(attr(b, "budget")) == budget),
                      key=lambda b: pos[attr(b, "arm")])
        X = np.array([pos[attr(b, "arm")] for b in rows], float)
        L = np.array([float(attr(b, "loss")) for b in rows])
        colour = cmap(norm(budget))
        ax.errorbar(X, L, yerr=None if sd is None else sd, fmt="o-", color=colour, ms=5,
                    capsize=3, lw=1.2, label=f"C = {style.sci(budget)}")
        dense = np.array([attr(b, "arm") == "dense" for b in rows])
        if dense.any():
            ax.scatter(X[dense], L[dense], marker="s", s=70, facecolors="white",
                       edgecolors=colour, linewidths=1.6, zorder=5)
    ax.set_xticks(range(len(arms)), arms, rotation=15 if len(arms) > 4 else 0)
    ax.set_xlabel("arm (dense □)")
    ax.set_ylabel("best loss at the budget (nats/token)")
    ax.set_title("best loss of each arm, per compute budget")
    ax.legend(loc="upper right")
    style.note(ax, "error bars: seed noise σ" if sd is not None
               else "no repeated seeds: seed noise unknown", "lower left")
    return fig


def experts_at_size(runs: pd.DataFrame, size: str | None = None):
    """Loss against the number of routed experts ``E`` at fixed active size (one line per
    size, and per budget when runs span several)."""
    runs = done_runs(runs)
    size = size or ("N_active" if "N_active" in runs.columns else "N")
    _require(runs, ["E", "loss", size], "experts")
    frame = runs.copy()
    frame["_size"] = size_groups(frame[size].to_numpy(float))
    keys = ["_size"] + (["budget"] if "budget" in frame.columns
                        and frame.groupby("_size")["budget"].nunique().max() > 1 else [])
    groups = [(k, g) for k, g in frame.groupby(keys) if g["E"].nunique() >= 2]
    if not groups:
        raise FigureUnavailable("experts needs runs at two or more numbers of experts for one size")
    fig, ax = style.figure()
    colours = style.sequential(len(groups))
    for colour, (key, g) in zip(colours, groups, strict=True):
        key = key if isinstance(key, tuple) else (key,)
        mean = g.groupby("E")["loss"].agg(["mean", "min", "max", "count"]).reset_index()
        name = f"{style.human(key[0])} active" + (f", C={style.sci(key[1])}" if len(key) > 1 else "")
        ax.plot(mean["E"], mean["mean"], "o-", color=colour, label=name, ms=4)
        spread = mean["count"] > 1
        if spread.any():
            ax.vlines(mean["E"][spread], mean["min"][spread], mean["max"][spread], color=colour,
                      lw=1, alpha=0.7)
    style.logscale(ax, "x", base=2)
    ax.set_xlabel(label("E") + " (1 = dense)")
    ax.set_ylabel(label("loss"))
    ax.set_title("loss against the number of experts at fixed active size")
    ax.legend(loc="upper right", ncols=2 if len(groups) > 6 else 1)
    return fig


def compute_multiplier(comparison):
    """The compute multiplier of each arm over the reference arm at equal loss (Ludziejewski
    et al. 2025, arXiv 2502.05172), per budget (side by side, a colour per budget) and as the
    geometric mean (black diamond), with bootstrap intervals; 1 is the reference (no saving)."""
    from moescale.sweeps.experts import arm_order

    mults = [m for m in attr(comparison, "multipliers") or []
             if attr(m, "multiplier") is not None]
    reference = attr(comparison, "reference", "dense")
    if not mults:
        raise FigureUnavailable(f"compute_multiplier needs the reference arm ({reference}) at two "
                                "or more budgets and another arm")
    fig, ax = style.figure()
    arms = sorted({attr(m, "arm") for m in mults}, key=arm_order)
    pos = {a: i for i, a in enumerate(arms)}
    budgets = sorted({float(attr(m, "budget")) for m in mults if attr(m, "budget") is not None})
    norm = style.budget_norm(budgets or [1.0])
    cmap = style.pyplot().get_cmap(style.SEQUENTIAL)
    n = len(budgets) + 1
    series = [(b, cmap(norm(b)), f"C = {style.sci(b)}") for b in budgets] + \
        [(None, "0.1", "all budgets (geometric mean)")]
    for j, (budget, colour, name) in enumerate(series):
        rows = [m for m in mults if attr(m, "budget") == budget]
        if not rows:
            continue
        X = np.array([pos[attr(m, "arm")] for m in rows], float) + 0.5 * (j / (n - 1) - 0.5
                                                                           if n > 1 else 0)
        v = np.array([float(attr(m, "multiplier")) for m in rows])
        ci = [attr(m, "ci") for m in rows]
        err = None
        if all(c is not None for c in ci):
            err = [np.maximum(v - [c[0] for c in ci], 0), np.maximum([c[1] for c in ci] - v, 0)]
        ax.errorbar(X, v, yerr=err, fmt="D" if budget is None else "o", color=colour, ms=6
                    if budget is None else 4, capsize=3, lw=1.1, label=name,
                    zorder=5 if budget is None else 3)
    ax.axhline(1.0, color="0.4", ls="--", lw=1, label=f"{reference} (no saving)")
    ax.set_xticks(range(len(arms)), arms, rotation=15 if len(arms) > 4 else 0)
    ax.set_xlim(-0.6, len(arms) - 0.4)
    ax.set_xlabel("arm")
    ax.set_ylabel(f"compute multiplier over {reference} at equal loss")
    ax.set_title(f"compute each arm saves over {reference}")
    ax.legend(loc="upper left")
    ok, nb = attr(comparison, "bootstrap_ok"), attr(comparison, "bootstrap")
    style.note(ax, f"{int(100 * attr(comparison, 'level', 0.95))} % intervals from {ok} of {nb} "
               "bootstrap replicates" if ok else "no intervals", "upper right")
    return fig


def _require(frame: pd.DataFrame, columns: Sequence[str], figure: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise FigureUnavailable(f"{figure} needs column(s) {', '.join(missing)}")
    if frame.empty:
        raise FigureUnavailable(f"{figure} needs at least one finished run")
