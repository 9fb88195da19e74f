"""The sweep driver: claim runs from the store, hand them to an executor, renew their leases,
record every outcome. The same loop serves every executor.

Two drivers on one store share the work (claims are atomic). A driver that is killed leaves
its runs ``running`` with a lease that stops being renewed. The next driver reconciles them:
a run whose worker left ``result.json`` is recorded, one whose job still runs (a Ray actor, a
SLURM job) is taken back, and the rest go back to ``pending`` and resume from their last
checkpoint in the sweep's folder. A worker that dies is retried up to ``max_attempts``; a run
that raises or diverges is ``failed`` at once (it would fail again).

A run folder has one writer: before starting a worker the driver checks the folder's lock
(:func:`moescale.sweeps.worker.folder_locked`). A driver that took over a run whose folder is
still held (the first driver was paused past its lease while its worker trained on) waits for
that worker and records what it leaves. A driver that wakes up to find its claim lost stands
down on that run: the store refuses its writes (claim tokens) and it starts nothing there.

A result is validated before it is recorded (a ``result.json`` without a finite loss is a
failure). A full disk stops the sweep with one error; its runs stay resumable.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moescale.errors import MoescaleError
from moescale.sweeps import worker
from moescale.sweeps.executors import Executor, Outcome, folder_outcome
from moescale.sweeps.reuse import branch_file
from moescale.sweeps.spec import RunSpec, SweepSpec
from moescale.sweeps.store import (
    Claim,
    DiskFull,
    SweepStore,
    is_disk_full,
    result_problem,
    sweep_name_conflict,
    this_host,
)

LEASE_SECONDS = 60.0  # a driver silent this long is presumed dead
POLL_SECONDS = 0.5
MIN_STALL_SECONDS = 10.0  # a worker silent this long (and past the lease) is stalled
STALL_SECONDS = max(LEASE_SECONDS, MIN_STALL_SECONDS)  # as `sweep status` judges it
MAX_ATTEMPTS = 3  # a run whose worker died (not one that raised) is tried this often
ENGINE_ADDRESS = "engine_address"  # store meta: an engine the executor started (e.g. Ray)


def previous_engine(store_path: str | Path) -> str | None:
    """The address of the engine an interrupted driver of this store had started, if any."""
    if not Path(store_path).is_file():
        return None
    with SweepStore(store_path, create=False, readonly=True) as store:
        return store.meta(ENGINE_ADDRESS) or None


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
    waited: list[str] = field(default_factory=list)  # runs whose folder another worker held
    notes: dict[str, str] = field(default_factory=dict)  # e.g. a discarded checkpoint
    retired: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    flops: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`run_sweep`: the running runs were stopped and given back (they
    resume from their last checkpoint at the next run); ``run`` says what was done."""

    def __init__(self, run: SweepRun) -> None:
        super().__init__(f"{len(run.finished)} run(s) finished, {len(run.stopped)} stopped")
        self.run = run


class _Heartbeat(threading.Thread):
    """Renews the leases of the driver's claims from its own connection."""

    def __init__(self, store_path: Path, claims: dict[str, Claim], lock: threading.Lock,
                 lease_s: float) -> None:
        super().__init__(daemon=True, name="moescale-heartbeat")
        self.store_path, self.claims, self.lock, self.lease_s = store_path, claims, lock, lease_s
        self.stopped = threading.Event()

        self.lost: set[str] = set()  # claims another driver took over

    def run(self) -> None:
        try:
            store = SweepStore(self.store_path)
        except Exception:  # noqa: BLE001 — e.g. a full disk: the driver's own error says so
            return
        with store:
            while not self.stopped.wait(self.lease_s / 6):
                with self.lock:
                    held = [(i, c.token) for i, c in self.claims.items()]
                if not held:
                    continue
                try:
                    lost = store.heartbeat(held, self.lease_s)
                except Exception:  # noqa: BLE001 — a full disk or a busy store: try again
                    continue
                with self.lock:
                    self.lost |= lost


