"""Which law do the runs support? Fit every applicable loss law to the same runs, score them
the same way, and rank them.

Protocol
--------
- **Same runs, same split, the fit of one law.** Every law is fitted with :func:`~moescale.fitting.fit` to
  the same training runs, with the same held-out runs and the Huber threshold ``δ`` on
  ``ln L`` residuals that a single fit of that law uses
  (:func:`~moescale.fitting.objective.default_delta`: the law's paper, else 1e-3), so the
  leaderboard's fit of a law is the fit ``moescale fit --law NAME`` gives. Each law's AIC and
  BIC use the Huber density with its own ``δ`` (a normalised density of ``ln L`` either way);
  ``delta=`` gives every law one ``δ``, hence one noise model.
- **Held-out extrapolation** (the literature's protocol): without a ``holdout``, the runs of
  the largest model size or compute budget are held out (``holdout="auto"``,
  :func:`default_holdout`) and
  predicted by laws fitted on the rest. ``cv`` adds leave-one-group-out cross-validation
  (``cv="budget"``: one fold per compute budget).
- **Not ranked**: a law whose variables the runs lack is *not applicable*; a law with a
  variable that takes one value in the training runs (``D`` constant, ``E`` constant), or
  fewer distinct design points than parameters, is *not identifiable*.
- **Ranking** (``rank_by="holdout"``, the default; ``"cv"`` with cross-validation): by
  held-out RMSE with the *one-standard-error rule* (Hastie, Tibshirani & Friedman, §7.10):
  every law whose held-out RMSE is within one standard error of the best
  (``SE ≈ RMSE_best / sqrt(2·n_heldout)``, the delta-method error of an RMSE) is tied with
  it, and tied laws are ordered by BIC, so a law that merely nests the truth with more
  parameters does not win on noise. ``rank_by="aic"`` or ``"bic"`` ranks by the criterion.

The likelihood behind AIC and BIC is :mod:`moescale.fitting.likelihood`; the
compute-optimal point a law gives, :mod:`moescale.fitting.optimum`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from moescale.errors import MoescaleError
from moescale.fitting import support
from moescale.fitting.likelihood import huber_log_likelihood, information_criteria
from moescale.fitting.objective import default_delta
from moescale.fitting.optimum import choice_values, optima, optimum, size_variable, stability
from moescale.laws import LAWS, Law, get_law

__all__ = ["LawScore", "Selection", "default_holdout", "huber_log_likelihood",
           "information_criteria", "law_status", "loss_laws", "optimum", "optima",
           "resolve_laws", "select_laws", "size_variable"]

GROUP_COLUMNS = ("budget", "N", "N_active", "C")  # "largest size or budget", in this order
MAX_GROUPS = 20              # more distinct values than this: a continuous column
MAX_FOLDS = 30
RANK_BY = ("holdout", "cv", "aic", "bic")


# ----- which laws ---------------------------------------------------------------------------
def loss_laws() -> tuple[str, ...]:
    """Registered laws that predict the loss (the candidates of ``--law all``)."""
    return tuple(name for name in LAWS if get_law(name).target == "loss")


def resolve_laws(spec: str | Sequence[str]) -> list[str]:
    """Law names from ``"all"``, a comma-separated list or a sequence of names.

    Raises :class:`MoescaleError` for an unknown law, a law that does not predict the loss
    (an optimum or hyper-parameter law), a repeated name or an empty list.
    """
    if isinstance(spec, str):
        if spec.strip().lower() == "all":
            return list(loss_laws())
        names = [s.strip() for s in spec.split(",")]
    else:
        names = [str(s).strip() for s in spec]
    if not names or any(not n for n in names):
        raise MoescaleError(f"`laws` {spec!r}: give law names separated by commas, or all")
    seen = set()
    for name in names:
        law = get_law(name)
        if law.target != "loss":
            raise MoescaleError(f"law {name!r} predicts {law.target}, not the loss; law "
                                f"selection compares loss laws ({', '.join(loss_laws())})")
        if name in seen:
            raise MoescaleError(f"`laws` names {name!r} twice")
        seen.add(name)
    return names


# ----- the split ----------------------------------------------------------------------------
def group_column(frame, prefer: Sequence[str] = GROUP_COLUMNS) -> tuple[str, int] | None:
    """``(column, distinct values)`` of the column that groups runs by size or budget.

    Among ``budget``, ``N``, ``N_active``, ``C`` (those present, numeric and with at least two
    distinct values) the one with the fewest distinct values — a grid of sizes or budgets —
    earlier names winning ties; when every one is continuous (more than 20 values), ``C``
    (budget) before ``N``. ``None`` when no such column exists.
    """
    found = []
    for i, col in enumerate(prefer):
        if col not in frame.columns:
            continue
        try:
            values = frame[col].to_numpy(dtype=float)
        except (TypeError, ValueError):
            continue
        k = int(np.unique(values[np.isfinite(values)]).size)
        if k >= 2:
            found.append((k, i, col))
    if not found:
        return None
    gridded = [f for f in found if f[0] <= MAX_GROUPS]
    if gridded:
        k, _, col = min(gridded)
        return col, k
    order = {"C": 0, "budget": 1, "N": 2, "N_active": 3}
    k, _, col = min(found, key=lambda f: (order.get(f[2], 9), f[1]))
    return col, k


def default_holdout(runs) -> str | None:
    """The literature's extrapolation split: hold out the largest size or budget.

    ``largest-COL:1`` (every run of the largest value of ``COL``) when ``COL`` is a grid of at
    most 20 values, else ``largest-COL:10%`` (the top tenth of the runs by ``COL``), with
    ``COL`` from :func:`group_column`. ``None`` when the runs have no size or budget column
    with two distinct values.

    >>> import pandas as pd
    >>> from moescale.runs import RunTable
    >>> runs = RunTable.from_frame(pd.DataFrame({"N": [1e8, 1e8, 2e8, 4e8], "D": [1e9, 2e9, 1e9, 1e9],
    ...                                          "loss": [3.0, 2.9, 2.8, 2.7]}))
    >>> default_holdout(runs)
    'largest-N:1'
    """
    found = group_column(runs.frame)
    if found is None:
        return None
    col, k = found
    return f"largest-{col}:1" if k <= MAX_GROUPS else f"largest-{col}:10%"


def _mask(runs, spec: str | None) -> np.ndarray:
    from moescale.fitting.holdout import holdout_mask

    return holdout_mask(runs.frame, spec) if spec else np.zeros(len(runs), dtype=bool)


# ----- applicability ------------------------------------------------------------------------
def law_status(law: Law | str, runs, train: np.ndarray | None = None) -> tuple[str, str | None]:
    """``("ok", None)``, ``("not applicable", why)`` or ``("not identifiable", why)``.

    Not applicable: a variable of the law is not a column of the runs. Not identifiable: a
    variable takes a single value in the training runs (``train`` mask; all runs by default),
    or the training runs have fewer distinct design points than the law has parameters.
    Bad values in a column the law uses are errors (:meth:`RunTable.require`), not a status.
    """
    from moescale.runs import ALIASES

    law = get_law(law) if isinstance(law, str) else law
    missing = [v for v in law.variables if ALIASES.get(v, v) not in runs.frame.columns]
    if missing:
        return "not applicable", f"the runs have no {', '.join(missing)}"
    runs.require(law.variables, target=law.target)
    runs.check_domains(law)
    rows = np.ones(len(runs), dtype=bool) if train is None else np.asarray(train, bool)
    values = runs.arrays(law.variables)
    constant = [v for v in law.variables if np.unique(values[v][rows]).size < 2]
    if constant:
        return "not identifiable", ", ".join(
            f"{v} constant ({float(values[v][rows][0]):.4g})" for v in constant) + \
            " in the training runs"
    points = np.unique(np.column_stack([values[v][rows] for v in law.variables]), axis=0)
    if len(points) < len(law.params):
        return "not identifiable", (f"{len(points)} distinct training points for "
                                    f"{len(law.params)} parameters")
    return "ok", None


# ----- warnings -------------------------------------------------------------------------------
def fit_warnings(law: Law, params: Mapping[str, float], variables: Mapping[str, np.ndarray],
                 y: np.ndarray, optimizer: Mapping[str, Any] | None = None) -> list[str]:
    """Parameters at a bound of their fit space, parameters the training runs cannot
    separate (a near-null direction of the Jacobian of ``ln L``), and optimiser failures."""
    from moescale.fitting.objective import Problem

    out = []
    if optimizer and optimizer.get("success") is False:
        out.append(f"the optimiser did not converge: {optimizer.get('message')}")
    with np.errstate(divide="ignore"):
        theta = law.to_fit_space(params)
    at_bound = []
    for k, (lo, hi) in law.bounds.items():
        x = theta.get(k)
        if x is None or not np.isfinite(x):
            continue
        tol = 1e-6 * max(1.0, abs(lo) if np.isfinite(lo) else 1.0, abs(hi) if np.isfinite(hi) else 1.0)
        if (np.isfinite(lo) and x <= lo + tol) or (np.isfinite(hi) and x >= hi - tol):
            at_bound.append(k)
    zero = [k for k in law.log_params if not np.isfinite(theta.get(k, 0.0))]
    if at_bound:
        out.append(f"at a bound of its range: {', '.join(at_bound)}")
    if zero:
        out.append(f"fitted to zero (its term vanishes): {', '.join(zero)}")
    vec = np.array([theta[k] for k in law.params], float)
    if np.all(np.isfinite(vec)):
        problem = Problem(law, variables, y)
        with np.errstate(all="ignore"):
            jac = problem.jacobian(vec[None])[0]            # (params, runs)
        scale = np.linalg.norm(jac, axis=1)
        if np.all(scale > 0) and np.all(np.isfinite(jac)):
            u, s, vt = np.linalg.svd((jac / scale[:, None]).T, full_matrices=False)
            if s[-1] < 1e-6 * s[0]:
                loads = np.abs(vt[-1])
                names = [law.params[j] for j in np.argsort(-loads) if loads[j] > 0.3]
                out.append(f"not identifiable from these runs: {', '.join(names)} "
                           f"(condition number {s[0] / max(s[-1], 1e-300):.2g})")
        elif np.any(scale == 0):
            flat = [law.params[j] for j in np.flatnonzero(scale == 0)]
            out.append(f"the runs do not depend on {', '.join(flat)} at the fit")
    return out


# ----- results ------------------------------------------------------------------------------
@dataclass(frozen=True)
class LawScore:
    """One law on the leaderboard (``status == "ranked"``) or left off it, with why.

    Errors are on the loss (nats/token); ``aic``/``bic`` are under the Huber likelihood of
    ``ln L`` on the training runs (module docstring); ``optimum`` is the compute-optimal point
    at the target budget with its bootstrap ``stability`` where the law has one.
    """

    law: str
    status: str                       # ranked, not identifiable, not applicable, failed
    reason: str | None = None
    delta: float = float("nan")       # the Huber δ of this law's fit and likelihood
    rank: int | None = None
    n_params: int = 0
    n_train: int = 0
    n_holdout: int = 0
    train_rmse: float = float("nan")
    holdout_rmse: float = float("nan")
    holdout_max_error: float = float("nan")
    cv_rmse: float = float("nan")
    cv_max_error: float = float("nan")
    cv_folds: int = 0
    cv_n: int = 0
    objective: float = float("nan")
    log_likelihood: float = float("nan")
    sigma: float = float("nan")
    aic: float = float("nan")
    bic: float = float("nan")
    delta_aic: float = float("nan")
    delta_bic: float = float("nan")
    within_one_se: bool = False
    params: dict[str, float] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    optimum: dict[str, Any] | None = None
    stability: dict[str, Any] | None = None
    seconds: float = 0.0
    fit: Any = field(default=None, repr=False, compare=False)   # the FitResult, for -o

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "fit"}
        out["warnings"] = list(self.warnings)
        return out


@dataclass(frozen=True)
class Selection:
    """A leaderboard: ranked laws best first, then those not ranked, and how they were scored."""

    leaderboard: tuple[LawScore, ...]
    not_ranked: tuple[LawScore, ...]
    holdout: str | None
    cv: str | None
    rank_by: str
    delta: float | None               # the δ given for every law; None: each law's default
    n_runs: int
    target_compute: float | None
    source: str = ""
    seconds: float = 0.0
    noise: Any = None          # the runs' SeedNoise (fitting.support)
    verdict: Any = None        # whether the best law's held-out error is noise (support.Verdict)

    @property
    def best(self) -> LawScore | None:
        return self.leaderboard[0] if self.leaderboard else None

    @property
    def extrapolates(self) -> bool | None:
        """Whether the best law predicts the held-out runs within the noise (None: untested)."""
        return None if self.verdict is None else self.verdict.extrapolates

    def to_dict(self) -> dict[str, Any]:
        return {"extrapolates": self.extrapolates,
                "verdict": None if self.verdict is None else self.verdict.text,
                "ratio_to_noise": None if self.verdict is None else self.verdict.ratio,
                "seed_noise": None if self.noise is None else self.noise.to_dict(),
                "leaderboard": [s.to_dict() for s in self.leaderboard],
                "not_ranked": [s.to_dict() for s in self.not_ranked],
                "best": self.best.law if self.best else None,
                "holdout": self.holdout, "cv": self.cv, "rank_by": self.rank_by,
                "delta": self.delta, "n_runs": self.n_runs,
                "target_compute": self.target_compute, "source": self.source,
                "seconds": round(self.seconds, 3),
                "criteria": ("AIC = 2k - 2 ln L, BIC = k ln n - 2 ln L, k = fitted parameters "
                             "+ 1 (scale); L the Huber density of ln-loss residuals "
                             "exp(-rho_delta(r)/s^2)/Z(s, delta) at the fit and profiled s")}


# ----- the selection --------------------------------------------------------------------------
def _cv_groups(runs, cv: str) -> tuple[str, np.ndarray]:
    col = cv
    if cv == "budget":
        col = "budget" if "budget" in runs.frame.columns else "C"
    if col not in runs.frame.columns:
        raise MoescaleError(f"`cv` {cv}: the runs have no column {col!r} "
                            f"(columns: {', '.join(runs.columns)})")
    values = runs.frame[col].to_numpy()
    groups = np.unique(values)
    if groups.size < 2:
        raise MoescaleError(f"`cv` {cv}: column {col!r} has a single value; nothing to leave out")
    if groups.size > MAX_FOLDS:
        raise MoescaleError(f"`cv` {cv}: column {col!r} has {groups.size} distinct values; "
                            f"leave-one-group-out needs a grid of at most {MAX_FOLDS} (a budget "
                            "or size column)")
    return col, values


def select_laws(runs, laws: str | Sequence[str] = "all", *, holdout: str | None = "auto",
                cv: str | None = None, rank_by: str | None = None, delta: float | None = None,
                bootstrap: int = 0, level: float = 0.95, seed: int = 0,
                target_compute: float | None = None, at: Mapping[str, float] | None = None,
                grids: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
                screen: bool = True, fit_options: Mapping[str, Any] | None = None,
                progress: Callable[[str, int, int], None] | None = None) -> Selection:
    """Fit every applicable law to the same runs and rank them.

    Parameters
    ----------
    runs : RunTable
        The runs (``N``/``N_active``, ``D``, ``E``, ``G``, … and ``loss``).
    laws : str or sequence of str
        ``"all"`` (every registered loss law), a comma-separated list or names.
    holdout : str, optional
        The held-out split shared by every law (the syntax of :func:`~moescale.fitting.fit`);
        ``"auto"`` (the default): :func:`default_holdout`, the largest size or budget.
        ``None``: no held-out runs, as in every fit (then laws are ranked by BIC unless ``cv``
        is given).
    cv : str, optional
        Leave-one-group-out cross-validation over a column: ``"budget"`` (``budget``, else
        ``C``) or any column with at most 30 distinct values.
    rank_by : {"holdout", "cv", "aic", "bic"}, optional
        Default ``"cv"`` with ``cv``, else ``"holdout"`` (one-standard-error rule, ties by
        BIC), else ``"bic"``.
    delta : float, optional
        Huber δ on ``ln L`` residuals for every law (default: each law's own, the one a single
        fit uses: :func:`~moescale.fitting.objective.default_delta`, the law's paper, else
        1e-3); each law's information criteria use the δ it was fitted with.
    bootstrap : int
        Refits per law for the stability of the predicted optimum.
    target_compute : float, optional
        Budget of the predicted optimum (default: the largest ``C`` of the runs).
    at : mapping, optional
        Fixed values of ``E``/``G``/``K`` at the optimum (default: searched over the values in
        the runs).
    grids : mapping, optional
        Start grids per law name (fit space) replacing the published ones.
    screen : bool
        Successive-halving screening of the starts (see :func:`~moescale.fitting.fit`).
    fit_options : mapping, optional
        More options of :func:`~moescale.fitting.fit` for every fit (e.g. ``polish_top``).

    Returns
    -------
    Selection
        ``leaderboard`` (ranked, best first) and ``not_ranked``.
    """
    import time

    from moescale import fitting

    t_start = time.perf_counter()
    names = resolve_laws(laws)
    if delta is not None and (isinstance(delta, bool) or not isinstance(delta, (int, float))
                              or not math.isfinite(delta) or delta <= 0):
        raise MoescaleError(f"delta (the Huber threshold) must be a positive number, got {delta!r}")
    given_delta = float(delta) if delta else None
    if holdout == "auto":
        holdout = default_holdout(runs)
    test = _mask(runs, holdout)
    cv_col, cv_values = _cv_groups(runs, cv) if cv else (None, None)
    if rank_by is None:
        rank_by = "cv" if cv else ("holdout" if holdout else "bic")
    if rank_by not in RANK_BY:
        raise MoescaleError(f"rank by {rank_by!r}: choose one of {', '.join(RANK_BY)}")
    if rank_by == "cv" and not cv:
        raise MoescaleError("ranking by cv needs cross-validation (`cv` budget or a column)")
    if rank_by == "holdout" and not holdout:
        raise MoescaleError("ranking by held-out error needs held-out runs (`holdout`)")
    if target_compute is None and "C" in runs.frame.columns:
        c = runs.frame["C"].to_numpy(dtype=float)
        target_compute = float(np.max(c[np.isfinite(c)])) if np.isfinite(c).any() else None
    grids = dict(grids or {})
    scores: list[LawScore] = []
    for i, name in enumerate(names):
        if progress:
            progress("laws", i, len(names))
        law = get_law(name)
        status, reason = law_status(law, runs, ~test)
        if status == "ok":
            try:
                lruns, kept, scope_warnings = fitting.engine.law_runs(law, runs)
                if not kept.all():  # laws are compared on the same runs, not on a subset
                    status, reason = "not applicable", scope_warnings[0]
            except MoescaleError as exc:
                status, reason = "not applicable", str(exc)
        ltest = test
        if status == "ok":
            status, reason = law_status(law, lruns, ~ltest)
        if status != "ok":
            scores.append(LawScore(name, status, reason, n_params=len(law.params)))
            continue
        t0 = time.perf_counter()
        delta = given_delta or default_delta(name)
        try:
            res = fitting.fit(law, lruns, holdout=holdout, bootstrap=bootstrap, level=level,
                           seed=seed, delta=delta, grid=grids.get(name), screen=screen,
                           **dict(fit_options or {}))
        except MoescaleError as exc:
            scores.append(LawScore(name, "failed", str(exc), delta=delta,
                                   n_params=len(law.params)))
            continue
        v = lruns.arrays(law.variables)
        y = lruns.target(law.target)
        v_tr = {k: a[~ltest] for k, a in v.items()}
        resid = np.log(y[~ltest]) - np.log(law.predict(res.params, v_tr))
        crit = information_criteria(resid, delta, len(law.params))
        warnings = fit_warnings(law, res.params, v_tr, y[~ltest], res.optimizer)
        opt = stab = None
        if target_compute and size_variable(law):
            choices = choice_values(law, lruns, at, ~ltest)
            opt = optimum(law, res.params, target_compute, choices)
            if opt and not opt["interior"]:
                warnings.append(f"the optimum at C = {target_compute:.3g} lies at the edge of "
                                "the search (no interior minimum in N)")
            if opt and res.bootstrap_params:
                stab = stability(law, opt, res.bootstrap_params, target_compute, choices, level)
        cv_fields = {}
        if cv:
            cv_fields, cv_warn = _cross_validate(law, lruns, cv_col, cv_values, delta,
                                                 grids.get(name), screen, fit_options)
            warnings += cv_warn
        hold = res.holdout or {}
        scores.append(LawScore(
            name, "ranked", None, delta=delta, n_params=len(law.params), n_train=int((~ltest).sum()),
            n_holdout=int(ltest.sum()), train_rmse=float(res.train["rmse"]),
            holdout_rmse=float(hold.get("rmse", float("nan"))),
            holdout_max_error=float(hold.get("max_abs_error", float("nan"))),
            objective=float(res.objective["value"]), log_likelihood=crit["log_likelihood"],
            sigma=crit["sigma"], aic=crit["aic"], bic=crit["bic"], params=dict(res.params),
            warnings=tuple(warnings), optimum=opt, stability=stab,
            seconds=time.perf_counter() - t0, fit=res, **cv_fields))
    if progress:
        progress("laws", len(names), len(names))
    ranked = _rank([s for s in scores if s.status == "ranked"], rank_by)
    others = tuple(s for s in scores if s.status != "ranked")
    noise = support.seed_noise(runs.frame, "loss", level)  # σ is no fit: every run informs it
    verdict = _verdict(ranked[0] if ranked else None, rank_by, noise)
    if ranked and verdict.extrapolates is False and not any(
            w.startswith("not validated") for w in ranked[0].fit.warnings):
        best = ranked[0]  # the saved best fit carries the verdict
        fit = dataclasses.replace(best.fit, warnings=[*best.fit.warnings,
                                                      "not validated: " + verdict.text])
        ranked = (dataclasses.replace(best, fit=fit), *ranked[1:])
    return Selection(ranked, others, holdout, cv, rank_by, given_delta, len(runs), target_compute,
                     runs.source, time.perf_counter() - t_start, noise, verdict)


def _verdict(best: LawScore | None, rank_by: str, noise: support.SeedNoise) -> support.Verdict:
    """The best law's held-out (or cross-validated) error judged against the seed noise."""
    if best is None:
        return support.Verdict(None, None, None, "no law could be ranked")
    if rank_by == "cv":
        return support.holdout_verdict(best.cv_rmse, best.cv_n, noise,
                                       f"the best law ({best.law}, leave-one-group-out)")
    return support.holdout_verdict(best.holdout_rmse, best.n_holdout, noise,
                                   f"the best law ({best.law})")


