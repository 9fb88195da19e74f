"""Run sweep runs as SLURM jobs through submitit (``--executor slurm``).

Runs submitted together go out as one job array. Each job trains its run in-process with the
same worker code as every other executor and writes ``result.json`` into the run's folder
(on the cluster's shared file system, beside the store). Preempted and timed-out jobs are
requeued by submitit's checkpointing hook (:meth:`SweepJob.checkpoint`) and resume from the
run's last ``checkpoint.pt``. A restarted driver looks its jobs up by job id.

``cluster="local"`` runs the same jobs through submitit's local executor (what the tests use
on a machine without SLURM); its jobs outlive the driver like SLURM jobs do.
"""

from __future__ import annotations

import os
import socket
import traceback
from pathlib import Path
from typing import Any

from moescale.errors import MoescaleError
from moescale.sweeps import worker
from moescale.sweeps.executors.base import Outcome, folder_outcome
from moescale.sweeps.spec import RunSpec
from moescale.sweeps.store import pid_alive

SUBMITIT_FOLDER = "_submitit"


class SweepJob:
    """The callable a SLURM job runs; submitit requeues it through :meth:`checkpoint`."""

    def __call__(self, run: dict[str, Any], run_dir: str, threads: int | None,
                 device: str | None) -> dict[str, Any]:
        try:
            return worker.execute(run, run_dir, threads, device)
        except worker.FolderLocked:  # another worker trains this run: write nothing
            raise
        except BaseException as exc:
            worker.write_atomic(Path(run_dir) / worker.ERROR_FILE, {
                "error": worker.failure_reason(exc), "traceback": traceback.format_exc()})
            raise

    def checkpoint(self, *args: Any, **kwargs: Any):
        """On preemption or timeout: run again with the same arguments; the worker resumes
        from the run folder's last checkpoint."""
        import submitit

        return submitit.helpers.DelayedSubmission(SweepJob(), *args, **kwargs)


