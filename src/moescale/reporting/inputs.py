"""The JSON inputs of a report, read once into small typed objects.

A plan (``Plan.to_dict``, the ``moescale plan --json`` object), a comparison (``moescale
compare --json``) and a leaderboard (``Selection.to_dict``, ``moescale fit --law all --json``)
are checked here when they are read: a missing or renamed key is a :class:`MoescaleError`
naming it, never a figure that silently goes missing later. The figures then use attributes.

:class:`FigureUnavailable` is what a figure raises when its input cannot support it (too few
plans, rows without the needed columns); the report lists that figure with the reason. Any
other exception from a figure is a bug and propagates.

>>> PlanData.from_dict({"compute": 1e20})
Traceback (most recent call last):
...
moescale.errors.MoescaleError: the plan has no 'counts': not a moescale plan (the object Plan.to_dict writes)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from moescale.errors import MoescaleError

# allocation entries every holistic plan has (the landscape and d-sweep figures need them)
HOLISTIC_ALLOCATION = ("training_compute", "flops_per_token_target", "M_over_Na_target",
                       "N_over_Na_target")


class FigureUnavailable(MoescaleError):
    """The inputs cannot support a figure; ``reason`` says why (shown on the report page)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def _need(data: Any, key: str, what: str, kind: str) -> Any:
    """``data[key]``; a clear error naming ``key`` when ``data`` is not a dict or lacks it
    (``what`` names the object read, ``kind`` the input it should be and what writes one)."""
    if not isinstance(data, Mapping):
        raise MoescaleError(f"{what} is {type(data).__name__}, not a JSON object: not a "
                            f"moescale {kind}")
    if key not in data:
        raise MoescaleError(f"{what} has no {key!r}: not a moescale {kind}")
    return data[key]


