"""Planning: from a budget (compute; optionally memory, KV cache, inference tokens) to a plan.

- :func:`plan_holistic` — the holistic paper's two-phase architecture search (default);
- :func:`plan_with_law` — the realisable model with the lowest loss under a law (preset or fit).

:func:`moescale.plan` picks one of the two from its options.
"""

from __future__ import annotations

from moescale.planning.holistic import HolisticSettings
from moescale.planning.holistic_plan import Targets, plan_holistic
from moescale.planning.plan import Budget, Plan, PlanSummary

__all__ = ["Budget", "HolisticSettings", "Plan", "PlanSummary", "Targets", "plan_holistic", "plan_with_law"]


def plan_with_law(*args, **kwargs) -> Plan:
    """See :func:`moescale.planning.law_plan.plan_with_law`."""
    from moescale.planning.law_plan import plan_with_law as impl

    return impl(*args, **kwargs)