def run_sweep(spec: SweepSpec, store_path: str | Path, executor: Executor, *,
              retry_failed: bool = False, lease_s: float = LEASE_SECONDS,
              max_attempts: int = MAX_ATTEMPTS, folder: str | Path | None = None,
              progress: Any = None, retire_stale: bool = True, merge: bool = False) -> SweepRun:
    """Run every run of ``spec`` not yet done in the store; return what happened.

    Runs of this sweep (same name) that the spec no longer produces are retired first
    (``retire_stale``): never run, counted as ``retired``, results of finished ones kept.
    ``progress`` is a display (:class:`LiveDisplay`, :class:`LineReport`) or ``None``.
    Ctrl-C raises :class:`SweepInterrupted` once the running runs are given back.
    A store holding runs of another sweep (another name) is refused unless ``merge``.
    """
    runs = spec.expand()
    ids = {r.id for r in runs}
    store = SweepStore(store_path)
    conflict = sweep_name_conflict(store.sweep_names(), spec.name, store_path, spec.source)
    if conflict and not merge:
        store.close()
        raise MoescaleError(conflict)
    store.add_runs(runs)
    folder = Path(folder) if folder else runs_dir(store_path)
    for trunk_id, step in store.extend_trunks(runs).items():  # a larger budget was added
        done = folder / trunk_id / worker.RESULT_FILE  # the result of its earlier, shorter end
        if done.is_file():
            os.replace(done, done.with_name(f"result-step-{step}.json"))
    store.unretire(ids)
    retired = store.stale(spec.name, ids) if retire_stale else []
    store.retire(retired)
    if retry_failed:
        store.retry_failed(ids)
    if executor.address:  # an engine the executor started: a restarted driver reconnects
        store.meta(ENGINE_ADDRESS, executor.address)
    loop = _Loop(store, executor, ids, folder, lease_s, max_attempts, progress)
    loop.out.runs, loop.out.retired = len(runs), retired
    beat = _Heartbeat(store.path, loop.claims, loop.lock, lease_s)
    loop.beat = beat
    beat.start()
    t0 = time.perf_counter()
    try:
        with progress or contextlib.nullcontext():
            loop.run()
        executor.close()
        if executor.address:
            store.meta(ENGINE_ADDRESS, "")
    except BaseException as exc:
        executor.shutdown()
        reason = "disk full" if isinstance(exc, DiskFull) else "interrupted"
        with loop.lock:
            for claim in loop.claims.values():
                if claim.run.id in loop.waiting:  # another worker trains it: not ours to stop
                    continue
                worker.remove_temporary(loop.dirs.get(claim.run.id, loop.folder / claim.run.id))
                with contextlib.suppress(Exception):  # a full disk: the lease expires instead
                    store.release(claim.run.id, claim.token, reason)
            loop.out.stopped = list(loop.claims)
        if isinstance(exc, KeyboardInterrupt):
            loop.out.counts, loop.out.seconds = store.counts(ids), time.perf_counter() - t0
            raise SweepInterrupted(loop.out) from None
        raise
    finally:
        beat.stopped.set()
    loop.out.counts, loop.out.seconds = store.counts(ids), time.perf_counter() - t0
    store.close()
    return loop.out


