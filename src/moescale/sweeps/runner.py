"""The sweep driver: claim runs from the store, hand them to an executor, renew their leases,
record every outcome. The same loop serves every executor.

Two drivers on one store share the work (claims are atomic). A driver that is killed leaves
its runs ``running`` with a lease that stops being renewed. The next driver reconciles them:
a run whose worker left ``result.json`` is recorded, one whose job still runs (a Ray actor, a
SLURM job) is taken back, and the rest go back to ``pending`` and resume from their last
checkpoint in the sweep's folder. A worker that dies is retried up to ``max_attempts``; a run
that raises or diverges is ``failed`` at once (it would fail again).
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moescale.sweeps import worker
from moescale.sweeps.executors import Executor, Outcome, folder_outcome
from moescale.sweeps.spec import RunSpec, SweepSpec
from moescale.sweeps.store import Claim, SweepStore

LEASE_SECONDS = 60.0  # a driver silent this long is presumed dead
POLL_SECONDS = 0.5
MAX_ATTEMPTS = 3  # a run whose worker died (not one that raised) is tried this often


def runs_dir(store_path: str | Path) -> Path:
    """The sweep's folder of run folders: ``sweep.db`` → ``sweep_runs/``."""
    p = Path(store_path)
    return p.with_name(p.stem + "_runs")


@dataclass
class SweepRun:
    """What one ``sweep run`` did (the ``--json`` object)."""

    store: str
    executor: str
    runs: int
    counts: dict[str, int]
    finished: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    retried: dict[str, str] = field(default_factory=dict)
    reattached: list[str] = field(default_factory=list)
    lost_claims: list[str] = field(default_factory=list)
    seconds: float = 0.0
    flops: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class _Heartbeat(threading.Thread):
    """Renews the leases of the driver's claims from its own connection."""

    def __init__(self, store_path: Path, claims: dict[str, Claim], lock: threading.Lock,
                 lease_s: float) -> None:
        super().__init__(daemon=True, name="moescale-heartbeat")
        self.store_path, self.claims, self.lock, self.lease_s = store_path, claims, lock, lease_s
        self.stopped = threading.Event()

    def run(self) -> None:
        with SweepStore(self.store_path) as store:
            while not self.stopped.wait(self.lease_s / 6):
                with self.lock:
                    held = [(i, c.token) for i, c in self.claims.items()]
                if held:
                    store.heartbeat(held, self.lease_s)


def run_sweep(spec: SweepSpec, store_path: str | Path, executor: Executor, *,
              retry_failed: bool = False, lease_s: float = LEASE_SECONDS,
              max_attempts: int = MAX_ATTEMPTS, folder: str | Path | None = None,
              progress: bool = False) -> SweepRun:
    """Run every run of ``spec`` not yet done in the store; return what happened."""
    runs = spec.expand()
    ids = {r.id for r in runs}
    store = SweepStore(store_path)
    store.add_runs(runs)
    if retry_failed:
        store.retry_failed(ids)
    loop = _Loop(store, executor, ids, Path(folder) if folder else runs_dir(store_path),
                 lease_s, max_attempts)
    loop.out.runs = len(runs)
    beat = _Heartbeat(store.path, loop.claims, loop.lock, lease_s)
    beat.start()
    display = _Display(store, runs, ids, executor.description) if progress else None
    t0 = time.perf_counter()
    try:
        with display or contextlib.nullcontext():
            loop.run(display)
        executor.close()
    except BaseException:
        executor.shutdown()
        with loop.lock:
            for claim in loop.claims.values():
                store.release(claim.run.id, claim.token, "interrupted")
        raise
    finally:
        beat.stopped.set()
    loop.out.counts, loop.out.seconds = store.counts(ids), time.perf_counter() - t0
    store.close()
    return loop.out


