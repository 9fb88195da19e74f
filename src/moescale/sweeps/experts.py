"""Arms of a study against a reference arm: seed noise, per-arm optima and the compute multiplier.

The question MoE users ask first is how much compute E experts save over a dense model at
equal loss; the same question holds for any axis of a study — granularity G, shared experts S,
top-k K, the arms of ``[[arms]]``. The joint-MoE paper (Ludziejewski et al. 2025, arXiv
2502.05172, Figure 1 and §5) states the answer as a compute multiplier: the reference arm's
compute that reaches the loss another arm reaches with compute C, divided by C. From a
sweep's runs, with arms the values of a column ``by`` (:func:`arm_keys`: ``E 8``, ``G 2``;
a dense run is the arm ``dense`` whatever the other axes say):

1. For each budget ``C`` and arm, the best loss ``L*(C)``: the minimum of the isoFLOP parabola
   in ``log10 x`` (``x`` = ``N_active`` by default) when it lies inside the sampled sizes,
   else the best configuration's mean loss over seeds (``status`` says which).
2. The reference arm's best losses (default: dense, else the first arm) are fitted by
   ``ln L*_ref = a + b·ln C`` (a power law; ``b < 0``) over its budgets — at least two.
3. ``C_ref(arm, C) = exp((ln L*_arm(C) − a) / b)`` and the multiplier ``C_ref / C`` (> 1: the
   arm saves compute). Per arm, the multipliers of its budgets are summarised by their
   geometric mean.

Intervals come from a case bootstrap (runs resampled within every ``(budget, arm)`` group,
all steps repeated); replicates whose reference fit has ``b ≥ 0`` or a non-finite multiplier
are counted as failed and excluded, and an interval from fewer than :data:`MIN_OK_SHARE` of
the replicates is refused with the count.

The bootstrap resamples each group's runs in a canonical order
(:func:`~moescale.fitting.support.canonical_order`), so the same runs and seed give the same
intervals whatever the row order; every interval reports its Monte-Carlo error.

Seed noise (:func:`~moescale.fitting.support.seed_noise`): runs identical but for the seed
give a pooled ``σ``. Whether a best loss differs from the reference's is judged by the
bootstrap interval of their difference (``delta_ci``: a best loss from a parabola or a best
run has its own uncertainty, which a threshold for two single runs does not describe);
without a bootstrap, two single runs are compared with ``t·√2·σ``.
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


ARM_AXES = ("E", "K", "G", "S", "G_act", "n_shared", "activation_ratio", "arm")


AXES = ("E", "K", "G", "S")  # the axes that name an arm


def arm_keys(frame, by: str = "E"):
    """Each run's arm: ``dense`` for a dense run (``E = 1``), else ``"BY VALUE"`` (``E 8``,
    ``G 2``) or, for ``by = "arm"``, the arm's own label (``E 16, K 2, G 2``). Runs of one
    value of ``by`` that differ in another axis are kept apart, that axis named
    (``G 2, K 2, S 0`` and ``G 2, K 1, S 0.5``): an analysis by G never pools shared-expert
    arms with plain ones."""
    import pandas as pd

    if by not in frame.columns:
        raise MoescaleError(f"column {by!r} is not in the run table; arms come from one of "
                            f"{', '.join(c for c in ARM_AXES if c in frame.columns)}")
    values = frame[by]
    keys = values.astype(str) if by == "arm" else values.map(lambda v: f"{by} {float(v):g}")
    dense = frame["E"].astype(float) == 1 if "E" in frame.columns else pd.Series(False, frame.index)
    if by != "arm":
        others = [a for a in AXES if a != by and a in frame.columns]
        moe = frame[~dense]
        for key in keys[~dense].unique():
            rows = moe.index[keys[~dense] == key]
            varying = [a for a in others if frame.loc[rows, a].nunique() > 1]
            if varying:
                keys.loc[rows] = [key + "".join(f", {a} {float(frame.at[i, a]):g}"
                                                for a in varying) for i in rows]
    keys = keys.where(~dense, "dense")
    return pd.Series(keys, index=frame.index, name="arm_key")


def arm_order(key: str) -> tuple:
    """Dense first, then by the axis value, then by label."""
    import re

    if key == "dense":
        return (0, 0.0, key)
    m = re.search(r"-?\d+(\.\d+)?(e-?\d+)?", key)
    return (1, float(m.group(0)) if m else 0.0, key)


@dataclass(frozen=True)
class BestLoss:
    """``L*(C)``: the best loss of one arm at one budget."""

    budget: float
    arm: str
    loss: float
    x_opt: float  # the size at which it is reached
    status: str  # "parabola" (interior minimum) or "best-run" (minimum at the edge / too few)
    n_runs: int


@dataclass(frozen=True)
class Multiplier:
    """The reference arm's compute reaching ``arm``'s loss at ``budget``, over ``budget``
    (``budget`` None: the geometric mean over the arm's budgets)."""

    arm: str
    budget: float | None
    multiplier: float | None
    ci: tuple[float, float] | None
    delta_loss: float | None  # L*_arm − L*_ref at the same budget (None for the summary)
    within_noise: bool | None  # the difference is not distinguishable from 0 (None: unknown)
    extrapolated: bool  # C_ref outside the reference's budgets
    ci_mc_error: float | None = None  # Monte-Carlo standard error of the interval's ends
    delta_ci: tuple[float, float] | None = None  # bootstrap interval of delta_loss


@dataclass(frozen=True)
class ArmsComparison:
    """Everything :func:`compare_arms` finds; ``message`` says why a part is missing."""

    x: str
    best: list[BestLoss]
    multipliers: list[Multiplier]
    noise: SeedNoise
    dense_fit: tuple[float, float] | None  # (a, b) of ln L*_ref = a + b ln C
    bootstrap: int
    bootstrap_ok: int
    level: float
    messages: list[str] = field(default_factory=list)
    by: str = "E"
    reference: str = "dense"

    @property
    def arms(self) -> list[str]:
        """The arms, dense (or the reference) first."""
        return sorted({b.arm for b in self.best}, key=arm_order)

    def to_dict(self) -> dict[str, Any]:
        return {"x": self.x, "by": self.by, "reference": self.reference, "arms": self.arms,
                "level": self.level, "bootstrap": self.bootstrap,
                "bootstrap_ok": self.bootstrap_ok, "reference_fit": self.dense_fit,
                "seed_noise": self.noise.to_dict(),
                "best": [b.__dict__ for b in self.best],
                "multipliers": [m.__dict__ for m in self.multipliers],
                "messages": list(self.messages)}


ExpertsComparison = ArmsComparison  # the name of the E-only comparison


def best_losses(frame, x: str = "N_active", y: str = "loss", by: str = "E") -> list[BestLoss]:
    """``L*(C)`` for every budget and arm of ``frame`` (arms: :func:`arm_keys`)."""
    frame = frame.assign(arm_key=arm_keys(frame, by))
    return [_best(g, float(budget), str(arm), x, y)
            for (budget, arm), g in frame.groupby(["budget", "arm_key"], sort=True)]


def _best(g, budget: float, E: str, x: str, y: str) -> BestLoss:
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


def _dense_fit(best: list[BestLoss], reference: str) -> tuple[float, float] | None:
    dense = [b for b in best if b.arm == reference]
    if len({b.budget for b in dense}) < 2:
        return None
    C = np.log([b.budget for b in dense])
    L = np.log([b.loss for b in dense])
    b_slope, a = np.polyfit(C, L, 1)
    return (float(a), float(b_slope)) if b_slope < 0 else None


def _multipliers(best: list[BestLoss], fit: tuple[float, float],
                 reference: str) -> dict[tuple, float]:
    a, b = fit
    out = {}
    for m in best:
        if m.arm != reference:
            log_ratio = (math.log(m.loss) - a) / b - math.log(m.budget)
            out[(m.arm, m.budget)] = math.exp(min(log_ratio, 700.0))  # 1e304: no match
    return out


def _summaries(values: dict[tuple, float]) -> dict[str, float]:
    by_e: dict[str, list[float]] = {}
    for (E, _), v in values.items():
        by_e.setdefault(E, []).append(math.log(v))
    return {E: math.exp(float(np.mean(v))) for E, v in by_e.items()}


def compare_experts(frame, x: str = "N_active", y: str = "loss",
                    bootstrap: int = support.DEFAULT_REPLICATES, seed: int = 0,
                    level: float = 0.95) -> ArmsComparison:
    """Dense against every number of experts: :func:`compare_arms` with ``by = "E"``."""
    return compare_arms(frame, "E", x=x, y=y, bootstrap=bootstrap, seed=seed, level=level)


def compare_arms(frame, by: str = "E", reference: str | None = None, *, x: str = "N_active",
                 y: str = "loss", bootstrap: int = support.DEFAULT_REPLICATES, seed: int = 0,
                 level: float = 0.95) -> ArmsComparison:
    """Seed noise, ``L*(C)`` per arm and the compute multiplier of every arm over
    ``reference`` (module docstring). ``frame`` is a run table with ``budget``, ``by``, ``x``
    and ``y``; ``reference`` an arm key (``dense``, ``G 1``, …; default dense, else the first
    arm)."""
    for col in ("budget", by, x, y):
        if col not in frame.columns:
            raise MoescaleError(f"column {col!r} is not in the run table")
    frame = frame[np.isfinite(frame[y].astype(float)) & (frame[x].astype(float) > 0)]
    if frame.empty:
        raise MoescaleError("no finished run with a finite loss to compare")
    frame = frame.assign(arm_key=arm_keys(frame, by))
    arms = sorted(frame["arm_key"].unique(), key=arm_order)
    if reference is None:
        reference = arms[0]
    elif reference not in arms:
        raise MoescaleError(f"`reference` {reference!r} is not an arm of these runs; arms: "
                            f"{', '.join(arms)}")
    noise = seed_noise(frame.drop(columns="arm_key"), y, level)
    best = best_losses(frame, x, y, by)
    messages = []
    fit = _dense_fit(best, reference)
    ref_budgets = sorted({b.budget for b in best if b.arm == reference})
    if len(arms) < 2:
        messages.append(f"one arm only ({arms[0]}): nothing to compare")
    elif fit is None:
        messages.append(f"the compute multiplier needs the reference arm ({reference}) at two or "
                        "more budgets with its best loss falling with compute")
    if fit is None:
        return ArmsComparison(x, best, [], noise, None, 0, 0, level, messages, by, reference)
    point = _multipliers(best, fit, reference)
    reps, deltas, ok = _bootstrap(frame, x, y, bootstrap, seed, reference)
    if bootstrap and ok < MIN_OK_SHARE * bootstrap:
        messages.append(f"multiplier intervals refused: only {ok} of {bootstrap} bootstrap "
                        f"replicates gave a falling {reference} curve and finite multipliers")
    use_ci = bootstrap and ok >= MIN_OK_SHARE * bootstrap
    ref_loss = {b.budget: b.loss for b in best if b.arm == reference}
    lo_c, hi_c = min(ref_budgets), max(ref_budgets)
    mults = []
    for (arm, budget), value in sorted(point.items(), key=lambda kv: (arm_order(kv[0][0]),
                                                                      kv[0][1])):
        loss_e = next(b.loss for b in best if b.arm == arm and b.budget == budget)
        delta = loss_e - ref_loss[budget] if budget in ref_loss else None
        ci, mc = _interval([r[(arm, budget)] for r in reps if (arm, budget) in r], level, use_ci)
        d_ci, _ = _interval([r[(arm, budget)] for r in deltas if (arm, budget) in r], level,
                            bool(bootstrap) and delta is not None)
        within = d_ci[0] <= 0 <= d_ci[1] if d_ci else noise.within(delta)
        mults.append(Multiplier(arm, budget, value, ci, delta, within,
                                not lo_c * 0.999 <= value * budget <= hi_c * 1.001, mc, d_ci))
    for arm, value in sorted(_summaries(point).items(), key=lambda kv: arm_order(kv[0])):
        ci, mc = _interval([s[arm] for s in map(_summaries, reps) if arm in s], level, use_ci)
        extrapolated = any(m.extrapolated for m in mults if m.arm == arm)
        mults.append(Multiplier(arm, None, value, ci, None, None, extrapolated, mc))
    return ArmsComparison(x, best, mults, noise, fit, bootstrap, ok, level, messages, by,
                          reference)


def _interval(samples: list[float], level: float, use: bool):
    """``((low, high), mc_error)`` of the samples' percentile interval, or ``(None, None)``."""
    if not use or not samples:
        return None, None
    lo, hi, mc = support.percentile_interval(samples, level)
    return (lo, hi), mc


def _bootstrap(frame, x: str, y: str, n: int, seed: int,
               reference: str) -> tuple[list[dict], list[dict], int]:
    """Multipliers and best-loss differences to the reference (per ``(arm, budget)``) of
    ``n`` case-bootstrap replicates (runs resampled within each ``(budget, arm)`` group, in a
    canonical order); replicates without a falling reference curve give no multipliers and
    are counted as failed."""
    rng = np.random.default_rng(seed)
    groups = sorted(((float(b), str(arm), g.iloc[support.canonical_order(
                         [g[x].to_numpy(float), g[y].to_numpy(float)])])
                     for (b, arm), g in frame.groupby(["budget", "arm_key"])),
                    key=lambda t: (t[0], arm_order(t[1])))  # budgets, then dense first
    reps, deltas = [], []
    for _ in range(max(n, 0)):
        best = [_best(g.iloc[rng.integers(0, len(g), len(g))], b, a, x, y) for b, a, g in groups]
        ref = {m.budget: m.loss for m in best if m.arm == reference}
        deltas.append({(m.arm, m.budget): m.loss - ref[m.budget] for m in best
                       if m.arm != reference and m.budget in ref})
        fit = _dense_fit(best, reference)
        if fit is None:
            continue
        values = _multipliers(best, fit, reference)
        if all(math.isfinite(v) and v > 0 for v in values.values()):
            reps.append(values)
    return reps, deltas, len(reps)
