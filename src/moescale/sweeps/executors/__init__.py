"""Where sweep runs execute. Every engine is one class with the :class:`Executor` interface;
the driver (:mod:`moescale.sweeps.runner`) is the same for all of them.

An executor starts runs (:meth:`Executor.submit`), reports the ones that ended
(:meth:`Executor.poll`) and stops the rest (:meth:`Executor.shutdown`). It never writes the
store: a run's worker writes ``result.json`` / ``error.json`` into its folder and the driver
records the outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from moescale.errors import MoescaleError
from moescale.sweeps.spec import RunSpec


@dataclass(frozen=True)
class Outcome:
    """How one submitted run ended: ``done`` with its result, or ``failed`` with a reason."""

    run_id: str
    status: str  # "done" or "failed"
    result: dict[str, Any] | None = None
    error: str | None = None


class Executor(Protocol):
    """The interface every engine implements."""

    name: str
    capacity: int  # runs in flight at once
    threads: int | None  # CPU threads per run
    description: str  # one line for people: "2 workers × 1 thread"

    def submit(self, run: RunSpec, run_dir: Path) -> None: ...

    def poll(self) -> list[Outcome]: ...

    def running(self) -> set[str]: ...

    def shutdown(self) -> None: ...


EXECUTORS = ("local",)


def make_executor(name: str, **options: Any) -> Executor:
    """The executor called ``name`` (``local``)."""
    if name == "local":
        from moescale.sweeps.executors.local import LocalExecutor

        return LocalExecutor(**options)
    raise MoescaleError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}")
