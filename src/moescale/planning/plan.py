"""The answer to "what should I train?": the :class:`Budget` and the :class:`Plan`.

>>> from moescale.planning import Budget, plan_holistic
>>> p = plan_holistic(Budget(compute=1e20))
>>> 0.95 < p.counts.ratios["M"] / p.allocation["flops_per_token_target"] < 1.05
True
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from moescale.accounting.counting import Counts
from moescale.errors import MoescaleError
from moescale.planning.training_values import check_compute
from moescale.units import dtype_bytes

COMPUTE_TOLERANCE = 0.001  # realised compute lies in [1 − this, 1] × the budget


@dataclass(frozen=True)
class Budget:
    """What the user has: training compute (FLOPs) and, optionally, memory and serving load.

    ``memory_bytes`` bounds the weights (``N_total × bytes(dtype)``) plus, with ``kv_tokens``,
    the KV cache of that many tokens. ``inference_tokens`` tokens served at ``2·N_act`` FLOPs
    each (Ludziejewski et al. 2025, arXiv:2502.05172) come out of ``compute``.
    """

    compute: float
    memory_bytes: float | None = None
    kv_tokens: int = 0
    dtype: str = "bf16"
    inference_tokens: float = 0.0

    def __post_init__(self) -> None:
        if not np.isfinite(self.compute) or self.compute <= 0:
            raise MoescaleError(f"compute budget must be positive, got {self.compute!r}")
        check_compute(self.compute)
        if self.memory_bytes is not None and not self.memory_bytes > 0:
            raise MoescaleError(f"memory budget must be positive, got {self.memory_bytes!r}")
        if self.kv_tokens < 0 or not self.inference_tokens >= 0:
            raise MoescaleError("kv-tokens and inference-tokens must be non-negative")
        dtype_bytes(self.dtype)

    def memory_used(self, c: Counts) -> float:
        """Bytes of weights plus the KV cache of ``kv_tokens`` tokens."""
        return c.weights_bytes(self.dtype) + (c.kv_cache_bytes(self.kv_tokens, self.dtype)
                                              if self.kv_tokens else 0.0)

    def fits(self, c: Counts) -> bool:
        """Whether ``c``'s weights and KV cache fit the memory budget (strictly, exact counts)."""
        return self.memory_bytes is None or self.memory_used(c) <= self.memory_bytes


@dataclass(frozen=True)
class PlanSummary:
    """The numbers every plan has, whatever its method, each name stating its convention.

    Parameters are exact counts of the planned architecture (:func:`~moescale.accounting.counting.count`);
    compute is in the plan's own ``convention`` (holistic: ``M·D``; law: ``6·N_act·D``).
    """

    total_params: int                      # every parameter (embeddings included)
    total_params_non_embedding: int
    active_params: int                     # per token, embeddings included
    active_params_non_embedding: int       # embeddings excluded (router and norms included)
    active_params_in_convention: float     # as ``convention`` counts them: the law's N_act,
    # the holistic paper's N_a (what the plan's law was evaluated at)
    training_tokens: int                   # D
    training_compute: float                # FLOPs, in ``convention``
    flops_per_token: float                 # training FLOPs per token, in ``convention``
    convention: str
    predicted_loss: float | None


