"""Run sweep runs on this machine: a pool of worker processes, each pinned to its threads.

Each worker slot keeps one process (``python -m moescale.sweeps.worker --serve``) that trains
run after run, so the interpreter, torch and moescale load once per slot rather than once per
run. A run that fails ends its process, and the next run starts in a fresh one: a run that
raises, crashes, is killed for memory or leaks does not take others with it; an exit status
becomes the failure reason. ``runs_per_worker`` = 1 gives a fresh process per run. With GPUs
each slot owns its GPUs through ``CUDA_VISIBLE_DEVICES`` (data-parallel runs over several GPUs
start a fresh ``torchrun`` per run).
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
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


@dataclass
class _Slot:
    """One worker slot: its process (kept between runs when it serves) and its run now."""

    gpus: list[str]
    proc: subprocess.Popen | None = None
    serving: bool = False  # the process takes runs on stdin (else: one run, then it exits)
    run: tuple[str, Path] | None = None  # (run id, run folder) it trains now
    runs: int = 0  # runs the process has been given
    pending: bytes = b""  # the process's replies not yet read to the end of a line


class LocalExecutor:
    """A pool of ``workers`` processes on this machine."""

    name = "local"
    address = None

    def __init__(self, workers: int | None = None, threads: int | None = None,
                 cpus_per_run: int | None = None, gpus_per_run: int | None = None,
                 runs_per_worker: int = 0) -> None:
        cpus = available_cpus()
        self.gpus = visible_gpus() if gpus_per_run != 0 else []
        per_run_gpus = max(gpus_per_run or 1, 1)
        if workers is None:
            workers = (len(self.gpus) // per_run_gpus if self.gpus
                       else max(cpus // max(cpus_per_run or 1, 1), 1))
        if workers < 1:
            raise MoescaleError(f"`workers` must be at least 1, got {workers}")
        if runs_per_worker < 0:
            raise MoescaleError(f"`runs_per_worker` must be 0 (no limit) or more, "
                                f"got {runs_per_worker}")
        self.capacity = workers
        self.threads = threads or max(cpus // workers, 1)
        self.runs_per_worker = runs_per_worker
        self.slots = [_Slot(self.gpus[i * per_run_gpus:(i + 1) * per_run_gpus]
                            if self.gpus else []) for i in range(workers)]
        where = f", {per_run_gpus} GPU each" if self.gpus else ""
        self.description = (f"{workers} local worker{'s' * (workers > 1)} × "
                            f"{self.threads} thread{'s' * (self.threads > 1)}{where}")

    @classmethod
    def options(cls, given: dict[str, Any]) -> dict[str, Any]:
        """Its options from ``sweep run``'s: workers, threads, runs per worker process and the
        spec's resources."""
        return {"workers": given.get("workers"), "threads": given.get("threads"),
                "runs_per_worker": given.get("runs_per_worker") or 0, **_resources(given)}

    def submit_batch(self, items: list[tuple[RunSpec, Path]]) -> list[str]:
        return [self.submit(run, run_dir) for run, run_dir in items]

    def submit(self, run: RunSpec, run_dir: Path) -> str:
        slot = next(s for s in self.slots if s.run is None)
        env = os.environ | dict.fromkeys(worker.THREAD_VARS, str(self.threads))
        device = "-"
        if slot.gpus:
            env["CUDA_VISIBLE_DEVICES"], device = ",".join(slot.gpus), "cuda"
        if len(slot.gpus) > 1 or self.runs_per_worker == 1:  # a fresh process for this run
            self._retire(slot)
            slot.proc = start_worker(run, run_dir, self.threads, device, env,
                                     processes=max(len(slot.gpus), 1))
            slot.serving = False
        else:
            check_folder_free(run_dir)
            worker.write_atomic(run_dir / worker.SPEC_FILE, run.to_dict())
            if slot.proc is None or slot.proc.poll() is not None or not slot.serving:
                self._retire(slot)
                slot.proc = start_server(self.threads, device, env, run_dir.parent,
                                         self.runs_per_worker)
                slot.serving, slot.runs, slot.pending = True, 0, b""
            try:
                slot.proc.stdin.write(f"{run_dir}\n".encode())
                slot.proc.stdin.flush()
            except OSError:  # it died just now: poll() reports how
                pass
        slot.run, slot.runs = (run.id, run_dir), slot.runs + 1
        return f"local:{socket.gethostname()}:{slot.proc.pid}"

    def reattach(self, run: RunSpec, run_dir: Path, job_id: str) -> bool:
        """Local workers die with their driver (PR_SET_PDEATHSIG): nothing to take back."""
        return False

    def running(self) -> set[str]:
        return {s.run[0] for s in self.slots if s.run is not None}

    def poll(self) -> list[Outcome]:
        ended = []
        for slot in self.slots:
            if slot.run is None:
                continue
            code = self._ended(slot)
            if code is not _RUNNING:
                (run_id, run_dir), slot.run = slot.run, None
                ended.append(exit_outcome(run_id, run_dir, code))
        return ended

    def wait(self, seconds: float) -> None:
        """Sleep up to ``seconds``, waking as soon as a run's worker answers or ends (the
        driver's poll interval then adds no latency between one run and the next)."""
        deadline = time.monotonic() + seconds
        busy = [s for s in self.slots if s.run is not None and s.proc is not None]
        pipes = [s.proc.stdout for s in busy if s.serving]
        single = [s.proc for s in busy if not s.serving]
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select(pipes, [], [], min(left, 0.05) if single else left)
            if ready or any(proc.poll() is not None for proc in single):
                return

    def _ended(self, slot: _Slot):
        """The exit status of the slot's run, or ``_RUNNING``: its serving process's reply, or
        the status its process ended with."""
        code = _read_reply(slot) if slot.serving else None
        if code is None:
            if slot.proc.poll() is None:
                return _RUNNING
            code = _read_reply(slot) if slot.serving else None  # written just before it died
            if code is None:
                code, slot.proc = slot.proc.returncode, None
                return code
        if code not in (0, worker.EXIT_LOCKED) or slot.runs == self.runs_per_worker:
            self._retire(slot)  # it ends itself after this run
        return code

    def _retire(self, slot: _Slot) -> None:
        """Let the slot's process go (it exits at the end of its input)."""
        proc, slot.proc = slot.proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def shutdown(self) -> None:
        procs = [s.proc for s in self.slots if s.proc is not None]
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for slot in self.slots:
            slot.proc, slot.run = None, None

    def close(self) -> None:
        for slot in self.slots:
            if slot.run is None:
                self._retire(slot)


