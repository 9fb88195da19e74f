"""The interface every executor implements (:class:`Executor`), the :class:`Outcome` of a
run, and how a run's folder or a worker's exit status says how it ended."""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from moescale.sweeps import worker
from moescale.sweeps.spec import RunSpec


@dataclass(frozen=True)
class Outcome:
    """How one submitted run ended: ``done`` with its result, or ``failed`` with a reason.

    ``retryable`` marks failures of the machinery (a killed worker, a lost node), which the
    driver retries up to its attempt limit; a run that raised or diverged is not retried.
    ``curve`` is sent back by engines whose workers may not share the driver's file system.
    """

    run_id: str
    status: str  # "done" or "failed"
    result: dict[str, Any] | None = None
    error: str | None = None
    retryable: bool = False
    curve: list[dict[str, Any]] | None = None
    busy: bool = False  # another worker holds the run folder: nothing was run or written
    disk_full: bool = False  # the disk is full: the sweep stops, the run stays resumable


class Executor(Protocol):
    """The interface every engine implements."""

    name: str
    capacity: int  # runs in flight at once
    threads: int | None  # CPU threads per run
    description: str  # one line for people: "2 local workers × 1 thread"

    address: str | None  # the engine this executor started itself (a driver restarted after
    #                      a crash reconnects to it), else None

    @classmethod
    def options(cls, given: dict[str, Any]) -> dict[str, Any]: ...  # its constructor's
    #   options from everything ``sweep run`` was given (flags, the spec's resources)

    def submit(self, run: RunSpec, run_dir: Path) -> str | None: ...

    def submit_batch(self, items: list[tuple[RunSpec, Path]]) -> list[str | None]: ...

    def poll(self) -> list[Outcome]: ...

    def reattach(self, run: RunSpec, run_dir: Path, job_id: str) -> bool: ...

    def running(self) -> set[str]: ...

    def shutdown(self) -> None: ...  # stop every run in flight (interrupt), then close

    def close(self) -> None: ...  # the sweep ended: release the engine

    # Optional: ``wait(seconds)`` sleeps up to ``seconds`` but returns as soon as a run may
    # have ended (the local executor's pipes); the driver calls it instead of ``time.sleep``.


def folder_outcome(run_id: str, run_dir: Path, with_curve: bool = False) -> Outcome | None:
    """The outcome a worker left in its folder (``result.json`` / ``error.json``), if any."""
    result, error = run_dir / worker.RESULT_FILE, run_dir / worker.ERROR_FILE
    curve = worker.read_curve(run_dir) if with_curve else None
    try:
        if result.is_file():
            return Outcome(run_id, "done", result=json.loads(result.read_text()), curve=curve)
        if error.is_file():
            data = json.loads(error.read_text())
            return Outcome(run_id, "failed", error=str(data["error"]),
                           disk_full=bool(data.get("disk_full")))
    except (json.JSONDecodeError, KeyError, OSError, TypeError):
        return None
    return None


def exit_reason(code: int | None) -> str:
    if code == worker.EXIT_LOCKED:
        return "another worker holds the run folder (it trains this run)"
    if code == worker.EXIT_DISK_FULL:
        return "disk full: the worker could not write its run folder"
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        hint = " (out of memory?)" if -code == signal.SIGKILL else ""
        return f"worker process killed by {name}{hint}"
    return f"worker process exited with status {code} without a result"


def exit_outcome(run_id: str, run_dir: Path, exitcode: int | None) -> Outcome:
    """The outcome a worker process left in its folder, or a failure saying how it died
    (retryable; ``busy`` when another worker held the folder, ``disk_full`` on ENOSPC)."""
    if exitcode == worker.EXIT_LOCKED:
        return Outcome(run_id, "failed", busy=True, retryable=True,
                       error="another worker holds the run folder (it trains this run)")
    found = folder_outcome(run_id, run_dir)
    if found is not None and (exitcode == 0 or found.status == "failed"):
        return found
    if exitcode == worker.EXIT_DISK_FULL:
        return Outcome(run_id, "failed", disk_full=True, retryable=True,
                       error=f"disk full: the worker could not write into {run_dir}")
    return Outcome(run_id, "failed", error=exit_reason(exitcode), retryable=True)
