"""The functions of the top-level API (``import moescale``): each takes objects or names or
paths and makes one library call. The CLI commands call the same library functions.

>>> import moescale
>>> c = moescale.count("mixtral-8x7b")
>>> round(c.total_params / 1e9, 1), round(c.active_params / 1e9, 1)
(46.7, 12.9)
>>> p = moescale.plan(1e20)
>>> p.method, p.architecture.n_experts > 0
('holistic', True)
"""

from __future__ import annotations

import dataclasses
import numbers
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moescale import validation as check
from moescale.accounting.architecture import Architecture
from moescale.errors import MoescaleError

PLAN_METHODS = ("holistic", "law")


def architecture(arch: Architecture | str | Path | None = None, **overrides: Any) -> Architecture:
    """An :class:`Architecture` from an object, a preset name (``moescale.accounting.presets.PRESETS``),
    an architecture / plan JSON or a Hugging Face ``config.json`` path, with field
    ``overrides``.

    >>> architecture("tiny", n_layers=4).n_layers
    4
    """
    return _resolve(arch, overrides)[0]


def _resolve(arch, overrides: dict[str, Any]) -> tuple[Architecture, dict | None]:
    """The architecture and, for an HF preset or config file, its config dict — through
    :func:`moescale.accounting.presets.resolve_architecture`, the resolver every command uses."""
    from moescale.accounting.presets import PRESETS, resolve_architecture

    if arch is not None and not isinstance(arch, (Architecture, str, os.PathLike)):
        raise MoescaleError(f"arch must be an Architecture, a preset name or a file path, "
                            f"got {check.kind(arch)}")
    if isinstance(arch, Architecture):
        return (arch.replace(**overrides) if overrides else arch), None
    if arch is None:
        return resolve_architecture(overrides=overrides)
    if isinstance(arch, str) and arch in PRESETS:
        return resolve_architecture(preset=arch, overrides=overrides)
    path = Path(arch)
    if not path.is_file():
        raise MoescaleError(f"{arch!r} is neither a preset ({', '.join(PRESETS)}) nor a file")
    import json

    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise MoescaleError(f"{path} is not a JSON file") from None
    hf = isinstance(raw, dict) and ("model_type" in raw or "num_hidden_layers" in raw)
    return resolve_architecture(hf_config=path if hf else None, arch=None if hf else path,
                                overrides=overrides)


def count(arch: Architecture | str | Path, convention: str = "exact", **kwargs: Any):
    """Exact parameters, FLOPs and memory of ``arch`` (object, preset name or file) under a
    counting ``convention`` (``exact``, ``megatron``, ``holistic``, ``chinchilla``,
    ``kaplan``); see :func:`moescale.accounting.counting.count`.

    >>> count("tiny").total_params
    255296
    """
    from moescale.accounting.conventions import CONVENTIONS, Convention
    from moescale.accounting.counting import count as _count

    if arch is None:
        raise MoescaleError("arch must be an Architecture, a preset name or a file path, got None")
    if not isinstance(convention, Convention):
        check.choice(convention, "convention", list(CONVENTIONS), optional=False)
    unknown = sorted(set(kwargs) - {"context", "inference_context", "causal_halving"})
    if unknown:
        raise MoescaleError(f"count() got unknown argument(s) {', '.join(unknown)}; it takes "
                            "context, inference_context and causal_halving")
    for key in ("context", "inference_context"):
        if key in kwargs:
            kwargs[key] = check.number(kwargs[key], key, positive=True, integer=True, optional=True)
    if kwargs.get("causal_halving") is not None and not isinstance(kwargs["causal_halving"], bool):
        raise MoescaleError(f"causal_halving must be True, False or None, got "
                            f"{check.kind(kwargs['causal_halving'])}")
    return _count(architecture(arch), convention, **kwargs)


