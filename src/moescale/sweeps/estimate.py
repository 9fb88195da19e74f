"""What a sweep will cost before it runs: its runs, total compute, repeated data and an
estimated wall time on this machine (``moescale sweep plan``)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from moescale.errors import MoescaleError
from moescale.sweeps.spec import RunSpec, SweepSpec

# Fixed cost of one run beyond its training steps: process start, torch import, data, the
# first evaluation (measured on a 2-core machine: about 4 s; benchmarks/RESULTS.md).
SECONDS_PER_RUN = 5.0
EVALUATIONS_PER_RUN = 11  # the trainer's default: initial + 10 during training
BPE_BYTES_PER_TOKEN = 3.5  # rough size of a BPE token of English text, for the repeat warning
TIMED_STEPS = 4


def measure_flops_per_second(run: RunSpec, threads: int = 1) -> float:
    """Training FLOP/s of ``run``'s model on this machine: a few real optimizer steps of the
    trainer with ``threads`` CPU threads (their first step included, so a slight underestimate)."""
    import torch

    from moescale.training.config import TrainConfig
    from moescale.training.trainer import train

    before = torch.get_num_threads()
    options = {k: v for k, v in run.train.items()
               if k not in ("tokens", "eval_every", "checkpoint_every", "eval_tokens")}
    try:
        result = train(run.arch(), TrainConfig(
            **options, tokens=run.train["batch_tokens"] * TIMED_STEPS, threads=threads,
            eval_tokens=run.arch().seq_len, convention=run.convention, seed=run.seed))
    finally:
        torch.set_num_threads(before)
    return result.tokens_per_second * run.flops_per_token


def _run_seconds(run: RunSpec, rate: float) -> float:
    evals = EVALUATIONS_PER_RUN * run.train.get("eval_tokens", 65536) * run.flops_per_token / 3
    return (run.flops + evals) / rate + SECONDS_PER_RUN


def corpus_train_tokens(train: dict[str, Any]) -> tuple[int | None, str]:
    """Training-split tokens of a run's data, and how the number was obtained."""
    from moescale.training.data import load_text

    try:
        text = load_text(train.get("data", "kjv"))
    except MoescaleError as exc:
        return None, str(exc)
    n_bytes = len(text.encode("utf-8"))
    share = 1 - float(train.get("val_fraction", 0.05))
    if train.get("tokenizer", "bytes") == "bytes":
        return int(n_bytes * share), "exact (bytes)"
    return int(n_bytes / BPE_BYTES_PER_TOKEN * share), "estimated (BPE)"


def sweep_plan(spec: SweepSpec, workers: int | None = None,
               measure: bool = True) -> dict[str, Any]:
    """The ``sweep plan`` object: runs, total FLOPs, time estimate and warnings.

    The time estimate times a few real training steps of the smallest and the largest model
    (one thread each, as the local executor runs them) and interpolates the FLOP rate in
    log(FLOPs per token) for the others; ``measure=False`` skips it.
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
        if epochs is not None and epochs > 1:
            warnings.append(f"run {run.id} ({run.label()}) repeats its corpus: {run.tokens:,} "
                            f"tokens over {corpus:,} training tokens ({how}) = {epochs:.2f} epochs")
        rows.append(_row(run, epochs))
    out = {"name": spec.name, "runs": rows, "n_runs": len(runs),
           "total_flops": sum(r.flops for r in runs), "workers": workers,
           "threads_per_run": threads, "estimated_seconds": None,
           "estimate_basis": "not measured", "warnings": warnings}
    if measure and runs:
        out |= _estimate(runs, workers, threads)
    return out


def _estimate(runs: list[RunSpec], workers: int, threads: int) -> dict[str, Any]:
    ends = [min(runs, key=lambda r: r.flops_per_token), max(runs, key=lambda r: r.flops_per_token)]
    rates = {r.flops_per_token: measure_flops_per_second(r, threads) for r in ends}
    x = np.log(sorted(rates))
    y = np.log([rates[k] for k in sorted(rates)])

    def rate(run: RunSpec) -> float:
        return float(np.exp(np.interp(np.log(run.flops_per_token), x, y)))

    seconds = sum(_run_seconds(r, rate(r)) for r in runs) / min(workers, len(runs))
    return {"estimated_seconds": math.ceil(seconds),
            "estimate_basis": "measured " + ", ".join(
                f"{v / 1e9:.2f} GFLOP/s at {k:.3g} FLOPs/token" for k, v in sorted(rates.items()))
            + f" ({threads} thread(s) per run), + {SECONDS_PER_RUN:g} s per run"}


def _row(run: RunSpec, epochs: float | None) -> dict[str, Any]:
    from moescale.counting import count

    arch = run.arch()
    c = count(arch, "exact", context=arch.seq_len)
    return {"id": run.id, "budget": run.budget, "d": arch.hidden_size, "L": arch.n_layers,
            "E": arch.n_experts, "top_k": arch.top_k, "N": c.total_params,
            "N_active": c.active_params, "tokens": run.tokens, "steps": run.steps,
            "flops": run.flops, "flops_per_token": run.flops_per_token, "lr": run.train["lr"],
            "batch_tokens": run.train["batch_tokens"], "epochs": epochs, "tags": run.tags,
            "architecture": run.architecture}
