"""moescale: scaling laws for Mixture-of-Experts language models, from accounting to plans.

The curated top level; everything is imported on first use, so ``import moescale`` is fast
and torch, scipy and pandas load only when a function needs them.

>>> import moescale
>>> moescale.count("mixtral-8x7b").active_params > 12e9
True
>>> round(float(moescale.get_law("chinchilla").predict("hoffmann2022", {"N": 70e9, "D": 1.4e12})), 3)
1.937

Nouns: :class:`Architecture`, :class:`Counts`, :class:`Law`, :class:`RunTable`,
:class:`FitResult` (and the estimator :class:`ScalingLaw`), :class:`Budget`, :class:`Plan`,
:class:`TrainConfig`. Verbs: :func:`count`, :func:`get_law`, :func:`fit`, :func:`plan`,
:func:`compare`, :func:`train`, :func:`runs_from_train_folders`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> "module:attribute" (module alone for a submodule)
_EXPORTS: dict[str, str] = {
    "Architecture": "moescale.accounting.architecture:Architecture",
    "Counts": "moescale.accounting.counting:Counts",
    "MoescaleError": "moescale.errors:MoescaleError",
    "laws": "moescale.laws",
    "Law": "moescale.laws:Law",
    "get_law": "moescale.laws:get_law",
    "LAWS": "moescale.laws:LAWS",
    "RunTable": "moescale.runs:RunTable",
    "FitResult": "moescale.fitting:FitResult",
    "ScalingLaw": "moescale.fitting.estimator:ScalingLaw",
    "Budget": "moescale.planning:Budget",
    "Plan": "moescale.planning:Plan",
    "PRESETS": "moescale.accounting.presets:PRESETS",
    "get_preset": "moescale.accounting.presets:get_preset",
    "TrainConfig": "moescale.training.config:TrainConfig",
    "runs_from_train_folders": "moescale.sweeps.export:runs_from_train_folders",
    "architecture": "moescale.api:architecture",
    "count": "moescale.api:count",
    "fit": "moescale.fitting:fit",
    "plan": "moescale.api:plan",
    "compare": "moescale.api:compare",
    "predict": "moescale.api:predict",
    "Prediction": "moescale.api:Prediction",
    "train": "moescale.api:train",
}

__all__ = [
    "LAWS", "PRESETS", "Architecture", "Budget", "Counts", "FitResult", "Law", "MoescaleError",
    "Plan", "Prediction", "RunTable", "ScalingLaw", "TrainConfig", "__version__", "architecture",
    "compare", "count", "fit", "get_law", "get_preset", "laws", "plan", "predict",
    "runs_from_train_folders", "train",
]


def __getattr__(name: str) -> Any:
    try:
        target = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'moescale' has no attribute {name!r}") from None
    module, _, attr = target.partition(":")
    value = importlib.import_module(module)
    if attr:
        value = getattr(value, attr)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily
    from moescale import laws
    from moescale.accounting.architecture import Architecture
    from moescale.accounting.counting import Counts
    from moescale.accounting.presets import PRESETS, get_preset
    from moescale.api import Prediction, architecture, compare, count, plan, predict, train
    from moescale.errors import MoescaleError
    from moescale.fitting import FitResult, fit
    from moescale.fitting.estimator import ScalingLaw
    from moescale.laws import LAWS, Law, get_law
    from moescale.planning import Budget, Plan
    from moescale.runs import RunTable
    from moescale.sweeps.export import runs_from_train_folders
    from moescale.training.config import TrainConfig
