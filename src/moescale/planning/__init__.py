"""Planning: from a budget (compute; optionally memory, KV cache, inference tokens) to a plan.

- :func:`plan_holistic` — the holistic paper's two-phase architecture search (default);
- :func:`plan_with_law` — continuous allocation with a loss law (preset or fit);
- :func:`make_plan` — picks one of the two from the options, as the CLI does.
"""

from __future__ import annotations

from collections.abc import Sequence

from moescale.planning.holistic import HolisticSettings
from moescale.planning.plan import Budget, Plan, plan_holistic

__all__ = ["Budget", "HolisticSettings", "Plan", "make_plan", "plan_holistic", "plan_with_law"]


def plan_with_law(*args, **kwargs) -> Plan:
    """See :func:`moescale.planning.law_plan.plan_with_law`."""
    from moescale.planning.law_plan import plan_with_law as impl

    return impl(*args, **kwargs)


def make_plan(budget: Budget, method: str | None = None, law: str | None = None,
              preset: str | None = None, fit: str | None = None,
              experts: Sequence[int] = (1, 2, 4, 8, 16, 32), align: int = 8, seq_len: int = 8192,
              top: int = 5) -> Plan:
    """``method`` defaults to ``"law"`` when a law or fit is given, else ``"holistic"``."""
    method = method or ("law" if (law or fit) else "holistic")
    if method == "holistic":
        return plan_holistic(budget, HolisticSettings(align=align, seq_len=seq_len), top=top)
    return plan_with_law(budget, law=law, preset=preset, fit=fit, experts=experts, top=top)
