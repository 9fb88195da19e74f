"""What a sweep will cost before it runs: its runs, total compute, repeated data and an
estimated wall time on this machine (``moescale sweep plan``).

The time estimate runs short timing runs through the worker code a sweep runs
(``python -m moescale.sweeps.worker --probe``), in as many processes at once as the sweep has
workers (they compete for the cores as the sweep's runs will), each ten optimizer steps with
evaluations and checkpoints among them. Each timing run splits into the parts a run
of the sweep pays: its worker's start-up (interpreter, torch, moescale: once per worker, which
trains run after run), its own set-up (data, model, result), one evaluation, one checkpoint and
the steady step time. A run of the sweep then costs its set-up, its own number of evaluations
and checkpoints (:func:`moescale.training.config.default_eval_every`) and its steps, each
interpolated in log(FLOPs per token) between the timed models (up to six, spread over the
sweep's sizes); the runs are dealt to the workers in the order the sweep claims them.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from moescale.errors import MoescaleError
from moescale.sweeps import worker
from moescale.sweeps.spec import RunSpec, SweepSpec

BPE_BYTES_PER_TOKEN = 3.5  # rough size of a BPE token of English text, for the repeat warning
PROBE_STEPS = 10  # optimizer steps of a timing run
PROBE_EVERY = 5  # its evaluations and checkpoints: at the start (evaluation), steps 5 and 10
MAX_PROBES = 8  # timing runs at once, at most
MAX_MODELS = 6  # models timed, at most
DRIVER_SECONDS = 0.05  # per run: the driver wakes when a worker answers, records the run,
#                        claims the next and hands it to the same worker


@dataclasses.dataclass(frozen=True)
class Probe:
    """One timing run: its model's FLOPs per token and the seconds of each part of a run."""

    flops_per_token: float
    fixed_seconds: float  # a run's set-up: data, model, result (not its worker's start-up)
    step_seconds: float  # one optimizer step, steady state
    eval_seconds: float  # one evaluation
    checkpoint_seconds: float  # one checkpoint
    startup_seconds: float  # its process's start-up, paid once per worker


class NoTiming(MoescaleError):
    """The timing runs cannot run here (no torch); the plan says so instead of a time."""


def probe_runs(runs: list[RunSpec], threads: int, concurrent: int) -> list[Probe]:
    """Time a short real run of each of ``runs`` through the sweep's worker code, in
    ``concurrent`` processes at once (as the sweep's workers compete for the cores), each
    training its share of the timing runs after one start-up (:func:`worker.probe`)."""
    import subprocess
    import sys

    if importlib.util.find_spec("torch") is None:
        raise NoTiming("the timing runs train, which needs torch (pip install "
                       "'moescale[train]')")
    env = os.environ | dict.fromkeys(worker.THREAD_VARS, str(threads))
    with tempfile.TemporaryDirectory(prefix="moescale-plan-") as tmp:
        dirs = []
        for i, run in enumerate(runs):
            short = dataclasses.replace(run, id=f"probe-{i}", train=run.train | {
                "tokens": int(run.train["batch_tokens"]) * PROBE_STEPS,
                "eval_every": PROBE_EVERY, "checkpoint_every": PROBE_EVERY, "log_every": 1})
            run_dir = Path(tmp) / short.id
            run_dir.mkdir()
            worker.write_atomic(run_dir / worker.SPEC_FILE, short.to_dict())
            dirs.append(run_dir)
        procs = [subprocess.Popen(
            [sys.executable, "-m", "moescale.sweeps.worker", "--probe", str(threads),
             *map(str, dirs[k::concurrent])], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            env=env | {worker.SPAWNED_VAR: repr(time.time())}) for k in range(concurrent)]
        for proc in procs:
            proc.wait()
        return [_probe_result(run, run_dir) for run, run_dir in zip(runs, dirs, strict=True)]


def _probe_result(run: RunSpec, run_dir: Path) -> Probe:
    try:
        timing = json.loads((run_dir / worker.PROBE_FILE).read_text())
    except (OSError, ValueError):
        try:
            reason = json.loads((run_dir / worker.ERROR_FILE).read_text())["error"]
        except (OSError, ValueError, KeyError):
            reason = "its process ended without a result"
        raise MoescaleError(f"the timing run for the estimate failed ({reason}); "
                            "plan without it (`measure`=False)") from None
    result = json.loads((run_dir / worker.RESULT_FILE).read_text())
    batch = int(run.train["batch_tokens"])
    steps = [batch / p["tokens_per_second"] for p in _log_records(run_dir)
             if p.get("tokens_per_second")]
    step = float(np.median(steps[1:] or steps))  # steady state: the first step warms up
    evals, checkpoints = result["eval_seconds"], result["checkpoint_seconds"]
    fixed = timing["seconds"] - PROBE_STEPS * step - evals - checkpoints
    n_checkpoints = PROBE_STEPS // PROBE_EVERY
    return Probe(run.flops_per_token, max(fixed, 0.0), step, evals / (n_checkpoints + 1),
                 checkpoints / n_checkpoints, timing["startup_seconds"])


