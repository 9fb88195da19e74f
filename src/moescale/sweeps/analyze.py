"""The papers' per-budget analysis of a sweep: isoFLOP optima and their power laws in C.

For each budget (and each value of ``by``, e.g. the number of experts) the final loss is fitted
with a quadratic in ``u = log10(x)`` — in ``x`` itself for ``N/N_a`` — as in Hoffmann et al.
2022 (arXiv 2203.15556, approach 2) and Wan et al. 2026 (phase 1 and 2 curve fits). The vertex
is the optimum; its interval comes from a residual bootstrap of that budget's runs. A budget
whose fitted minimum is not inside the sampled range is refused: the grid must be extended
on the side named. Optima of the accepted budgets are fitted with ``power_law_C``
(``y = k·C^p``), the fit that ``moescale plan --m-ratio-fit / --n-ratio-fit`` accepts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from moescale.errors import MoescaleError
from moescale.fitting import support

LINEAR_AXES = ("N_over_Na",)
MIN_RUNS = 3  # a quadratic needs three distinct points
MIN_BOOTSTRAP_RUNS = 4  # with three the residuals vanish and an interval would be a lie


@dataclass(frozen=True)
class IsoflopOptimum:
    """The optimum of one isoFLOP curve. ``coeffs`` = ``(a, b, c)`` of ``loss = a·u² + b·u + c``
    with ``u = log10(x)`` (or ``x`` for linear axes); ``status`` is ``ok``, ``edge-low``,
    ``edge-high`` or ``too-few``."""

    budget: float
    x: str
    n_runs: int
    status: str
    message: str
    coeffs: tuple[float, float, float] | None = None
    log_x: bool = True
    x_opt: float | None = None
    x_opt_ci: tuple[float, float] | None = None
    x_opt_ci_mc_error: float | None = None  # Monte-Carlo standard error of the ends (in x)
    loss_opt: float | None = None
    D_opt: float | None = None
    x_range: tuple[float, float] | None = None
    group: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class SweepAnalysis:
    """Per-budget optima and the power laws of the accepted ones (``FitResult`` s by name)."""

    x: str
    budgets: list[IsoflopOptimum]
    power_laws: dict[str, Any]
    level: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        return {"x": self.x, "level": self.level,
                "budgets": [b.to_dict() for b in self.budgets],
                "power_laws": {k: {"params": v.params, "ci": v.ci, "train": v.train,
                                   "law": v.law, "n_budgets": v.data["n_runs"]}
                               for k, v in self.power_laws.items()}}


def default_axis(frame) -> str:
    """``M_over_Na`` for holistic sweeps (their tags name the target), else ``N``."""
    return "M_over_Na" if "tag_m_over_na_target" in frame.columns else "N"


def analyze(frame, x: str | None = None, y: str = "loss", by: str | None = None,
            bootstrap: int = support.DEFAULT_REPLICATES, seed: int = 0,
            level: float = 0.95) -> SweepAnalysis:
    """Analyse a run table (pandas, the columns of :mod:`moescale.sweeps.export`)."""
    x = x or default_axis(frame)
    for col in ("budget", x, y, *([by] if by else [])):
        if col not in frame.columns:
            raise MoescaleError(f"column {col!r} is not in the run table; columns: "
                                f"{', '.join(map(str, frame.columns))}")
    frame = frame[np.isfinite(frame[y].astype(float)) & (frame[x].astype(float) > 0)]
    if frame.empty:
        raise MoescaleError("no finished run with a finite loss to analyse")
    rng = np.random.default_rng(seed)
    groups = frame.groupby(["budget", by] if by else ["budget"], sort=True)
    # each group's runs in a canonical order: the bootstrap depends on the runs, not the file
    optima = [_optimum(g.iloc[support.canonical_order([g[x].to_numpy(float),
                                                      g[y].to_numpy(float)])],
                       x, y, bootstrap, rng, level, {by: keys[1]} if by else {})
              for keys, g in groups]
    return SweepAnalysis(x=x, budgets=optima, power_laws=_power_laws(optima, x, by),
                         level=level)


def _optimum(g, x: str, y: str, bootstrap: int, rng, level: float,
             group: dict) -> IsoflopOptimum:
    budget = float(g["budget"].iloc[0])
    log_x = x not in LINEAR_AXES
    xs = g[x].to_numpy(float)
    u = np.log10(xs) if log_x else xs
    loss = g[y].to_numpy(float)
    base = dict(budget=budget, x=x, n_runs=len(g), log_x=log_x, group=group,
                x_range=(float(xs.min()), float(xs.max())))
    if np.unique(u).size < MIN_RUNS:
        return IsoflopOptimum(status="too-few", message=(
            f"budget {budget:.3g}: {np.unique(u).size} distinct {x} values; a quadratic needs "
            f"{MIN_RUNS}"), **base)
    a, b, c = np.polyfit(u, loss, 2)
    status = _edge(a, b, c, u.min(), u.max())
    if status != "ok":
        side = "smaller" if status == "edge-low" else "larger"
        edge = xs.min() if status == "edge-low" else xs.max()
        return IsoflopOptimum(status=status, coeffs=(a, b, c), message=(
            f"budget {budget:.3g}: the minimum is at the {status[5:]} edge of the grid "
            f"({x} = {edge:.4g}); no interior optimum — extend the grid to {side} {x}"), **base)
    u_opt = -b / (2 * a)
    to_x = (lambda v: 10.0 ** v) if log_x else (lambda v: v)
    ci = _bootstrap_ci(u, loss, (a, b, c), bootstrap, rng, level)
    d_fit = np.polyfit(u, np.log10(g["D"].to_numpy(float)), 1) if "D" in g else None
    return IsoflopOptimum(
        status="ok", coeffs=(a, b, c), x_opt=float(to_x(u_opt)),
        x_opt_ci=None if ci is None else (float(to_x(ci[0])), float(to_x(ci[1]))),
        x_opt_ci_mc_error=None if ci is None else _mc_in_x(ci, to_x),
        loss_opt=float(np.polyval((a, b, c), u_opt)),
        D_opt=None if d_fit is None else float(10 ** np.polyval(d_fit, u_opt)),
        message=f"budget {budget:.3g}: optimum {x} = {to_x(u_opt):.4g}"
                + ("" if ci is not None else " (no interval: fewer than "
                   f"{MIN_BOOTSTRAP_RUNS} runs)"), **base)


def _edge(a: float, b: float, c: float, lo: float, hi: float) -> str:
    """``ok`` when the fitted parabola has its minimum strictly inside ``(lo, hi)``."""
    if a > 0:
        v = -b / (2 * a)
        return "ok" if lo < v < hi else ("edge-low" if v <= lo else "edge-high")
    return "edge-low" if np.polyval((a, b, c), lo) <= np.polyval((a, b, c), hi) else "edge-high"


def _bootstrap_ci(u, loss, coeffs, n: int, rng, level: float):
    """Percentile interval of the vertex under a residual bootstrap (design held fixed);
    replicates without an interior minimum count as falling outside on their side."""
    if n <= 0 or len(u) < MIN_BOOTSTRAP_RUNS:
        return None
    fitted = np.polyval(coeffs, u)
    resid = (loss - fitted) * np.sqrt(len(u) / (len(u) - 3))
    ys = fitted + resid[rng.integers(0, len(u), size=(n, len(u)))]
    V = np.vander(u, 3)
    sol = np.linalg.lstsq(V, ys.T, rcond=None)[0]  # (3, n)
    a, b = sol[0], sol[1]
    with np.errstate(divide="ignore", invalid="ignore"):  # ±inf: no interior minimum
        vert = np.where(a > 0, -b / (2 * a), np.where(b > 0, -np.inf, np.inf))
        lo, hi = np.quantile(vert, [(1 - level) / 2, (1 + level) / 2])
        mc = support.quantile_mc_error(np.sort(vert), (1 - level) / 2)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return None
    return float(lo), float(hi), float(mc)


def _mc_in_x(ci: tuple[float, float, float], to_x) -> float:
    """The Monte-Carlo error of the interval's ends (in ``u``) carried to ``x`` at the wider end."""
    lo, hi, mc = ci
    if not np.isfinite(mc):
        return float("nan")
    return float(max(abs(to_x(lo + mc) - to_x(lo)), abs(to_x(hi + mc) - to_x(hi))))


def _power_laws(optima: list[IsoflopOptimum], x: str, by: str | None) -> dict[str, Any]:
    """``power_law_C`` fits of ``x_opt`` and ``D_opt`` against the budget (accepted budgets;
    one fit per group when ``by`` is given)."""
    import pandas as pd

    from moescale import fitting
    from moescale.runs import RunTable

    out = {}
    ok = [o for o in optima if o.status == "ok"]
    keys = sorted({tuple(o.group.items()) for o in ok})
    for key in keys:
        members = [o for o in ok if tuple(o.group.items()) == key]
        if len(members) < 2:
            continue
        suffix = "".join(f"[{v}]" if isinstance(v, str) else f"[{k}={v:g}]" for k, v in key)
        C = np.array([o.budget for o in members])
        for name, values in ((f"{x}_opt", [o.x_opt for o in members]),
                             ("D_opt", [o.D_opt for o in members])):
            if any(v is None for v in values):
                continue
            table = RunTable.from_frame(pd.DataFrame({"C": C, "y": values}),
                                        source=f"sweep optima of {name}")
            out[name + suffix] = fitting.fit("power_law_C", table)
    return out
