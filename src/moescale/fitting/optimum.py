"""The compute-optimal point a fitted law gives at a budget (:func:`optimum`, and
:func:`optima` for many parameter sets at once, e.g. bootstrap refits), the size variable it
optimises and the discrete choices (E, G, K) it takes from the runs; how stable that point is
across refits (:func:`stability`). Used by the leaderboard (:mod:`moescale.fitting.selection`)
and the sensitivity study (:mod:`moescale.fitting.sensitivity`)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from moescale.errors import MoescaleError
from moescale.laws import Law, get_law

N_MIN, D_MIN = 1e4, 1e4      # the optimum search: at least this many parameters and tokens
CHOICE_VARIABLES = ("E", "G", "K")  # discrete architecture variables the optimum chooses


def size_variable(law: Law | str) -> str | None:
    """The size variable of a law's compute-optimal allocation (``N_active`` or ``N``), or
    ``None`` when the law has no optimum ``min L s.t. 6·N·D = C`` (no ``D``, or variables
    other than the size, ``D`` and discrete architecture choices ``E``, ``G``, ``K``)."""
    law = get_law(law) if isinstance(law, str) else law
    size = "N_active" if "N_active" in law.variables else "N"
    if law.target != "loss" or "D" not in law.variables or size not in law.variables:
        return None
    if any(v not in (size, "D", *CHOICE_VARIABLES) for v in law.variables):
        return None
    return size


def choice_values(law: Law | str, runs=None, at: Mapping[str, float] | None = None,
                  rows: np.ndarray | None = None, limit: int = 24) -> dict[str, np.ndarray]:
    """Candidate values of the law's discrete choices (``E``, ``G``, ``K``) for the optimum:
    ``at`` when given there, else the distinct values in the runs (at most ``limit``, spread
    evenly), i.e. the optimum is searched within the range the runs cover."""
    law = get_law(law) if isinstance(law, str) else law
    at = dict(at or {})
    out = {}
    for v in law.variables:
        if v not in CHOICE_VARIABLES:
            continue
        if v in at:
            out[v] = np.atleast_1d(np.asarray(at[v], dtype=float))
            continue
        if runs is None:
            raise MoescaleError(f"the optimum of {law.name!r} needs {v}: give it (at {v}=…)")
        values = runs.arrays([v])[v]
        values = np.unique(values if rows is None else values[rows])
        if values.size > limit:
            values = values[np.unique(np.round(np.linspace(0, values.size - 1, limit)).astype(int))]
        out[v] = values
    return out


def optima(law: Law | str, param_sets: Sequence[Mapping[str, float]], compute: float,
           choices: Mapping[str, Sequence[float]] | None = None) -> dict[str, np.ndarray] | None:
    """Compute-optimal allocations of many parameter sets at once (vectorised).

    ``min L(N, D, choices) s.t. 6·N·D = C`` over ``N`` (a log grid refined three times) and
    over every combination of ``choices`` (e.g. ``{"E": [1, 8, 64]}``); ``N`` is the law's
    :func:`size_variable`.

    Parameters
    ----------
    law : Law or str
    param_sets : sequence of mappings
        Natural-unit parameters (a fit and its bootstrap refits).
    compute : float
        The training budget ``C`` (FLOPs, ``6·N·D``).
    choices : mapping, optional
        Candidate values of the law's ``E``/``G``/``K`` (:func:`choice_values`).

    Returns
    -------
    dict of arrays or None
        ``N_opt``, ``D_opt``, ``loss_opt``, one array per choice variable (``E_opt``, …) and
        ``interior`` (the optimum in ``N`` is not at the search's edge), each of length
        ``len(param_sets)``; ``None`` when the law has no such optimum.
    """
    law = get_law(law) if isinstance(law, str) else law
    size = size_variable(law)
    if size is None:
        return None
    if not (isinstance(compute, (int, float)) and math.isfinite(compute)) or compute <= 0:
        raise MoescaleError(f"the target compute must be a positive number, got {compute!r}")
    lo, hi = math.log(N_MIN), math.log(compute / 6 / D_MIN)
    if hi <= lo + 1:
        raise MoescaleError(f"target compute {compute:.3g} FLOPs is too small for an optimum "
                            f"(at least {6 * N_MIN * D_MIN * math.e:.1g})")
    choices = {k: np.asarray(v, dtype=float) for k, v in (choices or {}).items()}
    need = [v for v in law.variables if v in CHOICE_VARIABLES and v not in choices]
    if need:
        raise MoescaleError(f"the optimum of {law.name!r} needs values of {', '.join(need)}")
    names = [v for v in law.variables if v in CHOICE_VARIABLES]
    product = list(itertools.product(*(choices[v] for v in names)))
    combos = np.array(product, dtype=float).reshape(len(product), len(names))
    b, m = len(param_sets), len(combos)
    if b == 0:
        return {k: np.array([]) for k in ("N_opt", "D_opt", "loss_opt", "interior",
                                           *(f"{v}_opt" for v in names))}
    params = {k: np.array([float(p[k]) for p in param_sets])[:, None] for k in law.params}

    def log_loss(t: np.ndarray) -> np.ndarray:
        """ln L at ln N = t, shape (b, m, K) → (b, m, K)."""
        k = t.shape[-1]
        n = np.exp(t)
        v = {size: n.reshape(b, -1), "D": (compute / 6 / n).reshape(b, -1)}
        for j, name in enumerate(names):
            v[name] = np.broadcast_to(combos[None, :, j, None], (b, m, k)).reshape(b, -1)
        with np.errstate(all="ignore"):
            out = np.asarray(law.log_loss(params, v), dtype=float)
        out = np.broadcast_to(out, (b, m * k)).reshape(b, m, k)
        return np.where(np.isfinite(out), out, np.inf)

    t = np.broadcast_to(np.linspace(lo, hi, 241), (b, m, 241))
    f = log_loss(t)
    i = np.argmin(f, axis=-1)
    interior = (i > 0) & (i < 240) & np.isfinite(np.min(f, axis=-1))
    best = np.take_along_axis(t, i[..., None], -1)[..., 0]
    step = (hi - lo) / 240
    for _ in range(3):
        t = np.clip(best[..., None] + np.linspace(-step, step, 41), lo, hi)
        f = log_loss(t)
        best = np.take_along_axis(t, np.argmin(f, axis=-1)[..., None], -1)[..., 0]
        step /= 20
    loss = np.exp(np.min(f, axis=-1))                     # (b, m)
    pick = np.argmin(np.where(np.isfinite(loss), loss, np.inf), axis=-1)
    rows = np.arange(b)
    n_opt = np.exp(best[rows, pick])
    out = {"N_opt": n_opt, "D_opt": compute / 6 / n_opt, "loss_opt": loss[rows, pick],
           "interior": interior[rows, pick] & np.isfinite(loss[rows, pick])}
    for j, name in enumerate(names):
        out[f"{name}_opt"] = combos[pick, j]
    return out


def optimum(law: Law | str, params: Mapping[str, float], compute: float,
            choices: Mapping[str, Sequence[float]] | None = None) -> dict[str, Any] | None:
    """The compute-optimal point of one parameter set (:func:`optima`) as plain numbers:
    ``N_opt``, ``D_opt``, ``loss_opt``, ``E_opt`` (…), ``interior``, ``size_variable``,
    ``target_compute``; ``None`` when the law has none.

    >>> from moescale.laws import get_law
    >>> p = get_law("chinchilla").presets["hoffmann2022"].values
    >>> o = optimum("chinchilla", p, 5.76e23)           # Chinchilla's budget: ≈ 40B params
    >>> 3e10 < o["N_opt"] < 6e10
    True
    """
    out = optima(law, [params], compute, choices)
    if out is None:
        return None
    res: dict[str, Any] = {k: (bool(v[0]) if k == "interior" else float(v[0]))
                           for k, v in out.items()}
    res["size_variable"] = size_variable(law)
    res["target_compute"] = float(compute)
    return res


def stability(law: Law | str, point: Mapping[str, Any], boots: Sequence[Mapping[str, float]],
              compute: float, choices: Mapping[str, Sequence[float]] | None,
              level: float = 0.95) -> dict[str, Any] | None:
    """Bootstrap stability of the optimum: percentile intervals of ``N_opt`` and ``D_opt``
    over the refits (those with an interior optimum), their widths relative to the point
    estimate, and the share of refits choosing the same ``E``/``G``/``K``."""
    if not boots:
        return None
    out = optima(law, boots, compute, choices)
    if out is None:
        return None
    ok = out["interior"] & np.isfinite(out["N_opt"])
    q = (1 - level) / 2
    res: dict[str, Any] = {"refits": len(boots), "interior": int(ok.sum()), "level": level}
    for key in ("N_opt", "D_opt"):
        if ok.sum() >= 2:
            lo, hi = (float(x) for x in np.quantile(out[key][ok], [q, 1 - q]))
            res[f"{key}_ci"] = [lo, hi]
            res[f"{key}_rel_width"] = (hi - lo) / float(point[key])
        else:
            res[f"{key}_ci"] = [float("nan")] * 2
            res[f"{key}_rel_width"] = float("nan")
    for key in out:
        if key.endswith("_opt") and key[:-4] in CHOICE_VARIABLES:
            res[f"{key}_agreement"] = float(np.mean(out[key] == point[key]))
    return res
