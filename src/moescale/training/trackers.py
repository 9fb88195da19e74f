"""Experiment trackers: send a training run's metrics to TensorBoard, MLflow or W&B.

Use from a training loop (``result`` e.g. ``TrainResult.to_dict()``)::

    with open_trackers(["mlflow", "tensorboard"], run_id="r1", group="sweep-a",
                       params={"N": 1e8, "config": config.to_dict()}, folder="out/r1") as t:
        for step in ...:
            t.log({"train_loss": 3.2, "eval_loss": None, "lr": 3e-3}, step)
        t.finish(result)

Units are the caller's: losses in nats per token, ``step`` the optimizer step (an integer,
1-based as in ``log.jsonl``), token and FLOP counts as plain numbers.

Where each back-end writes (``TRACKERS``):

- ``tensorboard``: event files under ``folder/tensorboard/<run_id>/`` (needs a run folder);
  metrics as scalars, ``params`` as one markdown table in the text tab (tag ``params``) and
  the final results as scalars ``final/<name>`` at the last step.
- ``mlflow``: tracking URI from ``MLFLOW_TRACKING_URI`` (mlflow's default ``./mlruns`` or
  ``sqlite:///mlflow.db`` otherwise); experiment = ``group`` (``"moescale"`` when None), run
  name = ``run_id``; ``params`` as run params, metrics with their step, the final results
  as metrics at the last step; the run ends FINISHED after :meth:`Trackers.finish`, FAILED
  when closed by an exception, KILLED when closed without a result. Unless set by the user,
  ``MLFLOW_HTTP_REQUEST_MAX_RETRIES=0`` and ``MLFLOW_HTTP_REQUEST_TIMEOUT=3`` (seconds) hold
  during our calls (:data:`MLFLOW_FAST_FAIL`), so a dead server costs one failed request.
- ``wandb``: project ``WANDB_PROJECT`` (or ``"moescale"``), group = ``group``, name =
  ``run_id``, dir = ``folder``; ``params`` as the run config, final results in the summary.
  ``WANDB_MODE=offline`` writes ``offline-run-*`` folders and needs no network.

``params`` is flattened (``{"config": {"lr": 1}}`` → ``config.lr``); lists become strings.
For :func:`moescale.tracker_runs.runs_from_mlflow` to fill the fitting columns, give
``params`` ``N``/``N_active`` (or ``total_params``/``active_params``), ``architecture`` and
``config`` dicts, and ``finish`` the ``TrainResult`` (``eval_loss``, ``tokens``, ``flops``).
Tracking never stops training: a missing package or any error of a back-end (server down,
bad URI, full disk) is one warning line on stderr and that back-end is off for the rest of
the run. Nothing here imports a tracker package until it is used.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from moescale.errors import MoescaleError
from moescale.tracker_runs import env_defaults, short_error

# An unreachable MLflow server costs at most one request of this many seconds (mlflow's own
# defaults: 7 retries with exponential backoff and a 120 s timeout, i.e. minutes). Applied
# during our calls only, and only where the user has not set the variable.
MLFLOW_FAST_FAIL = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "3"}


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys; lists/tuples as strings; numbers, bools, str, None kept."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat |= flatten(value, f"{name}.")
        elif isinstance(value, (str, int, float, bool)) or value is None:
            flat[name] = value
        else:
            flat[name] = str(list(value) if isinstance(value, tuple) else value)
    return flat


def finite(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The values that are finite real numbers, as floats (None, NaN, ±inf, bools, text and
    anything else are left out)."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or value is None:
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            out[str(key)] = number
    return out


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


class TensorBoardTracker:
    """Event files under ``folder/tensorboard/<run_id>/`` (torch's SummaryWriter, or
    tensorboardX without torch)."""

    extra = "tensorboard"

    def __init__(self, run_id: str, group: str | None, params: dict, folder: Path | None):
        if folder is None:
            raise RuntimeError("it needs a run folder to write its event files into")
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as torch_missing:
            try:
                from tensorboardX import SummaryWriter
            except ImportError:
                raise torch_missing from None
        self.writer = SummaryWriter(log_dir=str(folder / "tensorboard" / run_id))
        rows = "\n".join(f"| {k} | {v} |" for k, v in params.items())
        self.writer.add_text("params", f"| param | value |\n|---|---|\n{rows}", 0)

    def log(self, metrics: dict[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)

    def finish(self, result: dict[str, float], step: int) -> None:
        self.log({f"final/{k}": v for k, v in result.items()}, step)

    def close(self, status: str) -> None:
        self.writer.close()


def _client(make, tries: int = 5):
    """An MLflow client whose store answers. The runs of a sweep start at once: on a fresh
    SQLite store, workers racing to create and migrate its tables would leave it half
    migrated, so with a ``sqlite:`` tracking URI one process at a time opens it (a lock file
    beside the database) and a failure is tried again (0.5 s apart) instead of giving up
    tracking. A server that does not answer fails at once."""
    import time

    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    local = uri.startswith("sqlite:")
    for attempt in range(tries):
        try:
            with _sqlite_lock(uri) if local else contextlib.nullcontext():
                client = make()
                client.search_experiments(max_results=1)  # creates and migrates the tables
            return client
        except Exception:  # noqa: BLE001 — a local SQL store being created by another run
            if not local or attempt == tries - 1:
                raise
            time.sleep(0.5)
    raise AssertionError("unreachable")


@contextlib.contextmanager
def _sqlite_lock(uri: str):
    """Hold an exclusive lock on ``DB.moescale-lock`` beside the SQLite file of ``uri``
    (``sqlite:///path``) for the block."""
    import fcntl

    name = uri.removeprefix("sqlite:///").split("?")[0]  # sqlite:////abs or sqlite:///rel
    path = Path(name)
    if name in ("", ":memory:") or not path.parent.is_dir():
        yield
        return
    with open(path.with_name(path.name + ".moescale-lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _experiment_id(client, name: str) -> str:
    """The id of MLflow experiment ``name``, made when missing; the runs of a sweep start at
    once on several workers, and a worker that loses the race to create it takes the winner's."""
    from mlflow.exceptions import MlflowException

    for _ in range(3):
        found = client.get_experiment_by_name(name)
        if found:
            return found.experiment_id
        try:
            return client.create_experiment(name)
        except MlflowException:  # created meanwhile by another run of the sweep
            continue
    raise RuntimeError(f"cannot create or find MLflow experiment {name!r}")


class MlflowTracker:
    """One MLflow run through ``MlflowClient`` (no global active run, so several runs may
    be tracked in one process)."""

    extra = "mlflow"

    def __init__(self, run_id: str, group: str | None, params: dict, folder: Path | None):
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        name = group or "moescale"
        with env_defaults(MLFLOW_FAST_FAIL):
            self.client = client = _client(MlflowClient)
            exp_id = _experiment_id(client, name)
            self.run = client.create_run(exp_id, run_name=run_id).info.run_id
            items = [Param(k, str(v)[:6000]) for k, v in params.items()]
            for i in range(0, len(items), 100):  # log_batch takes at most 100 params
                client.log_batch(self.run, params=items[i:i + 100])

    def log(self, metrics: dict[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        with env_defaults(MLFLOW_FAST_FAIL):
            self.client.log_batch(self.run, metrics=[Metric(k, v, now, step)
                                                     for k, v in metrics.items()])

    def finish(self, result: dict[str, float], step: int) -> None:
        self.log(result, step)
        self.close("FINISHED")

    def close(self, status: str) -> None:
        if self.run is not None:
            run, self.run = self.run, None
            with env_defaults(MLFLOW_FAST_FAIL):
                self.client.set_terminated(run, status)


class WandbTracker:
    """One W&B run (``WANDB_MODE=offline`` works without network)."""

    extra = "wandb"

    def __init__(self, run_id: str, group: str | None, params: dict, folder: Path | None):
        import wandb

        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT") or "moescale",
                              group=group, name=run_id, config=params,
                              dir=str(folder) if folder is not None else None,
                              reinit="create_new")

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.run.log(metrics, step=step)

    def finish(self, result: dict[str, float], step: int) -> None:
        self.run.summary.update(result)
        self.close("FINISHED")

    def close(self, status: str) -> None:
        if self.run is not None:
            run, self.run = self.run, None
            run.finish(exit_code=0 if status == "FINISHED" else 1)


TRACKERS: dict[str, type] = {"tensorboard": TensorBoardTracker, "mlflow": MlflowTracker,
                             "wandb": WandbTracker}


def check_tracker_names(names: Iterable[str]) -> list[str]:
    """The names, stripped and without repeats; :class:`MoescaleError` for an unknown one
    (call it before training starts to refuse a typo early)."""
    checked = list(dict.fromkeys(str(n).strip().lower() for n in names))
    for name in checked:
        if name not in TRACKERS:
            raise MoescaleError(f"unknown tracker {name!r}; known: {', '.join(sorted(TRACKERS))}")
    return checked


class Trackers:
    """The open back-ends of one run; every call goes to each of them, and a back-end that
    fails is warned about once and dropped. Use as a context manager, or call :meth:`close`."""

    def __init__(self, backends: dict[str, Any]):
        self.backends = backends
        self.step = 0  # the last step logged: where finish() puts the final results

    def _each(self, action: str, call) -> None:
        for name, backend in list(self.backends.items()):
            try:
                call(backend)
            except Exception as exc:  # a tracker never stops training
                del self.backends[name]
                _warn(f"tracker {name} failed to {action} ({short_error(exc)}); "
                      "continuing without it")

    def log(self, metrics: Mapping[str, float | None], step: int) -> None:
        """Send the finite numbers of ``metrics`` (name → value) at optimizer step ``step``;
        None, NaN and ±inf are skipped."""
        self.step = max(self.step, int(step))
        values = finite(metrics)
        if values:
            self._each("log", lambda b: b.log(values, int(step)))

    def finish(self, result: Mapping[str, Any]) -> None:
        """Log the final numeric results (e.g. ``TrainResult.to_dict()``: eval_loss in
        nats/token, tokens, flops, total_params, ...) at the last step and end the runs as
        finished; the other entries of ``result`` are ignored."""
        values = finite(result)
        self._each("finish", lambda b: b.finish(values, self.step))
        self.close()

    def close(self, status: str = "KILLED") -> None:
        """End the runs not finished yet (``status`` for MLflow: KILLED or FAILED); safe to
        call more than once."""
        self._each("close", lambda b: b.close(status))
        self.backends = {}

    def __enter__(self) -> Trackers:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close("FAILED" if exc_type is not None else "KILLED")


def open_trackers(names: Iterable[str], *, run_id: str, group: str | None,
                  params: Mapping[str, Any], folder: str | Path | None) -> Trackers:
    """Open the named back-ends (``TRACKERS``) for one run.

    ``run_id`` names the run, ``group`` groups runs (MLflow experiment, W&B group; None →
    ``"moescale"``), ``params`` the settings to record (nested dicts allowed), ``folder``
    the run's output folder (TensorBoard events, W&B files; None → no TensorBoard).
    Unknown names raise :class:`MoescaleError`; a back-end that cannot open (package not
    installed, server down, ...) is one warning on stderr and is left out."""
    folder = Path(folder) if folder is not None else None
    flat = flatten(params)
    backends = {}
    for name in check_tracker_names(names):
        cls = TRACKERS[name]
        try:
            backends[name] = cls(str(run_id), group, flat, folder)
        except ImportError as exc:
            _warn(f"tracker {name} needs a package that is not installed ({exc.name or exc}): "
                  f"pip install 'moescale[{cls.extra}]'; continuing without it")
        except Exception as exc:
            _warn(f"tracker {name} failed to open ({short_error(exc)}); continuing without it")
    return Trackers(backends)
