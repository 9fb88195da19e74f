"""What the runs support: the one place moescale decides whether a number rests on its data.

Fit, the leaderboard, ``sweep analyze``, the experts comparison, suggest, plan, predict and the
report all ask the same questions here, so they answer them alike:

- **Seed noise.** ``σ`` pools the final-loss variance of runs *identical but for the seed*:
  equal in every column that describes a run (:data:`CONFIG_COLUMNS`: size, budget, training
  settings, schedule, role in a trunk, corpus). Every bound built on ``σ``
  uses Student's ``t`` with the pooled degrees of freedom, so three pairs give a wide bound,
  not ``2·√2·σ``.
- **Verdicts.** A held-out error is explained by the noise when ``(RMSE/σ)²`` stays below the
  F quantile with ``(n_heldout, dof)`` degrees of freedom; beyond it the law does not
  extrapolate to the held-out runs (:func:`holdout_verdict`).
- **Intervals.** Resampling draws in a canonical order of the rows (:func:`canonical_order`),
  so the same runs and seed give the same interval whatever the file's row order; each
  percentile endpoint carries its Monte-Carlo error, the half-width of the 95 % band in which
  another resampling stream would put it (:func:`percentile_interval`).
  A prediction interval for a *run* adds the seed noise to the interval of the law's mean
  (:func:`run_interval`).
- **Published coefficients.** A preset knows the range of its paper's runs
  (:attr:`~moescale.laws.base.Preset.ranges`); a prediction outside it is an extrapolation and
  says by how much (:func:`preset_warnings`). Published coefficients carry no interval.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# Columns that describe a run apart from its seed: size, budget, training settings and the
# schedule (a trunk branch is not a seed of an independent run), as `sweep export` writes them.
CONFIG_COLUMNS = ("budget", "D", "N", "N_active", "E", "K", "top_k", "n_shared", "G", "d", "L",
                  "lr", "batch_tokens", "role", "branch_step", "warmup_steps", "decay_fraction",
                  "cooldown", "corpus", "tokenizer")
DEFAULT_REPLICATES = 1000  # bootstrap replicates of analyze, the experts comparison and report:
#                           enough that an interval's Monte-Carlo error is small beside its width
NO_INTERVAL = ("published coefficients carry no interval (the paper gives none): the "
               "prediction's uncertainty is unknown")


# ----- seed noise -------------------------------------------------------------------------------
@dataclass(frozen=True)
class SeedNoise:
    """Pooled within-configuration standard deviation of the final loss (nats/token) over
    configurations run with two or more seeds; ``sd`` is None when there is none."""

    sd: float | None
    n_configs: int  # configurations with two or more seeds
    dof: int  # degrees of freedom of the pooled variance
    level: float = 0.95

    def t(self) -> float:
        """Student's two-sided ``t`` quantile at ``level`` with :attr:`dof` degrees of freedom."""
        from scipy.stats import t

        return float(t.ppf(0.5 + self.level / 2, self.dof))

    def difference_bound(self) -> float | None:
        """``t·√2·σ``: the largest loss difference between two single runs the noise explains
        (None when σ is unknown)."""
        return None if self.sd is None else self.t() * math.sqrt(2.0) * self.sd

    def within(self, delta: float | None) -> bool | None:
        """Whether the loss difference of two single runs is within the noise (None: unknown)."""
        if self.sd is None or delta is None or not math.isfinite(delta):
            return None
        return abs(delta) < self.difference_bound()

    def to_dict(self) -> dict[str, Any]:
        return {"sd": self.sd, "n_configs": self.n_configs, "dof": self.dof, "level": self.level,
                "difference_bound": self.difference_bound(), "text": self.describe()}

    def describe(self) -> str:
        if self.sd is None:
            return ("seed noise unknown: no configuration was run with two or more seeds "
                    "(identical but for the seed)")
        q = 0.5 + self.level / 2
        return (f"seed noise σ = {self.sd:.4f} nats ({self.n_configs} configurations identical "
                f"but for the seed, {self.dof} degrees of freedom); two single runs differ beyond "
                f"it when |ΔL| > t({q:g}; {self.dof})·√2·σ = {self.difference_bound():.4f}")


def config_columns(frame) -> list[str]:
    """The columns that identify a configuration apart from its seed (module docstring)."""
    return [c for c in CONFIG_COLUMNS if c in frame.columns]


def seed_noise(frame, y: str = "loss", level: float = 0.95) -> SeedNoise:
    """Pool the ``y`` variance of runs that differ only in their seed."""
    keys = config_columns(frame)
    if not keys or "seed" not in frame.columns or y not in frame.columns:
        return SeedNoise(None, 0, 0, level)
    ss, dof, n = 0.0, 0, 0
    for _, g in frame.groupby(keys, dropna=False):
        values = g[y].to_numpy(float)
        values = values[np.isfinite(values)]
        if values.size >= 2 and g["seed"].nunique() == len(g):
            ss += float(((values - values.mean()) ** 2).sum())
            dof += values.size - 1
            n += 1
    return SeedNoise(math.sqrt(ss / dof) if dof else None, n, dof, level)


