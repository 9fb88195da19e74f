"""The serialisable outcome of a fit: :class:`FitResult` (JSON round trip, predict, intervals)."""

from __future__ import annotations

import contextlib
import json
import math
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
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(_jsonable(self.to_dict()), indent=2))
            tmp.replace(path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise MoescaleError(f"cannot write the fit to {path}: "
                                f"{exc.strerror or exc}") from None

    @classmethod
    def load(cls, path: str | Path) -> FitResult:
        """Read and validate a result written by :meth:`save` (or ``moescale fit -o``).

        Every mistake in the file is a :class:`MoescaleError` naming the file and the field
        (see :meth:`from_dict`)."""
        path = Path(path)
        if not path.exists():
            raise MoescaleError(f"fit file not found: {path}")
        if not path.is_file():
            raise MoescaleError(f"fit file {path} is not a file")
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise MoescaleError(f"{path} is not valid JSON ({exc.msg}, line {exc.lineno})") from None
        except UnicodeDecodeError:
            raise MoescaleError(f"{path} is not a text (UTF-8 JSON) file") from None
        except RecursionError:
            raise MoescaleError(f"{path} is nested too deeply to be a fit result") from None
        return cls.from_dict(raw, source=str(path))

    @classmethod
    def from_dict(cls, raw: Any, source: str = "fit result") -> FitResult:
        """A validated result from its :meth:`to_dict` form.

        Checked: the format version, the law (registered; target and convention its own), every
        parameter present, a finite number and inside the law's domain
        (:meth:`~moescale.laws.Law.check_params`), fixed parameters likewise, every bootstrap
        refit a complete parameter set of the same kind, intervals ``[low, high]`` pairs,
        ``ci_level`` in (0, 1) and the bookkeeping sections objects. Unknown keys are ignored
        (newer writers may add some).
        """
        return cls(**_validated(raw, source))

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


# ----- validation of a fit read from disk ----------------------------------------------------

_SECTIONS = ("objective", "optimizer", "data", "train")


def _validated(raw: Any, source: str) -> dict[str, Any]:
    """The constructor arguments of a valid ``FitResult`` dict, or a MoescaleError naming
    ``source`` and the first bad field."""
    from moescale.laws import LAWS, get_law

    def fail(message: str) -> MoescaleError:
        return MoescaleError(f"{source}: {message}")

    if not isinstance(raw, dict):
        raise fail(f"not a moescale fit result (expected a JSON object with format {FORMAT})")
    fmt = raw.get("format")
    if not isinstance(fmt, str) or not fmt.startswith("moescale-fit/"):
        raise fail(f"not a moescale fit result (no \"format\": \"{FORMAT}\")")
    if fmt != FORMAT:
        raise fail(f"fit format {fmt!r} is not supported; this moescale reads {FORMAT} "
                   "(fit again with this version)")
    law_name = raw.get("law")
    if not isinstance(law_name, str) or law_name not in LAWS:
        raise fail(f"field law: unknown law {_short(law_name)}; choose one of {', '.join(LAWS)}")
    law = get_law(law_name)
    out: dict[str, Any] = {"law": law_name, "format": fmt}
    for key, expected in (("target", law.target), ("convention", law.convention)):
        value = raw.get(key, expected)
        if value != expected:
            raise fail(f"field {key} is {_short(value)} but law {law_name!r} has {expected!r}")
        out[key] = expected
    try:
        out["params"] = law.check_params(_mapping(raw, "params", fail, required=True),
                                         "parameter")
        fixed = _mapping(raw, "fixed", fail)
        out["fixed"] = {str(k): law.check_param(str(k), v, "fixed parameter")
                        for k, v in fixed.items()}
        boots = raw.get("bootstrap_params", [])
        if not isinstance(boots, list):
            raise fail("field bootstrap_params must be a list of parameter sets")
        out["bootstrap_params"] = []
        for i, b in enumerate(boots):
            try:
                out["bootstrap_params"].append(law.check_params(b, "parameter"))
            except MoescaleError as exc:
                raise fail(f"bootstrap_params[{i}]: {exc}") from None
    except MoescaleError as exc:
        if str(exc).startswith(source):
            raise
        raise fail(str(exc)) from None
    for key in _SECTIONS:
        out[key] = _mapping(raw, key, fail, required=True)
    holdout = raw.get("holdout")
    out["holdout"] = None if holdout is None else _mapping(raw, "holdout", fail)
    out["derived"] = _numbers(_mapping(raw, "derived", fail), "derived", fail)
    out["se"] = _numbers(_mapping(raw, "se", fail), "se", fail)
    out["ci"] = _intervals(_mapping(raw, "ci", fail), fail)
    level = raw.get("ci_level", 0.95)
    if not _is_number(level) or not 0.0 < float(level) < 1.0:
        raise fail(f"field ci_level must be a number in (0, 1), got {_short(level)}")
    out["ci_level"] = float(level)
    return out


def _is_number(value: Any) -> bool:
    """A finite JSON number (not a bool, not text)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an integer beyond the float range
        return False


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _mapping(raw: dict, key: str, fail, required: bool = False) -> dict:
    if key not in raw or raw[key] is None:
        if required:
            raise fail(f"field {key} is missing")
        return {}
    value = raw[key]
    if not isinstance(value, dict):
        raise fail(f"field {key} must be an object, got {type(value).__name__}")
    return value


def _numbers(section: dict, key: str, fail) -> dict[str, float | None]:
    """A section of numbers; ``null`` (a value that was not finite when saved) is kept."""
    out = {}
    for k, v in section.items():
        if v is not None and not _is_number(v):
            raise fail(f"field {key}.{k} must be a finite number or null, got {_short(v)}")
        out[str(k)] = None if v is None else float(v)
    return out


def _intervals(section: dict, fail) -> dict[str, list]:
    out = {}
    for k, v in section.items():
        ok = (isinstance(v, list) and len(v) == 2
              and all(x is None or _is_number(x) for x in v))
        if not ok:
            raise fail(f"field ci.{k} must be a [low, high] pair of numbers, got {_short(v)}")
        lo, hi = (None if x is None else float(x) for x in v)
        if lo is not None and hi is not None and lo > hi:
            raise fail(f"field ci.{k} has low {lo:g} above high {hi:g}")
        out[str(k)] = [lo, hi]
    return out
