"""What a sweep will cost before it runs: its runs, total compute, repeated data and an
estimated wall time on this machine (``moescale sweep plan``)."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from moescale.errors import MoescaleError
from moescale.sweeps.spec import RunSpec, SweepSpec

# Fraction of this machine's measured fp32 matmul rate that training reaches, and the fixed
# cost of one run (process start, torch import, data, evaluations). Measured with the
# isoflop-mini example on a 2-core machine (benchmarks/RESULTS.md, sweep section).
TRAINING_EFFICIENCY = 0.25
SECONDS_PER_RUN = 6.0
BPE_BYTES_PER_TOKEN = 3.5  # rough size of a BPE token of English text, for the repeat warning


def matmul_flops_per_second(size: int = 256, threads: int = 1) -> float:
    """fp32 FLOP/s of one ``size``-square matmul loop on this machine (numpy)."""
    a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    b = a.copy()
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 0.2:
        a @ b
        reps += 1
    return 2 * size**3 * reps / (time.perf_counter() - t0)


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


def sweep_plan(spec: SweepSpec, workers: int | None = None) -> dict[str, Any]:
    """The ``sweep plan`` object: runs, total FLOPs, time estimate and warnings."""
    from moescale.sweeps.executors.local import available_cpus

    runs = spec.expand()
    workers = workers or max(available_cpus() // int(spec.resources.get("cpus_per_run", 1)), 1)
    rate = matmul_flops_per_second() * TRAINING_EFFICIENCY
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
    total = sum(r.flops for r in runs)
    seconds = (total / rate + SECONDS_PER_RUN * len(runs)) / min(workers, max(len(runs), 1))
    return {"name": spec.name, "runs": rows, "n_runs": len(runs), "total_flops": total,
            "workers": workers, "estimated_seconds": math.ceil(seconds),
            "estimate_basis": f"{rate / 1e9:.1f} GFLOP/s per worker = {TRAINING_EFFICIENCY:g} × "
                              f"this machine's matmul rate, + {SECONDS_PER_RUN:g} s per run",
            "warnings": warnings}


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
