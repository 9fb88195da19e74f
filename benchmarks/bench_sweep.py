"""Sweep overhead, measured against the work it organises (same machine, same run).

1. Store overhead per run: claim + heartbeats (one per 10 s of a 60 s run) + result with a
   100-point curve, for 500 runs in one SQLite store, against the wall time of one real
   micro run (the smallest run of the sweep below).
2. The pool against the plain loop: the same micro runs trained one after another with
   ``moescale train`` (torch's default threads, as a new user would) and as one
   ``moescale sweep run`` (workers × 1 thread each). Reported: both wall times and the ratio.

    python benchmarks/bench_sweep.py [--runs 4]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from moescale.sweeps.spec import SweepSpec
from moescale.sweeps.store import SweepStore

SPEC = """
name = "bench-sweep"
budgets = [4e9]
seeds = [SEEDS]
[base]
n_layers = 2
n_heads = 2
vocab_size = 256
seq_len = 64
n_experts = 4
top_k = 1
expert_ffn = 64
dense_ffn = 128
[grid]
hidden_size = [32]
[train]
batch_tokens = 1024
lr = 3e-3
eval_tokens = 8192
"""


def moescale(*args: str, env: dict | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "from moescale.cli import main; main()", *args],
                   check=True, capture_output=True, env=env)
    return time.perf_counter() - t0


def store_overhead(n_runs: int, folder: Path) -> float:
    """Seconds of store work per run (claim, 6 heartbeats, finish with a 100-point curve)."""
    spec_path = folder / "overhead.toml"
    spec_path.write_text(SPEC.replace("SEEDS", ", ".join(map(str, range(n_runs)))))
    runs = SweepSpec.load(spec_path).expand()
    curve = [{"step": i, "tokens": i * 1024, "flops": 1.0, "train_loss": 3.0, "eval_loss": 3.0}
             for i in range(100)]
    with SweepStore(folder / "overhead.db") as store:
        store.add_runs(runs)
        t0 = time.perf_counter()
        while (claim := store.claim()) is not None:
            for _ in range(6):
                store.heartbeat([(claim.run.id, claim.token)])
            store.finish(claim.run.id, claim.token, {"eval_loss": 3.0}, curve)
        return (time.perf_counter() - t0) / len(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4, help="micro runs in the comparison")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        per_run = store_overhead(500, folder)
        spec_path = folder / "bench.toml"
        spec_path.write_text(SPEC.replace("SEEDS", ", ".join(map(str, range(args.runs)))))
        runs = SweepSpec.load(spec_path).expand()
        env = os.environ | {"MOESCALE_CACHE": str(folder / "cache")}
        moescale("train", "--preset", "tiny", "--tokens", "2048", "--batch-tokens", "1024",
                 "--seq-len", "64", "--out", str(folder / "warm"), env=env)  # token cache
        sequential = 0.0
        for i, run in enumerate(runs):
            arch = folder / f"arch{i}.json"
            arch.write_text(json.dumps(run.architecture))
            sequential += moescale(
                "train", "--arch", str(arch), "--tokens", str(run.tokens), "--batch-tokens",
                "1024", "--seq-len", "64", "--lr", "3e-3", "--seed", str(run.seed),
                "--out", str(folder / f"seq{i}"), "--json", env=env)
        pooled = moescale("sweep", "run", str(spec_path), "--store", str(folder / "b.db"),
                          "--json", env=env)
        with SweepStore(folder / "b.db") as store:
            walls = [r["result"]["seconds"] for r in store.rows()]
    print(f"store overhead per run: {per_run * 1e3:.2f} ms "
          f"(claim + 6 heartbeats + result with a 100-point curve, 500 runs)")
    print(f"one micro run trains for {min(walls):.1f}-{max(walls):.1f} s: overhead "
          f"{per_run / min(walls) * 100:.3f} % of the smallest run")
    print(f"{len(runs)} runs one after another with moescale train: {sequential:.1f} s")
    print(f"the same runs as one moescale sweep run: {pooled:.1f} s")
    print(f"ratio sequential / sweep: {sequential / pooled:.2f}x")


if __name__ == "__main__":
    main()
