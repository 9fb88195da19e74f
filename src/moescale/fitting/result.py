"""The one result type of a fit: :class:`FitResult` (frozen; JSON round trip, predict,
intervals, diagnostics).

Like scipy's ``OptimizeResult`` the outcome of the optimisation is at the top —
``success``, ``message``, ``fun`` (the summed Huber objective), ``nit``, ``nfev``, ``njev`` —
and failure to converge is data (``success=False`` with a reason), not an exception.
"""

from __future__ import annotations

import dataclasses
import math
import warnings as _warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from moescale.errors import MoescaleError

FORMAT = "moescale-fit/1"


class ExtrapolationWarning(UserWarning):
    """A prediction far outside the range of the runs a law was fitted on."""


@dataclass(frozen=True, repr=False)
class FitResult:
    """A fitted law: parameters, uncertainty, scores and diagnostics, with everything needed to
    reproduce it.

    Attributes
    ----------
    law, convention, target : str
        The law's registered name, its counting convention and what it predicts.
    params : dict
        Natural-unit parameters (the law's own names).
    ci, se : dict
        ``[low, high]`` at ``ci_level`` and standard errors over the converged bootstrap
        refits, for each parameter and derived quantity (empty without ``bootstrap``, and when
        the interval was refused: see :attr:`interval_refused`).
    bootstrap_params : list of dict
        Every converged bootstrap refit, so predictions get intervals too.
    train, holdout : dict
        ``{"rmse", "max_abs_error", "mean_abs_rel_error", "n"}`` on the target (not its log).
    residuals : list of dict
        One row per run (see :func:`moescale.fitting.diagnostics.residual_table`).
    warnings : list of str
        What to distrust: parameters at bounds or collapsed, unidentifiable parameters,
        outlier runs, an optimiser that did not converge.
    optimizer, objective, data : dict
        The bookkeeping (method, starts, counts, seconds; Huber δ and value; source, hash,
        runs, fitted ranges of the variables).

    Examples
    --------
    >>> import numpy as np
    >>> from moescale.fitting import fit_arrays
    >>> N, D = np.meshgrid(np.geomspace(1e8, 1e10, 5), np.geomspace(1e9, 1e11, 5))
    >>> v = {"N": N.ravel(), "D": D.ravel()}
    >>> from moescale.laws import get_law
    >>> r = fit_arrays("chinchilla", v, get_law("chinchilla").predict("hoffmann2022", v))
    >>> r.success, round(r.params["alpha"], 2)
    (True, 0.34)
    >>> float(r.predict(N=1e9, D=2e10)) > 1.69
    True
    """

    law: str
    convention: str
    target: str
    params: dict[str, float]
    objective: dict[str, Any]          # {"name": "huber_log", "delta": …, "value": …, "reduction": "sum"}
    optimizer: dict[str, Any]          # method, starts, screened, iterations, success, message, nfev, …
    data: dict[str, Any]               # source, hash, n_runs, variables, holdout spec, ranges
    train: dict[str, float]
    holdout: dict[str, float] | None = None
    derived: dict[str, float] = field(default_factory=dict)
    ci: dict[str, list[float]] = field(default_factory=dict)
    se: dict[str, float] = field(default_factory=dict)
    ci_level: float = 0.95
    bootstrap_params: list[dict[str, float]] = field(default_factory=list)
    fixed: dict[str, float] = field(default_factory=dict)
    format: str = FORMAT
    residuals: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    # ----- the optimiser's report at the top (scipy.optimize.OptimizeResult's names) -----------
    @property
    def success(self) -> bool:
        """Whether the optimiser met its convergence criterion at the reported point."""
        return bool(self.optimizer.get("success", False))

    @property
    def message(self) -> str:
        return str(self.optimizer.get("message", ""))

    @property
    def fun(self) -> float:
        """The objective at the optimum (summed Huber on ``ln`` residuals)."""
        return float(self.objective.get("value", float("nan")))

    @property
    def nit(self) -> int:
        """Levenberg–Marquardt iterations of the multi-start stage."""
        return int(self.optimizer.get("iterations", 0))

    @property
    def nfev(self) -> int:
        """Parameter vectors at which the objective was evaluated (all starts, all stages)."""
        return int(self.optimizer.get("nfev", 0))

    @property
    def njev(self) -> int:
        return int(self.optimizer.get("njev", 0))

    @property
    def n_starts(self) -> int:
        return int(self.optimizer.get("starts", 0))

    @property
    def bootstrap_converged(self) -> int | None:
        """Bootstrap refits that converged (``None`` without bootstrap)."""
        value = self.optimizer.get("bootstrap_converged")
        return None if value is None else int(value)

    @property
    def interval_refused(self) -> str | None:
        """Why the bootstrap gave no interval (too few refits converged, with the count), or
        ``None`` (no bootstrap asked for, or the interval stands)."""
        return self.optimizer.get("bootstrap_refused") or None

    @property
    def outliers(self) -> list[dict[str, Any]]:
        """The rows of :attr:`residuals` flagged as outliers."""
        return [r for r in self.residuals if r.get("outlier")]

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v:.4g}" for k, v in self.params.items())
        boots = f", bootstrap={len(self.bootstrap_params)}" if self.bootstrap_params else ""
        held = f", holdout_rmse={self.holdout['rmse']:.3g}" if self.holdout else ""
        warn = f", warnings={len(self.warnings)}" if self.warnings else ""
        return (f"FitResult(law={self.law!r}, success={self.success}, fun={self.fun:.6g}, "
                f"params={{{params}}}, n_runs={self.data.get('n_runs')}, "
                f"train_rmse={self.train.get('rmse', float('nan')):.3g}{held}{boots}{warn})")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (:meth:`from_dict` reads it back); the optimiser's outcome is also at
        the top (``success``, ``message``, ``fun``, ``nit``, ``nfev``) for readers of the file."""
        top = {"success": self.success, "message": self.message, "fun": self.fun,
               "nit": self.nit, "nfev": self.nfev, "interval_refused": self.interval_refused}
        return {**top, **asdict(self)}

    def save(self, path: str | Path) -> None:
        """Write the result as JSON (atomically: a crash never leaves half a file)."""
        from moescale.jsonio import write_json_atomic

        write_json_atomic(path, self.to_dict(), "the fit")

    @classmethod
    def load(cls, path: str | Path) -> FitResult:
        """Read and validate a result written by :meth:`save` (or ``moescale fit -o``).

        Every mistake in the file is a :class:`MoescaleError` naming the file and the field
        (see :meth:`from_dict`)."""
        from moescale.jsonio import read_json_object

        path = Path(path)
        raw = read_json_object(path, "a moescale fit result", kind="fit file")
        result = cls.from_dict(raw, source=str(path))
        result.data["saved_as"] = str(path)
        return result

    @classmethod
    def coerce(cls, fit: FitResult | str | Path) -> FitResult:
        """``fit`` itself, or the result saved at the path ``fit`` (planners accept either)."""
        if isinstance(fit, cls):
            return fit
        if isinstance(fit, (str, Path)):
            return cls.load(fit)
        raise MoescaleError(f"a fit must be a FitResult or the path of a saved one, got "
                            f"{type(fit).__name__}")

    def describe(self) -> str:
        """A short name for messages: the file it came from, else the law and its runs."""
        source = self.data.get("saved_as") or self.data.get("source")
        return f"fit of {self.law} ({source}, {self.data.get('n_train', '?')} runs)"

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
        """The registered :class:`~moescale.laws.Law` this result fitted."""
        from moescale.laws import get_law

        return get_law(self.law)

    def extrapolation(self, variables: Mapping[str, Any] | None = None, **kw) -> list[str]:
        """Messages for the variables of a prediction far outside the fitted range (empty when
        inside, or when the result does not record its range)."""
        from moescale.fitting.diagnostics import extrapolation_warnings

        return extrapolation_warnings(self.data.get("ranges") or {}, {**(variables or {}), **kw})

    def predict(self, variables: Mapping[str, Any] | None = None, *, warn: bool = True,
                **kw) -> np.ndarray:
        """The law's prediction with the fitted parameters at ``variables``.

        With ``warn`` an :class:`ExtrapolationWarning` names every variable more than a factor
        2 outside the range of the training runs.
        """
        v = {**(variables or {}), **kw}
        messages = self.extrapolation(v) if warn else []
        if messages:
            _warnings.warn(f"{self.law} fit: " + "; ".join(messages), ExtrapolationWarning,
                           stacklevel=2)
        return self.law_object().predict(self.params, v)

    def noise(self):
        """The scatter of a new run around the law's prediction: the larger of the runs' seed
        noise (``data.seed_noise``, when they had seed pairs) and the training residuals' RMSE
        with ``n_train − k`` degrees of freedom (seed noise plus the law's misfit: where the
        law misses the runs by more than they scatter, a new run is missed as much)."""
        from moescale.fitting.support import SeedNoise

        options = []
        s = self.data.get("seed_noise")
        if s and s.get("sd"):
            options.append(SeedNoise(float(s["sd"]), int(s["n_configs"]), int(s["dof"]),
                                     self.ci_level))
        n = int(self.data.get("n_train") or 0) - len(self.params) + len(self.fixed)
        rmse = self.train.get("rmse")
        if n >= 1 and rmse is not None and math.isfinite(rmse):
            options.append(SeedNoise(float(rmse), 0, n, self.ci_level))
        if not options:
            return SeedNoise(None, 0, 0, self.ci_level)
        return max(options, key=lambda o: o.t() * o.sd)

    def interval(self, variables: Mapping[str, Any] | None = None,
                 level: float | None = None, kind: str = "mean",
                 **kw) -> tuple[np.ndarray, np.ndarray]:
        """Percentile interval of the prediction over the converged bootstrap refits (an error
        when the fit has none, or when its interval was refused).

        ``kind="mean"``: an interval for the law's mean loss at ``variables``. ``kind="run"``:
        an interval for one new run's loss there, the mean's widened by the run-to-run noise
        (:meth:`noise`; :func:`~moescale.fitting.support.run_interval`)."""
        if kind not in ("mean", "run"):
            raise MoescaleError(f"kind must be 'mean' or 'run', got {kind!r}")
        if self.interval_refused:
            raise MoescaleError(f"{self.describe()}: {self.interval_refused}")
        if not self.bootstrap_params:
            raise MoescaleError("this fit has no bootstrap refits; fit again with `bootstrap` "
                                "refits")
        if level is not None and not 0 < level < 1:
            raise MoescaleError(f"level must be in (0, 1), got {level!r}")
        law, v = self.law_object(), {**(variables or {}), **kw}
        v = {k: v[k] for k in law.variables if k in v}
        preds = np.array([law.predict(p, v) for p in self.bootstrap_params])
        q = (1 - (level or self.ci_level)) / 2
        with np.errstate(invalid="ignore"):
            lo, hi = np.nanquantile(preds, q, axis=0), np.nanquantile(preds, 1 - q, axis=0)
        if kind == "mean":
            return lo, hi
        from moescale.fitting.support import run_interval

        noise = self.noise()
        if level is not None:
            noise = dataclasses.replace(noise, level=level)
        return run_interval(law.predict(self.params, v), lo, hi, noise)

    predict_interval = interval  # the older name


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
    out["warnings"] = _strings(raw.get("warnings", []), "warnings", fail)
    residuals = raw.get("residuals", [])
    if not isinstance(residuals, list) or not all(isinstance(r, dict) for r in residuals):
        raise fail("field residuals must be a list of objects (one per run)")
    out["residuals"] = residuals
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


def _strings(value: Any, key: str, fail) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise fail(f"field {key} must be a list of strings")
    return list(value)


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