def evaluations_and_checkpoints(run: RunSpec) -> tuple[int, int]:
    """How many evaluations (the initial one included) and checkpoints ``run`` makes."""
    from moescale.training.config import TRAIN_DEFAULTS, default_eval_every

    train = TRAIN_DEFAULTS | {k: v for k, v in run.train.items() if v is not None}
    every = train.get("eval_every") or default_eval_every(
        run.steps, int(train["batch_tokens"]), int(train["eval_tokens"]))
    kept = train.get("checkpoint_every") or every
    steps = run.last_step - run.first_step
    return 1 + math.ceil(steps / every), math.ceil(steps / kept)


def _log_records(run_dir: Path) -> list[dict[str, Any]]:
    lines = (run_dir / worker.LOG_FILE).read_text().splitlines()
    return [r for r in map(json.loads, lines) if "event" not in r]


def corpus_train_tokens(train: dict[str, Any]) -> tuple[int | None, str]:
    """Training-split tokens of a run's data, and how the number was obtained."""
    from pathlib import Path

    from moescale.training.corpora import read_manifest, resolve_source, token_file_dtype
    from moescale.training.data import load_text

    share = 1 - float(train.get("val_fraction", 0.05))
    try:
        source = resolve_source(train.get("data", "kjv"), train.get("text_column"))
        if source.kind == "prepared":  # the manifest counts the training split exactly
            return int(read_manifest(Path(source.spec))["tokens"]["train"]), "exact (prepared)"
        if source.kind == "tokens":
            path = source.files[0]
            if path.suffix == ".npy":
                import numpy as np

                n = int(np.load(path, mmap_mode="r").size)
            else:
                vocab = train.get("vocab_size")
                n = path.stat().st_size // token_file_dtype(path, vocab).itemsize
            return int(n * share), "exact (token file)"
        if source.kind == "rows":
            return None, "rows of a table: run moescale data prepare to count its tokens"
        text = load_text(train.get("data", "kjv"))
    except MoescaleError as exc:
        return None, str(exc)
    n_bytes = len(text.encode("utf-8"))
    if train.get("tokenizer", "bytes") == "bytes":
        return int(n_bytes * share), "exact (bytes)"
    return int(n_bytes / BPE_BYTES_PER_TOKEN * share), "estimated (BPE)"


