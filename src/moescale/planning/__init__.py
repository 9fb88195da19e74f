"""Planning: from a budget (compute; optionally memory, KV cache, inference tokens) to a plan.

- :func:`plan_holistic` — the holistic paper's two-phase architecture search (default);
- :func:`plan_with_law` — the realisable model with the lowest loss under a law (preset or fit);
- :func:`make_plan` — picks one of the two from the options, as the CLI does.
"""

from __future__ import annotations

from collections.abc import Sequence

from moescale.errors import MoescaleError
from moescale.planning.holistic import HolisticSettings
from moescale.planning.holistic_plan import Targets, plan_holistic
from moescale.planning.plan import Budget, Plan, PlanSummary

__all__ = ["Budget", "HolisticSettings", "Plan", "PlanSummary", "Targets", "make_plan",
           "plan_holistic", "plan_with_law"]

LAW_EXPERTS = (1, 2, 4, 8, 16, 32)


def plan_with_law(*args, **kwargs) -> Plan:
    """See :func:`moescale.planning.law_plan.plan_with_law`."""
    from moescale.planning.law_plan import plan_with_law as impl

    return impl(*args, **kwargs)


def _fit_law(fit) -> str:
    from moescale.fitting import FitResult

    return FitResult.coerce(fit).law


def make_plan(budget: Budget, method: str | None = None, law: str | None = None,
              preset: str | None = None, fit=None,
              experts: Sequence[int] | None = None, align: int | None = None,
              seq_len: int | None = None, top: int = 5, m_ratio_fit=None,
              n_ratio_fit=None, vocab: int | None = None,
              top_k: int | None = None, heads: int | None = None, kv_heads: int | None = None,
              head_dim: int | None = None) -> Plan:
    """A plan for ``budget``; fits (``fit``, ``m_ratio_fit``, ``n_ratio_fit``) are
    :class:`~moescale.fitting.FitResult` objects or paths of saved ones.

    ``method`` defaults to ``"law"`` when a loss law or a fit of one is given, else
    ``"holistic"`` (also for a fit of ``holistic2026``, the C → D_opt law, and ratio fits).

    Shape options (``None`` keeps each method's default): ``vocab`` (holistic 152064, law
    50257), ``seq_len`` (8192 / 512), ``align`` (8 / 64), ``heads``, ``kv_heads``,
    ``head_dim``; holistic only: one number of routed ``experts`` (288) and ``top_k`` (8); law
    only: the list of ``experts`` to compare.
    """
    if preset and not law:
        raise MoescaleError("--preset selects coefficients of --law; give --law too")
    if fit and law:
        raise MoescaleError("give either --law (with --preset) or --fit, not both: a fit "
                            "already names its law")
    if fit is not None:
        from moescale.fitting import FitResult

        fit = FitResult.coerce(fit)  # read once, used by every step below
    if method is None:
        holistic_fit = fit is not None and _fit_law(fit) == "holistic2026"
        method = "law" if (law or fit) and not holistic_fit else "holistic"
    if method == "holistic":
        if law:
            raise MoescaleError("--law drives --method law; the holistic method takes its "
                                "targets from the paper or from --fit/--m-ratio-fit/--n-ratio-fit")
        settings = _holistic_settings(experts, top_k, align, seq_len, vocab, heads, kv_heads,
                                      head_dim)
        targets = Targets.from_fits(fit, m_ratio_fit, n_ratio_fit)
        return plan_holistic(budget, settings, top=top, targets=targets)
    if m_ratio_fit or n_ratio_fit:
        raise MoescaleError("--m-ratio-fit and --n-ratio-fit go with --method holistic")
    if top_k not in (None, 1):
        raise MoescaleError("--top-k goes with --method holistic; the joint-MoE family of "
                            "--method law routes each token to one expert")
    from moescale.planning.family import FamilySettings

    given = {k: v for k, v in dict(vocab_size=vocab, seq_len=seq_len, align=align,
                                   n_heads=heads, n_kv_heads=kv_heads,
                                   head_dim=head_dim).items() if v is not None}
    return plan_with_law(budget, law=law, preset=preset, fit=fit,
                         experts=tuple(experts) if experts else LAW_EXPERTS, top=top,
                         family=FamilySettings(**given))


def _holistic_settings(experts, top_k, align, seq_len, vocab, heads, kv_heads,
                       head_dim) -> HolisticSettings:
    """Holistic settings from the CLI options (``None`` keeps the paper's constants)."""
    if experts is not None and len(experts) != 1:
        raise MoescaleError("--method holistic plans one number of routed experts; give "
                            f"--experts N (got {len(experts)} values)")
    given = {k: v for k, v in dict(n_experts=experts[0] if experts else None, top_k=top_k,
                                   align=align, seq_len=seq_len, vocab_size=vocab).items()
             if v is not None}
    s = HolisticSettings(**given)
    if s.top_k < 1 or s.n_experts <= s.top_k:
        raise MoescaleError(f"--top-k must be at least 1 and below --experts (got top-k "
                            f"{s.top_k}, experts {s.n_experts})")
    if heads or kv_heads or head_dim:
        nq = heads or 4
        nkv = kv_heads or max(1, nq // 2)
        if nq % nkv:
            raise MoescaleError(f"--kv-heads {nkv} must divide --heads {nq}")
        s = HolisticSettings(**given, heads=(head_dim or 64, nq, nkv))
    return s
