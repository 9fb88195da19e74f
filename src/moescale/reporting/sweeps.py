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

from moescale.reporting import style
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


def _power_law(analysis, x: str):
    """The power law ``y = k·C^p`` of ``x``'s optimum in an analysis (``"N_opt"`` for x = N)."""
    laws = attr(analysis, "power_laws") or {}
    law = laws.get(f"{x}_opt")
    if law is None and len(laws) == 1:
        law = next(iter(laws.values()))
    if law is None:
        return None
    params = attr(law, "params") or {}
    if "k" not in params or "p" not in params:
        return None
    return float(params["k"]), float(params["p"]), law


def _budget_colorbar(fig, ax, norm, label_text: str = "compute budget C (FLOPs)") -> None:
    from matplotlib.cm import ScalarMappable

    sm = ScalarMappable(norm=norm, cmap=style.SEQUENTIAL)
    fig.colorbar(sm, ax=ax, label=label_text, pad=0.01, fraction=0.05)


# ----- isoFLOP curves -------------------------------------------------------------------------
def isoflop(runs: pd.DataFrame, analysis=None, x: str = "N", y: str = "loss"):
    """Loss against ``x`` (model size, or ``m_over_na``, ``n_over_na``, ``d``) per budget, with
    each budget's fitted parabola, its minimum and the minimum's interval from ``analysis``."""
    runs = done_runs(runs)
    _require(runs, [x, y, "budget"], "isoflop")
    fig, ax = style.figure()
    budgets = sorted(runs["budget"].unique())
    norm = style.budget_norm(budgets)
    cmap = style.pyplot().get_cmap(style.SEQUENTIAL)
    fitted = {float(attr(b, "budget")): b for b in _budgets(analysis)} if analysis else {}
    edge_seen = False
    for budget in budgets:
        g = runs[runs["budget"] == budget]
        colour = cmap(norm(budget))
        ax.scatter(g[x], g[y], s=16, color=colour, alpha=0.8, linewidths=0, zorder=2)
        opt = fitted.get(float(budget))
        if opt is None:
            continue
        status, coeffs = attr(opt, "status", "ok"), attr(opt, "coeffs")
        xs = g[x].to_numpy(dtype=float)
        if coeffs is not None and status != "too-few" and xs.size and np.all(xs > 0):
            a, b, c = (float(v) for v in coeffs)
            u = np.linspace(np.log10(xs.min()) - 0.08, np.log10(xs.max()) + 0.08, 120)
            ax.plot(10**u, a * u**2 + b * u + c, color=colour, lw=1.3, zorder=3)
        x_opt, loss_opt = attr(opt, "x_opt"), attr(opt, "loss_opt")
        if x_opt is None or loss_opt is None or not np.isfinite([x_opt, loss_opt]).all():
            continue
        ci = attr(opt, "x_opt_ci")
        if ci is not None and np.isfinite(np.asarray(ci, dtype=float)).all():
            ax.errorbar([x_opt], [loss_opt], xerr=[[x_opt - ci[0]], [ci[1] - x_opt]], fmt="none",
                        ecolor="0.15", elinewidth=1.1, capsize=3, zorder=4)
        ok = status == "ok"
        edge_seen |= not ok
        ax.scatter([x_opt], [loss_opt], marker="D", s=38, zorder=5, edgecolors="0.1",
                   facecolors=colour if ok else "white", linewidths=1.1)
    ax.set_xscale("log")
    ax.set_xlabel(label(x))
    ax.set_ylabel(label(y))
    _budget_colorbar(fig, ax, norm)
    what = {"N": "model size", "N_active": "active size"}.get(x, style.label(x).split(" (")[0])
    ax.set_title(f"isoFLOP curves: loss against {what} at fixed compute")
    msg = "◆ parabola minimum with its interval"
    if edge_seen:
        msg += "; ◇ minimum at the edge of the sampled range (extrapolated)"
    style.note(ax, msg, "upper right")
    return fig