def sweep_plan(spec: SweepSpec, workers: int | None = None, measure: bool = True,
               done: set[str] | frozenset[str] = frozenset(),
               failed: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
    """The ``sweep plan`` object: runs, FLOPs, time estimate and warnings.

    ``flops_total`` is what the sweep spends: with ``[train] reuse = "trunk"`` each trunk up
    to its last branch point plus each branch's cooldown (:attr:`RunSpec.own_flops`);
    ``flops_without_reuse`` what the same runs cost trained from scratch (the sum of their
    budgets' realised FLOPs, as the papers count each run). ``done`` and ``failed`` are ids
    already done or failed in the sweep's store: the estimate covers only the runs left
    (failed runs run again only with ``retry_failed``). ``measure=False`` skips the estimate
    (see the module's description).
    """
    from moescale.sweeps.executors.local import available_cpus

    runs = spec.expand()
    cpus = available_cpus()
    workers = workers or max(cpus // int(spec.resources.get("cpus_per_run", 1)), 1)
    threads = max(cpus // workers, 1)
    corpora: dict[tuple, tuple[int | None, str]] = {}
    rows, warnings = [], []
    for run in runs:
        key = (run.train.get("data", "kjv"), run.train.get("tokenizer", "bytes"),
               run.train.get("val_fraction", 0.05))
        if key not in corpora:
            corpora[key] = corpus_train_tokens(run.train)
        corpus, how = corpora[key]
        epochs = run.tokens / corpus if corpus else None
        if epochs is not None and epochs > 1 and run.role != "trunk":  # said of its branches
            warnings.append(f"run {run.id} ({run.label()}) repeats its corpus: {run.tokens:,} "
                            f"tokens over {corpus:,} training tokens ({how}) = {epochs:.2f} epochs")
        state = "done" if run.id in done else "failed" if run.id in failed else "left"
        rows.append(_row(run, epochs) | {"state": state})
    left = [r for r in runs if r.id not in done and r.id not in failed]
    out = {"name": spec.name, "runs": rows, "n_runs": len(runs),
           "n_done": sum(r.id in done for r in runs), "n_failed": sum(r.id in failed for r in runs),
           "n_left": len(left), "flops_total": sum(r.own_flops for r in runs),
           "flops_without_reuse": sum(r.flops for r in runs if r.role != "trunk"),
           "left_flops": sum(r.own_flops for r in left), "workers": workers,
           "threads_per_run": threads, "estimated_seconds": None,
           "estimate_basis": "not measured", "warnings": warnings}
    if measure and left:
        try:
            out |= _estimate(left, workers, threads)
        except NoTiming as why:
            out["estimate_basis"] = f"not measured: {why}"
    elif measure:
        out |= {"estimated_seconds": 0, "estimate_basis": "nothing left to run"}
    return out


def _estimate(runs: list[RunSpec], workers: int, threads: int) -> dict[str, Any]:
    # up to MAX_MODELS models spread over the sweep's sizes (step time is not monotonic in
    # FLOPs per token at micro scale), as many at once as the sweep runs
    sizes = sorted({r.flops_per_token for r in runs})
    picked = {sizes[round(i)] for i in np.linspace(0, len(sizes) - 1, min(len(sizes), MAX_MODELS))}
    models = [next(r for r in runs if r.flops_per_token == f) for f in sorted(picked)]
    concurrent = min(workers, MAX_PROBES)
    probes = probe_runs([models[i % len(models)] for i in range(max(len(models), concurrent))],
                        threads, concurrent)
    by_size: dict[float, list[Probe]] = {}
    for p in probes:
        by_size.setdefault(p.flops_per_token, []).append(p)
    x = np.log(sorted(by_size))

    def mean(part: str) -> list[float]:
        return [float(np.mean([getattr(p, part) for p in by_size[k]])) for k in sorted(by_size)]

    fixed, step, one_eval, one_ckpt = (mean(part) for part in (
        "fixed_seconds", "step_seconds", "eval_seconds", "checkpoint_seconds"))

    def seconds(run: RunSpec) -> float:
        at = np.log(run.flops_per_token)
        evals, checkpoints = evaluations_and_checkpoints(run)
        per_step = np.exp(np.interp(at, x, np.log(step)))
        return float(np.interp(at, x, fixed) + evals * np.interp(at, x, one_eval)
                     + checkpoints * np.interp(at, x, one_ckpt)
                     + (run.last_step - run.first_step) * per_step) + DRIVER_SECONDS

    startup = float(np.mean([p.startup_seconds for p in probes]))
    return {"estimated_seconds": math.ceil(makespan([seconds(r) for r in runs], workers,
                                                    _waits(runs), startup)),
            "estimate_basis": "timed " + ", ".join(
                f"{s * 1e3:.3g} ms/step + {f:.2g} s per run + {e * 1e3:.3g} ms per evaluation "
                f"at {math.exp(k):.3g} FLOPs/token"
                for k, s, f, e in zip(x, step, fixed, one_eval, strict=True))
            + f"; {startup:.2g} s start-up per worker ({len(probes)} timing runs, "
              f"{concurrent} at once, {threads} thread(s) each)"}


def makespan(durations: list[float], workers: int,
             waits: list[tuple[int, float] | None] | None = None,
             startup: float = 0.0) -> float:
    """Wall time of runs taken in order by ``workers`` slots (each starts the next when free),
    each slot first starting its worker (``startup`` seconds).
    ``waits[i] = (j, share)``: run ``i`` starts no earlier than ``share`` of the way through
    run ``j`` (an earlier one; a branch waits for its trunk's branch point)."""
    slots = [startup] * max(workers, 1)
    start, end = [0.0] * len(durations), [0.0] * len(durations)
    for i, d in enumerate(durations):
        k = int(np.argmin(slots))
        ready = 0.0
        if waits and waits[i] is not None:
            j, share = waits[i]
            ready = start[j] + share * (end[j] - start[j])
        start[i] = max(slots[k], ready)
        end[i] = slots[k] = start[i] + d
    return max(slots)


def _waits(runs: list[RunSpec]) -> list[tuple[int, float] | None]:
    """For each branch, its trunk's position in ``runs`` and the share of the trunk's steps
    before its branch point (a trunk already done: no wait)."""
    where = {r.id: i for i, r in enumerate(runs)}
    out: list[tuple[int, float] | None] = []
    for r in runs:
        trunk = runs[where[r.trunk]] if r.role == "branch" and r.trunk in where else None
        out.append(None if trunk is None else (where[trunk.id], r.first_step / trunk.last_step))
    return out


def _row(run: RunSpec, epochs: float | None) -> dict[str, Any]:
    from moescale.accounting.counting import count

    arch = run.arch()
    c = count(arch, "exact", context=arch.seq_len)
    return {"id": run.id, "budget": run.budget, "d": arch.hidden_size, "L": arch.n_layers,
            "E": arch.n_experts, "K": arch.top_k, "N": c.total_params,
            "N_active": c.active_params, "tokens": run.tokens, "steps": run.steps,
            "flops": run.flops, "own_flops": run.own_flops, "role": run.role,
            "trunk": run.trunk, "branch_step": run.branch_step,
            "flops_per_token": run.flops_per_token, "lr": run.train["lr"],
            "batch_tokens": run.train["batch_tokens"], "epochs": epochs, "tags": run.tags,
            "architecture": run.architecture}
