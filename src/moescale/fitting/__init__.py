"""Fitting scaling laws to runs: robust, fast, reproducible, and honest about the result.

- :func:`fit` — one law on runs (a :class:`~moescale.runs.RunTable`, a data frame or a file)
  with a held-out split and bootstrap confidence intervals (the engine:
  :mod:`moescale.fitting.engine`); ``moescale.fit`` is this function;
- :func:`fit_arrays` — the same on arrays of the law's variables and the target;
- :class:`ScalingLaw` — the same as a scikit-learn style estimator;
- :func:`~moescale.fitting.selection.select_laws` — which law the runs support.

Every fit returns the one result type, the frozen :class:`FitResult`: ``success``,
``message``, ``fun``, ``nit``, ``nfev`` at the top (as scipy's ``OptimizeResult``),
``predict``, ``interval``, per-run ``residuals`` and ``warnings``
(:mod:`moescale.fitting.diagnostics`).

>>> import numpy as np
>>> from moescale.laws import get_law
>>> law = get_law("chinchilla")
>>> N, D = np.meshgrid(np.geomspace(1e8, 1e10, 6), np.geomspace(1e9, 1e11, 6))
>>> y = law.predict("hoffmann2022", {"N": N.ravel(), "D": D.ravel()})
>>> result = fit_arrays(law, {"N": N.ravel(), "D": D.ravel()}, y)
>>> result.success, round(result.params["alpha"], 3)
(True, 0.34)
"""

from __future__ import annotations

from moescale.fitting.engine import fit, fit_arrays
from moescale.fitting.estimator import ScalingLaw
from moescale.fitting.objective import default_delta
from moescale.fitting.result import ExtrapolationWarning, FitResult

__all__ = ["ExtrapolationWarning", "FitResult", "ScalingLaw", "default_delta", "fit",
           "fit_arrays"]
