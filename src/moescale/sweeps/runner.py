"""The sweep driver: claim runs from the store, hand them to an executor, renew their leases,
record every outcome. The same loop serves every executor.

Two drivers on one store share the work (claims are atomic). A driver that is killed leaves
its runs ``running`` with a lease that stops being renewed; the next driver to claim puts them
back to ``pending`` and they resume from their last checkpoint in the sweep's folder.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moescale.sweeps import worker
from moescale.sweeps.executors import Executor, Outcome
from moescale.sweeps.spec import RunSpec, SweepSpec
from moescale.sweeps.store import Claim, SweepStore

LEASE_SECONDS = 60.0  # a driver silent this long is presumed dead
POLL_SECONDS = 0.5


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
              folder: str | Path | None = None, progress: bool = False) -> SweepRun:
    """Run every run of ``spec`` not yet done in the store; return what happened."""
    runs = spec.expand()
    ids = {r.id for r in runs}
    folder = Path(folder) if folder else runs_dir(store_path)
    store = SweepStore(store_path)
    store.add_runs(runs)
    if retry_failed:
        store.retry_failed(ids)
    claims: dict[str, Claim] = {}
    lock = threading.Lock()
    beat = _Heartbeat(store.path, claims, lock, lease_s)
    beat.start()
    out = SweepRun(store=str(store.path), executor=executor.description, runs=len(runs),
                   counts={})
    t0 = time.perf_counter()
    display = _Display(store, runs, ids, executor.description) if progress else None
    try:
        with display or _nothing():
            while True:
                for outcome in executor.poll():
                    with lock:
                        claim = claims.pop(outcome.run_id)
                    _record(store, claim, outcome, folder, out)
                _fill(store, executor, claims, lock, ids, folder, lease_s)
                if not claims:
                    break
                if display:
                    display.update()
                time.sleep(POLL_SECONDS)
    except BaseException:
        executor.shutdown()
        with lock:
            for claim in claims.values():
                store.release(claim.run.id, claim.token, "interrupted")
        raise
    finally:
        beat.stopped.set()
    out.counts, out.seconds = store.counts(ids), time.perf_counter() - t0
    store.close()
    return out


def _fill(store: SweepStore, executor: Executor, claims: dict, lock: threading.Lock,
          ids: set[str], folder: Path, lease_s: float) -> None:
    """Claim and submit runs until the executor is full or nothing is pending."""
    while len(executor.running()) < executor.capacity:
        claim = store.claim(ids, lease_s)
        if claim is None:
            return
        run_dir = folder / claim.run.id
        store.set_run_dir(claim.run.id, claim.token, str(run_dir))
        with lock:
            claims[claim.run.id] = claim
        executor.submit(claim.run, run_dir)


def _record(store: SweepStore, claim: Claim, outcome: Outcome, folder: Path,
            out: SweepRun) -> None:
    run_id = claim.run.id
    if outcome.status == "done":
        ok = store.finish(run_id, claim.token, outcome.result,
                          worker.read_curve(folder / run_id))
        if ok:
            out.finished.append(run_id)
            out.flops += claim.run.flops
    else:
        ok = store.fail(run_id, claim.token, outcome.error or "unknown failure")
        if ok:
            out.failed[run_id] = outcome.error
    if not ok:
        out.lost_claims.append(run_id)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


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