class _Loop:
    """One driver's loop: reconcile orphans, claim and submit, record outcomes."""

    def __init__(self, store: SweepStore, executor: Executor, ids: set[str], folder: Path,
                 lease_s: float, max_attempts: int) -> None:
        self.store, self.executor, self.ids, self.folder = store, executor, ids, folder
        self.lease_s, self.max_attempts = lease_s, max_attempts
        self.claims: dict[str, Claim] = {}
        self.lock = threading.Lock()
        self.out = SweepRun(store=str(store.path), executor=executor.description, runs=0,
                            counts={})

    def run(self, display) -> None:
        last_reconcile = -float("inf")
        while True:
            if time.monotonic() - last_reconcile > self.lease_s / 2:
                self.reconcile()
                last_reconcile = time.monotonic()
            for outcome in self.executor.poll():
                with self.lock:
                    claim = self.claims.pop(outcome.run_id)
                self.record(claim, outcome)
            self.fill()
            if not self.claims:
                return
            if display:
                display.update()
            time.sleep(POLL_SECONDS)

    def fill(self) -> None:
        """Claim runs until the executor is full or nothing is pending, then submit them
        (as one batch — a job array — where the executor supports it)."""
        batch: list[tuple[Claim, Path]] = []
        while len(self.executor.running()) + len(batch) < self.executor.capacity:
            claim = self.store.claim(self.ids, self.lease_s)
            if claim is None:
                break
            run_dir = self.folder / claim.run.id
            self.store.set_run_dir(claim.run.id, claim.token, str(run_dir))
            with self.lock:
                self.claims[claim.run.id] = claim
            batch.append((claim, run_dir))
        if not batch:
            return
        items = [(c.run, d) for c, d in batch]
        submit_batch = getattr(self.executor, "submit_batch", None)
        job_ids = (submit_batch(items) if submit_batch
                   else [self.executor.submit(run, d) for run, d in items])
        for (claim, _), job_id in zip(batch, job_ids, strict=True):
            self.store.set_job(claim.run.id, claim.token, job_id)

    def reconcile(self) -> None:
        """Runs a dead driver left running: ingest what finished, take back what still runs
        (Ray actors, SLURM jobs), give the rest back to be run again."""
        for row in self.store.orphans(self.ids):
            claim = self.store.adopt(row["id"], row["token"], self.lease_s)
            if claim is None:
                continue
            run_dir = Path(row["run_dir"] or self.folder / row["id"])
            outcome = folder_outcome(row["id"], run_dir)
            if outcome is None and self.executor.reattach(claim.run, run_dir, row["job_id"]):
                with self.lock:
                    self.claims[claim.run.id] = claim
                self.out.reattached.append(row["id"])
            elif outcome is not None:
                self.record(claim, outcome)
            else:
                self.store.release(row["id"], claim.token, "lost",
                                   f"its driver died and job {row['job_id']} is gone")

    def record(self, claim: Claim, outcome: Outcome) -> None:
        run_id, out = claim.run.id, self.out
        if outcome.status == "done":
            curve = outcome.curve if outcome.curve is not None else worker.read_curve(
                self.folder / run_id)
            ok = self.store.finish(run_id, claim.token, outcome.result, curve)
            if ok:
                out.finished.append(run_id)
                out.flops += claim.run.flops
        elif outcome.retryable and claim.attempt < self.max_attempts:
            ok = self.store.release(run_id, claim.token, "retry", outcome.error)
            if ok:
                out.retried[run_id] = outcome.error
        else:
            ok = self.store.fail(run_id, claim.token, outcome.error or "unknown failure")
            if ok:
                out.failed[run_id] = outcome.error
        if not ok:
            out.lost_claims.append(run_id)


class _Display:
    """A live progress line on stderr: runs done/failed/running, FLOPs spent, time left
    (measured FLOP rate × remaining FLOPs)."""

    def __init__(self, store: SweepStore, runs: list[RunSpec], ids: set[str],
                 description: str) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.store, self.ids = store, ids
        self.flops = {r.id: r.flops for r in runs}
        self.progress = Progress(
            TextColumn(f"sweep ({description})"), BarColumn(),
            TextColumn("{task.fields[status]}"), TextColumn("{task.fields[spent]} FLOPs"),
            TimeRemainingColumn(), console=Console(stderr=True), transient=False)
        self.task = self.progress.add_task("sweep", total=sum(self.flops.values()),
                                           completed=self._state()[0], status="", spent="0")

    def __enter__(self):
        self.progress.__enter__()
        self.update()
        return self

    def __exit__(self, *exc):
        self.update()
        return self.progress.__exit__(*exc)

    def _state(self) -> tuple[float, float, dict[str, int]]:
        """(FLOPs of ended runs, FLOPs of done runs, counts by status) of this spec's runs."""
        rows = self.store.db.execute("SELECT id, status FROM runs").fetchall()
        mine = [(r["id"], r["status"]) for r in rows if r["id"] in self.ids]
        ended = sum(self.flops[i] for i, s in mine if s in ("done", "failed"))
        spent = sum(self.flops[i] for i, s in mine if s == "done")
        count = {s: sum(1 for _, t in mine if t == s) for s in ("done", "failed", "running")}
        return ended, spent, count

    def update(self) -> None:
        ended, spent, count = self._state()
        self.progress.update(
            self.task, completed=ended, spent=f"{spent:.3g}",
            status=f"{count['done']} done, {count['failed']} failed, "
                   f"{count['running']} running of {len(self.ids)}")
