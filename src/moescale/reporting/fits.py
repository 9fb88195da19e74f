"""Figures of a fit: predicted against observed loss, residuals against each variable, and the
parameter table with intervals and warnings.

They draw a :class:`~moescale.fitting.FitResult` (from :func:`moescale.fit` or a saved fit)
and the runs it was fitted on: predictions are the fit's own ``predict``, held-out runs are
the fit's own ``--holdout`` spec applied by the library's ``holdout_mask``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from moescale.errors import MoescaleError
from moescale.reporting import style
from moescale.reporting.inputs import FigureUnavailable
from moescale.reporting.style import label


def _frame(runs) -> pd.DataFrame:
    return runs.frame if hasattr(runs, "frame") else pd.DataFrame(runs)


def observed_predicted(fit, runs) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """``(frame, observed, predicted, held-out mask)`` of ``runs`` under ``fit``."""
    from moescale.fitting.holdout import holdout_mask

    law = fit.law_object()
    frame = _frame(runs)
    missing = [v for v in (*law.variables, fit.target) if v not in frame.columns]
    if missing:
        raise FigureUnavailable(f"the runs lack {', '.join(missing)}, needed by the {fit.law} fit")
    keep = np.ones(len(frame), dtype=bool)
    for v in (*law.variables, fit.target):
        vals = pd.to_numeric(frame[v], errors="coerce").to_numpy(float)
        keep &= np.isfinite(vals) & (vals > 0 if v != "S" else vals >= 0)
    frame = frame.loc[keep].reset_index(drop=True)
    if frame.empty:
        raise FigureUnavailable(f"no run has finite, positive values of {', '.join(law.variables)}")
    observed = frame[fit.target].to_numpy(float)
    # the fit's own runs, held-out ones included (beyond the fitted range by design): no warning
    predicted = np.asarray(fit.predict({v: frame[v].to_numpy(float) for v in law.variables},
                                       warn=False), dtype=float)
    spec = (fit.data or {}).get("holdout")
    held = np.zeros(len(frame), dtype=bool)
    if spec:
        try:
            held = holdout_mask(frame, spec)
        # the spec names a column these runs lack (not the fitted runs): show all as train
        except MoescaleError:
            held = np.zeros(len(frame), dtype=bool)
    return frame, observed, predicted, held


def _target_label(fit) -> str:
    return label(fit.target) if fit.target in style.LABELS else style.text(fit.target)


def fit_parity(fit, runs):
    """Predicted against observed target (loss) for every run; held-out runs marked."""
    _, obs, pred, held = observed_predicted(fit, runs)
    fig, ax = style.figure(width=5.6, height=4.8)
    ax.scatter(obs[~held], pred[~held], s=16, color=style.FIT, alpha=0.75, linewidths=0,
               label=f"fitted runs ({int((~held).sum())})")
    if held.any():
        ax.scatter(obs[held], pred[held], s=34, marker="^", color=style.HELD_OUT,
                   edgecolors="0.1", linewidths=0.5, label=f"held-out runs ({int(held.sum())})")
    lo, hi = float(min(obs.min(), pred.min())), float(max(obs.max(), pred.max()))
    pad = 0.04 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.3", lw=1, ls="--",
            label="predicted = observed", zorder=0)
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_aspect("equal", adjustable="box")
    what = _target_label(fit)
    ax.set_xlabel("observed " + what)
    ax.set_ylabel("predicted " + what)
    ax.set_title(f"{style.text(fit.law)}: predicted against observed")
    lines = [_metric_line("train", fit.train)]
    if fit.holdout:
        lines.append(_metric_line("held out", fit.holdout))
    style.note(ax, "\n".join(lines), "lower right")
    ax.legend(loc="upper left")
    return fig


def _metric_line(name: str, m: dict | None) -> str:
    if not m:
        return ""
    return f"{name}: RMSE {m.get('rmse', float('nan')):.4f}, max |err| " \
           f"{m.get('max_abs_error', float('nan')):.4f} (n = {m.get('n', '?')})"


def fit_residuals(fit, runs):
    """Relative residuals ``observed/predicted − 1`` against each variable of the law."""
    frame, obs, pred, held = observed_predicted(fit, runs)
    variables = list(fit.law_object().variables)
    n = len(variables)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig, axes = style.figure(ncols=ncols, nrows=nrows, width=min(3.4 * ncols, 10.5) + 0.4,
                             height=3.0 * nrows + 0.5, sharey=True)
    axes = np.atleast_1d(axes).ravel()
    resid = 100.0 * (obs / pred - 1.0)
    for ax, v in zip(axes, variables, strict=False):
        x = frame[v].to_numpy(float)
        ax.axhline(0, color="0.3", lw=1, ls="--")
        ax.scatter(x[~held], resid[~held], s=12, color=style.FIT, alpha=0.7, linewidths=0)
        if held.any():
            ax.scatter(x[held], resid[held], s=28, marker="^", color=style.HELD_OUT,
                       edgecolors="0.1", linewidths=0.5)
        if np.nanmin(x) > 0 and np.nanmax(x) / np.nanmin(x) > 20:
            style.logscale(ax, "x")
        ax.set_xlabel(label(v))
    for ax in axes[n:]:
        ax.set_visible(False)
    for ax in axes[::ncols]:
        ax.set_ylabel("residual: observed / predicted − 1 (%)")
    fig.suptitle(f"{style.text(fit.law)}: residuals against each variable"
                 + ("  (▲ held out)" if held.any() else ""), fontsize=11)
    return fig


# ----- parameters and warnings ----------------------------------------------------------------
def fit_warnings(fit) -> list[str]:
    """What a reader should distrust: the fit's own warnings when it has them, else checks of
    optimiser success, parameters at their bounds, unidentified parameters (wide or
    sign-changing intervals) and nearly collinear parameter pairs in the bootstrap."""
    own = getattr(fit, "warnings", None)
    out = [str(w) for w in own] if own else []
    opt = fit.optimizer or {}
    if opt and opt.get("success") is False:
        out.append(f"the optimiser did not report convergence ({opt.get('message', '')})")
    try:
        law = fit.law_object()
    except MoescaleError:  # a law this version does not know: only the fit's own warnings
        return out
    fixed = set(fit.fixed or {})
    theta = law.to_fit_space({**{k: 1.0 for k in law.params}, **fit.params})
    for k in law.params:
        if k in fixed or k not in law.bounds:
            continue
        lo, hi = law.bounds[k]
        for side, b in (("lower", lo), ("upper", hi)):
            if abs(theta[k] - b) <= 1e-6 * max(1.0, abs(b)):
                out.append(f"{k} = {fit.params[k]:.4g} sits at its {side} bound; the data do not "
                           "pin it down")
    for k, (lo, hi) in (fit.ci or {}).items():
        v = {**fit.params, **fit.derived}.get(k)
        if v is None or not np.isfinite([lo, hi, v]).all():
            continue
        if k in law.params and k not in fixed and (lo < 0 < hi) and v != 0:
            out.append(f"{k}: the {fit.ci_level:.0%} interval [{lo:.3g}, {hi:.3g}] contains 0 "
                       "(not identified)")
        elif k in law.log_params and lo > 0 and hi / lo > 100:
            out.append(f"{k}: the {fit.ci_level:.0%} interval spans a factor {hi / lo:.3g} "
                       "(weakly identified)")
        elif k in law.params and k not in law.log_params and abs(hi - lo) > 2 * abs(v) > 0:
            out.append(f"{k}: the {fit.ci_level:.0%} interval [{lo:.3g}, {hi:.3g}] is wider "
                       "than twice the estimate (weakly identified)")
    boots = fit.bootstrap_params or []
    free = [k for k in law.params if k not in fixed]
    if len(boots) >= 10 and len(free) >= 2:
        table = np.array([[law.to_fit_space({**fit.params, **b})[k] for k in free]
                          for b in boots])
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = np.corrcoef(table, rowvar=False)
        for i in range(len(free)):
            for j in range(i + 1, len(free)):
                r = corr[i, j]
                if np.isfinite(r) and abs(r) > 0.995:
                    out.append(f"{free[i]} and {free[j]} move together across bootstrap "
                               f"refits (r = {r:+.3f}): each alone is poorly determined")
    return out


def param_rows(fit) -> list[dict[str, Any]]:
    """Rows of the parameter table: name, value, interval, SE, kind (fitted/fixed/derived)."""
    rows = []
    for kind, values in (("fitted", fit.params), ("derived", fit.derived or {})):
        for k, v in values.items():
            ci = (fit.ci or {}).get(k)
            rows.append({"name": k, "value": v, "ci": ci, "se": (fit.se or {}).get(k),
                         "kind": "fixed" if k in (fit.fixed or {}) else kind})
    return rows


def _num(v) -> str:
    if v is None or not np.isfinite(v):
        return "-"
    return f"{v:.4g}"


def fit_params(fit):
    """The parameter table (value, interval, SE) with the fit's warnings below it."""
    rows = param_rows(fit)
    warnings = fit_warnings(fit)
    row_h, warn_h, title_h = 0.27, 0.2, 0.45
    table_h = row_h * (len(rows) + 1)
    height = title_h + table_h + 0.15 + warn_h * max(len(warnings), 1) + 0.1
    fig, ax = style.figure(width=7.0, height=height)
    fig.set_layout_engine("none")
    ax.set_position([0.02, 0.02, 0.96, 1 - (title_h + 0.02) / height])
    ax.axis("off")
    axes_h = height * (1 - (title_h + 0.02) / height - 0.02)
    level = f"{fit.ci_level:.0%} interval"
    cells = [[style.text(r["name"]), _num(r["value"]),
              f"{_num(r['ci'][0])} … {_num(r['ci'][1])}" if r["ci"] else "-",
              _num(r["se"]), r["kind"]] for r in rows]
    frac = min(table_h / axes_h, 1.0)
    table = ax.table(cellText=cells, colLabels=["parameter", "value", level, "SE", ""],
                     cellLoc="right", colLoc="right", bbox=[0, 1 - frac, 1, frac],
                     colWidths=[0.2, 0.16, 0.36, 0.14, 0.14])
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    for (r, _c), cell in table.get_celld().items():
        cell.set_edgecolor("0.85")
        if r == 0:
            cell.set_text_props(weight="bold")
            cell.set_facecolor("#eef3f8")
    n_boot = len(fit.bootstrap_params or [])
    title = (f"{style.text(fit.law)} fitted to {fit.data.get('n_train', '?')} runs"
             + (f" ({n_boot} bootstrap refits)" if n_boot else " (no bootstrap: no intervals)"))
    fig.suptitle(title, x=0.02, ha="left", fontsize=11)
    if warnings:
        text = "\n".join("⚠ " + style.text(w) for w in warnings)
        ax.text(0.0, 0.0, text, transform=ax.transAxes, va="bottom", ha="left", fontsize=8.5,
                color=style.OKABE_ITO[3], wrap=True)
    else:
        ax.text(0.0, 0.0, "no warnings: every parameter inside its bounds and identified",
                transform=ax.transAxes, va="bottom", fontsize=8.5, color="0.35")
    return fig