# ----- verdicts -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    """Whether a law's held-out error is what the noise explains (``extrapolates``; None when
    it cannot be judged), the ratio of that error to the noise, and a sentence saying so."""

    extrapolates: bool | None
    ratio: float | None  # held-out RMSE / σ
    bound: float | None  # the largest ratio the noise explains
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"extrapolates": self.extrapolates, "ratio_to_noise": self.ratio,
                "bound": self.bound, "text": self.text}


def holdout_verdict(rmse: float | None, n_holdout: int, noise: SeedNoise,
                    what: str = "the best law") -> Verdict:
    """Whether a held-out RMSE (nats) is explained by run-to-run noise ``σ``.

    Were the law exact, each held-out loss would miss it by one run's noise, so
    ``(RMSE/σ)² = mean(e²)/σ²`` follows ``F(n_heldout, dof)``; a ratio above the F quantile at
    the noise's level says the law does not extrapolate to the held-out runs."""
    if rmse is None or not math.isfinite(rmse) or not n_holdout:
        return Verdict(None, None, None, f"no held-out runs: whether {what} extrapolates is "
                                         "not tested")
    if noise.sd is None or not noise.sd > 0:
        return Verdict(None, None, None, f"{what} misses the held-out runs by RMSE "
                                         f"{rmse:.4g}; the seed noise is unknown (no runs "
                                         "identical but for the seed), so whether that is noise "
                                         "is not known")
    from scipy.stats import f

    ratio = rmse / noise.sd
    bound = math.sqrt(float(f.ppf(noise.level, n_holdout, noise.dof)))
    if ratio <= bound:
        return Verdict(True, ratio, bound, f"{what} predicts the {n_holdout} held-out run(s) "
                                          f"within the seed noise (RMSE {ratio:.2g}× σ, bound "
                                          f"{bound:.2g}× at {noise.level:.0%})")
    return Verdict(False, ratio, bound, f"{what} misses the {n_holdout} held-out run(s) by "
                                        f"{ratio:.3g}× the seed noise σ = {noise.sd:.3g} (the noise "
                                        f"explains up to {bound:.2g}× at {noise.level:.0%}): no "
                                        "law here extrapolates to them, so none is validated")


# ----- intervals ----------------------------------------------------------------------------------
def canonical_order(columns: Sequence[np.ndarray]) -> np.ndarray:
    """Positions of the rows sorted by their values (first column first): resampling in this
    order makes a bootstrap depend on the runs, not on the order of the file. Identical rows
    are interchangeable, so ties need no rule."""
    cols = [np.asarray(c) for c in columns]
    keys = [np.where(np.isfinite(c), c, np.inf) if c.dtype.kind == "f" else c
            for c in reversed(cols)]
    return np.lexsort(keys) if keys else np.arange(0)


def position_in(order: np.ndarray) -> np.ndarray:
    """For each row, its position in ``order`` (the inverse permutation)."""
    pos = np.empty_like(order)
    pos[order] = np.arange(order.size)
    return pos


def percentile_interval(samples, level: float) -> tuple[float, float, float]:
    """``(low, high, mc_error)``: the percentile interval of ``samples`` at ``level`` and the
    Monte-Carlo error of its endpoints (:func:`quantile_mc_error`, the larger of the two)."""
    a = np.sort(np.asarray(samples, dtype=float))
    a = a[np.isfinite(a)]
    if a.size == 0:
        return float("nan"), float("nan"), float("nan")
    q = (1 - level) / 2
    lo, hi = np.quantile(a, [q, 1 - q])
    return float(lo), float(hi), quantile_mc_error(a, q)


def quantile_mc_error(sorted_samples: np.ndarray, q: float) -> float:
    """Monte-Carlo error of the ``q`` and ``1 − q`` quantiles of sorted samples (the larger):
    half the spread of the order statistics within ``±1.96·√(n·q·(1−q))`` ranks of each — the
    95 % band in which another resampling stream puts the quantile (distribution-free; with
    few distinct resamples the band catches the jumps between them)."""
    n = sorted_samples.size
    if n < 2:
        return float("nan")
    half = 1.96 * math.sqrt(n * q * (1 - q))
    errs = []
    for p in (q, 1 - q):
        j_lo = int(np.clip(math.floor(n * p - half), 0, n - 1))
        j_hi = int(np.clip(math.ceil(n * p + half), 0, n - 1))
        errs.append((sorted_samples[j_hi] - sorted_samples[j_lo]) / 2.0)
    return float(max(errs))


def run_interval(point, mean_low, mean_high, noise: SeedNoise) -> tuple[np.ndarray, np.ndarray]:
    """Interval for a new run's loss: the law-mean interval widened by the run noise in
    quadrature, ``point ± √(h² + (t·σ)²)`` on each side (``h`` the mean interval's extent on
    that side, 0 where the point lies beyond it), and never narrower than the mean interval;
    the mean interval itself when σ is unknown."""
    point, lo, hi = (np.asarray(v, dtype=float) for v in (point, mean_low, mean_high))
    if noise.sd is None:
        return lo, hi
    spread = noise.t() * noise.sd
    below = point - np.sqrt(np.maximum(point - lo, 0.0) ** 2 + spread**2)
    above = point + np.sqrt(np.maximum(hi - point, 0.0) ** 2 + spread**2)
    return np.minimum(below, lo), np.maximum(above, hi)


# ----- published coefficients ----------------------------------------------------------------------
def preset_warnings(law, preset: str, values: Mapping[str, Any]) -> list[str]:
    """One message per variable of a prediction outside the range of the runs ``preset`` was
    fitted on (how many times beyond), and one when that range is not recorded."""
    p = law.preset(preset)
    where = f"{law.name} ({preset})"
    if not p.ranges:
        return [f"{where}: the range of the paper's runs is not recorded, so whether this "
                "prediction extrapolates is unknown"]
    out = []
    for name, (low, high) in p.ranges.items():
        if name not in values:
            continue
        v = np.asarray(values[name], dtype=float)
        if v.size != 1 or not np.isfinite(v).all():
            continue
        x = float(v.reshape(-1)[0])
        if low <= x <= high:
            continue
        factor = low / x if x < low else x / high
        side = "below" if x < low else "above"
        out.append(f"{where}: {name} = {x:.3g} is {factor:.3g}× {side} the paper's runs "
                   f"({low:.3g}–{high:.3g}): an extrapolation the paper never tested")
    return out