class _Loop:
    """One driver's loop: reconcile orphans, claim and submit, record outcomes."""

    def __init__(self, store: SweepStore, executor: Executor, ids: set[str], folder: Path,
                 lease_s: float, max_attempts: int, display=None) -> None:
        self.store, self.executor, self.ids, self.folder = store, executor, ids, folder
        self.lease_s, self.max_attempts, self.display = lease_s, max_attempts, display
        self.claims: dict[str, Claim] = {}
        self.dirs: dict[str, Path] = {}  # run folder of each claimed run
        self.waiting: dict[str, Path] = {}  # claimed runs whose folder another worker holds
        self.beat: _Heartbeat | None = None
        self.stall_after = max(lease_s, MIN_STALL_SECONDS)
        self.stalled: dict[str, str] = {}  # runs whose silent worker this driver killed: why
        self.lock = threading.Lock()
        self.out = SweepRun(store=str(store.path), executor=executor.description, runs=0,
                            counts={})

    def run(self) -> None:
        last_reconcile = -float("inf")
        while True:
            if time.monotonic() - last_reconcile > self.lease_s / 2:
                self.reconcile()
                self.check_stalled()
                last_reconcile = time.monotonic()
            for outcome in self.executor.poll():
                with self.lock:
                    claim = self.claims.pop(outcome.run_id)
                self.record(claim, outcome)
            self.check_waiting()
            self.fill()
            if self.display:
                with self.lock:
                    running = [(c.run, self.dirs[i]) for i, c in self.claims.items()]
                self.display.update(running, self.store.states(self.ids))
            if not self.claims and not self.others_working():
                return
            getattr(self.executor, "wait", time.sleep)(POLL_SECONDS)

    def others_working(self) -> bool:
        """Whether other drivers run runs of this sweep while some of its runs wait (branches
        for a trunk another driver trains): this driver stays to share the work."""
        states = set(self.store.states(self.ids).values())
        return "pending" in states and "running" in states

    def check_stalled(self) -> None:
        """Kill the workers of this driver's runs that have gone silent (no heartbeat for
        ``stall_after`` seconds: stopped with SIGSTOP, or hung); the run is retried from its
        last checkpoint. A worker on another host is only reported (``sweep status``)."""
        now = time.time()
        for run_id, run_dir in list(self.dirs.items()):
            if run_id in self.waiting or run_id in self.stalled:
                continue
            age = worker.heartbeat_age(run_dir, now)
            holder = worker.lock_owner(run_dir)
            if age is None or age < self.stall_after or holder is None:
                continue
            pid, host = holder
            if host != this_host():
                continue
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                self.stalled[run_id] = (f"its worker (pid {pid}) stalled: no heartbeat for "
                                        f"{age:.0f} s; killed, to resume from its last checkpoint")

    def fill(self) -> None:
        """Claim runs until the executor is full or nothing is pending, then submit them
        (as one batch — a job array — where the executor supports it). A run whose folder
        another worker holds is not started: it waits for that worker."""
        batch: list[tuple[Claim, Path]] = []
        while len(self.executor.running()) + len(batch) < self.executor.capacity:
            claim = self.store.claim(self.ids, self.lease_s, ready=self.ready)
            if claim is None:
                break
            run_dir = self.folder / claim.run.id
            self.store.set_run_dir(claim.run.id, claim.token, str(run_dir))
            with self.lock:
                self.claims[claim.run.id] = claim
                self.dirs[claim.run.id] = run_dir
            if worker.folder_locked(run_dir):
                self.wait_for(claim, run_dir)
                continue
            batch.append((claim, run_dir))
        if not batch:
            return
        items = [(c.run, d) for c, d in batch]
        try:
            job_ids = self.executor.submit_batch(items)
        except OSError as exc:
            if is_disk_full(exc):
                raise DiskFull(f"disk full: cannot start a worker in {self.folder} "
                               f"({exc.strerror or exc}); free some space and run `moescale "
                               "sweep run` again (finished runs are kept)") from None
            raise
        for (claim, _), job_id in zip(batch, job_ids, strict=True):
            self.store.set_job(claim.run.id, claim.token, job_id)

    def ready(self, run: RunSpec, states: dict[str, str]) -> bool:
        """Whether a pending run can start: a branch once its trunk has kept the checkpoint at
        its branch point (or once it has its own), or once its trunk has ended without it (it
        then fails, saying so); every other run at once."""
        if run.role != "branch":
            return True
        return ((self.folder / run.id / worker.CHECKPOINT_FILE).is_file()
                or branch_file(self.folder / run.trunk, run.branch_step).is_file()
                or states.get(run.trunk) in ("done", "failed"))

    def prune_branch_points(self) -> None:
        """Delete the checkpoints trunks kept at branch points once every branch that starts
        there is done or has its own checkpoint (it resumes from that, not the trunk's)."""
        needed: dict[Path, bool] = {}
        for row in self.store.rows(self.ids):
            run = RunSpec.from_dict(row["spec"])
            if run.role != "branch":
                continue
            path = branch_file(self.folder / run.trunk, run.branch_step)
            started = (row["status"] == "done"
                       or (self.folder / run.id / worker.CHECKPOINT_FILE).is_file())
            needed[path] = needed.get(path, False) or not started
        for path, need in needed.items():
            if not need:
                path.unlink(missing_ok=True)

    def wait_for(self, claim: Claim, run_dir: Path) -> None:
        """Hold ``claim`` without starting a worker: another worker (of a driver that lost
        this run while paused) trains in ``run_dir``; its result is recorded when it ends."""
        with self.lock:
            self.claims[claim.run.id] = claim
            self.dirs[claim.run.id] = run_dir
            self.waiting[claim.run.id] = run_dir
        if claim.run.id not in self.out.waited:
            self.out.waited.append(claim.run.id)

    def check_waiting(self) -> None:
        """Runs whose folder was held: record what the other worker left once it let go, or
        give the run back (pending, to resume from its checkpoint) when it left nothing."""
        for run_id, run_dir in list(self.waiting.items()):
            if worker.folder_locked(run_dir):
                continue
            with self.lock:
                del self.waiting[run_id]
                claim = self.claims.pop(run_id)
                self.dirs.pop(run_id, None)
            outcome = folder_outcome(run_id, run_dir)
            if outcome is not None:
                self.record(claim, outcome)
            elif not self.store.release(run_id, claim.token, "lost",
                                        "the worker that held its folder ended without a result"):
                self.out.lost_claims.append(run_id)

    def reconcile(self) -> None:
        """Runs a dead driver left running: ingest what finished, take back what still runs
        (Ray actors, SLURM jobs), give the rest back to be run again."""
        for row in self.store.orphans(self.ids):
            claim = self.store.adopt(row["id"], row["token"], self.lease_s)
            if claim is None:
                continue
            run_dir = Path(row["run_dir"] or self.folder / row["id"])
            outcome = folder_outcome(row["id"], run_dir)
            if outcome is None and worker.folder_locked(run_dir):  # its worker still trains
                self.wait_for(claim, run_dir)
            elif outcome is None and self.executor.reattach(claim.run, run_dir, row["job_id"]):
                with self.lock:
                    self.claims[claim.run.id] = claim
                    self.dirs[claim.run.id] = run_dir
                self.out.reattached.append(row["id"])
            elif outcome is not None:
                self.record(claim, outcome)
            else:
                self.store.release(row["id"], claim.token, "lost",
                                   f"its driver died and job {row['job_id']} is gone")

    def record(self, claim: Claim, outcome: Outcome) -> None:
        run_id, out = claim.run.id, self.out
        with self.lock:
            self.dirs.pop(run_id, None)
            lost = self.beat is not None and run_id in self.beat.lost
        if lost or not self.store.holds(run_id, claim.token):
            # another driver took this run over while this one was paused: stand down
            out.lost_claims.append(run_id)
            return
        stalled = self.stalled.pop(run_id, None)
        if stalled and outcome.status == "failed":
            outcome = dataclasses.replace(outcome, error=stalled, retryable=True)
        if outcome.busy:  # the worker found the folder held: wait for the one holding it
            self.wait_for(claim, self.folder / run_id)
            return
        if outcome.status == "done":
            problem = result_problem(outcome.result)
            if problem is not None:
                outcome = Outcome(run_id, "failed", error=f"result.json of the run {problem}; "
                                  "not recorded as done")
        if outcome.disk_full or (outcome.status == "failed" and outcome.error
                                 and outcome.error.startswith("disk full")):
            self.store.release(run_id, claim.token, "disk full", outcome.error)
            worker.remove_temporary(self.folder / run_id)
            raise DiskFull(f"{outcome.error or 'disk full'} (run {run_id}); free some space and "
                           "run `moescale sweep run` again: finished runs are kept, the others "
                           "resume from their last checkpoint")
        if outcome.status == "done":
            kind = "done"
            curve = outcome.curve if outcome.curve is not None else worker.read_curve(
                self.folder / run_id)
            ok = self.store.finish(run_id, claim.token, outcome.result, curve)
            if ok:
                out.finished.append(run_id)
                out.flops += spent_flops(claim.run, outcome.result)
                if claim.run.role == "branch":
                    self.prune_branch_points()
                if outcome.result.get("checkpoint_discarded"):
                    out.notes[run_id] = outcome.result["checkpoint_discarded"]
        elif ((outcome.retryable or outcome.error == "KeyboardInterrupt")  # Ctrl-C reached it
              and claim.attempt < self.max_attempts):
            kind = "retry"
            ok = self.store.release(run_id, claim.token, "retry", outcome.error)
            if ok:
                out.retried[run_id] = outcome.error
        else:
            kind = "failed"
            ok = self.store.fail(run_id, claim.token, outcome.error or "unknown failure")
            if ok:
                out.failed[run_id] = outcome.error
        if not ok:
            out.lost_claims.append(run_id)
        elif self.display:
            self.display.ended(claim.run, kind, outcome.result if kind == "done" else outcome.error,
                               self.store.states(self.ids))