def plan(compute: float, *, memory_bytes: float | None = None, kv_tokens: int = 0,
         dtype: str = "bf16", inference_tokens: float = 0.0, method: str | None = None,
         law: str | None = None, preset: str | None = None, fit=None,
         experts: int | Sequence[int] | None = None, top_k: int | None = None,
         m_ratio_fit=None, n_ratio_fit=None, vocab: int | None = None,
         seq_len: int | None = None, align: int | None = None, heads: int | None = None,
         kv_heads: int | None = None, head_dim: int | None = None, top: int = 5,
         corpus_tokens: float | None = None):
    """The architecture to train with ``compute`` FLOPs (and, optionally, a memory budget of
    ``memory_bytes``, a KV cache of ``kv_tokens`` tokens and ``inference_tokens`` served).
    Returns a :class:`~moescale.planning.Plan` with ``top`` alternatives.

    ``method`` is ``"law"`` (:func:`~moescale.planning.plan_with_law`, the realisable model
    with the lowest loss under ``law``/``preset`` or ``fit``) or ``"holistic"``
    (:func:`~moescale.planning.plan_holistic`, the holistic paper's two-phase search); it
    defaults to ``"law"`` when a loss law or a fit of one is given, else ``"holistic"`` (also
    for a fit of ``holistic2026``, the C → D_opt law). Fits (``fit``, ``m_ratio_fit``,
    ``n_ratio_fit``) are :class:`~moescale.fitting.FitResult` objects or paths of saved ones.

    Shape options (``None`` keeps each method's default): ``vocab`` (holistic 152064, law
    50257), ``seq_len`` (8192 / 512), ``align`` (8 / 64), ``heads``, ``kv_heads``,
    ``head_dim``; holistic only: one number of routed ``experts`` (288) and ``top_k`` (8); law
    only: the numbers of ``experts`` to compare (1, 2, 4, 8, 16, 32).

    The plan's ``warnings`` name a fit used more than 2× beyond its runs and training tokens
    beyond the corpus (``corpus_tokens``, else the one a fit records), as ``moescale plan``
    prints them (:func:`moescale.planning.plan.with_warnings`).
    """
    from moescale.fitting import FitResult
    from moescale.planning import Budget
    from moescale.planning.plan import with_warnings

    compute = check.number(compute, "compute", positive=True)
    memory_bytes = check.number(memory_bytes, "memory_bytes", positive=True, optional=True)
    kv_tokens = check.number(kv_tokens, "kv_tokens", minimum=0, integer=True)
    inference_tokens = check.number(inference_tokens, "inference_tokens", minimum=0)
    check.choice(dtype, "dtype", optional=False)
    check.choice(method, "method", PLAN_METHODS)
    check.choice(law, "law")
    check.choice(preset, "preset")
    if experts is not None:
        experts = ([check.number(experts, "experts", positive=True, integer=True)]
                   if isinstance(experts, numbers.Real) and not isinstance(experts, bool)
                   else check.numbers(experts, "experts", integer=True))
    shape = {k: check.number(v, k, positive=True, integer=True, optional=True)
             for k, v in dict(top_k=top_k, vocab=vocab, seq_len=seq_len, align=align,
                              heads=heads, kv_heads=kv_heads, head_dim=head_dim).items()}
    top = check.number(top, "top", minimum=0, integer=True)
    corpus_tokens = check.number(corpus_tokens, "corpus_tokens", positive=True, optional=True)
    budget = Budget(compute=compute, memory_bytes=memory_bytes, kv_tokens=kv_tokens,
                    dtype=dtype, inference_tokens=inference_tokens)
    if preset and not law:
        raise MoescaleError("`preset` selects coefficients of `law`; give `law` too")
    if fit is not None and law:
        raise MoescaleError("give either `law` (with `preset`) or `fit`, not both: a fit "
                            "already names its law")
    if fit is not None:
        fit = FitResult.coerce(fit)  # read once, used by every step below
    return with_warnings(_plan(budget, method, law, preset, fit, experts, shape, top,
                               m_ratio_fit, n_ratio_fit),
                         [FitResult.coerce(f) for f in (fit, m_ratio_fit, n_ratio_fit) if f],
                         corpus_tokens)