@dataclass(frozen=True)
class Plan:
    """A complete, trainable recommendation and the assumptions behind it.

    ``realised`` holds the exact numbers of the planned architecture that each budget is
    checked against (compute in the plan's convention, memory from :func:`count`);
    ``extrapolation`` lists every law used outside its fitted range; ``skipped`` lists the
    options (e.g. numbers of experts) that could not satisfy the budget, with the reason;
    ``warnings`` what to distrust (a fit used far beyond its runs, tokens beyond the corpus, a
    fit whose interval was refused: :func:`with_warnings`).
    """

    budget: Budget
    method: str
    law: str
    convention: str
    allocation: dict[str, float]
    architecture: Any
    counts: Counts
    predicted_loss: float | None
    predicted_loss_ci: tuple[float, float] | None
    learning_rate: float | None
    batch_size_tokens: float | None
    near_optimal_band: dict[str, Any]
    alternatives: list[dict[str, Any]]
    binding_constraint: str
    assumptions: list[str] = field(default_factory=list)
    realised: dict[str, Any] = field(default_factory=dict)
    extrapolation: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    batch_size_sequences: int | None = None
    warnings: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        a = self.architecture
        loss = "-" if self.predicted_loss is None else f"{self.predicted_loss:.4g}"
        return (f"Plan(method={self.method!r}, law={self.law!r}, compute={self.budget.compute:.3g}, "
                f"d={getattr(a, 'hidden_size', '?')}, L={getattr(a, 'n_layers', '?')}, "
                f"experts={getattr(a, 'n_experts', '?')}, "
                f"tokens={float(self.allocation.get('tokens', float('nan'))):.4g}, "
                f"predicted_loss={loss}, warnings={len(self.warnings)})")

    @property
    def summary(self) -> PlanSummary:
        """The typed numbers of the plan (see :class:`PlanSummary`); ``allocation`` keeps the
        method's own details.

        >>> from moescale.planning import plan_holistic
        >>> s = plan_holistic(Budget(compute=1e20)).summary
        >>> s.active_params > s.active_params_non_embedding, s.convention
        (True, 'holistic')
        """
        c, r = self.counts, self.realised
        tokens = int(self.allocation["tokens"])
        return PlanSummary(
            total_params=int(c.total_params),
            total_params_non_embedding=int(c.total_params_non_embedding),
            active_params=int(c.active_params),
            active_params_non_embedding=int(c.active_params_non_embedding),
            active_params_in_convention=float(c.params_active),
            training_tokens=tokens, training_compute=float(r["training_compute"]),
            flops_per_token=float(r["training_compute"]) / tokens,
            convention=self.convention, predicted_loss=self.predicted_loss)

    @property
    def hf_family(self) -> str:
        """The Hugging Face family that can hold the planned model: ``glm4_moe`` for holistic
        plans (leading dense layers, an ungated shared expert, GQA), ``mixtral`` for law plans
        with experts, ``llama`` for dense ones."""
        if self.method == "holistic":
            return "glm4_moe"
        return "mixtral" if self.architecture.is_moe else "llama"

    def to_hf_config(self, family: str | None = None) -> dict[str, Any]:
        """The planned model's ``config.json`` (``family`` defaults to :attr:`hf_family`).

        >>> from moescale.planning import plan_holistic
        >>> plan_holistic(Budget(compute=1e20)).to_hf_config()["model_type"]
        'glm4_moe'
        """
        from moescale.accounting.hf_export import to_hf_config

        return to_hf_config(self.architecture, family or self.hf_family)

    def to_dict(self) -> dict[str, Any]:
        """The ``moescale plan --json`` object."""
        b = self.budget
        return {
            "compute": b.compute,
            "budget": {"compute": b.compute, "memory_bytes": b.memory_bytes, "kv_tokens": b.kv_tokens,
                       "dtype": b.dtype, "inference_tokens": b.inference_tokens},
            "method": self.method,
            "law": self.law,
            "convention": self.convention,
            "allocation": self.allocation,
            "architecture": self.architecture.to_dict(),
            "counts": _counts_summary(self.counts, b),
            "realised": self.realised,
            "predicted_loss": self.predicted_loss,
            "predicted_loss_ci": list(self.predicted_loss_ci) if self.predicted_loss_ci else None,
            "learning_rate": self.learning_rate,
            "batch_size_tokens": self.batch_size_tokens,
            "batch_size_sequences": self.batch_size_sequences,
            "near_optimal_band": self.near_optimal_band,
            "binding_constraint": self.binding_constraint,
            "alternatives": self.alternatives,
            "skipped": self.skipped,
            "extrapolation": self.extrapolation,
            "assumptions": self.assumptions,
            "warnings": self.warnings,
            "summary": dataclasses.asdict(self.summary),
        }


def _counts_summary(c: Counts, b: Budget) -> dict[str, Any]:
    return {
        "total_params": c.total_params,
        "active_params": c.active_params,
        "total_params_non_embedding": c.total_params_non_embedding,
        "active_params_non_embedding": c.active_params_non_embedding,
        "training_flops_per_token": c.training_flops_per_token,
        "inference_flops_per_token": c.inference_flops_per_token,
        "weights_bytes": c.weights_bytes(b.dtype),
        "kv_cache_bytes": c.kv_cache_bytes(b.kv_tokens, b.dtype) if b.kv_tokens else 0.0,
        "training_state_bytes": c.training_state_bytes(),
        "ratios": c.ratios,
    }


def realised_numbers(budget: Budget, counts: Counts, flops_per_token: float, tokens: int,
                     inference_flops_per_token: float, convention: str) -> dict[str, Any]:
    """The realised compute and memory a plan is checked against (see :class:`Plan`).

    ``flops_per_token`` and ``inference_flops_per_token`` are in the plan's ``convention``;
    training compute is ``flops_per_token × tokens``.
    """
    train = flops_per_token * tokens
    serve = inference_flops_per_token * budget.inference_tokens
    kv = counts.kv_cache_bytes(budget.kv_tokens, budget.dtype) if budget.kv_tokens else 0.0
    weights = counts.weights_bytes(budget.dtype)
    return {
        "compute_convention": convention,
        "training_compute": train, "inference_compute": serve, "total_compute": train + serve,
        "compute_budget": budget.compute, "compute_tolerance": COMPUTE_TOLERANCE,
        "weights_bytes": weights, "kv_cache_bytes": kv, "memory_bytes": weights + kv,
        "memory_budget": budget.memory_bytes,
    }


