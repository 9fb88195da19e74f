"""Planning: from a budget (compute; optionally memory, KV cache, inference tokens) to a plan.

- :func:`plan_holistic` — the holistic paper's two-phase architecture search (default);
- :func:`plan_with_law` — continuous allocation with a loss law (preset or fit);
- :func:`make_plan` — picks one of the two from the options, as the CLI does.
"""

from __future__ import annotations

from collections.abc import Sequence

from moescale.errors import MoescaleError
from moescale.planning.holistic import HolisticSettings
from moescale.planning.holistic_plan import Targets, plan_holistic
from moescale.planning.plan import Budget, Plan

__all__ = ["Budget", "HolisticSettings", "Plan", "Targets", "make_plan", "plan_holistic",
           "plan_with_law"]


def plan_with_law(*args, **kwargs) -> Plan:
    """See :func:`moescale.planning.law_plan.plan_with_law`."""
    from moescale.planning.law_plan import plan_with_law as impl

    return impl(*args, **kwargs)


def _fit_law(path: str) -> str:
    from moescale.fitting import FitResult

    return FitResult.load(path).law


def make_plan(budget: Budget, method: str | None = None, law: str | None = None,
              preset: str | None = None, fit: str | None = None,
              experts: Sequence[int] = (1, 2, 4, 8, 16, 32), align: int = 8, seq_len: int = 8192,
              top: int = 5, m_ratio_fit: str | None = None,
              n_ratio_fit: str | None = None) -> Plan:
    """``method`` defaults to ``"law"`` when a loss law or a fit of one is given, else
    ``"holistic"`` (also for a fit of ``holistic2026``, the C → D_opt law, and ratio fits)."""
    if method is None:
        holistic_fit = fit is not None and _fit_law(fit) == "holistic2026"
        method = "law" if (law or fit) and not holistic_fit else "holistic"
    if method == "holistic":
        if law:
            raise MoescaleError("--law drives --method law; the holistic method takes its "
                                "targets from the paper or from --fit/--m-ratio-fit/--n-ratio-fit")
        targets = Targets.from_fits(fit, m_ratio_fit, n_ratio_fit)
        return plan_holistic(budget, HolisticSettings(align=align, seq_len=seq_len), top=top,
                             targets=targets)
    if m_ratio_fit or n_ratio_fit:
        raise MoescaleError("--m-ratio-fit and --n-ratio-fit go with --method holistic")
    return plan_with_law(budget, law=law, preset=preset, fit=fit, experts=experts, top=top)