def _plan(budget, method, law, preset, fit, experts, shape, top, m_ratio_fit, n_ratio_fit):
    """The plan of :func:`plan`'s checked arguments, before its warnings."""
    from moescale.planning import plan_holistic, plan_with_law
    from moescale.planning.holistic_plan import Targets

    if method is None:
        holistic_fit = fit is not None and fit.law == "holistic2026"
        method = "law" if (law or fit is not None) and not holistic_fit else "holistic"
    if method == "holistic":
        if law:
            raise MoescaleError("`law` drives `method` law; the holistic method takes its "
                                "targets from the paper or from `fit`, `m_ratio_fit` and "
                                "`n_ratio_fit`")
        settings = _holistic_settings(experts, **shape)
        targets = Targets.from_fits(fit, m_ratio_fit, n_ratio_fit)
        return plan_holistic(budget, settings, top=top, targets=targets)
    if m_ratio_fit or n_ratio_fit:
        raise MoescaleError("`m_ratio_fit` and `n_ratio_fit` go with `method` holistic")
    if shape["top_k"] not in (None, 1):
        raise MoescaleError("`top_k` goes with `method` holistic; the joint-MoE family of "
                            "`method` law routes each token to one expert")
    from moescale.planning.family import FamilySettings

    given = {k: v for k, v in dict(vocab_size=shape["vocab"], seq_len=shape["seq_len"],
                                   align=shape["align"], n_heads=shape["heads"],
                                   n_kv_heads=shape["kv_heads"],
                                   head_dim=shape["head_dim"]).items() if v is not None}
    return plan_with_law(budget, law=law, preset=preset, fit=fit,
                         experts=tuple(experts) if experts else LAW_EXPERTS, top=top,
                         family=FamilySettings(**given))


LAW_EXPERTS = (1, 2, 4, 8, 16, 32)  # numbers of experts method="law" compares by default


