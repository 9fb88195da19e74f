"""Assemble a report: gather the inputs (sweep store, run table, fits, plan), decide which
figures they support, draw them (PNG and SVG) and write the page.

>>> from moescale.reporting import ReportInputs, available_figures
>>> available_figures(ReportInputs())
[]
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from moescale.errors import MoescaleError
from moescale.fitting import support
from moescale.jsonio import read_json_object
from moescale.reporting import fits as fitfig
from moescale.reporting import plans as planfig
from moescale.reporting import style
from moescale.reporting import sweeps as sweepfig
from moescale.reporting.inputs import Comparison, Leaderboard, PlanData

BUDGETS_PER_DECADE = 4  # runs without a budget column: C rounded to quarter decades


@dataclass
class ReportInputs:
    """Everything a report can draw from; every field is optional.

    ``runs`` has one row per run (a sweep store's ``runs_frame`` or a run table's frame);
    ``curves`` the store's ``curves_frame``; ``fits`` are :class:`FitResult` s with, in
    ``fit_runs``, the run table each was fitted on (or ``None``); ``plan`` a
    :class:`~moescale.planning.Plan` or its ``to_dict``; ``compare`` the comparison
    ``moescale compare --json`` writes; ``selection`` a leaderboard (``Selection`` or its
    ``to_dict``). ``plan``, ``compare`` and ``selection`` are read into
    :class:`~moescale.reporting.inputs.PlanData`, ``Comparison`` and ``Leaderboard`` when
    set, so a missing or renamed key is an error then, not a figure silently left out.
    ``sources`` names the files (shown on the page, escaped).
    """

    runs: pd.DataFrame | None = None
    curves: pd.DataFrame | None = None
    fits: list[Any] = field(default_factory=list)
    fit_runs: list[Any] = field(default_factory=list)
    plan: PlanData | None = None
    compare: Comparison | None = None
    target_compute: float | None = None
    sources: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    store_counts: dict[str, int] | None = None
    bootstrap: int = support.DEFAULT_REPLICATES  # the same as `sweep analyze`
    seed: int = 0
    joint_law: str | None = None
    selection: Leaderboard | None = None  # a law leaderboard (reporting.selection)
    sensitivity: dict | None = None   # moescale fit --sensitivity --json
    adaptive: dict | None = None      # benchmarks/bench_adaptive.py --json (reporting.adaptive)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    _TYPED: ClassVar[dict[str, Any]] = {"plan": PlanData, "compare": Comparison,
                                        "selection": Leaderboard}

    def __setattr__(self, name: str, value: Any) -> None:
        """Read ``plan``, ``compare`` and ``selection`` into their typed objects when set."""
        if name in self._TYPED and value is not None:
            value = self._TYPED[name].of(value)
        super().__setattr__(name, value)

    # ----- derived inputs (library calls, cached) --------------------------------------------
    def done(self) -> pd.DataFrame | None:
        if self.runs is None or self.runs.empty:
            return None
        done = sweepfig.done_runs(self.runs)
        return done if len(done) else None

    def analysis(self, x: str):
        """The sweep library's per-budget analysis of ``x`` (``None`` when it has no budget
        with three distinct values of ``x``)."""
        key = f"analysis:{x}"
        if key not in self._cache:
            self._cache[key] = self._analyze(x)
        return self._cache[key]

    def _analyze(self, x: str):
        runs = self.done()
        if runs is None or x not in runs.columns or "budget" not in runs.columns:
            return None
        arms = sweepfig.run_arms(runs)
        by = "arm_key" if arms is not None else None
        if arms is not None:
            runs = runs.assign(arm_key=arms)
        distinct = runs.groupby(["budget", by] if by else ["budget"])[x].nunique()
        if distinct.max() < 3:
            return None
        from moescale.sweeps.analyze import analyze

        with np.errstate(invalid="ignore"):  # bootstrap vertices at ±inf (no interior minimum)
            return analyze(runs, x=x, by=by, bootstrap=self.bootstrap, seed=self.seed)

    def experts_vary(self) -> bool:
        """Whether the finished runs form two or more arms (dense, numbers of experts,
        granularities, shared experts: :func:`~moescale.reporting.sweeps.run_arms`)."""
        runs = self.done()
        return runs is not None and sweepfig.run_arms(runs) is not None

    def experts_comparison(self):
        """Seed noise, best loss per (budget, E) and the compute multiplier over dense
        (:func:`moescale.sweeps.experts.compare_experts` on active size), or None."""
        if "experts" not in self._cache:
            runs = self.done()
            ok = (self.experts_vary() and "budget" in runs.columns
                  and "N_active" in runs.columns)
            if ok:
                from moescale.sweeps.experts import compare_arms

                by = "arm" if "arm" in runs.columns else "E"
                self._cache["experts"] = compare_arms(runs, by, x="N_active",
                                                      bootstrap=self.bootstrap, seed=self.seed)
            else:
                self._cache["experts"] = None
        return self._cache["experts"]

    def isoflop_axes(self) -> list[str]:
        """``N`` (``N_active``, per number of experts, when E varies: sizes of different E
        are not comparable in total parameters) and, for holistic sweeps, ``M_over_Na`` and
        ``N_over_Na``."""
        runs = self.done()
        if runs is None:
            return []
        holistic = any(c.startswith("tag_m_over_na") or c.startswith("tag_n_over_na")
                       for c in runs.columns)
        size = "N_active" if self.experts_vary() and "N_active" in runs.columns else "N"
        names = [size] + (["M_over_Na", "N_over_Na"] if holistic else [])
        return [x for x in names if self.analysis(x) is not None]

    def frontier_fit(self):
        return next((f for f in self.fits if sweepfig.frontier_supported(f)), None)

    def target(self) -> float | None:
        """The compute of the extrapolated point: given, else the plan's, else 10× the
        largest budget when a fitted law can draw the frontier there."""
        if self.target_compute:
            return float(self.target_compute)
        if self.plan:
            return self.plan.compute
        runs = self.done()
        if runs is not None and "C" in runs.columns and self.frontier_fit() is not None:
            return float(10 ** math.ceil(math.log10(runs["C"].max()) + 1e-9))
        return None

    def plan_law(self) -> str:
        """The loss law of the joint-MoE figures: the plan's own (law plans), else
        ``ludziejewski2025`` (the joint-MoE paper)."""
        from moescale.laws import LAWS, get_law

        if self.joint_law:
            return self.joint_law
        law = self.plan.law if self.plan else None
        return law if law in LAWS and get_law(law).allocates else "ludziejewski2025"

    def joint_law_name(self) -> str:
        """The law the joint-MoE figures were drawn with: the comparison's, else
        :meth:`plan_law`."""
        return self.compare.law if self.compare else self.plan_law()

    def experts_by_memory(self) -> list[dict]:
        if "ebm" not in self._cache:
            if self.compare:
                rows = self.compare.experts_by_memory
            else:
                from moescale.planning import compare as cmp
                from moescale.planning.law_plan import loss_function

                loss, *_ = loss_function(self.plan_law())
                mem = self.plan.memory_bytes
                memories = sorted({*(g * 1e9 for g in (1, 4, 16, 80, 320, 1280)),
                                   *([mem] if mem else [])})
                rows = cmp.experts_by_memory(loss, self.plan.compute, memories,
                                             (1, 2, 4, 8, 16, 32, 64))
            self._cache["ebm"] = rows
        return self._cache["ebm"]

    def savings(self) -> dict[float, list[dict]]:
        if "savings" not in self._cache:
            if self.compare:
                series = {self.compare.compute: self.compare.dense_vs_moe}
            else:
                from moescale.planning import compare as cmp
                from moescale.planning.law_plan import loss_function

                loss, *_ = loss_function(self.plan_law())
                c = self.plan.compute
                series = {c * f: cmp.flop_savings(loss, c * f, (1, 8, 64))
                          for f in (1e-2, 1.0, 1e2)}
            self._cache["savings"] = series
        return self._cache["savings"]

    def band_plans(self) -> list[PlanData]:
        if "bands" not in self._cache:
            self._cache["bands"] = planfig.band_series(self.plan)
        return self._cache["bands"]


# ----- the figure registry ------------------------------------------------------------------------
@dataclass(frozen=True)
class FigureSpec:
    """One figure of the report: ``name`` (file name and ``--figure`` key), the section it
    belongs to, a caption, and how to draw it from the inputs (``None`` if they lack what it
    needs, with the reason from ``missing``)."""

    name: str
    section: str
    title: str
    caption: str
    draw: Callable[[ReportInputs], Any]
    missing: Callable[[ReportInputs], str | None]
    family: str = ""


def _need_runs(*cols: str):
    def check(inp: ReportInputs) -> str | None:
        runs = inp.done()
        if runs is None:
            return "needs finished runs (`store` or `runs`)"
        absent = [c for c in cols if c not in runs.columns]
        return f"the runs have no column {', '.join(absent)}" if absent else None
    return check


def _isoflop_spec(x: str) -> FigureSpec:
    name = "isoflop" if x in ("N", "N_active") else f"isoflop_{x}"

    def missing(inp):
        reason = _need_runs("budget", x)(inp)
        if reason:
            return reason
        return None if inp.analysis(x) is not None else \
            f"no budget has three distinct values of {x}"

    return FigureSpec(name, "sweep", f"isoFLOP curves ({x})",
                      "Loss of every finished run against " + x + " at each compute budget "
                      "(one panel per number of experts when E varies); lines are the sweep "
                      "analysis' per-budget parabolas in log x, diamonds their minima with "
                      "the bootstrap interval of the optimum.",
                      lambda inp: sweepfig.isoflop(inp.done(), inp.analysis(x), x), missing,
                      family="isoflop")


def _fit_specs(i: int, n: int) -> list[FigureSpec]:
    suffix = f"_{i + 1}" if n > 1 else ""

    def runs_missing(inp):
        return None if inp.fit_runs[i] is not None else \
            "needs the runs the fit was fitted on (`runs`, `store`, or the fit's source file)"

    def never(inp):
        return None

    return [
        FigureSpec(f"fit_parity{suffix}", f"fit{i}", "predicted against observed",
                   "Each run's observed loss against the fitted law's prediction; held-out runs "
                   "(the fit's holdout) as triangles; RMSE and largest error from the fit.",
                   lambda inp: fitfig.fit_parity(inp.fits[i], inp.fit_runs[i]), runs_missing,
                   family="fit_parity"),
        FigureSpec(f"fit_residuals{suffix}", f"fit{i}", "residuals",
                   "Relative residuals (observed / predicted − 1) against each variable of the "
                   "law: a trend is structure the law misses.",
                   lambda inp: fitfig.fit_residuals(inp.fits[i], inp.fit_runs[i]), runs_missing,
                   family="fit_residuals"),
        FigureSpec(f"fit_params{suffix}", f"fit{i}", "parameters",
                   "Fitted parameters and derived quantities with bootstrap intervals and "
                   "standard errors; warnings below the table.",
                   lambda inp: fitfig.fit_params(inp.fits[i]), never, family="fit_params"),
    ]


def _plan_missing(holistic: bool = False):
    def check(inp):
        if not inp.plan:
            return "needs a plan (`plan`)"
        if holistic and not inp.plan.holistic:
            return planfig.HOLISTIC_NEEDED
        return None
    return check


def _joint_missing(inp):
    if inp.compare or inp.plan:
        return None
    return "needs a plan (`plan`) or a comparison (`compare`)"


def figure_specs(inp: ReportInputs) -> list[FigureSpec]:
    """Every figure the report knows, in page order (those the inputs cannot support too)."""
    specs = [_isoflop_spec(x) for x in (inp.isoflop_axes() or ["N"])]

    def frontier_missing(i):
        return _need_runs("C", "loss")(i)

    def optima_missing(i):
        reason = _need_runs("budget")(i)
        if reason:
            return reason
        return None if any(i.analysis(x) is not None for x in i.isoflop_axes()) else \
            "no budget has three distinct model sizes"

    def curves_missing(i):
        return None if i.curves is not None and len(i.curves) else \
            "needs learning curves (a sweep store with logged evaluations)"

    def experts_missing(i):
        reason = _need_runs("E", "loss")(i)
        if reason:
            return reason
        return None if i.experts_vary() else "the runs have a single number of experts"

    def multiplier_missing(i):
        reason = experts_missing(i) or _need_runs("budget", "N_active")(i)
        if reason:
            return reason
        comparison = i.experts_comparison()
        return None if comparison.multipliers else "; ".join(comparison.messages)

    def draw_experts(i):
        comparison = i.experts_comparison()
        return sweepfig.experts(comparison) if comparison is not None \
            else sweepfig.experts_at_size(i.done())

    specs += [
        FigureSpec("frontier", "sweep", "compute frontier",
                   "Every run's loss against its training compute, the best run per budget and "
                   "the parabola minima; the fitted law's compute-optimal loss (C = 6·N·D) with "
                   "its bootstrap band and the extrapolated target point.",
                   lambda i: sweepfig.frontier(i.done(), i.analysis("N"), i.frontier_fit(),
                                               i.target()), frontier_missing),
        FigureSpec("optima", "sweep", "optima against compute",
                   "Per-budget optima with bootstrap intervals and their power laws y = k·C^p "
                   "(fitted by the sweep analysis; exponent interval in brackets).",
                   lambda i: sweepfig.optima({x: i.analysis(x) for x in i.isoflop_axes()}),
                   optima_missing),
        FigureSpec("learning_curves", "sweep", "learning curves",
                   "Eval loss of every run along training, coloured by compute budget.",
                   lambda i: sweepfig.learning_curves(i.curves, i.runs), curves_missing),
        FigureSpec("experts", "sweep", "loss against experts",
                   "Best loss of each number of experts at each budget (the isoFLOP parabola's "
                   "minimum over active size, else the best run), dense as E = 1 (squares), "
                   "error bars the seed noise; runs without budgets: final loss against E at "
                   "fixed active size.", draw_experts, experts_missing),
        FigureSpec("compute_multiplier", "sweep", "compute multiplier over dense",
                   "Dense compute that reaches each MoE's best loss, divided by the MoE's "
                   "compute (Ludziejewski et al. 2025), per budget and as a geometric mean, "
                   "with case-bootstrap intervals; above 1 the experts save compute.",
                   lambda i: sweepfig.compute_multiplier(i.experts_comparison()),
                   multiplier_missing),
    ]
    for k in range(len(inp.fits)):
        specs += _fit_specs(k, len(inp.fits))
    specs += [
        FigureSpec("landscape", "plan", "holistic landscape",
                   "Loss above the best candidate over (M/N_a, N/N_a), best d of each pair "
                   "(the planner's surrogate); dashed box: the plan's near-optimal band; star: "
                   "the planned architecture.",
                   lambda i: planfig.landscape(i.plan), _plan_missing(True)),
        FigureSpec("d_sweep", "plan", "d sweep",
                   "Every feasible aligned hidden size at the plan's ratios; green: within the "
                   "band's tolerance of the best.",
                   lambda i: planfig.d_sweep(i.plan), _plan_missing(True)),
        FigureSpec("band_width", "plan", "band width against compute",
                   "Width of the near-optimal band of M/N_a, N/N_a and d (relative to its "
                   "centre) in holistic plans at budgets around this one.",
                   lambda i: planfig.band_width(i.band_plans()), _plan_missing(True)),
        FigureSpec("experts_memory", "plan", "experts against memory",
                   "The loss-optimal number of experts for each memory budget for the weights "
                   "(joint-MoE paper; memory-constrained optimum truncated at compute-optimal).",
                   lambda i: planfig.experts_memory(
                       i.experts_by_memory(), i.joint_law_name(),
                       i.plan.memory_bytes if i.plan else None), _joint_missing),
        FigureSpec("flop_savings", "plan", "FLOP savings",
                   "Share of the compute a compute-optimal MoE with E experts saves to reach the "
                   "loss of the compute-optimal dense model.",
                   lambda i: planfig.flop_savings(i.savings(), i.joint_law_name()),
                   _joint_missing),
        FigureSpec("architecture", "plan", "planned architecture",
                   "Shares of total parameters, active parameters and training FLOPs per token "
                   "by component (exact count of the planned architecture).",
                   lambda i: planfig.architecture(i.plan), _plan_missing()),
    ]
    specs += _selection_specs()
    return specs


def _selection_specs() -> list[FigureSpec]:
    """The leaderboard of laws and the sensitivity of the optimum."""
    from moescale.reporting import selection as selfig

    return [
        FigureSpec("leaderboard", "selection", "laws ranked",
                   "Held-out (or cross-validated) RMSE of every law fitted to the same runs "
                   "with the same split, best at the top; blue: within one standard error of "
                   "the best (ordered by BIC); laws not ranked listed with the reason.",
                   lambda i: selfig.leaderboard_figure(i.selection),
                   lambda i: None if i.selection else
                   "needs a leaderboard (`selection`, a select_laws result)"),
        FigureSpec("sensitivity", "selection", "sensitivity of the optimum",
                   "The compute-optimal point at the target budget refitted under other Huber "
                   "δ, residuals on L, other start grids and without the smallest or largest "
                   "runs, as a ratio to the baseline's.",
                   lambda i: selfig.sensitivity_figure(i.sensitivity),
                   lambda i: None if i.sensitivity else
                   "needs a sensitivity study (`sensitivity`, a sensitivity result)"),
        FigureSpec("adaptive", "selection", "adaptive sweep against a regular grid",
                   "Width of the target optimum's interval against the FLOPs spent, for runs "
                   "proposed by `moescale sweep suggest` and for the next rungs of a regular "
                   "isoFLOP grid, on a synthetic campaign with a known truth (thin: seeds; "
                   "thick: mean).",
                   lambda i: _adaptive_figure(i.adaptive),
                   lambda i: None if i.adaptive else
                   "needs an adaptive comparison (`adaptive`, the JSON that "
                   "benchmarks/bench_adaptive.py writes)"),
    ]


def _adaptive_figure(data):
    from moescale.reporting.adaptive import adaptive_figure

    return adaptive_figure(data)


def available_figures(inp: ReportInputs) -> list[str]:
    """Names of the figures the inputs support."""
    return [s.name for s in figure_specs(inp) if s.missing(inp) is None]


def figure_names() -> list[str]:
    """Every figure family name ``--figure`` accepts."""
    return ["isoflop", "isoflop_M_over_Na", "isoflop_N_over_Na", "frontier", "optima",
            "learning_curves", "experts", "compute_multiplier", "fit_parity", "fit_residuals", "fit_params",
            "landscape", "d_sweep", "band_width", "experts_memory", "flop_savings",
            "architecture", "leaderboard", "sensitivity", "adaptive"]


# ----- building --------------------------------------------------------------------------------
@dataclass
class DrawnFigure:
    name: str
    section: str
    title: str
    caption: str
    files: list[Path]
    seconds: float


@dataclass
class Report:
    """What :func:`build_report` wrote: the page, the figures, those left out and why."""

    directory: Path
    page: Path | None
    figures: list[DrawnFigure]
    skipped: list[tuple[str, str]]
    seconds: float

    @property
    def files(self) -> list[Path]:
        return ([self.page] if self.page else []) + [f for d in self.figures for f in d.files]

    def to_dict(self) -> dict[str, Any]:
        return {"directory": str(self.directory), "page": str(self.page) if self.page else None,
                "files": [str(f) for f in self.files],
                "figures": [{"name": d.name, "files": [str(f) for f in d.files],
                             "seconds": round(d.seconds, 3)} for d in self.figures],
                "skipped": [{"name": n, "reason": r} for n, r in self.skipped],
                "seconds": round(self.seconds, 3)}


def select(specs: Sequence[FigureSpec], names: Sequence[str] | None) -> list[FigureSpec]:
    """The specs named (a family name selects every instance: ``fit_parity`` → all fits)."""
    if not names:
        return list(specs)
    known = set(figure_names()) | {s.name for s in specs}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise MoescaleError(f"unknown figure {', '.join(map(repr, unknown))}; choose from "
                            f"{', '.join(figure_names())}")
    return [s for s in specs if s.name in names or s.family in names
            or (s.family == "" and s.name in names)]


def build_report(inp: ReportInputs, directory: str | Path, figures: Sequence[str] | None = None,
                 formats: Sequence[str] = ("png", "svg"), title: str | None = None,
                 page: bool = True) -> Report:
    """Draw every figure the inputs support (or those in ``figures``) into
    ``directory/figures`` and write ``directory/index.html``.

    A figure named in ``figures`` that the inputs cannot support is an error; otherwise such
    figures are listed on the page with the reason: the one its spec's ``missing`` gives, or
    the one it raised while drawing (:class:`FigureUnavailable`, or a
    :class:`MoescaleError` from the library it calls). Any other exception is a bug and
    propagates.
    """
    t0 = time.perf_counter()
    directory = Path(directory)
    fig_dir = directory / "figures"
    specs = select(figure_specs(inp), figures)
    if figures and not specs:
        raise MoescaleError(f"figure(s) {', '.join(figures)} cannot be drawn from these inputs")
    drawn, skipped = [], []
    plt = style.pyplot()
    for spec in specs:
        reason = spec.missing(inp)
        if reason is None:
            t = time.perf_counter()
            try:
                fig = spec.draw(inp)
            # only "these data cannot make this figure" (FigureUnavailable is a MoescaleError);
            # a KeyError, TypeError or plain ValueError from figure code is a bug: propagate
            except MoescaleError as exc:
                reason = f"could not be drawn: {exc}"
            else:
                files = style.save(fig, fig_dir, spec.name, formats)
                plt.close(fig)
                drawn.append(DrawnFigure(spec.name, spec.section, spec.title, spec.caption,
                                         files, time.perf_counter() - t))
                continue
        if figures:
            raise MoescaleError(f"figure {spec.name!r} {reason}")
        skipped.append((spec.name, reason))
    page_path = None
    if page:
        from moescale.reporting.page import render_page

        page_path = directory / "index.html"
        directory.mkdir(parents=True, exist_ok=True)
        html = render_page(inp, drawn, skipped, title=title, directory=directory)
        tmp = page_path.with_suffix(".html.tmp")
        tmp.write_text(html, encoding="utf-8")
        tmp.replace(page_path)
    return Report(directory, page_path, drawn, skipped, time.perf_counter() - t0)


# ----- loading inputs ----------------------------------------------------------------------------
def assign_budgets(frame: pd.DataFrame, per_decade: int = BUDGETS_PER_DECADE) -> pd.DataFrame:
    """A ``budget`` column for runs that lack one: ``C`` rounded to ``1/per_decade`` decades
    (isoFLOP groups of runs read off a paper's figure, whose ``C`` is only nearly equal)."""
    if "budget" in frame.columns or "C" not in frame.columns:
        return frame
    c = pd.to_numeric(frame["C"], errors="coerce").to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        budget = 10.0 ** (np.round(np.log10(c) * per_decade) / per_decade)
    out = frame.copy()
    out["budget"] = np.where(np.isfinite(budget) & (c > 0), budget, np.nan)
    return out


def load_store(path: str | Path, inp: ReportInputs | None = None) -> ReportInputs:
    """Runs (every status), curves and status counts of a sweep store."""
    from moescale.sweeps.export import runs_frame
    from moescale.sweeps.store import SweepStore

    inp = inp or ReportInputs()
    path = Path(path)
    if not path.is_file():
        raise MoescaleError(f"sweep store not found: {path}")
    with SweepStore(path, create=False, readonly=True) as store:
        inp.runs = runs_frame(store, status=None)
        inp.curves = store.curves_frame()
        inp.store_counts = store.counts()
    inp.sources["store"] = str(path)
    return inp


FORMATS = ("png", "svg")


def report(output: str | Path, *, store: str | Path | None = None,
           runs: str | Path | None = None, mapping: dict | None = None,
           derive: dict | None = None, where: str | None = None,
           fits: Sequence[str | Path] = (), plan: str | Path | None = None,
           compare: str | Path | None = None, selection: str | Path | None = None,
           sensitivity: str | Path | None = None, adaptive: str | Path | None = None,
           target_compute: float | None = None, bootstrap: int = 1000,
           figures: Sequence[str] | None = None, formats: Sequence[str] = FORMATS,
           title: str | None = None) -> Report:
    """The report of ``moescale report`` (its ``--json`` is the result's ``to_dict()``): read
    every input given (a sweep store, a run table renamed by ``mapping`` and ``derive`` and
    filtered by ``where``, fits, a plan, a comparison, a leaderboard, a sensitivity study,
    an adaptive-design result), then :func:`build_report` into ``output``.
    ``target_compute`` (FLOPs) is the extrapolated frontier point."""
    formats = tuple(dict.fromkeys(f.strip().lower() for f in formats if f.strip()))
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise MoescaleError(f"`formats` {', '.join(bad) or 'none'}: choose from "
                            f"{', '.join(FORMATS)}")
    if (mapping or derive or where) and not runs:
        raise MoescaleError("`mapping`, `derive` and `where` apply to `runs`; give `runs`")
    if not any((store, runs, fits, plan, compare, selection, sensitivity, adaptive)):
        raise MoescaleError("nothing to report: give `store`, `runs`, `fits`, `plan`, "
                            "`compare`, `selection`, `sensitivity` or `adaptive`")
    inp = ReportInputs(bootstrap=bootstrap, target_compute=target_compute)
    if store:
        load_store(store, inp)
    if runs:
        load_runs(runs, mapping, derive, where, inp)
    for path in fits:
        add_fit(inp, path)
    if plan:
        load_plan(plan, inp)
    if compare:
        load_compare(compare, inp)
    if selection or sensitivity:
        from moescale.reporting import selection as selfig

        if selection:
            inp.selection = selfig.load_selection(selection)
            inp.sources["selection"] = str(selection)
        if sensitivity:
            inp.sensitivity = selfig.load_sensitivity(sensitivity)
            inp.sources["sensitivity"] = str(sensitivity)
    if adaptive:
        from moescale.reporting.adaptive import load_adaptive

        inp.adaptive = load_adaptive(adaptive)
        inp.sources["adaptive"] = str(adaptive)
    return build_report(inp, output, figures=figures or None, formats=formats, title=title)


def load_runs(path: str | Path, mapping: dict | None = None, derive: dict | None = None,
              where: str | None = None, inp: ReportInputs | None = None):
    """A run table from a file (as ``moescale fit`` reads it); budgets assigned if absent."""
    from moescale.runs import RunTable

    inp = inp or ReportInputs()
    runs = RunTable.from_file(path, mapping=mapping or None, derive=derive or None)
    if where:
        from moescale.fitting.holdout import query_mask

        runs = runs.subset(query_mask(runs.frame, where, "`where`"))
    frame = runs.frame
    from moescale.runs import LOSS_COLUMNS

    if not any(c in frame.columns for c in LOSS_COLUMNS):
        raise MoescaleError(f"{path} has no loss column ({', '.join(LOSS_COLUMNS)}; map yours "
                            f"with `mapping`): a report of runs needs their losses — columns: "
                            f"{', '.join(map(str, frame.columns))}")
    if "budget" not in frame.columns and "C" in frame.columns:
        frame = assign_budgets(frame)
        inp.notes.append("compute budgets: each run's C rounded to a quarter decade "
                         "(the runs have no budget column)")
    inp.runs = frame if inp.runs is None else inp.runs
    inp.sources["runs"] = str(path)
    inp._cache["runtable"] = runs
    return inp


def add_fit(inp: ReportInputs, path_or_fit, runs=None) -> ReportInputs:
    """Add a fit (file or :class:`FitResult`) with the runs it was fitted on when known:
    ``runs`` given, else the report's run table, else the store's runs under the law's
    convention, else the fit's own source file when its data hash matches."""
    from moescale.fitting import FitResult

    fit = FitResult.load(path_or_fit) if isinstance(path_or_fit, (str, Path)) else path_or_fit
    inp.fits.append(fit)
    inp.sources.setdefault("fits", []).append(
        str(path_or_fit) if isinstance(path_or_fit, (str, Path)) else f"<{fit.law} fit>")
    if runs is None:
        runs = _fit_runs(inp, fit)
    inp.fit_runs.append(runs)
    return inp


def _fit_runs(inp: ReportInputs, fit):
    if "runtable" in inp._cache:
        return inp._cache["runtable"]
    if "store" in inp.sources:
        from moescale.sweeps.export import run_table
        from moescale.sweeps.store import SweepStore

        try:
            with SweepStore(inp.sources["store"], create=False, readonly=True) as store:
                return run_table(store, law=fit.law)
        except MoescaleError:
            return None
    source = (fit.data or {}).get("source")
    if source and Path(source).is_file():
        from moescale.runs import RunTable

        try:
            table = RunTable.from_file(source)
        except MoescaleError:
            return None
        if table.data_hash() == (fit.data or {}).get("hash"):
            return table
        inp.notes.append(f"the {fit.law} fit's source {source} has changed since the fit "
                         "(or was read with `mapping`/`derive`); pass it as `runs`")
    return None


def load_plan(path: str | Path, inp: ReportInputs | None = None) -> ReportInputs:
    """Read a plan file (``Plan.to_dict`` as JSON); a missing or renamed key is an error."""
    inp = inp or ReportInputs()
    inp.plan = PlanData.from_dict(read_json_object(path, "a moescale plan", kind="plan file"),
                                 source=str(path))
    inp.sources["plan"] = str(path)
    return inp


def load_compare(path: str | Path, inp: ReportInputs | None = None) -> ReportInputs:
    """Read a comparison file (``moescale compare --json``); a missing key is an error."""
    inp = inp or ReportInputs()
    inp.compare = Comparison.from_dict(
        read_json_object(path, "a moescale comparison", kind="comparison file"), source=str(path))
    inp.sources["compare"] = str(path)
    return inp
