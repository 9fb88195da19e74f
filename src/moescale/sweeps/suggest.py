"""The next runs that matter: sequential design for the quantity a researcher cares about.

Given runs fitted with a loss law, which new runs (size and tokens, within a FLOP budget for
the new runs) most shrink the uncertainty of

- ``loss``: the predicted loss at the compute-optimal allocation of ``target_compute``, or
- ``allocation``: ``ln N_opt`` at ``target_compute`` (``N`` and ``D = C/(6N)`` under the law's
  counting convention; other variables, e.g. ``E``, held at the runs' most common value)?

Method (a c-optimal sequential design, linearised): the bootstrap covariance of the fitted
parameters (fit space) is the prior ``Σ``; a new run with log-loss Jacobian ``j`` and the fit's
residual variance ``σ²`` updates ``Σ ← Σ − Σjᵀ jΣ / (σ² + jΣjᵀ)``; the quantity's variance is
``g Σ gᵀ`` with ``g`` its gradient. Runs are chosen greedily by variance removed per FLOP until
``n`` runs are chosen or the FLOP budget is spent. Every candidate is scored at once (numpy).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from moescale.errors import MoescaleError
from moescale.laws import Law, get_law

QUANTITIES = ("loss", "allocation")
SIGNIFICANT = 12  # budgets and law variables are compared at 12 significant digits
FD_STEP = 1e-5  # central differences in fit space
N_GRID = 801  # ln N grid for the compute-optimal allocation


@dataclass(frozen=True)
class Suggestion:
    """One proposed run: its law variables, FLOPs and the quantity's s.d. once it is added."""

    variables: dict[str, float]
    flops: float
    sd_after: float
    run: Any = None  # a RunSpec when candidates came from a sweep spec

    def to_dict(self) -> dict[str, Any]:
        out = {"variables": self.variables, "flops": self.flops, "sd_after": self.sd_after}
        if self.run is not None:
            out |= {"id": self.run.id, "budget": self.run.budget, "tokens": self.run.tokens,
                    "architecture": self.run.architecture}
        return out


@dataclass(frozen=True)
class SuggestResult:
    """The design: current value and s.d. of the quantity, the runs, the s.d. expected after."""

    law: str
    quantity: str
    target_compute: float
    value: float
    sd_now: float
    sd_after: float
    flops: float
    suggestions: list[Suggestion] = field(default_factory=list)
    held: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"law": self.law, "quantity": self.quantity, "target_compute": self.target_compute,
                "value": self.value, "sd_now": self.sd_now, "sd_after": self.sd_after,
                "flops": self.flops, "held": self.held,
                "suggestions": [s.to_dict() for s in self.suggestions]}


def normalise(x: float) -> float:
    """``x`` at :data:`SIGNIFICANT` digits: ``2000000000.0000002`` is ``2e9``."""
    return float(f"{float(x):.{SIGNIFICANT}g}")