# ----- the compute frontier --------------------------------------------------------------------
def frontier_curve(fit, compute: np.ndarray, params=None, n_grid: int = 240) -> np.ndarray:
    """The fitted law's compute-optimal loss at each ``compute`` (``C = 6·N·D``): the law
    evaluated on a grid of sizes per budget and minimised over it (vectorised)."""
    law = fit.law_object()
    size = next(v for v in law.variables if v in ("N", "N_active"))
    compute = np.asarray(compute, dtype=float)
    n = np.geomspace(1e5, 1e14, n_grid)[None, :]
    d = compute[:, None] / (6.0 * n)
    values = {size: np.broadcast_to(n, d.shape).ravel(), "D": d.ravel()}
    if "E" in law.variables:
        values["E"] = np.ones(d.size)
    loss = law.predict(params or fit.params, values).reshape(d.shape)
    return np.nanmin(np.where(np.isfinite(loss), loss, np.nan), axis=1)


def frontier_supported(fit) -> bool:
    """Whether ``fit``'s law is a loss law of (N or N_active, D[, E]) with ``C = 6·N·D``."""
    try:
        law = fit.law_object()
    except Exception:  # an unknown law in a foreign fit file
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
    ax.scatter(c, loss, s=9, color="0.72", linewidths=0, label="runs", zorder=1,
               rasterized=len(runs) > 5000)
    group = "budget" if "budget" in runs.columns else "C"
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
        curve = frontier_curve(fit, grid)
        ax.plot(grid, curve, color=style.FIT, lw=1.8, zorder=5,
                label=f"{style.text(fit.law)} fit, compute-optimal")
        boots = list(fit.bootstrap_params or [])[:200]
        band = None
        if boots:
            curves = np.array([frontier_curve(fit, grid, p) for p in boots])
            q = (1 - float(fit.ci_level)) / 2
            band = np.nanquantile(curves, [q, 1 - q], axis=0)
            ax.fill_between(grid, band[0], band[1], color=style.FIT, alpha=0.18, lw=0, zorder=0,
                            label=f"{fit.ci_level:.0%} bootstrap band")
        if target_compute:
            t = float(target_compute)
            y_t = float(frontier_curve(fit, np.array([t]))[0])
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
    ax.set_xscale("log")
    ax.set_yscale("log")
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
def optima(analyses: Mapping[str, Any]):
    """One panel per optimised quantity (``N``, ``D``, ``m_over_na``, …): the per-budget optimum
    with its interval and the analysis' power law ``y = k·C^p``."""
    items = [(x, a) for x, a in analyses.items() if a is not None and _budgets(a)]
    if not items:
        raise ValueError("optima needs at least one sweep analysis")
    fig, axes = style.figure(ncols=len(items), width=min(3.6 * len(items), 10.5) + 0.6,
                             height=3.9)
    axes = np.atleast_1d(axes)
    for ax, (x, analysis) in zip(axes, items, strict=True):
        opts = [b for b in _budgets(analysis) if attr(b, "x_opt") is not None]
        good = [b for b in opts if attr(b, "status", "ok") == "ok"]
        edge = [b for b in opts if attr(b, "status", "ok") not in ("ok", "too-few")]
        for subset, face, name in ((good, style.OKABE_ITO[0], "optimum (interior)"),
                                   (edge, "white", "at the edge (extrapolated)")):
            if not subset:
                continue
            cs = np.array([float(attr(b, "budget")) for b in subset])
            xs = np.array([float(attr(b, "x_opt")) for b in subset])
            cis = np.array([attr(b, "x_opt_ci") or (np.nan, np.nan) for b in subset], float)
            err = np.vstack([xs - cis[:, 0], cis[:, 1] - xs])
            err = np.where(np.isfinite(err), np.maximum(err, 0), 0)
            ax.errorbar(cs, xs, yerr=err, fmt="o", mfc=face, mec=style.OKABE_ITO[0],
                        ecolor=style.OKABE_ITO[0], capsize=3, label=name, zorder=3)
        law = _power_law(analysis, x)
        if law is not None and opts:
            k, p, _ = law
            cs = np.array([float(attr(b, "budget")) for b in opts])
            grid = np.geomspace(cs.min() / 1.5, cs.max() * 1.5, 50)
            ax.plot(grid, k * grid**p, color=style.OKABE_ITO[1], lw=1.5,
                    label=f"{style.sci(k, 3)}·C^{p:.3f}", zorder=2)
        ax.set_xscale("log")
        if x not in ("m_over_na", "n_over_na"):
            ax.set_yscale("log")
        ax.set_xlabel(label("budget"))
        ax.set_ylabel("optimal " + label(x))
        ax.set_title(f"optimal {style.label(x).split(' (')[0]}", fontsize=10)
        ax.legend(loc="upper left")
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
                    max_points: int = 150):
    """Loss against FLOPs (or tokens) for every run, coloured by the run's budget (or
    ``color_by``); long curves are decimated and the lines rasterised, so hundreds of
    thousands of points draw in well under a second."""
    from matplotlib.collections import LineCollection

    if curves is None or len(curves) == 0:
        raise ValueError("learning_curves needs curve points")
    x = x or next((c for c in ("flops", "tokens", "step") if c in curves.columns
                   and curves[c].notna().any()), None)
    y = y or next((c for c in ("eval_loss", "train_loss", "loss") if c in curves.columns
                   and curves[c].notna().any()), None)
    if x is None or y is None or "run_id" not in curves.columns:
        raise ValueError("learning_curves needs run_id, flops or tokens, and a loss column")
    frame = curves[["run_id", x, y]].dropna()
    frame = frame[(frame[x] > 0) & np.isfinite(frame[y].to_numpy(float))]
    frame = frame.sort_values(["run_id", x], kind="stable")
    ids = frame["run_id"].to_numpy()
    codes = pd.factorize(ids)[0]
    keep = _decimate(codes, max_points)
    xs, ys, codes = (frame[x].to_numpy(float)[keep], frame[y].to_numpy(float)[keep], codes[keep])
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
        colours = [cmap(norm(v)) if np.isfinite(v) else (0.6, 0.6, 0.6, 1) for v in values]
    else:
        colours = [style.OKABE_ITO[0]]
    alpha = 0.85 if len(segments) <= 60 else max(0.15, 0.85 * (60 / len(segments)) ** 0.5)
    lines = LineCollection(segments, colors=colours, linewidths=0.9, alpha=alpha,
                           rasterized=len(segments) > 50)
    ax.add_collection(lines)
    ax.set_xscale("log")
    ax.set_xlim(xs.min(), xs.max() * 1.05)
    lo, hi = np.nanquantile(ys, [0.0, 0.995])
    ax.set_ylim(lo - 0.03 * (hi - lo), hi + 0.03 * (hi - lo))
    ax.set_xlabel(label(x) if x != "step" else "optimizer step")
    ax.set_ylabel(label(y))
    if norm is not None:
        _budget_colorbar(fig, ax, norm, label(color_by))
    ax.set_title(f"learning curves of {len(run_ids):,} runs")
    if len(frame) > len(keep):
        style.note(ax, f"{len(frame):,} points, drawn with ≤ {max_points} per curve",
                   "upper right")
    return fig


