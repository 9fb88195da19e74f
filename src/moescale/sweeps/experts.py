"""Dense against experts on a sweep's runs: seed noise, per-E optima, and the compute multiplier.

The question MoE users ask first is how much compute E experts save over a dense model at
equal loss. The joint-MoE paper (Ludziejewski et al. 2025, arXiv 2502.05172, Figure 1 and
§5) states it as a compute multiplier: the dense compute that reaches the loss an MoE reaches
with compute C, divided by C. From a sweep's runs:

1. For each budget ``C`` and number of experts ``E`` (dense is ``E = 1``), the best loss
   ``L*_E(C)``: the minimum of the isoFLOP parabola in ``log10 x`` (``x`` = ``N_active`` by
   default) when it lies inside the sampled sizes, else the best configuration's mean loss
   over seeds (``status`` says which).
2. Dense's best losses are fitted by ``ln L*_1 = a + b·ln C`` (a power law; ``b < 0``) over
   its budgets — at least two are needed.
3. ``C_dense(E, C) = exp((ln L*_E(C) − a) / b)`` and the multiplier ``C_dense / C`` (> 1: the
   MoE saves compute). Per E, the multipliers of its budgets are summarised by their
   geometric mean.

Intervals come from a case bootstrap (runs resampled within every ``(budget, E)`` group, all
steps repeated); replicates whose dense fit has ``b ≥ 0`` or a non-finite multiplier are
counted as failed and excluded, and an interval from fewer than :data:`MIN_OK_SHARE` of the
replicates is refused with the count.

The bootstrap resamples each group's runs in a canonical order
(:func:`~moescale.fitting.support.canonical_order`), so the same runs and seed give the same
intervals whatever the row order; every interval reports its Monte-Carlo error.

Seed noise (:func:`~moescale.fitting.support.seed_noise`): runs identical but for the seed
give a pooled ``σ``. Whether a best loss differs from dense's is judged by the bootstrap
interval of their difference (``delta_ci``: a best loss from a parabola or a best run has its
own uncertainty, which a threshold for two single runs does not describe); without a
bootstrap, two single runs are compared with ``t·√2·σ``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from moescale.errors import MoescaleError
from moescale.fitting import support
from moescale.fitting.support import SeedNoise, seed_noise  # noqa: F401 (re-exported)

MIN_OK_SHARE = 0.8  # share of bootstrap replicates that must succeed for an interval


@dataclass(frozen=True)
class BestLoss:
    """``L*_E(C)``: the best loss of ``E`` experts at one budget."""

    budget: float
    E: float
    loss: float
    x_opt: float  # the size at which it is reached
    status: str  # "parabola" (interior minimum) or "best-run" (minimum at the edge / too few)
    n_runs: int


@dataclass(frozen=True)
class Multiplier:
    """Dense compute reaching ``E`` experts' loss at ``budget``, over ``budget``
    (``budget`` None: the geometric mean over the E's budgets)."""

    E: float
    budget: float | None
    multiplier: float | None
    ci: tuple[float, float] | None
    delta_loss: float | None  # L*_E − L*_dense at the same budget (None for the summary)
    within_noise: bool | None  # the difference is not distinguishable from 0 (None: unknown)
    extrapolated: bool  # C_dense outside the dense budgets
    ci_mc_error: float | None = None  # Monte-Carlo standard error of the interval's ends
    delta_ci: tuple[float, float] | None = None  # bootstrap interval of delta_loss


@dataclass(frozen=True)
class ExpertsComparison:
    """Everything :func:`compare_experts` finds; ``message`` says why a part is missing."""

    x: str
    best: list[BestLoss]
    multipliers: list[Multiplier]
    noise: SeedNoise
    dense_fit: tuple[float, float] | None  # (a, b) of ln L*_dense = a + b ln C
    bootstrap: int
    bootstrap_ok: int
    level: float
    messages: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"x": self.x, "level": self.level, "bootstrap": self.bootstrap,
                "bootstrap_ok": self.bootstrap_ok, "dense_fit": self.dense_fit,
                "seed_noise": self.noise.to_dict(),
                "best": [b.__dict__ for b in self.best],
                "multipliers": [m.__dict__ for m in self.multipliers],
                "messages": list(self.messages)}


def best_losses(frame, x: str = "N_active", y: str = "loss") -> list[BestLoss]:
    """``L*_E(C)`` for every budget and number of experts in ``frame``."""
    out = []
    for (budget, E), g in frame.groupby(["budget", "E"], sort=True):
        out.append(_best(g, float(budget), float(E), x, y))
    return out


def _best(g, budget: float, E: float, x: str, y: str) -> BestLoss:
    means = g.groupby(x)[y].mean()
    xs, losses = means.index.to_numpy(float), means.to_numpy(float)
    if xs.size >= 3:
        u = np.log10(xs)
        a, b, c = np.polyfit(np.log10(g[x].to_numpy(float)), g[y].to_numpy(float), 2)
        if a > 0 and u.min() < -b / (2 * a) < u.max():
            u_opt = -b / (2 * a)
            return BestLoss(budget, E, float(np.polyval((a, b, c), u_opt)), float(10 ** u_opt),
                            "parabola", len(g))
    i = int(np.argmin(losses))
    return BestLoss(budget, E, float(losses[i]), float(xs[i]), "best-run", len(g))