def distinct(candidates: Mapping[str, np.ndarray],
             existing: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """Indices of the candidates that are distinct points of the law (their variables at
    12 significant digits): the first of several copies, none equal to an ``existing`` run.
    A copy adds no independent information about the law's parameters (seed noise is not
    the fit's residual), so it is never proposed nor counted in the s.d. after."""
    names = sorted(candidates)
    seen = set()
    if existing is not None and all(k in existing for k in names):
        seen = {tuple(normalise(existing[k][i]) for k in names)
                for i in range(len(existing[names[0]]))}
    keep = []
    for j in range(len(candidates[names[0]]) if names else 0):
        key = tuple(normalise(candidates[k][j]) for k in names)
        if key not in seen:
            seen.add(key)
            keep.append(j)
    return np.array(keep, dtype=int)


# ----- the quantity and its gradient ---------------------------------------------------------
def held_variables(law: Law, frame) -> dict[str, float]:
    """Law variables other than N and D, at their most common value in the runs."""
    out = {}
    for var in law.variables:
        if var in ("N", "N_active", "D"):
            continue
        if var not in frame.columns:
            raise MoescaleError(f"law {law.name!r} needs {var}, which the runs do not have")
        out[var] = float(Counter(frame[var].round(12)).most_common(1)[0][0])
    return out


def size_variable(law: Law) -> str:
    """The law's model-size variable; a law without size and tokens has no allocation."""
    if law.target != "loss" or "D" not in law.variables:
        raise MoescaleError(f"law {law.name!r} is not a loss law of model size and tokens (D); "
                            "a compute-optimal allocation needs one (e.g. chinchilla)")
    for var in ("N_active", "N"):
        if var in law.variables:
            return var
    raise MoescaleError(f"law {law.name!r} has no model-size variable (N or N_active) to allocate")


def quantity(law: Law, theta: np.ndarray, target_compute: float, held: Mapping[str, float],
             which: str) -> np.ndarray:
    """The quantity for fit-space parameter rows ``theta`` (k, P) → (k,)."""
    size = size_variable(law)
    params = law.from_fit_space({p: theta[:, i:i + 1] for i, p in enumerate(law.params)})
    ln_n = np.linspace(np.log(target_compute) / 2 - 12, np.log(target_compute) / 2 + 8, N_GRID)
    n = np.exp(ln_n)
    v = {size: n, "D": target_compute / (6 * n), **{k: np.full(N_GRID, x) for k, x in held.items()}}
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        ll = law.log_loss(params, v)  # (k, grid)
    i = np.clip(np.argmin(ll, axis=1), 1, N_GRID - 2)
    rows = np.arange(len(theta))
    y0, y1, y2 = ll[rows, i - 1], ll[rows, i], ll[rows, i + 1]
    curv = y0 - 2 * y1 + y2
    shift = np.where(curv > 0, 0.5 * (y0 - y2) / np.where(curv > 0, curv, 1), 0.0)
    h = ln_n[1] - ln_n[0]
    if which == "allocation":
        return ln_n[i] + shift * h
    return y1 - 0.25 * (y0 - y2) * shift  # ln L at the parabola's vertex


def _gradient(fn, theta: np.ndarray) -> np.ndarray:
    """Central differences of ``fn`` ((k, P) → (k, m)) at one point ``theta`` (P,) → (m, P)."""
    P = theta.size
    steps = FD_STEP * np.maximum(np.abs(theta), 1.0)
    plus = theta + np.diag(steps)
    minus = theta - np.diag(steps)
    values = fn(np.vstack([plus, minus]))
    return ((values[:P] - values[P:]) / (2 * steps[:, None])).T


# ----- the design ----------------------------------------------------------------------------
def design(law: Law, theta: np.ndarray, boot_theta: np.ndarray, sigma2: float,
           candidates: Mapping[str, np.ndarray], costs: np.ndarray, target_compute: float,
           held: Mapping[str, float], which: str = "allocation", n: int = 8,
           budget_flops: float | None = None,
           per_flop: bool = False) -> tuple[list[int], list[float], float]:
    """Greedy c-optimal choice among ``candidates`` (law variables, arrays of equal length).

    Each step takes the candidate that removes the most variance (per FLOP with
    ``per_flop``) among those that still fit the remaining FLOP budget. Returns (chosen
    indices, the quantity's s.d. after each choice, its s.d. now).
    """
    if which not in QUANTITIES:
        raise MoescaleError(f"quantity must be one of {', '.join(QUANTITIES)}, got {which!r}")
    P = theta.size
    sigma = np.cov(boot_theta, rowvar=False).reshape(P, P) + 1e-10 * np.eye(P)
    g = _gradient(lambda t: quantity(law, t, target_compute, held, which)[:, None], theta)[0]

    def loglik(t):
        params = law.from_fit_space({p: t[:, i:i + 1] for i, p in enumerate(law.params)})
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return law.log_loss(params, candidates)
    J = _gradient(loglik, theta)  # (candidates, P)
    sd_now = float(np.sqrt(max(g @ sigma @ g, 0.0)))
    budget = np.inf if budget_flops is None else float(budget_flops)
    chosen, sds = [], []
    available = np.isfinite(J).all(axis=1) & (costs <= budget)
    if budget_flops is not None and not (costs <= budget).any():
        raise MoescaleError(f"`budget_flops` {budget:.3g} FLOPs is below the cheapest candidate run "
                            f"({float(np.min(costs)):.3g} FLOPs): raise it")
    while len(chosen) < n and available.any():
        SJ = J @ sigma  # (c, P)
        denom = sigma2 + np.einsum("cp,cp->c", SJ, J)
        gain = (SJ @ g) ** 2 / denom  # variance removed by each candidate
        score = np.where(available, gain / costs if per_flop else gain, -np.inf)
        j = int(np.argmax(score))
        if not np.isfinite(score[j]) or gain[j] <= 0:
            break
        sigma = sigma - np.outer(SJ[j], SJ[j]) / denom[j]
        chosen.append(j)
        sds.append(float(np.sqrt(max(g @ sigma @ g, 0.0))))
        budget -= costs[j]
        available &= costs <= budget
        available[j] = False
    return chosen, sds, sd_now


def suggest(fit_result, runs, candidates: Mapping[str, np.ndarray], costs: np.ndarray,
            target_compute: float, which: str = "allocation", n: int = 8,
            budget_flops: float | None = None, candidate_runs: list | None = None,
            per_flop: bool = False) -> SuggestResult:
    """Suggestions for a fitted law (:class:`~moescale.fitting.FitResult` with bootstrap refits)
    and the runs it was fitted on (:class:`~moescale.runs.RunTable`)."""
    law = get_law(fit_result.law)
    fixed = sorted(getattr(fit_result, "fixed", None) or ())
    free = [p for p in law.params if p not in fixed]
    hint = (f"pin parameters the runs cannot identify with `fixed` (free: "
            f"{', '.join(free)})")
    if fit_result.interval_refused:
        raise MoescaleError(f"{law.name}: {fit_result.interval_refused}; the suggestion needs "
                            f"the fit's uncertainty: {hint}")
    theta = to_theta(law, fit_result.params)
    boot = np.array([to_theta(law, b) for b in fit_result.bootstrap_params]).reshape(
        -1, len(law.params))
    boot = boot[np.isfinite(boot).all(axis=1)]
    if len(boot) < len(law.params) + 2:
        raise MoescaleError(f"{law.name}: only {len(boot)} usable bootstrap refits (at least "
                            f"{len(law.params) + 2} needed to know the fit's uncertainty); "
                            f"fit with more `bootstrap` refits, or {hint}")
    v = runs.arrays(law.variables)
    keep = distinct(candidates, v)
    candidates = {k: np.asarray(a)[keep] for k, a in candidates.items()}
    costs = np.asarray(costs)[keep]
    if candidate_runs:
        candidate_runs = [candidate_runs[j] for j in keep]
    resid = np.log(runs.target(law.target)) - law.log_loss(fit_result.params, v)
    sigma2 = float(np.sum(resid**2) / max(resid.size - len(free), 1))  # unbiased: n - p
    held = held_variables(law, runs.frame)
    chosen, sds, sd_now = design(law, theta, boot, sigma2, candidates, costs, target_compute,
                                 held, which, n, budget_flops, per_flop)
    value = float(quantity(law, theta[None, :], target_compute, held, which)[0])
    picks = [Suggestion({k: float(a[j]) for k, a in candidates.items()}, float(costs[j]), sd,
                        candidate_runs[j] if candidate_runs else None)
             for j, sd in zip(chosen, sds, strict=True)]
    return SuggestResult(law=law.name, quantity=which, target_compute=target_compute,
                         value=float(np.exp(value)), sd_now=sd_now,
                         sd_after=sds[-1] if sds else sd_now,
                         flops=float(sum(costs[j] for j in chosen)), suggestions=picks, held=held)


def to_theta(law: Law, params: Mapping[str, float]) -> np.ndarray:
    with np.errstate(divide="ignore"):
        fs = law.to_fit_space({k: max(float(v), 0.0) if k in law.log_params else float(v)
                               for k, v in params.items()})
    return np.array([fs[p] for p in law.params], dtype=float)


def candidates_from_runs(run_specs: list, law: Law) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Law variables and FLOPs of candidate :class:`~moescale.sweeps.spec.RunSpec` s, counted
    under the law's convention (as :mod:`moescale.sweeps.export` does)."""
    from moescale.sweeps.export import law_mapping, run_columns

    rows = [run_columns(r.to_dict()) for r in run_specs]
    mapping = law_mapping(law.name, rows[0].keys())
    out = {}
    for var in law.variables:
        col = mapping.get(var, {"N_a": "N_active"}.get(var, var))
        out[var] = np.array([float(r[col]) for r in rows])
    return out, np.array([r.flops for r in run_specs])


# ----- candidates and appending, for sweeps ----------------------------------------------------
def store_candidates(rows: list[dict], budgets: np.ndarray,
                     max_flops: float | None = None) -> list:
    """Every distinct architecture (with its training settings) of the store's done runs, at
    each of ``budgets``: candidate :class:`~moescale.sweeps.spec.RunSpec` s not yet run.

    Budgets are normalised (:func:`normalise`) so that a run already in the store is known
    by its content; a candidate of more than ``max_flops`` training FLOPs is left out."""
    from moescale.sweeps.spec import SweepSpec

    def content(spec: dict, budget: float) -> str:
        train = {k: v for k, v in spec["train"].items() if k != "tokens"}
        return json_key(spec["architecture"], train, spec["seed"], normalise(budget))

    done = {content(r["spec"], r["spec"]["budget"]) for r in rows}
    done_ids = {r["id"] for r in rows}
    seen, out, ids = set(), [], set()
    for row in rows:
        spec = row["spec"]
        key = json_key(spec["architecture"], spec["train"], spec["seed"])
        if key in seen:
            continue
        seen.add(key)
        arch = {k: v for k, v in spec["architecture"].items() if v is not None}
        train = {k: v for k, v in spec["train"].items() if k != "tokens"}
        for budget in sorted({normalise(b) for b in budgets}):
            if max_flops is not None and budget > max_flops * (1 + 1e-12):
                continue
            try:
                (run,) = SweepSpec(name=spec["sweep"], budgets=(budget,),
                                   convention=spec["convention"], seeds=(spec["seed"],),
                                   base=arch, train=train).expand()
            except MoescaleError:  # below one optimizer step at this budget
                continue
            if max_flops is not None and run.flops > max_flops * (1 + 1e-12):
                continue
            if run.id in done_ids or run.id in ids or content(run.to_dict(), budget) in done:
                continue
            ids.add(run.id)
            out.append(run)
    return out


def corpus_repeats(suggestions: list[Suggestion],
                   rows: list[dict]) -> tuple[list[float | None], list[str]]:
    """Epochs of each suggested run over its training corpus, and a warning for each run that
    repeats it (more tokens than the corpus's unique training tokens). The corpus is measured
    as ``sweep plan`` does; when it cannot be read, the unique tokens of a store run that
    repeated the same data stand for it."""
    from moescale.sweeps.estimate import corpus_train_tokens

    corpora: dict[str, int | None] = {}
    epochs, warnings = [], []
    for s in suggestions:
        key = _data_key(s.run.train)
        if key not in corpora:
            corpora[key] = corpus_train_tokens(s.run.train)[0] or max(
                (r["result"]["unique_tokens"] for r in rows
                 if _data_key(r["spec"]["train"]) == key and r["result"]
                 and r["result"].get("repeated_tokens") and r["result"].get("unique_tokens")),
                default=None)
        corpus = corpora[key]
        e = s.run.tokens / corpus if corpus else None
        epochs.append(e)
        if e is not None and e > 1:
            warnings.append(f"suggested run {s.run.id} repeats its corpus: {s.run.tokens:,} "
                            f"tokens over {corpus:,} unique training tokens = {e:.2f} epochs")
    return epochs, warnings


def _data_key(train: dict[str, Any]) -> str:
    return json_key(train.get("data", "kjv"), train.get("tokenizer", "bytes"),
                    train.get("val_fraction", 0.05))


def json_key(*parts) -> str:
    import json

    return json.dumps(parts, sort_keys=True)


def append_runs(spec_path, suggestions: list[Suggestion], note: str) -> int:
    """Append the suggested runs to a spec file as ``[[runs]]`` tables (fields that differ
    from its ``[base]``); the file is validated again and rewritten atomically."""
    import dataclasses
    import os
    from pathlib import Path

    from moescale.accounting.architecture import Architecture
    from moescale.sweeps.spec import SweepSpec

    path = Path(spec_path)
    spec = SweepSpec.load(path)
    defaults = {f.name: f.default for f in dataclasses.fields(Architecture)}
    blocks = []
    for s in suggestions:
        arch = {k: v for k, v in s.run.architecture.items()
                if k != "name" and not isinstance(v, (list, dict))
                and v != spec.base.get(k, defaults.get(k))}
        lines = [f"[[runs]]  # {note}", f"budget = {s.run.budget!r}", f"seed = {s.run.seed}"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in sorted(arch.items())]
        blocks.append("\n".join(lines))
    text = path.read_text().rstrip("\n") + "\n\n" + "\n\n".join(blocks) + "\n"
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text)
    try:
        SweepSpec.load(tmp)
    except MoescaleError:
        tmp.unlink()
        raise
    os.replace(tmp, path)
    return len(blocks)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(v)