def check_realised(plan: Plan) -> None:
    """Raise when the plan breaks a budget (a bug guard: planners only return plans that hold)."""
    r, b = plan.realised, plan.budget
    if r["total_compute"] > b.compute * (1 + 1e-9) or \
            r["total_compute"] < b.compute * (1 - COMPUTE_TOLERANCE):
        raise AssertionError(f"plan uses {r['total_compute']:.6g} of {b.compute:.6g} FLOPs")
    if b.memory_bytes is not None and r["memory_bytes"] > b.memory_bytes:
        raise AssertionError(f"plan needs {r['memory_bytes']:.6g} of {b.memory_bytes:.6g} bytes")


# ----- warnings: a fit used beyond its runs, tokens beyond the corpus ------------------------

def plan_values(plan: Plan) -> dict[str, float]:
    """The values a law is evaluated at for ``plan``: active parameters as ``N``,
    ``N_active`` and ``N_a`` (in the plan's convention), training tokens ``D``, experts ``E``
    and training compute ``C`` (FLOPs, the plan's convention)."""
    s = plan.summary
    n = float(s.active_params_in_convention)
    experts = plan.allocation.get("experts", getattr(plan.architecture, "n_experts", None))
    values = {"N": n, "N_active": n, "N_a": n, "D": float(s.training_tokens),
              "C": float(s.training_compute)}
    if experts is not None:
        values["E"] = float(experts)
    return values


def fit_warnings(fit, values: dict[str, Any]) -> list[str]:
    """Warnings for using ``fit`` (a :class:`~moescale.fitting.FitResult`) at ``values``: every
    variable more than a factor 2 outside the range of the runs it was fitted on (from the
    ``ranges`` its file records; ``C = 6·N·D`` too), and an interval it refused."""
    name = fit.describe()
    out = [f"{name}: {m}" for m in fit.extrapolation(values)]
    if fit.interval_refused:
        out.append(f"{name}: {fit.interval_refused}; no interval is given")
    return out


def corpus_warning(tokens: float, corpus_tokens: float | None, source: str = "",
                   what: str = "planned") -> str | None:
    """A warning when ``tokens`` (training tokens, ``what``: planned, or predicted at) exceed
    the corpus of ``corpus_tokens`` tokens (None: unknown, no warning); ``source`` says where
    its size is from."""
    if not corpus_tokens or not tokens > corpus_tokens:
        return None
    where = f" ({source})" if source else ""
    times = tokens / corpus_tokens
    return (f"{what} {_sci(tokens)} tokens are {times:.3g}x the {_sci(corpus_tokens)}-token "
            f"corpus{where}: every token would be seen ~{times:.3g} times, repetition the "
            "law does not model")


def _sci(x: float) -> str:
    """``9.2e9``: two significant digits, a bare exponent."""
    mantissa, _, exp = f"{x:.2g}".partition("e")
    return f"{mantissa}e{int(exp)}" if exp else mantissa


def corpus_size(given: float | None, fits=()) -> tuple[float | None, str]:
    """The corpus size in tokens and where it is from: ``given`` (``--corpus-tokens``), else
    the first fit that records one (``data.corpus_tokens``: its runs repeated the corpus)."""
    if given:
        return float(given), "--corpus-tokens"
    for fit in fits:
        if fit is not None and fit.data.get("corpus_tokens"):
            return float(fit.data["corpus_tokens"]), f"the corpus of the runs of {fit.describe()}"
    return None, ""


def with_warnings(plan: Plan, fits=(), corpus_tokens: float | None = None) -> Plan:
    """``plan`` with the warnings of :func:`fit_warnings` for each of ``fits`` (FitResults;
    None skipped) and :func:`corpus_warning` for its training tokens, after its own."""
    fits = [f for f in fits if f is not None]
    values = plan_values(plan)
    found = [w for f in fits for w in fit_warnings(f, values)]
    corpus, source = corpus_size(corpus_tokens, fits)
    found.append(corpus_warning(values["D"], corpus, source))
    merged = list(dict.fromkeys([*plan.warnings, *(w for w in found if w)]))
    return dataclasses.replace(plan, warnings=merged)