def spent_flops(run: RunSpec, result: dict[str, Any]) -> float:
    """FLOPs this attempt of ``run`` spent: its steps from where it started (a resume, a
    trunk's extension, a branch point) to its end; ``own_flops`` when the result does not say."""
    if "start_step" not in result or "steps" not in result:
        return run.own_flops
    steps = max(int(result["steps"]) - int(result["start_step"]), 0)
    return steps * int(run.train["batch_tokens"]) * run.flops_per_token


# ----- following the runs ---------------------------------------------------------------------
def describe(architecture: dict[str, Any], budget: float) -> str:
    """A run's architecture in a few characters: ``d=16 L=2 E=4 k=1 @ 1e+11``."""
    experts = architecture.get("n_experts") or 0
    moe = f"E={experts} k={architecture.get('top_k')}" if experts > 1 else "dense"
    return f"d={architecture['hidden_size']} L={architecture['n_layers']} {moe} @ {budget:.3g}"


def fmt_seconds(seconds: float | None) -> str:
    """``42 s``, ``3:05``, ``1:02:10``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


@dataclass
class RunProgress:
    """How far a running run got, from its worker's ``log.jsonl``."""

    total: int
    step: int = 0
    train_loss: float | None = None
    seconds_left: float | None = None

    def text(self) -> str:
        loss = "-" if self.train_loss is None else f"{self.train_loss:.3f}"
        return (f"step {self.step:,}/{self.total:,} · loss {loss} · "
                f"{fmt_seconds(self.seconds_left)} left")


