"""Train one run of a sweep in its own folder; the same code runs under every executor.

A worker process trains one run (``python -m moescale.sweeps.worker RUN_DIR``) or, as the
local executor's persistent worker, run after run (``--serve``, :func:`serve`).

The worker never touches the store. It resumes from ``checkpoint.pt`` when an earlier attempt
left one, and ends by writing ``result.json`` (or ``error.json``) into the run folder
atomically (write, fsync, rename); the driver ingests that file.

**One writer per run folder.** A worker holds an exclusive lock (``flock``) on the folder's
``worker.lock`` for its whole life; the operating system releases it when the worker dies.
A second worker on the same folder (started by a driver that took over the run while the first
driver was paused past its lease) finds the lock held and exits with status 75 without
writing anything; drivers check the lock before they start a worker
(:func:`folder_locked`).

A branch of a trunk (``[train] reuse = "trunk"``, :mod:`moescale.sweeps.reuse`) starts its
first attempt from the checkpoint its trunk kept at the branch point, in the trunk's folder
beside its own (or from the trunk's latest readable checkpoint before it, or step 0:
:func:`moescale.sweeps.reuse.branch_start`); later attempts resume from its own checkpoint.

A checkpoint that cannot be read is moved aside (``checkpoint.pt.corrupt-TIMESTAMP``) and the
run starts afresh (``result.json`` says so). A full disk ends the worker with ``error.json``
marked ``disk_full`` (or exit status 28 when even that cannot be written), after removing its
temporary checkpoint files.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any

RESULT_FILE, ERROR_FILE, CHECKPOINT_FILE, LOG_FILE = ("result.json", "error.json",
                                                        "checkpoint.pt", "log.jsonl")
SPEC_FILE, OUTPUT_FILE, LOCK_FILE = "spec.json", "worker.log", "worker.lock"
HEARTBEAT_FILE = "heartbeat"  # touched every HEARTBEAT_SECONDS while the worker lives
HEARTBEAT_SECONDS = 1.0
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
EXIT_LOCKED = 75  # EX_TEMPFAIL: another worker holds the run folder; nothing was written
EXIT_DISK_FULL = 28  # ENOSPC: the disk is full and not even error.json could be written
LOCK_WAIT_SECONDS = 2.0  # a driver's lock check is momentary; the worker waits this long


class FolderLocked(Exception):
    """Another worker holds this run folder's lock (it trains the run now)."""


def _lock_fd(run_dir: Path, exclusive_wait: float = 0.0) -> int | None:
    """An fd holding the folder's lock, or None when another process holds it."""
    import fcntl

    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + exclusive_wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                return None
            time.sleep(0.05)


def hold_folder(run_dir: Path) -> int:
    """Take the run folder's lock for this process (released by :func:`release_folder` or by
    the OS when the process dies); :class:`FolderLocked` when another worker holds it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = _lock_fd(run_dir, LOCK_WAIT_SECONDS)
    if fd is None:
        raise FolderLocked(f"run folder {run_dir} is held by another worker "
                           f"({lock_holder(run_dir) or 'unknown process'}); this one stands down")
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
    return fd


def release_folder(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)  # closing the only descriptor releases the flock


def lock_holder(run_dir: Path) -> str | None:
    """``PID HOST`` of the worker that last took the folder's lock (a hint, for messages)."""
    try:
        text = (Path(run_dir) / LOCK_FILE).read_text().strip()
    except OSError:
        return None
    return f"pid {text}" if text else None


