"""Run sweep runs on this machine: one fresh process per run, each pinned to its threads.

A fresh process per run (``python -m moescale.sweeps.worker RUN_DIR``) means a run that crashes, is killed for memory or leaks
does not take others with it; its exit status becomes the failure reason. With GPUs each
worker slot owns one GPU through ``CUDA_VISIBLE_DEVICES``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from moescale.errors import MoescaleError
from moescale.sweeps import worker
from moescale.sweeps.executors.base import Outcome, exit_outcome
from moescale.sweeps.spec import RunSpec


def available_cpus() -> int:
    """CPUs this process may use (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def visible_gpus() -> list[str]:
    """GPU indices from ``CUDA_VISIBLE_DEVICES`` or ``nvidia-smi -L`` (no torch import)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g for g in env.split(",") if g.strip() and g.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU")]


def _resources(given: dict[str, Any]) -> dict[str, Any]:
    """The spec's ``[resources]`` an executor takes (cpus_per_run, gpus_per_run)."""
    return {k: v for k, v in (given.get("resources") or {}).items()
            if k in ("cpus_per_run", "gpus_per_run")}


class LocalExecutor:
    """A pool of ``workers`` processes on this machine."""

    name = "local"
    address = None

    def __init__(self, workers: int | None = None, threads: int | None = None,
                 cpus_per_run: int | None = None, gpus_per_run: int | None = None) -> None:
        cpus = available_cpus()
        self.gpus = visible_gpus() if gpus_per_run != 0 else []
        per_run_gpus = max(gpus_per_run or 1, 1)
        if workers is None:
            workers = (len(self.gpus) // per_run_gpus if self.gpus
                       else max(cpus // max(cpus_per_run or 1, 1), 1))
        if workers < 1:
            raise MoescaleError(f"`workers` must be at least 1, got {workers}")
        self.capacity = workers
        self.threads = threads or max(cpus // workers, 1)
        self.gpu_slots = [self.gpus[i * per_run_gpus:(i + 1) * per_run_gpus]
                          for i in range(workers)] if self.gpus else []
        where = f", {per_run_gpus} GPU each" if self.gpus else ""
        self.description = (f"{workers} local worker{'s' * (workers > 1)} × "
                            f"{self.threads} thread{'s' * (self.threads > 1)}{where}")
        self._procs: dict[str, tuple[subprocess.Popen, Path, int]] = {}

    @classmethod
    def options(cls, given: dict[str, Any]) -> dict[str, Any]:
        """Its options from ``sweep run``'s: workers, threads and the spec's resources."""
        return {"workers": given.get("workers"), "threads": given.get("threads"),
                **_resources(given)}

    def submit_batch(self, items: list[tuple[RunSpec, Path]]) -> list[str]:
        return [self.submit(run, run_dir) for run, run_dir in items]

    def submit(self, run: RunSpec, run_dir: Path) -> str:
        slot = self._free_slot()
        env = os.environ | dict.fromkeys(worker.THREAD_VARS, str(self.threads))
        device = "-"
        if self.gpu_slots:
            env["CUDA_VISIBLE_DEVICES"], device = ",".join(self.gpu_slots[slot]), "cuda"
        proc = start_worker(run, run_dir, self.threads, device, env,
                            processes=len(self.gpu_slots[slot]) if self.gpu_slots else 1)
        self._procs[run.id] = (proc, run_dir, slot)
        return f"local:{socket.gethostname()}:{proc.pid}"

    def reattach(self, run: RunSpec, run_dir: Path, job_id: str) -> bool:
        """Local workers die with their driver (PR_SET_PDEATHSIG): nothing to take back."""
        return False

    def _free_slot(self) -> int:
        used = {slot for _, _, slot in self._procs.values()}
        return next(i for i in range(self.capacity) if i not in used)

    def running(self) -> set[str]:
        return set(self._procs)

    def poll(self) -> list[Outcome]:
        ended = []
        for run_id, (proc, run_dir, _) in list(self._procs.items()):
            if proc.poll() is None:
                continue
            del self._procs[run_id]
            ended.append(exit_outcome(run_id, run_dir, proc.returncode))
        return ended

    def shutdown(self) -> None:
        for proc, _, _ in self._procs.values():
            proc.terminate()
        for proc, _, _ in self._procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._procs.clear()

    def close(self) -> None:
        pass


def start_worker(run: RunSpec, run_dir: Path, threads: int | None, device: str,
                 env: dict[str, str], processes: int = 1) -> subprocess.Popen:
    """Write the run's spec into its folder and start ``moescale.sweeps.worker`` on it (through
    ``torchrun`` for data-parallel runs over ``processes`` GPUs); the worker's output goes to
    ``worker.log`` there."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if worker.folder_locked(run_dir):  # checked before anything is written there
        raise MoescaleError(f"run folder {run_dir} is held by another worker "
                            f"({worker.lock_holder(run_dir) or 'unknown process'}); "
                            "not starting a second one")
    worker.write_atomic(run_dir / worker.SPEC_FILE, run.to_dict())
    launcher = [sys.executable]
    if processes > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone",
                     f"--nproc-per-node={processes}"]
    with open(run_dir / worker.OUTPUT_FILE, "ab") as log:
        return subprocess.Popen(
            [*launcher, "-m", "moescale.sweeps.worker", str(run_dir), str(threads or "-"),
             device], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