class LogReader:
    """Follows a run folder's ``log.jsonl``, reading only what was appended since last time.

    Time left = steps left / the step rate since the worker (re)started (its ``start`` or
    ``resume`` event), so evaluations and checkpoints are part of the rate.
    """

    def __init__(self, run_dir: str | Path, total_steps: int) -> None:
        self.path = Path(run_dir) / worker.LOG_FILE
        self.offset, self.start, self.logged = 0, None, None
        self.progress = RunProgress(total=total_steps)

    def read(self, now: float | None = None) -> RunProgress:
        try:
            with open(self.path, "rb") as f:
                stat = os.fstat(f.fileno())
                if stat.st_size < self.offset:  # a new attempt started the log again
                    self.offset, self.start, self.logged = 0, None, None
                    self.progress = RunProgress(total=self.progress.total)
                f.seek(self.offset)
                chunk = f.read()
        except OSError:
            return self.progress
        end = chunk.rfind(b"\n") + 1  # a line still being written waits for the next call
        self.offset += end
        p = self.progress
        for line in chunk[:end].splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if rec.get("event") in ("start", "resume"):
                self.start, p.step = (rec["time"], rec["step"]), rec["step"]
            elif "event" not in rec and "step" in rec:
                p.step, p.train_loss, self.logged = rec["step"], rec.get("train_loss"), stat.st_mtime
        if self.start and self.logged and p.step > self.start[1] and self.logged > self.start[0]:
            rate = (p.step - self.start[1]) / (self.logged - self.start[0])
            since = (now or time.time()) - self.logged
            p.seconds_left = max((p.total - p.step) / rate - since, 0.0)
        return p


def read_progress(run_dir: str | Path, total_steps: int) -> RunProgress:
    """Steps done, latest train loss and time left of the run training in ``run_dir``."""
    return LogReader(run_dir, total_steps).read()


