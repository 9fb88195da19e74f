"""Where sweep runs execute. Every engine is one class with the :class:`Executor` interface;
the driver (:mod:`moescale.sweeps.runner`) is the same for all of them.

An executor starts a run (:meth:`Executor.submit`, returning the engine's job id, which the
store keeps), reports the runs that ended (:meth:`Executor.poll`), takes back a run that a
dead driver left running (:meth:`Executor.reattach`) and stops its runs
(:meth:`Executor.shutdown`). It never writes the store: a run's worker writes ``result.json``
or ``error.json`` into the run's folder and returns it; the driver records the outcome (and
the ``address`` of an engine the executor started, so a restarted driver reconnects).

Engines: ``local`` (processes on this machine), ``ray`` (a Ray cluster, or a local Ray
instance started for the sweep), ``slurm`` (submitit jobs; ``cluster="local"`` runs the same
jobs through submitit's local executor).
"""

from __future__ import annotations

from typing import Any

from moescale.errors import MoescaleError
from moescale.sweeps.engines import EXECUTORS, Engine
from moescale.sweeps.executors.base import (
    Executor,
    Outcome,
    exit_outcome,
    exit_reason,
    folder_outcome,
)

__all__ = ["EXECUTORS", "Engine", "Executor", "Outcome", "engine_options", "exit_outcome",
           "exit_reason", "folder_outcome", "make_executor"]


def _engine(name: str) -> Engine:
    if name not in EXECUTORS:
        raise MoescaleError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}")
    return EXECUTORS[name]


def engine_options(name: str, given: dict[str, Any]) -> dict[str, Any]:
    """The constructor options of executor ``name`` from everything a command was given
    (``sweep run``'s flags and the spec's resources): each class picks its own."""
    return _engine(name).load().options(given)


def make_executor(name: str, **options: Any) -> Executor:
    """The executor called ``name`` built with ``options``; a missing optional engine is one
    clear error naming its extra."""
    return _engine(name).load()(**options)