def _dense_fit(best: list[BestLoss]) -> tuple[float, float] | None:
    dense = [b for b in best if b.E == 1]
    if len({b.budget for b in dense}) < 2:
        return None
    C = np.log([b.budget for b in dense])
    L = np.log([b.loss for b in dense])
    b_slope, a = np.polyfit(C, L, 1)
    return (float(a), float(b_slope)) if b_slope < 0 else None


def _multipliers(best: list[BestLoss], fit: tuple[float, float]) -> dict[tuple, float]:
    a, b = fit
    out = {}
    for m in best:
        if m.E != 1:
            log_ratio = (math.log(m.loss) - a) / b - math.log(m.budget)
            out[(m.E, m.budget)] = math.exp(min(log_ratio, 700.0))  # 1e304: "no dense match"
    return out


def _summaries(values: dict[tuple, float]) -> dict[float, float]:
    by_e: dict[float, list[float]] = {}
    for (E, _), v in values.items():
        by_e.setdefault(E, []).append(math.log(v))
    return {E: math.exp(float(np.mean(v))) for E, v in by_e.items()}


def compare_experts(frame, x: str = "N_active", y: str = "loss",
                    bootstrap: int = support.DEFAULT_REPLICATES, seed: int = 0,
                    level: float = 0.95) -> ExpertsComparison:
    """Seed noise, ``L*_E(C)`` and the compute multiplier of every ``E`` over dense (module
    docstring). ``frame`` is a run table with ``budget``, ``E``, ``x`` and ``y``."""
    for col in ("budget", "E", x, y):
        if col not in frame.columns:
            raise MoescaleError(f"column {col!r} is not in the run table")
    frame = frame[np.isfinite(frame[y].astype(float)) & (frame[x].astype(float) > 0)]
    if frame.empty:
        raise MoescaleError("no finished run with a finite loss to compare")
    noise = seed_noise(frame, y, level)
    best = best_losses(frame, x, y)
    messages = []
    fit = _dense_fit(best)
    dense_budgets = sorted({b.budget for b in best if b.E == 1})
    if not dense_budgets:
        messages.append("no dense run (E = 1): no compute multiplier")
    elif fit is None:
        messages.append("the compute multiplier needs dense runs at two or more budgets whose "
                        "best loss falls with compute")
    if fit is None:
        return ExpertsComparison(x, best, [], noise, None, 0, 0, level, messages)
    point = _multipliers(best, fit)
    reps, deltas, ok = _bootstrap(frame, x, y, bootstrap, seed)
    if bootstrap and ok < MIN_OK_SHARE * bootstrap:
        messages.append(f"multiplier intervals refused: only {ok} of {bootstrap} bootstrap "
                        f"replicates gave a falling dense curve and finite multipliers")
    use_ci = bootstrap and ok >= MIN_OK_SHARE * bootstrap
    dense_loss = {b.budget: b.loss for b in best if b.E == 1}
    lo_c, hi_c = min(dense_budgets), max(dense_budgets)
    mults = []
    for (E, budget), value in sorted(point.items()):
        loss_e = next(b.loss for b in best if b.E == E and b.budget == budget)
        delta = loss_e - dense_loss[budget] if budget in dense_loss else None
        ci, mc = _interval([r[(E, budget)] for r in reps if (E, budget) in r], level, use_ci)
        d_ci, _ = _interval([r[(E, budget)] for r in deltas if (E, budget) in r], level,
                            bool(bootstrap) and delta is not None)
        within = d_ci[0] <= 0 <= d_ci[1] if d_ci else noise.within(delta)
        mults.append(Multiplier(E, budget, value, ci, delta, within,
                                not lo_c * 0.999 <= value * budget <= hi_c * 1.001, mc, d_ci))
    for E, value in sorted(_summaries(point).items()):
        ci, mc = _interval([s[E] for s in map(_summaries, reps) if E in s], level, use_ci)
        extrapolated = any(m.extrapolated for m in mults if m.E == E)
        mults.append(Multiplier(E, None, value, ci, None, None, extrapolated, mc))
    return ExpertsComparison(x, best, mults, noise, fit, bootstrap, ok, level, messages)


def _interval(samples: list[float], level: float, use: bool):
    """``((low, high), mc_error)`` of the samples' percentile interval, or ``(None, None)``."""
    if not use or not samples:
        return None, None
    lo, hi, mc = support.percentile_interval(samples, level)
    return (lo, hi), mc


def _bootstrap(frame, x: str, y: str, n: int, seed: int) -> tuple[list[dict], list[dict], int]:
    """Multipliers and best-loss differences to dense (per ``(E, budget)``) of ``n``
    case-bootstrap replicates (runs resampled within each ``(budget, E)`` group, in a
    canonical order); replicates without a falling dense curve give no multipliers and are
    counted as failed."""
    rng = np.random.default_rng(seed)
    groups = [(float(b), float(E), g.iloc[support.canonical_order(
                  [g[x].to_numpy(float), g[y].to_numpy(float)])])
              for (b, E), g in frame.groupby(["budget", "E"], sort=True)]
    reps, deltas = [], []
    for _ in range(max(n, 0)):
        best = [_best(g.iloc[rng.integers(0, len(g), len(g))], b, E, x, y) for b, E, g in groups]
        dense = {m.budget: m.loss for m in best if m.E == 1}
        deltas.append({(m.E, m.budget): m.loss - dense[m.budget] for m in best
                       if m.E != 1 and m.budget in dense})
        fit = _dense_fit(best)
        if fit is None:
            continue
        values = _multipliers(best, fit)
        if all(math.isfinite(v) and v > 0 for v in values.values()):
            reps.append(values)
    return reps, deltas, len(reps)
