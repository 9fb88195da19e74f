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

from moescale.errors import EXTRAS, MoescaleError
from moescale.sweeps.executors.base import (
    Executor,
    Outcome,
    exit_outcome,
    exit_reason,
    folder_outcome,
)

__all__ = ["EXECUTORS", "Executor", "Outcome", "exit_outcome", "exit_reason", "folder_outcome",
           "make_executor"]

EXECUTORS = ("local", "ray", "slurm")
ENGINES = {"ray": "ray", "slurm": "submitit"}  # executor -> the module it needs


def make_executor(name: str, **options: Any) -> Executor:
    """The executor called ``name``; a missing optional engine is one clear error."""
    if name not in EXECUTORS:
        raise MoescaleError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}")
    if name in ENGINES:
        module = ENGINES[name]
        extra = EXTRAS[module]
        try:
            __import__(module)
        except ImportError:
            raise MoescaleError(f"`executor` {name} needs {module}: pip install "
                                f"'moescale[{extra}]'") from None
    if name == "local":
        from moescale.sweeps.executors.local import LocalExecutor

        return LocalExecutor(**options)
    if name == "ray":
        from moescale.sweeps.executors.ray_cluster import RayExecutor

        return RayExecutor(**options)
    from moescale.sweeps.executors.slurm import SlurmExecutor

    return SlurmExecutor(**options)
