"""The registry of sweep executors, light enough for the command line to list them without
importing any engine (``moescale sweep run --executor``); :mod:`moescale.sweeps.executors`
builds them."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from moescale.errors import EXTRAS, MoescaleError


@dataclass(frozen=True)
class Engine:
    """One executor in the registry: where its class lives (``module:Class``, imported only
    when used), the module it needs beyond moescale's core (named with its pip extra when
    missing), and whether its workers train on this machine (then torch must be here)."""

    name: str
    target: str
    needs: str | None = None
    trains_here: bool = False

    def load(self) -> type:
        if self.needs:
            try:
                __import__(self.needs)
            except ImportError:
                raise MoescaleError(f"`executor` {self.name} needs {self.needs}: pip install "
                                    f"'moescale[{EXTRAS[self.needs]}]'") from None
        module, cls = self.target.split(":")
        return getattr(importlib.import_module(module), cls)


# Adding an executor: one class with the Executor interface and an ``options(given)``
# classmethod, one line here; tests/test_executor_conformance.py runs it like the others.
EXECUTORS: dict[str, Engine] = {e.name: e for e in (
    Engine("local", "moescale.sweeps.executors.local:LocalExecutor", trains_here=True),
    Engine("ray", "moescale.sweeps.executors.ray_cluster:RayExecutor", needs="ray"),
    Engine("slurm", "moescale.sweeps.executors.slurm:SlurmExecutor", needs="submitit"),
)}