@dataclass(frozen=True)
class StoreSuggestion:
    """:func:`suggest_from_store`'s answer: the design, the number of ``[[runs]]`` appended to
    a spec, and per suggested run its number of experts ``E`` and the epochs of its corpus
    (``None`` when unknown), with warnings about repeated data."""

    result: SuggestResult
    experts: list[int]
    epochs: list[float | None]
    warnings: list[str]
    appended: int = 0

    def to_dict(self) -> dict[str, Any]:
        out = self.result.to_dict() | {"appended": self.appended, "warnings": self.warnings}
        for s, e, n_experts in zip(out["suggestions"], self.epochs, self.experts, strict=True):
            s |= {"E": n_experts, "epochs": e}
        return out


def suggest_from_store(store_path, law: str | Law, target_compute: float, *,
                       quantity: str = "allocation", n_runs: int = 8,
                       budget_flops: float | None = None, max_run_flops: float | None = None,
                       bootstrap: int = 100, fixed: Mapping[str, float] | None = None,
                       per_flop: bool = False, append_to=None) -> StoreSuggestion:
    """The next runs for a sweep store (``moescale sweep suggest``): fit ``law`` to the
    store's finished runs with ``bootstrap`` refits, then choose among the store's
    architectures at 8 budgets up to ``max_run_flops`` (default 4 × the largest in the store)
    the at most ``n_runs`` runs, within ``budget_flops`` FLOPs in all, that most shrink the
    variance of the ``quantity`` at ``target_compute`` (:func:`suggest`). ``fixed`` pins law
    parameters the runs cannot identify; ``append_to`` appends the runs to that spec."""
    from moescale import fitting
    from moescale.sweeps.export import run_columns, runs_from_store
    from moescale.sweeps.store import SweepStore

    law = get_law(law) if isinstance(law, str) else law
    size_variable(law)  # a law with an allocation to pin down, before any fitting
    with SweepStore(store_path, create=False, readonly=True) as store:
        rows = [r for r in store.rows() if r["status"] == "done"]
    if not rows:
        raise MoescaleError(f"{store_path} has no finished run to fit")
    runs = runs_from_store(store_path, law=law.name)
    largest = max(r["spec"]["budget"] for r in rows)
    top = max_run_flops or 4 * largest
    smallest = min(r["spec"]["budget"] for r in rows)
    candidates = store_candidates(rows, np.geomspace(min(smallest, top), top, 8), max_flops=top)
    if not candidates:
        raise MoescaleError(f"no candidate run of at most {top:.3g} FLOPs: every architecture "
                            "of the store is already run at every candidate budget; raise "
                            "`max_run_flops`")
    variables, costs = candidates_from_runs(candidates, law)
    fit = fitting.fit(law.name, runs, bootstrap=bootstrap, fixed=fixed or None)
    result = suggest(fit, runs, variables, costs, target_compute, quantity, n_runs,
                     budget_flops, candidates, per_flop=per_flop)
    appended = 0
    if append_to and result.suggestions:
        note = f"suggested by moescale ({law.name}, {quantity} at {target_compute:.3g} FLOPs)"
        appended = append_runs(append_to, result.suggestions, note)
    epochs, warnings = corpus_repeats(result.suggestions, rows)
    experts = [run_columns(s.run.to_dict())["E"] for s in result.suggestions]
    return StoreSuggestion(result, experts, epochs, warnings, appended)
