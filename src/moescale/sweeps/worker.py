"""Train one run of a sweep in its own folder; the same code runs under every executor.

The worker never touches the store. It resumes from ``checkpoint.pt`` when an earlier attempt
left one, and ends by writing ``result.json`` (or ``error.json``) into the run folder
atomically (write, fsync, rename); the driver ingests that file.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import traceback
from pathlib import Path
from typing import Any

RESULT_FILE, ERROR_FILE, CHECKPOINT_FILE, LOG_FILE = ("result.json", "error.json",
                                                        "checkpoint.pt", "log.jsonl")
SPEC_FILE, OUTPUT_FILE = "spec.json", "worker.log"
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def write_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON so that a reader sees the old file or the whole new one, never a part."""
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
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


def prepare_run_dir(run_dir: Path) -> bool:
    """Make the folder; keep it for a resume when it holds a checkpoint, else start clean.
    Returns whether the run resumes."""
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in (RESULT_FILE, ERROR_FILE):
        (run_dir / name).unlink(missing_ok=True)
    if (run_dir / CHECKPOINT_FILE).is_file():
        return True
    for child in run_dir.iterdir():  # an attempt that died before its first checkpoint
        if child.name not in (SPEC_FILE, OUTPUT_FILE):
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    return False


def pin_threads(threads: int | None) -> None:
    """Set the thread count before torch is imported (oversubscription ran 21× slower)."""
    if threads:
        for var in THREAD_VARS:
            os.environ[var] = str(threads)


def execute(run: dict[str, Any], run_dir: str | Path, threads: int | None = None,
            device: str | None = None) -> dict[str, Any]:
    """Train ``run`` (a :meth:`RunSpec.to_dict`) in ``run_dir``; return and write the result."""
    pin_threads(threads)
    from moescale.sweeps.spec import ROUTING_KEYS, RunSpec
    from moescale.training.config import TrainConfig
    from moescale.training.trainer import train

    spec = RunSpec.from_dict(run)
    run_dir = Path(run_dir)
    resume = prepare_run_dir(run_dir)
    train_options = {k: v for k, v in spec.train.items()
                     if k != "device" and k not in ROUTING_KEYS}
    train_options.setdefault("seq_len", spec.arch().seq_len)  # the spec's resolved context
    config = TrainConfig(**train_options, seed=spec.seed, out=str(run_dir), resume=resume,
                         convention=spec.convention, threads=threads,
                         device=device or spec.train.get("device"))
    result = train(spec.arch(), config, model_options(spec.train)).to_dict()
    for key in ("train_loss", "eval_loss"):
        if result[key] is None or not math.isfinite(result[key]):
            raise FloatingPointError(f"the run diverged: {key} is {result[key]}")
    curve = read_curve(run_dir)
    evals = [p["eval_loss"] for p in curve if p.get("eval_loss") is not None]
    result |= {"best_eval_loss": min(evals, default=result["eval_loss"]), "resumed": resume,
               "pid": os.getpid()}
    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 reports
        write_atomic(run_dir / RESULT_FILE, result)
    return result


def model_options(train: dict[str, Any]):
    """The model's routing options from a run's ``[train]`` settings (defaults elsewhere)."""
    from moescale.training.model import ModelOptions, MoEOptions

    names = {"router": "score", "norm_topk_prob": "norm_topk_prob",
             "capacity_factor": "capacity_factor"}
    return ModelOptions(moe=MoEOptions(**{field: train[key] for key, field in names.items()
                                          if train.get(key) is not None}))


def main(argv: list[str] | None = None) -> None:
    """``python -m moescale.sweeps.worker RUN_DIR [THREADS] [DEVICE]``: train the run described
    by ``RUN_DIR/spec.json``; exit 0 with ``result.json``, or 1 with ``error.json``."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    run_dir = Path(args[0])
    threads = int(args[1]) if len(args) > 1 and args[1] != "-" else None
    device = args[2] if len(args) > 2 and args[2] != "-" else None
    _die_with_parent()
    try:
        run = json.loads((run_dir / SPEC_FILE).read_text())
        execute(run, run_dir, threads, device)
    except BaseException as exc:  # recorded as the run's failure reason
        write_atomic(run_dir / ERROR_FILE, {"error": failure_reason(exc),
                                            "traceback": traceback.format_exc()})
        os._exit(1)
    os._exit(0)


def failure_reason(exc: BaseException) -> str:
    """One line saying why a run failed."""
    from moescale.errors import MoescaleError

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    kind = type(exc).__name__
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
