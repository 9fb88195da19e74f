"""A 6-run micro isoFLOP sweep: the time its runs spend outside their optimizer steps, and its
wall and CPU time, three ways in one run on the same machine.

1. ``fresh``: ``moescale sweep run --runs-per-worker 1``, a fresh worker process per run (the
   behaviour before issue 33's persistent workers);
2. ``kept``: ``moescale sweep run`` as it is now (each worker process trains run after run);
3. ``loop``: a plain loop training the same runs one after another in one process
   (``moescale.training.trainer.train``), the floor for fixed costs.

A run's time outside its steps is its lifetime in the store (claimed → recorded) less the
seconds its optimizer steps took (``result.json``'s ``seconds``): start-up, data, model,
evaluations, checkpoints and the driver's latency. Target (issue 33): at most 6 %.

    python benchmarks/bench_micro_sweep.py [--workers 2] [--rounds 1]

The sweep is examples/isoflop-mini at its two smaller budgets × three smallest widths.
CPU time is the children's user + system time, which a shared machine changes far less than
wall time.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "isoflop-mini" / "sweep.toml"


def micro_spec() -> str:
    """isoflop-mini's spec at its two smaller budgets and three smallest widths (6 runs)."""
    text = re.sub(r"budgets = \[[^\]]*\]", "budgets = [1e11, 2e11]", EXAMPLE.read_text(), count=1)
    head, *points = text.split("[[points]]")
    train = points[-1][points[-1].index("[train]"):]
    return "[[points]]".join([head, *points[:3]]) + "\n" + train


LOOP = """
import json, sys, time
from pathlib import Path
from moescale.sweeps.spec import SweepSpec
from moescale.sweeps.worker import model_options
from moescale.training.config import TrainConfig
from moescale.training.trainer import train
lives = []
for run in SweepSpec.load(sys.argv[1]).expand():
    t0 = time.perf_counter()
    opts = {k: v for k, v in run.train.items() if k in TrainConfig.__dataclass_fields__}
    opts.setdefault("seq_len", run.arch().seq_len)
    r = train(run.arch(), TrainConfig(**opts, seed=run.seed, threads=1,
                                      out=str(Path(sys.argv[2]) / run.id)),
              model_options(run.train))
    lives.append((time.perf_counter() - t0, r.seconds))
print(json.dumps(lives))
"""


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def sweep(folder: Path, spec: Path, workers: int, runs_per_worker: int) -> dict:
    """Run the sweep in a fresh store; wall, CPU and each run's (lifetime, step seconds)."""
    from moescale.sweeps.store import SweepStore

    db = folder / f"sweep-{runs_per_worker}-{time.time_ns()}.db"
    cpu0, t0 = child_cpu(), time.perf_counter()
    subprocess.run([sys.executable, "-c", "from moescale.cli import main; main()", "sweep",
                    "run", str(spec), "--store", str(db), "--workers", str(workers),
                    "--threads", "1", "--runs-per-worker", str(runs_per_worker), "--json"],
                   check=True, capture_output=True)
    wall, cpu = time.perf_counter() - t0, child_cpu() - cpu0
    with SweepStore(db) as store:
        lives = [(r["finished"] - r["started"], r["result"]["seconds"]) for r in store.rows()]
    return {"wall": wall, "cpu": cpu, "lives": lives}


def loop(folder: Path, spec: Path) -> dict:
    import json

    cpu0, t0 = child_cpu(), time.perf_counter()
    out_dir = folder / f"loop-{time.time_ns()}"
    out = subprocess.run([sys.executable, "-c", LOOP, str(spec), str(out_dir)], check=True,
                         capture_output=True, text=True, env=os.environ | {"OMP_NUM_THREADS": "1"})
    wall, cpu = time.perf_counter() - t0, child_cpu() - cpu0
    return {"wall": wall, "cpu": cpu, "lives": json.loads(out.stdout.splitlines()[-1])}


def outside(lives: list) -> tuple[float, float, float]:
    """Share of the runs' total lifetime outside steps; smallest and largest per run."""
    shares = [1 - steps / life for life, steps in lives]
    total = 1 - sum(s for _, s in lives) / sum(life for life, _ in lives)
    return total, min(shares), max(shares)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1, help="interleaved repetitions")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        spec = folder / "micro.toml"
        spec.write_text(micro_spec())
        from moescale.sweeps.spec import SweepSpec

        assert len(SweepSpec.load(spec).expand()) == 6, "the example's layout changed"
        sweep(folder, spec, args.workers, 0)  # warm the token cache and the disk cache
        results: dict[str, list[dict]] = {"fresh": [], "kept": [], "loop": []}
        for _ in range(args.rounds):  # interleaved: a change in load hits every mode alike
            results["fresh"].append(sweep(folder, spec, args.workers, 1))
            results["kept"].append(sweep(folder, spec, args.workers, 0))
            results["loop"].append(loop(folder, spec))
    print(f"6-run micro isoFLOP sweep, {args.workers} workers × 1 thread "
          f"(loop: 1 process × 1 thread), median of {args.rounds}")
    print(f"{'mode':6} {'wall s':>7} {'CPU s':>7} {'steps s':>8} {'outside steps':>14} "
          f"{'per run':>14}")
    for mode, rows in results.items():
        wall = statistics.median(r["wall"] for r in rows)
        cpu = statistics.median(r["cpu"] for r in rows)
        steps = statistics.median(sum(s for _, s in r["lives"]) for r in rows)
        total, low, high = outside([life for r in rows for life in r["lives"]])
        print(f"{mode:6} {wall:7.1f} {cpu:7.1f} {steps:8.1f} {total:13.1%} "
              f"{low:6.1%}–{high:.1%}")


if __name__ == "__main__":
    main()