def _number(value: Any, key: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MoescaleError(f"{what}: {key!r} must be a number, got {value!r}")
    return float(value)


def _optional_number(value: Any, key: str, what: str) -> float | None:
    return None if value is None else _number(value, key, what)


# ----- a plan -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PlanData:
    """What a report reads from a plan.

    ``architecture`` is the library's :class:`~moescale.accounting.architecture.Architecture`;
    ``allocation`` the planner's allocation (holistic plans always carry
    :data:`HOLISTIC_ALLOCATION`; ``landscape_scale``, ``align`` and
    ``median_feasible_hidden_size`` only when the planner reports them); ``ratios`` the
    counts' ratios (``N_a``, ``N``, ``M_over_Na``, ``N_over_Na``); ``band`` the near-optimal
    band (``tolerance`` always; its ranges by method).
    """

    compute: float
    method: str
    law: str
    memory_bytes: float | None
    architecture: Any
    allocation: dict[str, Any]
    ratios: dict[str, Any]
    band: dict[str, Any]
    predicted_loss: float | None
    predicted_loss_ci: tuple[float, float] | None
    binding_constraint: str

    @property
    def holistic(self) -> bool:
        """Whether the plan came from the holistic search (landscape, d sweep, band width)."""
        return self.method == "holistic"

    @property
    def training_compute(self) -> float:
        """The compute the planned model realises (the budget when the plan does not say)."""
        return float(self.allocation.get("training_compute") or self.compute)

    @classmethod
    def from_dict(cls, data: Any, source: str = "the plan") -> PlanData:
        """Read the ``Plan.to_dict`` object; a missing or renamed key is an error naming it."""
        from moescale.accounting.architecture import Architecture

        how = "plan (the object Plan.to_dict writes)"

        def need(d, key, where=source):
            return _need(d, key, where, how)

        counts, band = need(data, "counts"), need(data, "near_optimal_band")
        allocation = need(data, "allocation")
        if not isinstance(allocation, Mapping):
            raise MoescaleError(f"{source}: 'allocation' must be a JSON object")
        method = str(need(data, "method"))
        if method == "holistic":
            for key in HOLISTIC_ALLOCATION:
                need(allocation, key, f"{source}'s allocation")
            need(band, "tolerance", f"{source}'s near_optimal_band")
        ratios = need(counts, "ratios", f"{source}'s counts")
        for key in ("N_a", "N", "M_over_Na", "N_over_Na"):
            need(ratios, key, f"{source}'s counts.ratios")
        ci = need(data, "predicted_loss_ci")
        try:
            architecture = Architecture.from_dict(need(data, "architecture"))
        except MoescaleError as exc:  # the library's own check of the fields: say where
            raise MoescaleError(f"{source}'s architecture: {exc}") from None
        return cls(
            compute=_number(need(data, "compute"), "compute", source),
            method=method,
            law=str(need(data, "law")),
            memory_bytes=_optional_number(need(need(data, "budget"), "memory_bytes",
                                               f"{source}'s budget"), "memory_bytes", source),
            architecture=architecture,
            allocation=dict(allocation),
            ratios=dict(ratios),
            band=dict(band),
            predicted_loss=_optional_number(need(data, "predicted_loss"), "predicted_loss",
                                            source),
            predicted_loss_ci=tuple(map(float, ci)) if ci else None,
            binding_constraint=str(need(data, "binding_constraint") or ""),
        )

    @classmethod
    def of(cls, plan: Any) -> PlanData:
        """A :class:`PlanData` from itself, a :class:`~moescale.planning.Plan` or its dict."""
        if isinstance(plan, cls):
            return plan
        if hasattr(plan, "to_dict"):
            from moescale.jsonio import jsonable

            plan = jsonable(plan.to_dict())
        return cls.from_dict(plan)


# ----- a comparison -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Comparison:
    """A ``moescale compare --json`` object: the law, the budget, FLOP savings of MoE over dense
    (rows with ``experts`` and ``flop_savings``) and the best number of experts per memory
    budget (rows with ``memory_bytes``, ``experts`` and, when known, ``loss``)."""

    compute: float
    law: str
    dense_vs_moe: list[dict[str, Any]]
    experts_by_memory: list[dict[str, Any]]

    @classmethod
    def from_dict(cls, data: Any, source: str = "the comparison") -> Comparison:
        """Read the object; a missing key (top level or in a row) is an error naming it."""
        how = "comparison (the object moescale compare writes as JSON)"
        rows = {}
        for key, columns in (("dense_vs_moe", ("experts", "flop_savings")),
                             ("experts_by_memory", ("memory_bytes", "experts"))):
            rows[key] = [dict(r) for r in _need(data, key, source, how)]
            for r in rows[key]:
                for column in columns:
                    _need(r, column, f"{source}'s {key} row", how)
        return cls(compute=_number(_need(data, "compute", source, how), "compute", source),
                   law=str(_need(data, "law", source, how)), **rows)

    @classmethod
    def of(cls, data: Any) -> Comparison:
        return data if isinstance(data, cls) else cls.from_dict(data)


# ----- a leaderboard ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Leaderboard:
    """A ``Selection.to_dict`` object: ranked laws (dicts with ``law``, ``rank``, ``n_params``,
    ``train_rmse``, ``holdout_rmse``, ``cv_rmse``, ``delta_bic``, ``within_one_se``), laws not
    ranked (``law``, ``status``, ``reason``) and how they were split and ranked."""

    leaderboard: list[dict[str, Any]]
    not_ranked: list[dict[str, Any]]
    rank_by: str
    holdout: str | None
    cv: str | None
    n_runs: int

    # the keys of a ranked law the leaderboard figure draws
    RANKED: ClassVar[tuple[str, ...]] = ("law", "rank", "n_params", "train_rmse",
                                         "holdout_rmse", "cv_rmse", "delta_bic", "within_one_se")

    @classmethod
    def from_dict(cls, data: Any, source: str = "the leaderboard") -> Leaderboard:
        """Read the object; a missing key (top level or in a row) is an error naming it."""
        how = "leaderboard (a select_laws result's to_dict)"
        ranked = [dict(r) for r in _need(data, "leaderboard", source, how)]
        others = [dict(r) for r in _need(data, "not_ranked", source, how)]
        for r in ranked:
            for key in cls.RANKED:
                _need(r, key, f"{source}'s ranked law", how)
        for r in others:
            for key in ("law", "status", "reason"):
                _need(r, key, f"{source}'s law not ranked", how)
        return cls(ranked, others, str(_need(data, "rank_by", source, how)),
                   _need(data, "holdout", source, how), _need(data, "cv", source, how),
                   int(_need(data, "n_runs", source, how)))

    @classmethod
    def of(cls, selection: Any) -> Leaderboard:
        """From itself, a :class:`~moescale.fitting.selection.Selection` or its dict."""
        if isinstance(selection, cls):
            return selection
        if hasattr(selection, "to_dict"):
            selection = selection.to_dict()
        return cls.from_dict(selection)