_RUNNING = object()  # a slot's run has not ended yet
WORKERS_LOG = ".workers.log"  # serving workers' output between runs, in the runs folder


def check_folder_free(run_dir: Path) -> None:
    """Make the run folder; refuse it while another worker holds it (before anything is
    written there)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if worker.folder_locked(run_dir):
        raise MoescaleError(f"run folder {run_dir} is held by another worker "
                            f"({worker.lock_holder(run_dir) or 'unknown process'}); "
                            "not starting a second one")


def start_server(threads: int | None, device: str, env: dict[str, str], folder: Path,
                 runs: int) -> subprocess.Popen:
    """Start a persistent worker (``moescale.sweeps.worker --serve``) that takes run folders
    on its stdin and answers on its stdout (read without blocking); its output between runs
    goes to ``.workers.log`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / WORKERS_LOG, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moescale.sweeps.worker", "--serve", str(threads or "-"),
             device, str(runs)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
            env=env)
    os.set_blocking(proc.stdout.fileno(), False)
    return proc


def _read_reply(slot: _Slot) -> int | None:
    """The status in the serving process's reply to its current run, if it has come."""
    fd = slot.proc.stdout.fileno()
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # nothing to read now (BlockingIOError), or the pipe is gone
            break
        if not chunk:
            break
        slot.pending += chunk
    while b"\n" in slot.pending:
        line, slot.pending = slot.pending.split(b"\n", 1)
        parts = line.decode(errors="replace").split()
        if len(parts) == 2 and parts[0] == worker.SERVE_REPLY:
            return int(parts[1])
    return None


def start_worker(run: RunSpec, run_dir: Path, threads: int | None, device: str,
                 env: dict[str, str], processes: int = 1) -> subprocess.Popen:
    """Write the run's spec into its folder and start ``moescale.sweeps.worker`` on it (through
    ``torchrun`` for data-parallel runs over ``processes`` GPUs); the worker's output goes to
    ``worker.log`` there."""
    check_folder_free(run_dir)
    worker.write_atomic(run_dir / worker.SPEC_FILE, run.to_dict())
    launcher = [sys.executable]
    if processes > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone",
                     f"--nproc-per-node={processes}"]
    with open(run_dir / worker.OUTPUT_FILE, "ab") as log:
        return subprocess.Popen(
            [*launcher, "-m", "moescale.sweeps.worker", str(run_dir), str(threads or "-"),
             device], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
