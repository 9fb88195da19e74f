"""A scikit-learn style estimator over :func:`~moescale.fitting.fit`.

The constructor only stores settings; :meth:`ScalingLaw.fit` validates, fits and returns
``self``; fitted values end in ``_``; :meth:`ScalingLaw.predict` before ``fit`` is a clear
error.

>>> import numpy as np, pandas as pd
>>> N = np.geomspace(1e8, 1e10, 12)
>>> D = np.tile([1e10, 4e10, 1.6e11], 4)
>>> runs = pd.DataFrame({"N": N, "D": D, "loss": 1.69 + 406.4 / N**0.34 + 410.7 / D**0.28})
>>> model = ScalingLaw("chinchilla").fit(runs)
>>> round(model.params_["alpha"], 2), model.success_
(0.34, True)
>>> float(model.predict(N=1e9, D=2e10)) > 1.69
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from moescale.errors import MoescaleError


class ScalingLaw:
    """Fit a registered law (name or :class:`~moescale.laws.Law`) to runs.

    Parameters
    ----------
    law : str or Law
    holdout, bootstrap, level, seed, weights
        As in :func:`~moescale.fitting.fit`.
    **fit_options
        ``delta``, ``fixed``, ``grid``, ``method``, ``screen``.

    Attributes
    ----------
    result_ : FitResult
        Everything the fit produced.
    params_ : dict
        The fitted parameters.
    success_ : bool
        Whether the optimiser converged.
    warnings_ : list of str
        The fit's diagnostics.
    """

    def __init__(self, law, *, holdout: str | None = None, bootstrap: int = 0,
                 level: float = 0.95, seed: int = 0, weights: str | None = None,
                 **fit_options: Any) -> None:
        self.law, self.holdout, self.bootstrap = law, holdout, bootstrap
        self.level, self.seed, self.weights = level, seed, weights
        self.fit_options = fit_options

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's arguments (scikit-learn's estimator contract: ``clone`` works)."""
        return {"law": self.law, "holdout": self.holdout, "bootstrap": self.bootstrap,
                "level": self.level, "seed": self.seed, "weights": self.weights,
                **self.fit_options}

    def set_params(self, **params: Any) -> ScalingLaw:
        """Change constructor arguments; returns ``self`` (scikit-learn's contract)."""
        for key, value in params.items():
            if key in ("law", "holdout", "bootstrap", "level", "seed", "weights"):
                setattr(self, key, value)
            else:
                self.fit_options[key] = value
        return self

    def fit(self, runs) -> ScalingLaw:
        """Fit to ``runs`` (RunTable, data frame or file path); returns ``self``."""
        from moescale.fitting.engine import fit

        self.result_ = fit(self.law, runs, holdout=self.holdout, bootstrap=self.bootstrap,
                           level=self.level, seed=self.seed, weights=self.weights,
                           **self.fit_options)
        self.params_ = dict(self.result_.params)
        self.success_ = self.result_.success
        self.warnings_ = list(self.result_.warnings)
        return self

    def _fitted(self):
        if not hasattr(self, "result_"):
            raise MoescaleError(f"this ScalingLaw({self.law!r}) is not fitted yet; call "
                                ".fit(runs) first")
        return self.result_

    def predict(self, variables=None, **kw) -> np.ndarray:
        """The fitted law at ``variables`` (warns when far outside the fitted range)."""
        return self._fitted().predict(variables, **kw)

    def interval(self, variables=None, level: float | None = None, **kw):
        """Bootstrap percentile interval of the prediction (needs ``bootstrap > 0``)."""
        return self._fitted().interval(variables, level, **kw)

    def score(self, runs) -> float:
        """Negative RMSE of the target on ``runs`` (higher is better, as scikit-learn)."""
        from moescale.fitting.engine import _as_runs

        result = self._fitted()
        table = _as_runs(runs)
        law = result.law_object()
        pred = result.predict(table.arrays(law.variables), warn=False)
        return -float(np.sqrt(np.mean((pred - table.target(law.target)) ** 2)))

    def __repr__(self) -> str:
        state = "fitted" if hasattr(self, "result_") else "not fitted"
        return f"ScalingLaw({self.law!r}, {state})"
