"""Reports: the figures scaling-law researchers read, and one self-contained page.

One function per figure, each returning a matplotlib ``Figure`` (Agg backend, imported only
when a figure is drawn) from library objects — for notebooks as much as for the page:

- runs and sweeps (:mod:`~moescale.reporting.sweeps`): :func:`isoflop`, :func:`frontier`,
  :func:`optima`, :func:`learning_curves`, :func:`experts`, :func:`experts_at_size`,
  :func:`compute_multiplier`;
- a fit (:mod:`~moescale.reporting.fits`): :func:`fit_parity`, :func:`fit_residuals`,
  :func:`fit_params` (and :func:`fit_warnings`);
- the laws and a plan (:mod:`~moescale.reporting.plans`): :func:`landscape`, :func:`d_sweep`,
  :func:`band_width`, :func:`experts_memory`, :func:`flop_savings`, :func:`architecture`.

:func:`build_report` draws every figure its :class:`ReportInputs` support into
``DIR/figures/NAME.png|svg`` and writes ``DIR/index.html`` (:mod:`~moescale.reporting.page`);
``moescale report`` is its command line. Style: :mod:`~moescale.reporting.style`.

The JSON inputs (a plan, a comparison, a leaderboard) are read once into typed objects
(:mod:`~moescale.reporting.inputs`: :class:`PlanData`, :class:`Comparison`,
:class:`Leaderboard`), so a missing or renamed key is an error when they are read. A figure its
inputs cannot support raises :class:`FigureUnavailable`; the page lists it with the reason.
"""

from moescale.reporting.build import (
    FigureSpec,
    Report,
    ReportInputs,
    add_fit,
    assign_budgets,
    available_figures,
    build_report,
    figure_names,
    figure_specs,
    load_compare,
    load_plan,
    load_runs,
    load_store,
)
from moescale.reporting.fits import fit_params, fit_parity, fit_residuals, fit_warnings
from moescale.reporting.inputs import Comparison, FigureUnavailable, Leaderboard, PlanData
from moescale.reporting.plans import (
    architecture,
    band_series,
    band_width,
    d_sweep,
    experts_memory,
    flop_savings,
    landscape,
)
from moescale.reporting.style import save
from moescale.reporting.sweeps import (
    compute_multiplier,
    experts,
    experts_at_size,
    frontier,
    isoflop,
    learning_curves,
    optima,
)

__all__ = [
    "Comparison", "FigureSpec", "FigureUnavailable", "Leaderboard", "PlanData", "Report",
    "ReportInputs", "add_fit", "architecture", "assign_budgets",
    "available_figures", "band_series", "band_width", "build_report", "compute_multiplier",
    "d_sweep", "experts", "experts_at_size", "experts_memory", "figure_names", "figure_specs", "fit_params", "fit_parity",
    "fit_residuals", "fit_warnings", "flop_savings", "frontier", "isoflop", "landscape",
    "learning_curves", "load_compare", "load_plan", "load_runs", "load_store", "optima", "save",
]
