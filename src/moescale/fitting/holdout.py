"""Held-out splits and error metrics for extrapolation checks.

Specs (``--holdout``):

- ``largest-COL:k`` — the runs with the ``k`` largest distinct values of column ``COL``
  (ties go together: one cannot hold out half of a model size); ``largest-COL:10%`` — the runs
  whose ``COL`` is in the top 10 % of runs. ``largest-C:5``, ``largest-N:1`` are typical.
- ``lowest-loss:k`` (or ``lowest-COL:k``) — the ``k`` runs with the lowest values, as the
  joint-MoE paper held out its 30 lowest-loss runs.
- ``tag:COL=VALUE`` — every run whose column ``COL`` equals ``VALUE`` (string or number).
- ``query:EXPR`` — a pandas query over the run table, e.g. ``query:E == 1 and N > 1e9``.
"""

from __future__ import annotations

import numpy as np

from moescale.errors import MoescaleError


def holdout_mask(frame, spec: str) -> np.ndarray:
    """Boolean mask of held-out rows of ``frame`` (a pandas DataFrame) for ``spec``."""
    kind, _, arg = spec.partition(":")
    if not arg:
        raise MoescaleError(f"`holdout` {spec!r}: expected largest-COL:k, lowest-COL:k, "
                            "tag:COL=VALUE or query:EXPR")
    if kind.startswith(("largest-", "lowest-")):
        mask = _extreme(frame, kind.split("-", 1)[1], arg, kind.startswith("largest-"))
    elif kind == "tag":
        col, _, value = arg.partition("=")
        _need(frame, col)
        mask = (frame[col].astype(str) == value).to_numpy()
    elif kind == "query":
        mask = query_mask(frame, arg, "`holdout` query")
    else:
        raise MoescaleError(f"`holdout` kind {kind!r} unknown; use largest-COL:k, lowest-COL:k, "
                            "tag:COL=VALUE or query:EXPR")
    if mask.all() or not mask.any():
        raise MoescaleError(f"`holdout` {spec!r} selects {int(mask.sum())} of {len(mask)} runs; "
                            "it must leave some runs on each side")
    return mask


def query_mask(frame, expr: str, what: str) -> np.ndarray:
    """Rows of ``frame`` where the pandas expression ``expr`` holds; a bad one is a clear error."""
    try:
        mask = np.asarray(frame.eval(expr), dtype=bool)
    except Exception as exc:  # pandas raises many types for a bad expression
        raise MoescaleError(f"{what} {expr!r} failed: {exc}") from None
    if mask.shape != (len(frame),):
        raise MoescaleError(f"{what} {expr!r} is not a condition on the runs")
    if not mask.any():
        raise MoescaleError(f"{what} {expr!r} matches no runs")
    return mask


def _need(frame, col: str) -> None:
    if col not in frame.columns:
        raise MoescaleError(f"`holdout` names column {col!r}, which the runs do not have "
                            f"(columns: {', '.join(map(str, frame.columns))})")


def _extreme(frame, col: str, count: str, largest: bool) -> np.ndarray:
    _need(frame, col)
    values = frame[col].to_numpy(dtype=float)
    try:
        k = float(count[:-1]) / 100 if count.endswith("%") else int(count)
    except ValueError:
        raise MoescaleError(f"`holdout` count {count!r} must be an integer or a percentage") from None
    if isinstance(k, float) and not (np.isfinite(k) and 0 < k <= 1):
        raise MoescaleError(f"`holdout` percentage {count!r} must be above 0 % and at most "
                            "100 %")
    signed = values if largest else -values
    if isinstance(k, float):
        n = max(1, int(round(k * len(values))))
        cut = np.sort(signed)[-n]
    else:
        distinct = np.unique(signed)
        if k < 1:
            raise MoescaleError(f"`holdout` count must be at least 1, got {count!r}")
        cut = distinct[-min(k, distinct.size)]
    return signed >= cut


def metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """RMSE and maximum absolute error of ``pred`` against ``y`` (same units), and ``n``."""
    err = np.asarray(pred, float) - np.asarray(y, float)
    return {"rmse": float(np.sqrt(np.mean(err**2))), "max_abs_error": float(np.max(np.abs(err))),
            "mean_abs_rel_error": float(np.mean(np.abs(err) / np.abs(y))), "n": int(err.size)}