# ----- loss against the number of experts ------------------------------------------------------
def experts(runs: pd.DataFrame, size: str | None = None):
    """Loss against the number of routed experts ``E`` at fixed active size (one line per
    size, and per budget when runs span several)."""
    runs = done_runs(runs)
    size = size or ("N_active" if "N_active" in runs.columns else "N")
    _require(runs, ["E", "loss", size], "experts")
    frame = runs.copy()
    frame["_size"] = frame[size].astype(float).map(lambda v: float(f"{v:.3g}"))
    keys = ["_size"] + (["budget"] if "budget" in frame.columns
                        and frame.groupby("_size")["budget"].nunique().max() > 1 else [])
    groups = [(k, g) for k, g in frame.groupby(keys) if g["E"].nunique() >= 2]
    if not groups:
        raise ValueError("experts needs runs at two or more numbers of experts for one size")
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
    ax.set_xscale("log", base=2)
    ax.set_xlabel(label("E") + " (1 = dense)")
    ax.set_ylabel(label("loss"))
    ax.set_title("loss against the number of experts at fixed active size")
    ax.legend(loc="upper right", ncols=2 if len(groups) > 6 else 1)
    return fig


def _require(frame: pd.DataFrame, columns: Sequence[str], figure: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{figure} needs column(s) {', '.join(missing)}")
    if frame.empty:
        raise ValueError(f"{figure} needs at least one finished run")
