"""Figures of law selection and sensitivity: the leaderboard of laws and how far the
fitted optimum moves under the fitting choices.

Both take the library objects (:class:`~moescale.fitting.selection.Selection`,
:class:`~moescale.fitting.sensitivity.Sensitivity`) or their ``to_dict()`` form, i.e. the
JSON that ``moescale fit --law all --json`` and ``moescale fit --sensitivity --json`` print, so
``moescale report --selection lb.json --sensitivity sens.json`` draws them from saved files.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from moescale.errors import MoescaleError
from moescale.jsonio import read_json_object
from moescale.reporting import style
from moescale.reporting.inputs import FigureUnavailable, Leaderboard

__all__ = ["leaderboard_figure", "load_selection", "load_sensitivity", "sensitivity_figure"]

_RATIO_TICKS = (0.01, 0.03, 0.1, 0.2, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 1.0, 1.02, 1.05, 1.1,
                1.25, 1.4, 2.0, 5.0, 10.0, 30.0, 100.0)
_GROUP_MARKERS = {"baseline": "D", "objective": "o", "start grid": "s", "data": "^"}


def _as_dict(obj: Any) -> dict:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def leaderboard_figure(selection: Any):
    """Held-out (or cross-validated) RMSE of each ranked law, best at the top, with its
    training RMSE and ΔBIC; laws not ranked are listed under the axes with the reason.

    Parameters
    ----------
    selection : Selection, Leaderboard or dict
        :func:`~moescale.fitting.selection.select_laws`'s result, its ``to_dict()`` or
        that dict read by :class:`~moescale.reporting.inputs.Leaderboard` (a missing key is
        an error naming it).

    Returns
    -------
    matplotlib.figure.Figure
    """
    sel = Leaderboard.of(selection)
    board = sel.leaderboard
    if not board:
        raise FigureUnavailable("the leaderboard ranks no law; nothing to draw")
    key = "cv_rmse" if sel.rank_by == "cv" else "holdout_rmse"
    if not any(_finite(s[key]) for s in board):
        key = "train_rmse"
    others = sel.not_ranked
    rows = len(board) + 1
    if others:
        fig, (ax, ax_text) = style.figure(
            nrows=2, height=0.45 * rows + 0.2 * len(others) + 1.6,
            gridspec_kw={"height_ratios": [0.45 * rows + 0.8, 0.2 * len(others) + 0.1]})
        ax_text.axis("off")
        lines = [f"{s['law']}: {s['status']} ({s['reason'] or ''})"[:100] for s in others]
        ax_text.text(0.0, 1.0, style.text("\n".join(lines)), fontsize=7.5, color="0.35",
                     va="top", ha="left", transform=ax_text.transAxes)
    else:
        fig, ax = style.figure(height=0.45 * rows + 1.4)
    y = list(range(len(board)))[::-1]
    vals = [s[key] if _finite(s[key]) else float("nan") for s in board]
    colors = [style.FIT if s["within_one_se"] else "0.65" for s in board]
    ax.barh(y, vals, color=colors, height=0.6,
            label={"cv_rmse": "cross-validated RMSE", "holdout_rmse": "held-out RMSE",
                   "train_rmse": "train RMSE"}[key] + " (blue: within one SE of the best)")
    ax.scatter([s["train_rmse"] for s in board], y, color=style.HELD_OUT, marker="|",
               s=200, linewidths=2, zorder=3, label="train RMSE")
    ax.set_yticks(y, [f"{s['rank']}. {style.text(s['law'])} (k={s['n_params']}, "
                      f"ΔBIC {s['delta_bic']:.0f})" for s in board])
    ax.set_ylim(-0.6, len(board) - 0.4 + 0.6)
    ax.set_xlabel("RMSE of the loss (nats/token)")
    split = f"leave-one-{sel.cv}-out" if sel.cv else sel.holdout or "no split"
    ax.set_title(f"laws ranked on {sel.n_runs} runs (held out: {style.text(split)})")
    ax.legend(loc="upper right", fontsize=7.5)
    return fig


def sensitivity_figure(result: Any):
    """Ratio of each variant's optimum to the baseline's (``N_opt`` and ``D_opt``; log scale),
    one row per variant grouped by the choice changed; ``E_opt`` values annotated.

    Parameters
    ----------
    result : Sensitivity or dict
        :func:`~moescale.fitting.sensitivity.sensitivity`'s result or its ``to_dict()``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    res = _as_dict(result)
    variants = [res["baseline"], *res.get("variants", [])]
    fig, ax = style.figure(height=max(3.0, 0.36 * len(variants) + 1.4))
    y = list(range(len(variants)))[::-1]
    size = res.get("size_variable", "N")
    plotted = False
    for q, color, label in (("N_opt", style.FIT, f"{size}_opt"),
                            ("D_opt", style.OKABE_ITO[1], "D_opt")):
        xs, ys, ms = [], [], []
        for yi, v in zip(y, variants, strict=True):
            r = 1.0 if v is res["baseline"] else (v.get("ratios") or {}).get(q)
            if _finite(r) and v.get("optimum"):
                xs.append(r)
                ys.append(yi + (0.12 if q == "N_opt" else -0.12))
                ms.append(_GROUP_MARKERS.get(v.get("group"), "o"))
        for x_, y_, m in zip(xs, ys, ms, strict=True):
            ax.scatter([x_], [y_], color=color, marker=m, s=34, zorder=3)
        if xs:
            plotted = True
            ax.scatter([], [], color=color, marker="o", s=34, label=label)
    if not plotted:
        raise FigureUnavailable("no variant has an optimum; nothing to draw")
    ax.axvline(1.0, color="0.3", lw=0.9)
    labels = []
    for v in variants:
        text = v["name"]
        o = v.get("optimum") or {}
        extra = [f"{k[0]}={o[k]:g}" for k in ("E_opt", "G_opt", "K_opt") if k in o]
        if v.get("error"):
            text += " (failed)"
        labels.append(style.text(text + (f" [{', '.join(extra)}]" if extra else "")))
    ax.set_yticks(y, labels)
    ax.set_xscale("log")
    lo, hi = ax.get_xlim()
    span = max(abs(math.log10(lo)), abs(math.log10(hi)), math.log10(1.15)) * 1.05
    ax.set_xlim(10 ** -span, 10 ** span)
    ticks = [t for t in _RATIO_TICKS if abs(math.log10(t)) <= span]
    while len(ticks) > 9:
        ticks = ticks[::2] if 1.0 in ticks[::2] else ticks[1::2]
    from matplotlib.ticker import FixedLocator, NullLocator

    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([f"×{t:g}" for t in ticks])
    ax.set_xlabel("optimum / baseline optimum")
    ax.set_title(f"{style.text(res['law'])}: optimum at C = {style.sci(res['target_compute'])} "
                 "FLOPs under each choice")
    ax.legend(loc="lower right")
    style.note(ax, "◆ baseline  ● objective  ■ start grid  ▲ data", loc="upper left")
    return fig


def load_selection(path: str | Path) -> Leaderboard:
    """A leaderboard written by ``moescale fit --law all --json``; a missing key is an error."""
    return Leaderboard.from_dict(
        read_json_object(path, "a moescale leaderboard", kind="leaderboard file"),
        source=str(path))


def load_sensitivity(path: str | Path) -> dict:
    """A sensitivity study written by ``moescale fit --sensitivity --json``."""
    data = read_json_object(path, "a moescale sensitivity study", kind="sensitivity study file")
    missing = [k for k in ("law", "baseline", "variants", "target_compute") if k not in data]
    if missing:
        raise MoescaleError(f"{path} is not a moescale sensitivity study: it has no "
                            f"{', '.join(map(repr, missing))} (expected a sensitivity "
                            "result's to_dict)")
    return data