def _ended_line(run: RunSpec, kind: str, detail: Any, states: dict[str, str],
                seconds: float | None) -> str:
    ended = sum(1 for s in states.values() if s in ("done", "failed"))
    if kind == "done":
        what = f"eval loss {detail['eval_loss']:.4f}"
    elif kind == "retry":
        what = f"will be retried ({detail})"
    else:
        what = str(detail)
    took = f" in {fmt_seconds(seconds)}" if seconds is not None else ""
    return (f"[{ended}/{len(states)}] {kind} {run.id} "
            f"{describe(run.architecture, run.budget)}{took}: {what}")


class LineReport:
    """Without a terminal: one line on stderr per run that ended (done, failed, retried)."""

    def __init__(self) -> None:
        self.seen: dict[str, float] = {}

    def __enter__(self) -> LineReport:
        return self

    def __exit__(self, *exc) -> bool:
        return False

    def update(self, running: list[tuple[RunSpec, Path]], states: dict[str, str]) -> None:
        for run, _ in running:
            self.seen.setdefault(run.id, time.monotonic())

    def ended(self, run: RunSpec, kind: str, detail: Any, states: dict[str, str]) -> None:
        started = self.seen.pop(run.id, None)
        seconds = None if started is None else time.monotonic() - started
        print(_ended_line(run, kind, detail, states, seconds), file=sys.stderr, flush=True)


class LiveDisplay(LineReport):
    """At a terminal (stderr): the sweep's bar with runs done and time left, one bar per
    running run (architecture, steps, latest train loss, time left), and a line per run that
    ended above them."""

    def __init__(self, runs: list[RunSpec], description: str) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn

        super().__init__()
        self.flops = {r.id: r.own_flops for r in runs}
        self.readers: dict[str, LogReader] = {}
        self.tasks: dict[str, Any] = {}
        self.first: tuple[float, float] | None = None  # (time, FLOPs) at the first update
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(bar_width=20),
                            TextColumn("{task.fields[info]}"), console=Console(stderr=True),
                            refresh_per_second=2)
        self.sweep = self.bar.add_task(f"sweep ({description})",
                                       total=sum(self.flops.values()) or 1, info="starting")

    def __enter__(self) -> LiveDisplay:
        self.bar.start()
        return self

    def __exit__(self, *exc) -> bool:
        self.bar.stop()
        return False

    def update(self, running: list[tuple[RunSpec, Path]], states: dict[str, str]) -> None:
        super().update(running, states)
        now = time.time()
        done = sum(self.flops.get(i, 0.0) for i, s in states.items() if s in ("done", "failed"))
        for run, run_dir in running:
            reader = self.readers.setdefault(run.id, LogReader(run_dir, run.last_step))
            p = reader.read(now)
            if run.id not in self.tasks:
                self.tasks[run.id] = self.bar.add_task(
                    "  " + describe(run.architecture, run.budget), total=max(run.last_step, 1),
                    info="starting")
            self.bar.update(self.tasks[run.id], completed=p.step, info=p.text())
            span = max(run.last_step - run.first_step, 1)
            done += run.own_flops * min(max(p.step - run.first_step, 0) / span, 1.0)
        self.first = self.first or (now, done)
        elapsed, gained = now - self.first[0], done - self.first[1]
        left = ((sum(self.flops.values()) - done) * elapsed / gained
                if gained > 0 and elapsed > 5 else None)
        count = {s: sum(1 for t in states.values() if t == s) for s in ("done", "failed")}
        self.bar.update(self.sweep, completed=done, info=(
            f"{count['done']} done, {count['failed']} failed, {len(running)} running of "
            f"{len(states)} · {fmt_seconds(left)} left"))

    def ended(self, run: RunSpec, kind: str, detail: Any, states: dict[str, str]) -> None:
        started = self.seen.pop(run.id, None)
        seconds = None if started is None else time.monotonic() - started
        self.bar.console.print(_ended_line(run, kind, detail, states, seconds), markup=False,
                               highlight=False)
        self.readers.pop(run.id, None)
        task = self.tasks.pop(run.id, None)
        if task is not None:
            self.bar.remove_task(task)