def _cross_validate(law, runs, col, values, delta, grid, screen, fit_options=None):
    """Leave-one-group-out errors of ``law``: pooled RMSE and largest error over the folds
    whose training runs identify the law."""
    from moescale import fitting

    errors, skipped = [], []
    y_all = runs.target(law.target)
    v_all = runs.arrays(law.variables)
    for g in np.unique(values):
        test = values == g
        status, _ = law_status(law, runs, ~test)
        if status != "ok" or (~test).sum() < len(law.params):
            skipped.append(g)
            continue
        try:
            res = fitting.fit(law, runs.subset(~test), delta=delta, grid=grid, screen=screen,
                           **dict(fit_options or {}))
        except MoescaleError:
            skipped.append(g)
            continue
        pred = law.predict(res.params, {k: a[test] for k, a in v_all.items()})
        errors.append(pred - y_all[test])
    warn = []
    if skipped:
        warn.append(f"cross-validation left out {len(skipped)} fold(s) of {col} whose "
                    f"training runs do not identify the law: {', '.join(f'{g:.3g}' if isinstance(g, float) else str(g) for g in skipped[:5])}")
    if not errors:
        return {"cv_folds": 0}, warn
    e = np.concatenate(errors)
    return {"cv_rmse": float(np.sqrt(np.mean(e * e))), "cv_max_error": float(np.max(np.abs(e))),
            "cv_folds": len(errors), "cv_n": int(e.size)}, warn