def parse_slurm_args(items: tuple[str, ...]) -> dict[str, str]:
    """``--slurm-arg KEY=VALUE`` pairs (sbatch options without ``--``)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise MoescaleError(f"`slurm_args` expects KEY=VALUE (an sbatch option), got {item!r}")
        out[key.strip().lstrip("-").replace("-", "_")] = value.strip()
    return out


class SlurmExecutor:
    """Runs as submitit jobs on SLURM (or submitit's local executor)."""

    name = "slurm"
    address = None

    def __init__(self, folder: str | Path, cluster: str | None = None,
                 partition: str | None = None, time_min: int = 60, account: str | None = None,
                 qos: str | None = None, gpus_per_node: int | None = None,
                 slurm_args: dict[str, str] | None = None, cpus_per_run: int | None = None,
                 gpus_per_run: int | None = None, threads: int | None = None,
                 workers: int | None = None) -> None:
        import submitit

        self.submitit = submitit
        self.local = cluster == "local"
        self.folder = Path(folder) / SUBMITIT_FOLDER
        self.cpus = max(cpus_per_run or 1, 1)
        self.threads = threads or self.cpus
        gpus = gpus_per_node if gpus_per_node is not None else (gpus_per_run or 0)
        self.executor = submitit.AutoExecutor(folder=str(self.folder / "%j"), cluster=cluster)
        params: dict[str, Any] = {"timeout_min": time_min, "cpus_per_task": self.cpus,
                                  "gpus_per_node": gpus, "name": "moescale-sweep"}
        if not self.local:
            params |= {k: v for k, v in (("slurm_partition", partition),
                                         ("slurm_account", account), ("slurm_qos", qos)) if v}
            if slurm_args:
                params["slurm_additional_parameters"] = dict(slurm_args)
        self.executor.update_parameters(**params)
        self.capacity = workers or (2 if self.local else 256)
        self.device = "cuda" if gpus else None
        where = "submitit's local executor" if self.local else f"SLURM{f' ({partition})' if partition else ''}"
        self.description = f"{where}, up to {self.capacity} jobs × {self.cpus} CPU"
        self._jobs: dict[str, tuple[Any, Path]] = {}

    @classmethod
    def options(cls, given: dict[str, Any]) -> dict[str, Any]:
        """Its options from ``sweep run``'s: the run folders, the ``slurm_*`` settings (an
        ``sbatch`` option per ``slurm_args`` item, KEY=VALUE), workers, threads, resources."""
        from moescale.sweeps.executors.local import _resources

        return {"folder": given["folder"],
                "cluster": "local" if given.get("cluster") == "local" else None,
                "partition": given.get("slurm_partition"),
                "time_min": given.get("slurm_time") or 60,
                "account": given.get("slurm_account"), "qos": given.get("slurm_qos"),
                "gpus_per_node": given.get("slurm_gpus_per_node"),
                "slurm_args": parse_slurm_args(given.get("slurm_args") or ()),
                "workers": given.get("workers"), "threads": given.get("threads"),
                **_resources(given)}

    def submit(self, run: RunSpec, run_dir: Path) -> str:
        return self.submit_batch([(run, run_dir)])[0]

    def submit_batch(self, items: list[tuple[RunSpec, Path]]) -> list[str]:
        """Submit several runs as one job array."""
        with self.executor.batch():
            jobs = []
            for run, run_dir in items:
                run_dir.mkdir(parents=True, exist_ok=True)
                jobs.append(self.executor.submit(SweepJob(), run.to_dict(), str(run_dir),
                                                 self.threads, self.device))
        prefix = f"slurm-local:{socket.gethostname()}" if self.local else "slurm"
        ids = []
        for (run, run_dir), job in zip(items, jobs, strict=True):
            self._jobs[run.id] = (job, run_dir)
            ids.append(f"{prefix}:{job.job_id}")
        return ids

    def reattach(self, run: RunSpec, run_dir: Path, job_id: str) -> bool:
        kind, _, rest = job_id.partition(":")
        if kind == "slurm-local":
            host, _, pid = rest.partition(":")
            if host != socket.gethostname() or not pid_alive(int(pid)):
                return False
            self._jobs[run.id] = (_LocalJobProcess(int(pid)), run_dir)
            return True
        if kind != "slurm":
            return False
        job = self.submitit.SlurmJob(folder=str(self.folder / rest), job_id=rest)
        if job.state in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL",
                         "OUT_OF_MEMORY", "UNKNOWN"):
            return False
        self._jobs[run.id] = (job, run_dir)
        return True

    def running(self) -> set[str]:
        return set(self._jobs)

    def poll(self) -> list[Outcome]:
        ended = []
        for run_id, (job, run_dir) in list(self._jobs.items()):
            if not job.done():
                continue
            del self._jobs[run_id]
            ended.append(self._outcome(run_id, job, run_dir))
        return ended

    def _outcome(self, run_id: str, job, run_dir: Path) -> Outcome:
        found = folder_outcome(run_id, run_dir)
        if found is not None:
            return found
        reason = "the job ended without a result"
        if hasattr(job, "exception"):
            try:
                exc = job.exception()
                reason = worker.failure_reason(exc) if exc else reason
            except Exception as exc:  # noqa: BLE001 — submitit's own view of a lost job
                reason = worker.failure_reason(exc)
        return Outcome(run_id, "failed", error=f"SLURM job: {reason}", retryable=True)

    def shutdown(self) -> None:
        for job, _ in self._jobs.values():
            try:
                job.cancel(check=False)
            except Exception:  # noqa: BLE001 — already finished
                pass
        self._jobs.clear()

    def close(self) -> None:
        pass


class _LocalJobProcess:
    """A submitit local job taken back by a new driver: followed through its process id."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def done(self) -> bool:
        return not pid_alive(self.pid) or _is_zombie(self.pid)

    def cancel(self, check: bool = False) -> None:
        try:
            os.kill(self.pid, 15)
        except ProcessLookupError:
            pass


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except (OSError, IndexError):
        return False
