"""Finished MLflow runs as a run table (the runs :mod:`moescale.training.trackers` logged).

:func:`runs_from_mlflow` gives one row per FINISHED run of an experiment, oldest first:
``run_id`` (the MLflow run name: moescale's run id), ``mlflow_run_id``, every param
(dotted names such as ``config.lr``; numbers as floats) and every metric at its last step,
plus the canonical columns of :mod:`moescale.runs` found among them (:data:`CANONICAL`,
first source present wins):

==========  ========================================  =====================================
``loss``    final eval loss (nats/token)              metric ``eval_loss``, then ``loss``
``N``       total parameters                          ``N``, ``total_params``
``N_active`` active parameters per token              ``N_active``, ``active_params``
``D``       training tokens                           ``D``, ``tokens``, ``config.tokens``
``C``       training FLOPs                            ``C``, ``flops``
``E``       routed experts (1 = dense)                ``E``, ``architecture.n_experts``
``K``       routed experts per token                  ``K``, ``architecture.top_k``
``G``       granularity                               ``G``
``lr``      peak learning rate                        param ``lr``, ``config.lr``
``seed``    random seed                               param ``seed``, ``config.seed``
==========  ========================================  =====================================

The frame goes to :meth:`moescale.runs.RunTable.from_frame` as it is.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from moescale.errors import MoescaleError

if TYPE_CHECKING:
    import pandas as pd

# canonical column -> sources in order: ("metric" | "param" | "any", name)
CANONICAL: dict[str, tuple[tuple[str, str], ...]] = {
    "loss": (("metric", "eval_loss"), ("metric", "loss"), ("param", "loss")),
    "N": (("any", "N"), ("any", "total_params")),
    "N_active": (("any", "N_active"), ("any", "active_params")),
    "D": (("any", "D"), ("any", "tokens"), ("param", "config.tokens")),
    "C": (("any", "C"), ("any", "flops")),
    "E": (("any", "E"), ("param", "architecture.n_experts")),
    "K": (("any", "K"), ("param", "architecture.top_k")),
    "G": (("any", "G"),),
    "lr": (("param", "lr"), ("param", "config.lr")),
    "seed": (("param", "seed"), ("param", "config.seed")),
}
# reading: no retries, so that a dead server is one quick error, not minutes of backoff
_READ_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


def short_error(exc: BaseException) -> str:
    """One short line for an exception: the OS reason of a failed connection ("Connection
    refused"), else its first line, at most 200 characters."""
    text = str(exc).strip()
    reason = re.search(r"\[Errno -?\d+\] ([^\"'()]+)", text)
    line = reason.group(1).strip() if reason else (text.splitlines() or [""])[0]
    line = line if len(line) <= 200 else line[:197] + "..."
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


@contextlib.contextmanager
def env_defaults(defaults: Mapping[str, str]) -> Iterator[None]:
    """Set the variables of ``defaults`` that are unset, for the ``with`` block only."""
    added = [k for k in defaults if k not in os.environ]
    os.environ.update({k: defaults[k] for k in added})
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


def runs_from_mlflow(uri: str, experiment: str) -> pd.DataFrame:
    """The FINISHED runs of MLflow ``experiment`` at tracking ``uri`` (``http://host:port``,
    ``sqlite:///path.db``, a folder), one row per run (columns in the module docstring).

    Raises :class:`MoescaleError` when mlflow is not installed, the server cannot be
    reached, the experiment does not exist (naming some that do) or has no finished run."""
    import pandas as pd

    return pd.DataFrame([_row(run) for run in finished_runs(uri, experiment)])


def finished_runs(uri: str, experiment: str) -> list:
    """The FINISHED runs of MLflow ``experiment`` at ``uri`` as MLflow returns them (params as
    text, the latest value of each metric), oldest first; errors as :func:`runs_from_mlflow`."""
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise MoescaleError("reading MLflow runs needs mlflow: "
                            "pip install 'moescale[mlflow]'") from None
    with env_defaults(_READ_ENV):
        client = MlflowClient(tracking_uri=uri)
        try:
            found = client.get_experiment_by_name(experiment)
            existing = [] if found else [e.name for e in client.search_experiments(max_results=6)]
        except Exception as exc:
            raise MoescaleError(f"cannot reach the MLflow tracking store {uri} "
                                f"({short_error(exc)})") from None
        if found is None:
            listing = ", ".join(map(repr, existing[:5])) + (", ..." if len(existing) > 5 else "")
            raise MoescaleError(f"MLflow experiment {experiment!r} not found at {uri}; "
                                f"it has: {listing or 'no experiments'}")
        runs = _search(client, found.experiment_id, "attributes.status = 'FINISHED'")
        if not runs:
            others = len(_search(client, found.experiment_id, ""))
            raise MoescaleError(f"MLflow experiment {experiment!r} at {uri} has no finished "
                                f"runs ({others} running, failed or killed)")
    return runs


def _search(client, experiment_id: str, where: str) -> list:
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string=where, max_results=1000,
                                  order_by=["attributes.start_time ASC"], page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _row(run) -> dict[str, Any]:
    params = {k: _value(v) for k, v in run.data.params.items()}
    metrics = dict(run.data.metrics)  # the latest value of each: the one at the last step
    row: dict[str, Any] = {"run_id": run.info.run_name, "mlflow_run_id": run.info.run_id}
    for name, sources in CANONICAL.items():
        for where, key in sources:
            pool = [metrics] if where == "metric" else [params] if where == "param" \
                else [metrics, params]
            value = next((p[key] for p in pool if _number(p.get(key)) is not None), None)
            if value is not None:
                row[name] = float(value)
                break
    if row.get("E") == 0:  # a dense model: one expert, the papers' convention
        row["E"] = 1.0
    for key, value in {**params, **metrics}.items():
        row.setdefault(key, value)
    return row


def _value(text: str) -> Any:
    """A param as MLflow stores it (text) back as a float where it is a number."""
    if text == "None":
        return None
    number = _number(text)
    return text if number is None else number


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