def lock_owner(run_dir: str | Path) -> tuple[int, str] | None:
    """``(pid, host)`` of the worker holding the run folder now, or None when none does."""
    if not folder_locked(run_dir):
        return None
    try:
        pid, host = (Path(run_dir) / LOCK_FILE).read_text().split()
        return int(pid), host
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def heartbeat(run_dir: Path):
    """Touch ``run_dir/heartbeat`` every second while the block runs, from a thread: a worker
    that is stopped (SIGSTOP) or hung stops touching it (:func:`heartbeat_age`)."""
    import threading

    path, stop = run_dir / HEARTBEAT_FILE, threading.Event()

    def beat():
        while True:
            with contextlib.suppress(OSError):
                path.touch()
            if stop.wait(HEARTBEAT_SECONDS):
                return

    thread = threading.Thread(target=beat, name="moescale-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def heartbeat_age(run_dir: str | Path, now: float | None = None) -> float | None:
    """Seconds since the run's worker last touched its heartbeat (None: no heartbeat yet)."""
    try:
        return (now or time.time()) - (Path(run_dir) / HEARTBEAT_FILE).stat().st_mtime
    except OSError:
        return None


def folder_locked(run_dir: str | Path) -> bool:
    """Whether a live worker holds the run folder (its lock cannot be taken now)."""
    run_dir = Path(run_dir)
    if not (run_dir / LOCK_FILE).is_file():
        return False
    try:
        fd = _lock_fd(run_dir)
    except OSError:
        return False
    if fd is None:
        return True
    os.close(fd)
    return False


def remove_temporary(run_dir: Path) -> list[str]:
    """Delete the temporary files a worker killed mid-write leaves (``.checkpoint.pt.tmp*``,
    ``*.partial``); returns their names."""
    removed = []
    try:
        children = list(Path(run_dir).iterdir())
    except OSError:
        return removed
    for child in children:
        if child.is_file() and (child.name.startswith(f".{CHECKPOINT_FILE}.tmp")
                                or child.name.endswith(".partial")):
            with contextlib.suppress(OSError):
                child.unlink()
                removed.append(child.name)
    return removed


def write_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON so that a reader sees the old file or the whole new one, never a part
    (a write that fails, e.g. on a full disk, leaves no temporary file behind)."""
    tmp = path.with_name(path.name + ".partial")
    try:
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_curve(run_dir: Path) -> list[dict[str, Any]]:
    """Logged points of a run folder's ``log.jsonl`` (the last record per step wins)."""
    path = run_dir / LOG_FILE
    points: dict[int, dict] = {}
    if not path.is_file():
        return []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by a kill
            continue
        if "event" in rec or "step" not in rec:
            continue
        points[rec["step"]] = {k: rec.get(k) for k in ("step", "tokens", "flops", "train_loss",
                                                       "eval_loss")}
    return [points[s] for s in sorted(points)]


def start_step(run_dir: Path) -> int:
    """The step the last attempt in ``run_dir`` started from (0 from scratch; a resume's or a
    branch point's step otherwise), from the log's last ``start``/``resume`` record."""
    step = 0
    path = run_dir / LOG_FILE
    if path.is_file():
        for line in path.read_text().splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                rec = json.loads(line)
                if rec.get("event") in ("start", "resume"):
                    step = int(rec.get("step", 0))
    return step


def prepare_run_dir(run_dir: Path) -> bool:
    """Make the folder; keep it for a resume when it holds a checkpoint, else start clean.
    Returns whether the run resumes."""
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in (RESULT_FILE, ERROR_FILE):
        (run_dir / name).unlink(missing_ok=True)
    remove_temporary(run_dir)
    if (run_dir / CHECKPOINT_FILE).is_file():
        return True
    for child in run_dir.iterdir():  # an attempt that died before its first checkpoint
        if (child.name not in (SPEC_FILE, OUTPUT_FILE, LOCK_FILE, HEARTBEAT_FILE)
                and ".corrupt-" not in child.name):
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    return False


def discard_unreadable_checkpoint(run_dir: Path) -> str | None:
    """Move ``checkpoint.pt`` aside when it cannot be read (truncated, foreign), so the run
    starts afresh instead of failing the same way at every retry; returns what was done."""
    from moescale.errors import MoescaleError
    from moescale.training.checkpoint import load_checkpoint

    path = run_dir / CHECKPOINT_FILE
    try:
        load_checkpoint(path)
        return None
    except MoescaleError as exc:
        aside = path.with_name(f"{CHECKPOINT_FILE}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(path, aside)
        reason = str(exc).split(";")[0]
        return f"its checkpoint was unreadable ({reason}); moved to {aside.name}, started afresh"


def pin_threads(threads: int | None) -> None:
    """Set the thread count before torch is imported (oversubscription ran 21× slower)."""
    if threads:
        for var in THREAD_VARS:
            os.environ[var] = str(threads)


def execute(run: dict[str, Any], run_dir: str | Path, threads: int | None = None,
            device: str | None = None) -> dict[str, Any]:
    """Train ``run`` (a :meth:`RunSpec.to_dict`) in ``run_dir``; return and write the result."""
    pin_threads(threads)
    from moescale.sweeps.spec import RunSpec

    spec = RunSpec.from_dict(run)
    run_dir = Path(run_dir)
    main_rank = os.environ.get("RANK", "0") == "0"
    lock = hold_folder(run_dir) if main_rank else None
    try:
        with heartbeat(run_dir) if main_rank else contextlib.nullcontext():
            return _execute(spec, run_dir, threads, device, main_rank)
    except BaseException:
        remove_temporary(run_dir)
        raise
    finally:
        release_folder(lock)


def _execute(spec, run_dir: Path, threads: int | None, device: str | None,
             main_rank: bool) -> dict[str, Any]:
    from moescale.sweeps.reuse import branch_start
    from moescale.sweeps.spec import ROUTING_KEYS
    from moescale.training.config import TrainConfig
    from moescale.training.trainer import train

    resume = prepare_run_dir(run_dir)
    discarded = None
    if resume and main_rank:
        discarded = discard_unreadable_checkpoint(run_dir)
        if discarded:
            print(f"moescale worker: run {spec.id}: {discarded}", file=sys.stderr, flush=True)
            resume = prepare_run_dir(run_dir)
    train_options = {k: v for k, v in spec.train.items()
                     if k != "device" and k not in ROUTING_KEYS}
    train_options.setdefault("seq_len", spec.arch().seq_len)  # the spec's resolved context
    notes: list[str] = []
    if spec.role == "branch" and not resume:  # its first attempt starts at the trunk's point
        start, notes = branch_start(run_dir.parent / spec.trunk, spec.branch_step)
        for note in notes:
            print(f"moescale worker: run {spec.id}: {note}", file=sys.stderr, flush=True)
        if start is not None:
            train_options["branch_from"] = str(start)
    config = TrainConfig(**train_options, seed=spec.seed, out=str(run_dir), resume=resume,
                         convention=spec.convention, threads=threads,
                         device=device or spec.train.get("device"), run_name=spec.id,
                         group=spec.sweep)
    result = train(spec.arch(), config, model_options(spec.train)).to_dict()
    for key in ("train_loss", "eval_loss"):
        if result[key] is None or not math.isfinite(result[key]):
            raise FloatingPointError(f"the run diverged: {key} is {result[key]}")
    curve = read_curve(run_dir)
    evals = [p["eval_loss"] for p in curve if p.get("eval_loss") is not None]
    result |= {"best_eval_loss": min(evals, default=result["eval_loss"]), "resumed": resume,
               "start_step": start_step(run_dir), "pid": os.getpid()}
    if discarded:
        result["checkpoint_discarded"] = discarded
    if notes:
        result["branch_start"] = "; ".join(notes)
    if main_rank:  # under torchrun only rank 0 reports
        write_atomic(run_dir / RESULT_FILE, result)
    return result


def model_options(train: dict[str, Any]):
    """The model's options from a run's ``[train]`` settings (routing; defaults elsewhere)."""
    from moescale.sweeps.spec import ROUTING_KEYS
    from moescale.training.options import model_options as build

    return build(**{key: train.get(key) for key in ROUTING_KEYS})


PROBE_FILE = "probe.json"  # a timing run's seconds (moescale.sweeps.estimate)
SPAWNED_VAR = "MOESCALE_SPAWNED"  # when the parent started this process (time.time())


def probe(threads: int, run_dirs: list[Path]) -> None:
    """Timing runs of ``sweep plan``: train each run folder's (short) run in this one process,
    writing ``probe.json`` there: the process's start-up until it could train (interpreter,
    torch and moescale, as every worker pays) and the run's own seconds (data, model, steps,
    evaluations, checkpoints). One start-up for all, instead of one per timing run."""
    started = float(os.environ.get(SPAWNED_VAR, time.time()))
    pin_threads(threads)
    import moescale.training.trainer  # noqa: F401 — what every worker imports before training

    startup = max(time.time() - started, 0.0)
    for run_dir in run_dirs:
        t0 = time.perf_counter()
        try:
            execute(json.loads((run_dir / SPEC_FILE).read_text()), run_dir, threads)
        except BaseException as exc:  # noqa: BLE001 — recorded for the plan, as a run's failure
            write_atomic(run_dir / ERROR_FILE, {"error": failure_reason(exc)})
            continue
        write_atomic(run_dir / PROBE_FILE, {"startup_seconds": startup,
                                            "seconds": time.perf_counter() - t0})


def run_folder(run_dir: Path, threads: int | None, device: str | None) -> int:
    """Train the run described by ``run_dir/spec.json``; the status a worker process exits
    with: 0 with ``result.json``, 1 with ``error.json``, :data:`EXIT_LOCKED` when another
    worker holds the folder (nothing written), :data:`EXIT_DISK_FULL` when not even
    ``error.json`` could be written."""
    try:
        run = json.loads((run_dir / SPEC_FILE).read_text())
        execute(run, run_dir, threads, device)
    except FolderLocked as exc:  # another worker trains this run: write nothing
        print(f"moescale worker: {exc}", file=sys.stderr, flush=True)
        return EXIT_LOCKED
    except BaseException as exc:  # recorded as the run's failure reason
        full = disk_full(exc)
        try:
            write_atomic(run_dir / ERROR_FILE, {"error": failure_reason(exc),
                                                "traceback": traceback.format_exc(),
                                                "pid": os.getpid()}
                         | ({"disk_full": True} if full else {}))
        except OSError:
            return EXIT_DISK_FULL if full else 1
        return 1
    return 0


SERVE_REPLY = "moescale-run-ended"  # a serving worker's reply: ``moescale-run-ended CODE``


def serve(threads: int | None, device: str | None, runs: int = 0) -> None:
    """A persistent worker: read run folders from stdin, one per line, train each in this
    process (the interpreter, torch and moescale load once, in the first run) and answer each
    on stdout with ``moescale-run-ended CODE`` (the status :func:`run_folder` gives). Each
    run's output goes to its own ``worker.log``; between runs to stderr.

    The process ends after a run that did not finish (so a failed run leaves no state for the
    next one: that runs in a fresh process), after ``runs`` runs when ``runs`` > 0, and at the
    end of stdin."""
    pin_threads(threads)
    reply = os.fdopen(os.dup(1), "w", buffering=1)  # the control channel
    os.dup2(2, 1)  # nothing else may write to it: stray prints go to stderr
    idle_out = os.dup(2)
    done = 0  # torch and the trainer load in the first run (a failure there is that run's)
    for line in sys.stdin:
        run_dir = Path(line.strip())
        with _output_to(run_dir / OUTPUT_FILE, idle_out):
            code = run_folder(run_dir, threads, device)
        _forget_run()
        reply.write(f"{SERVE_REPLY} {code}\n")
        done += 1
        if code not in (0, EXIT_LOCKED) or done == runs:
            break
    reply.close()


@contextlib.contextmanager
def _output_to(path: Path, restore_fd: int):
    """Send this process's stdout and stderr (the file descriptors) to ``path`` meanwhile."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError:  # the folder is not writable: the run will say so in its outcome
        yield
        return
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(restore_fd, 1)
        os.dup2(restore_fd, 2)


def _forget_run() -> None:
    """Free what the last run held before the next one starts (memory, compiled graphs)."""
    import gc

    if "torch._dynamo" in sys.modules:
        sys.modules["torch._dynamo"].reset()
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def main(argv: list[str] | None = None) -> None:
    """``python -m moescale.sweeps.worker RUN_DIR [THREADS] [DEVICE]``: train the run described
    by ``RUN_DIR/spec.json``; exit 0 with ``result.json``, or 1 with ``error.json``.
    ``… --serve THREADS DEVICE [RUNS]``: a persistent worker (:func:`serve`).
    ``… --probe THREADS RUN_DIR…``: the timing runs of ``sweep plan`` (:func:`probe`)."""
    args = sys.argv[1:] if argv is None else argv
    _die_with_parent()
    if args and args[0] == "--probe":
        probe(int(args[1]), [Path(a) for a in args[2:]])
        os._exit(0)
    if args and args[0] == "--serve":
        serve(_opt(args, 1, int), _opt(args, 2, str), _opt(args, 3, int) or 0)
        os._exit(0)
    os._exit(run_folder(Path(args[0]), _opt(args, 1, int), _opt(args, 2, str)))


def _opt(args: list[str], i: int, kind):
    """Positional argument ``i``, converted, or None when missing or ``-``."""
    return kind(args[i]) if len(args) > i and args[i] != "-" else None


def disk_full(exc: BaseException) -> bool:
    """Whether a failure was a full disk (ENOSPC anywhere in its chain of causes)."""
    return _enospc(exc) is not None


def _enospc(exc: BaseException | None) -> BaseException | None:
    """The exception in ``exc``'s chain that says the disk is full, or None."""
    import errno

    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return exc
        if "No space left on device" in str(exc):
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def failure_reason(exc: BaseException) -> str:
    """One line saying why a run failed."""
    from moescale.errors import MoescaleError

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    kind = type(exc).__name__
    full = _enospc(exc)
    if full is not None:
        where = getattr(full, "filename", None)
        what = getattr(full, "strerror", None) or str(full).strip() or type(full).__name__
        return f"disk full: {what}" + (f" ({where})" if where else "")
    if isinstance(exc, MoescaleError) and text:  # its message already says what happened
        return text
    if kind in ("MemoryError", "OutOfMemoryError"):
        return f"out of memory: {text}"
    return f"{kind}: {text}" if text else kind


def _die_with_parent() -> None:
    """Ask Linux to kill this worker when its driver dies (no orphan keeps writing)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the driver died before the request took effect
        os._exit(1)


if __name__ == "__main__":
    main()