def _holistic_settings(experts, *, top_k, align, seq_len, vocab, heads, kv_heads, head_dim):
    """:class:`~moescale.planning.HolisticSettings` from :func:`plan`'s options (``None``
    keeps the paper's constants)."""
    from moescale.planning import HolisticSettings

    if experts is not None and len(experts) != 1:
        raise MoescaleError("`method` holistic plans one number of routed experts; give one "
                            f"`experts` (got {len(experts)} values)")
    given = {k: v for k, v in dict(n_experts=experts[0] if experts else None, top_k=top_k,
                                   align=align, seq_len=seq_len, vocab_size=vocab).items()
             if v is not None}
    s = HolisticSettings(**given)
    if s.top_k < 1 or s.n_experts <= s.top_k:
        raise MoescaleError(f"`top_k` must be at least 1 and below `experts` (got top_k "
                            f"{s.top_k}, experts {s.n_experts})")
    if heads or kv_heads or head_dim:
        nq = heads or 4
        nkv = kv_heads or max(1, nq // 2)
        if nq % nkv:
            raise MoescaleError(f"`kv_heads` {nkv} must divide `heads` {nq}")
        s = HolisticSettings(**given, heads=(head_dim or 64, nq, nkv))
    return s


@dataclasses.dataclass(frozen=True)
class Comparison:
    """What :func:`compare` finds at one compute budget (``moescale compare --json`` is
    :meth:`to_dict`): rows of dense vs MoE FLOP savings, the best number of experts per memory
    budget (``experts`` None where nothing fits, with the ``reason``), and the comprehensive
    law's optima per total size ``N``."""

    compute: float
    law: str
    dense_vs_moe: list[dict[str, Any]]
    experts_by_memory: list[dict[str, Any]]
    comprehensive: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


COMPARE_EXPERTS = (1, 2, 4, 8, 16, 32)
COMPARE_MEMORIES = (2e9, 8e9, 24e9, 80e9, 320e9)  # bytes: one card to one node
COMPARE_SIZES = (7e9, 30e9, 671e9)  # total N: the comprehensive paper's three scales


def compare(compute: float, *, law: str | None = None, preset: str | None = None, fit=None,
            experts: Sequence[int] = COMPARE_EXPERTS,
            memories_bytes: Sequence[float] = COMPARE_MEMORIES, dtype: str = "bf16",
            kv_tokens: int = 0, sizes: Sequence[float] = COMPARE_SIZES,
            tolerance: float | None = None, threshold: float | None = None) -> Comparison:
    """The comparisons next to a plan (the ``moescale compare --json`` object): dense vs MoE
    FLOP savings, the best number of experts per memory budget (joint-MoE law) and the
    comprehensive law's optimal ``G``, ``S`` and ``N_a/N`` per model size, with its
    efficiency-aware optimum (:func:`moescale.laws.zhao2025.efficiency_aware_optimum`: the
    marginal criterion at ``threshold`` nats per unit of N_a/N by default, which reproduces the
    paper's 9 % and 5 %; the relative loss ``tolerance`` criterion when that is given)."""
    from moescale.laws import zhao2025
    from moescale.planning import compare as cmp
    from moescale.planning.law_plan import loss_function
    from moescale.planning.training_values import check_compute
    from moescale.units import dtype_bytes

    compute = check.number(compute, "compute", positive=True)
    check_compute(compute)  # the planner's bound, in its words
    experts = check.numbers(experts, "experts", integer=True)
    memories_bytes = check.numbers(memories_bytes, "memories_bytes")
    sizes = check.numbers(sizes, "sizes")
    kv_tokens = check.number(kv_tokens, "kv_tokens", minimum=0, integer=True)
    if tolerance is not None and threshold is not None:
        raise MoescaleError("give `tolerance` or `threshold`, not both: they belong to two "
                            "efficiency-aware criteria")
    criterion: dict[str, Any] = {}
    if tolerance is not None:
        criterion["tolerance"] = check.number(tolerance, "tolerance", positive=True, below=1)
    if threshold is not None:
        criterion["threshold"] = check.number(threshold, "threshold", minimum=0)
    check.choice(law, "law")
    check.choice(preset, "preset")
    check.choice(dtype, "dtype", optional=False)
    loss, law_name, _, _ = loss_function(law, preset, fit)
    if not loss.has_experts:
        raise MoescaleError(f"compare needs a law with a number of experts E (e.g. "
                            f"ludziejewski2025); {law_name} has none")
    return Comparison(
        compute=compute, law=law_name,
        dense_vs_moe=cmp.flop_savings(loss, compute, list(experts)),
        experts_by_memory=cmp.experts_by_memory(loss, compute, list(memories_bytes),
                                                list(experts), dtype_bytes(dtype), kv_tokens),
        comprehensive=[{"N": n, **zhao2025.efficiency_aware_optimum(n, **criterion)}
                       for n in sizes])


@dataclass(frozen=True)
class Prediction:
    """A law's prediction at given run variables (the ``moescale predict --json`` object).

    ``ci`` is the interval of the law's *mean* at ``ci_level`` and ``run_ci`` that of one new
    run there (the mean's widened by the runs' seed noise, see
    :meth:`~moescale.fitting.FitResult.interval`); both None for published coefficients, which
    carry no interval (``interval_note`` says so) or for a fit without bootstrap refits.
    ``warnings``: every variable beyond the runs the coefficients rest on, D beyond the corpus,
    a refused interval."""

    law: str
    target: str
    value: float
    variables: dict[str, float]
    source: str
    preset: str | None = None
    ci: tuple[float, float] | None = None
    run_ci: tuple[float, float] | None = None
    ci_level: float | None = None
    interval_note: str | None = None
    interval_refused: str | None = None
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = {"law": self.law, "source": self.source, "preset": self.preset,
               "variables": dict(self.variables), self.target: self.value}
        if self.target != "loss":
            out["prediction"] = self.value
        if self.ci is not None:
            out |= {"ci": list(self.ci), "ci_kind": "mean", "ci_level": self.ci_level}
        if self.run_ci is not None:
            out["run_ci"] = list(self.run_ci)
        if self.interval_note:
            out["interval_note"] = self.interval_note
        if self.interval_refused:
            out["interval_refused"] = self.interval_refused
        out["warnings"] = list(self.warnings)
        return out


def predict(law_or_fit, *, preset: str | None = None, corpus_tokens: float | None = None,
            **variables: float) -> Prediction:
    """The prediction of a law at ``variables`` (``moescale predict``): ``law_or_fit`` is a
    law name (published coefficients: ``preset``, default the law's first), a
    :class:`~moescale.fitting.FitResult` or the path of a saved one.

    >>> p = predict("ludziejewski2025", N_active=1e12, D=1e13, E=8)
    >>> p.ci is None, any("368×" in w for w in p.warnings)
    (True, True)
    """
    from moescale.fitting import FitResult, support
    from moescale.laws import LAWS, get_law
    from moescale.planning.plan import corpus_size, corpus_warning, fit_warnings

    given = {str(k): check.number(v, k) for k, v in variables.items()}  # the law checks domains
    if isinstance(law_or_fit, str) and law_or_fit not in LAWS and not law_or_fit.endswith(".json") \
            and not Path(law_or_fit).exists():
        get_law(law_or_fit)  # an unknown law: one error naming the known ones
    if isinstance(law_or_fit, str) and law_or_fit in LAWS:
        law = get_law(law_or_fit)
        if not law.presets:
            raise MoescaleError(f"law {law.name!r} has no published coefficients; fit it first "
                                "and give the fit as `law_or_fit`")
        preset = preset or next(iter(law.presets))
        params, source, result = law.preset(preset).values, preset, None
    else:
        if preset:
            raise MoescaleError("`preset` selects published coefficients; a fit has its own")
        result = FitResult.coerce(law_or_fit)
        law, params = get_law(result.law), result.params
        source = law_or_fit if isinstance(law_or_fit, (str, Path)) else result.describe()
    unused = sorted(set(given) - set(law.variables))
    if unused:
        raise MoescaleError(f"law {law.name!r} does not use {', '.join(unused)}; "
                            f"it needs {', '.join(law.variables)}")
    value = float(law.predict(params, given, strict=True))
    ci = run_ci = note = None
    if result is None:
        warnings = support.preset_warnings(law, preset, given)
        note = support.NO_INTERVAL
    else:
        warnings = fit_warnings(result, given)
        if result.bootstrap_params and not result.interval_refused:
            ci = tuple(float(x) for x in result.interval(given))
            run_ci = tuple(float(x) for x in result.interval(given, kind="run"))
        elif not result.bootstrap_params:
            note = "the fit has no bootstrap refits: no interval (fit again with `bootstrap`)"
    size, where = corpus_size(corpus_tokens, [result])
    if "D" in given:
        warnings.append(corpus_warning(given["D"], size, where, what="D ="))
    return Prediction(law.name, law.target, value, given, str(source),
                      preset if result is None else None, ci, run_ci,
                      None if result is None else result.ci_level, note,
                      None if result is None else result.interval_refused,
                      tuple(w for w in warnings if w))


def train(arch: Architecture | str | Path, config=None, options=None, **config_fields: Any):
    """Train ``arch`` (object, preset name or file) and return the
    :class:`~moescale.training.trainer.TrainResult`; ``config`` is a
    :class:`~moescale.training.config.TrainConfig` or its fields as keywords (needs the
    ``train`` extra: torch). ``options`` default to those ``moescale train`` uses: the
    Hugging Face config's for an HF preset or file, else the model's defaults."""
    from moescale.training.config import TrainConfig
    from moescale.training.trainer import train as _train

    if isinstance(config, dict):
        config = TrainConfig(**config)
    if config is not None and not isinstance(config, TrainConfig):
        raise MoescaleError(f"`config` must be a TrainConfig or a dict of its fields, got "
                            f"{type(config).__name__}")
    if options is not None:
        from moescale.training.model import ModelOptions

        if not isinstance(options, ModelOptions):
            raise MoescaleError(f"`options` must be a ModelOptions, got {type(options).__name__}")
    if config is not None and config_fields:
        config = config.replace(**config_fields)
    resolved, hf = _resolve(arch, {})
    if options is None:  # RoPE θ, norm ε and routing of an HF config, else the defaults
        from moescale.training.options import model_options

        options = model_options(hf)
    return _train(resolved, config or TrainConfig(**config_fields), options)
