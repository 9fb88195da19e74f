"""The serialisable outcome of a fit: :class:`FitResult` (JSON round trip, predict, intervals)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from moescale.errors import MoescaleError

FORMAT = "moescale-fit/1"


@dataclass
class FitResult:
    """A fitted law: parameters, uncertainty and scores, with everything needed to reproduce it.

    ``params`` are in natural units (the law's own names). ``ci`` maps each parameter and
    derived quantity to ``[low, high]`` at ``ci_level``; ``bootstrap_params`` holds every
    bootstrap refit (list of dicts) so predictions get intervals too. ``train`` and
    ``holdout`` hold ``{"rmse", "max_abs_error", "n"}`` on the target (not its log).
    """

    law: str
    convention: str
    target: str
    params: dict[str, float]
    objective: dict[str, Any]          # {"name": "huber_log", "delta": …, "value": …, "reduction": "sum"}
    optimizer: dict[str, Any]          # method, starts, screened, iterations, success, message
    data: dict[str, Any]               # source, hash, n_runs, variables, holdout spec
    train: dict[str, float]
    holdout: dict[str, float] | None = None
    derived: dict[str, float] = field(default_factory=dict)
    ci: dict[str, list[float]] = field(default_factory=dict)
    se: dict[str, float] = field(default_factory=dict)
    ci_level: float = 0.95
    bootstrap_params: list[dict[str, float]] = field(default_factory=list)
    fixed: dict[str, float] = field(default_factory=dict)
    format: str = FORMAT

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: str | Path) -> None:
        """Write the result as JSON (atomically: a crash never leaves half a file)."""
        from moescale.cli._output import _jsonable

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(_jsonable(self.to_dict()), indent=2))
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> FitResult:
        """Read a result written by :meth:`save` (or ``moescale fit -o``)."""
        path = Path(path)
        if not path.is_file():
            raise MoescaleError(f"fit file not found: {path}")
        try:
            raw = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise MoescaleError(f"{path} is not valid JSON ({exc.msg}, line {exc.lineno})") from None
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise MoescaleError(f"{path} is not a moescale fit result (expected format {FORMAT})")
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in raw.items() if k in known})

    def law_object(self):
        from moescale.laws import get_law

        return get_law(self.law)

    def predict(self, variables: Mapping[str, Any] | None = None, **kw) -> np.ndarray:
        """The law's prediction with the fitted parameters at ``variables``."""
        return self.law_object().predict(self.params, {**(variables or {}), **kw})

    def predict_interval(self, variables: Mapping[str, Any] | None = None,
                         level: float | None = None, **kw) -> tuple[np.ndarray, np.ndarray]:
        """Percentile interval of the prediction over the bootstrap refits."""
        if not self.bootstrap_params:
            raise MoescaleError("this fit has no bootstrap refits; fit again with --bootstrap N")
        law, v = self.law_object(), {**(variables or {}), **kw}
        v = {k: v[k] for k in law.variables if k in v}
        preds = np.array([law.predict(p, v) for p in self.bootstrap_params])
        q = (1 - (level or self.ci_level)) / 2
        return np.quantile(preds, q, axis=0), np.quantile(preds, 1 - q, axis=0)