def _rank(scores: list[LawScore], rank_by: str) -> tuple[LawScore, ...]:
    """Order by the criterion (one-standard-error rule for held-out and CV errors) and write
    ranks, ΔAIC, ΔBIC and ``within_one_se``."""
    import dataclasses

    if not scores:
        return ()

    def metric(s: LawScore) -> float:
        value = {"holdout": s.holdout_rmse, "cv": s.cv_rmse, "aic": s.aic, "bic": s.bic}[rank_by]
        return value if math.isfinite(value) else math.inf

    tied: set[str] = set()
    if rank_by in ("holdout", "cv"):
        best = min(scores, key=metric)
        n = best.n_holdout if rank_by == "holdout" else best.cv_n
        se = metric(best) / math.sqrt(2 * max(n, 1)) if math.isfinite(metric(best)) else 0.0
        tied = {s.law for s in scores if metric(s) <= metric(best) + se}
        order = sorted((s for s in scores if s.law in tied), key=lambda s: (_finite(s.bic), metric(s))) \
            + sorted((s for s in scores if s.law not in tied), key=lambda s: (metric(s), _finite(s.bic)))
    else:
        order = sorted(scores, key=lambda s: (metric(s), _finite(s.holdout_rmse)))
    aic0 = min(_finite(s.aic) for s in scores)
    bic0 = min(_finite(s.bic) for s in scores)
    return tuple(dataclasses.replace(s, rank=i + 1, delta_aic=s.aic - aic0, delta_bic=s.bic - bic0,
                                     within_one_se=s.law in tied)
                 for i, s in enumerate(order))


def _finite(x: float) -> float:
    return x if math.isfinite(x) else math.inf
