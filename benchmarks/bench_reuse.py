"""Trunk reuse against independent WSD runs on one micro isoFLOP grid, both campaigns timed on
this machine in this run.

    python benchmarks/bench_reuse.py [--workers 2] [--seeds 0 1] [--out DIR]

The grid: 3 budgets spaced 3x × 5 sizes of a 2-layer MoE (4 experts, top-1) on the KJV bytes,
2 seeds. Campaign A trains every run from scratch with WSD (20 % linear cooldown); campaign B
is the same spec with ``[train] reuse = "trunk"``. Reported: wall time and FLOPs spent by each,
the per-budget isoFLOP optima (parabola in log N, ``moescale sweep analyze``) of both against
the seed noise of the runs (pooled s.d. of runs that differ only in seed), and the Chinchilla
law fitted to each (50 bootstrap refits).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

SPEC = """
name = "{name}"
budgets = [3e10, 9e10, 2.7e11]
seeds = {seeds}

[base]
n_layers = 2
first_dense_layers = 1
n_heads = 2
vocab_size = 256
seq_len = 128
n_experts = 4
top_k = 1

[[points]]
hidden_size = 8
expert_ffn = 16
dense_ffn = 32
[[points]]
hidden_size = 12
expert_ffn = 24
dense_ffn = 48
[[points]]
hidden_size = 16
expert_ffn = 32
dense_ffn = 64
[[points]]
hidden_size = 24
expert_ffn = 48
dense_ffn = 96
[[points]]
hidden_size = 32
expert_ffn = 64
dense_ffn = 128

[train]
batch_tokens = 2048
lr = 3e-3
eval_tokens = 16384
decay_fraction = 0.2
{reuse}
"""


def campaign(folder: Path, name: str, seeds: list[int], reuse: bool, workers: int):
    from moescale.sweeps.executors.local import LocalExecutor
    from moescale.sweeps.export import runs_frame
    from moescale.sweeps.runner import run_sweep
    from moescale.sweeps.spec import SweepSpec
    from moescale.sweeps.store import SweepStore

    path = folder / f"{name}.toml"
    path.write_text(SPEC.format(name=name, seeds=seeds,
                                reuse='reuse = "trunk"' if reuse else ""))
    spec = SweepSpec.load(path)
    t0 = time.perf_counter()
    out = run_sweep(spec, folder / f"{name}.db", LocalExecutor(workers=workers, threads=1))
    seconds = time.perf_counter() - t0
    with SweepStore(folder / f"{name}.db") as store:
        frame = runs_frame(store)
    return frame, seconds, out.flops, sum(r.flops for r in spec.expand() if r.role != "trunk")


def summary(frame):
    from moescale import fitting
    from moescale.runs import RunTable
    from moescale.sweeps.analyze import analyze
    from moescale.sweeps.experts import seed_noise

    optima = {o.budget: o for o in analyze(frame, x="N", bootstrap=0).budgets}
    noise = seed_noise(frame)
    fit = fitting.fit("chinchilla", RunTable.from_frame(frame.select_dtypes("number")),
                      bootstrap=50, seed=0)
    return optima, noise, fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    folder = args.out or Path(tempfile.mkdtemp(prefix="bench-reuse-"))
    folder.mkdir(parents=True, exist_ok=True)
    results = {}
    for name, reuse in (("independent", False), ("reuse", True)):
        frame, seconds, spent, counted = campaign(folder, name, args.seeds, reuse, args.workers)
        results[name] = (frame, seconds, spent, counted, *summary(frame))
    (fa, ta, sa, ca, oa, na, fit_a), (fb, tb, sb, cb, ob, nb, fit_b) = (
        results["independent"], results["reuse"])
    print(f"folder {folder}; {len(fa)} runs per campaign, seeds {args.seeds}, "
          f"{args.workers} workers × 1 thread")
    print(f"independent WSD: {ta:7.1f} s, {sa:.3g} FLOPs spent")
    print(f"trunk reuse:     {tb:7.1f} s, {sb:.3g} FLOPs spent ({sb / sa:.3f}× the FLOPs, "
          f"{tb / ta:.3f}× the wall time); runs counted at {cb:.3g} FLOPs as independent "
          f"({ca:.3g})")
    sigma = max(na.sd or 0.0, nb.sd or 0.0)
    print(f"seed noise: s.d. {na.sd:.4f} (independent), {nb.sd:.4f} (reuse); a difference "
          f"of two per-budget optima is within the noise below 2·√2·σ = {2 * 2**0.5 * sigma:.4f}")
    print(f"{'budget':>10} {'N_opt indep':>12} {'N_opt reuse':>12} {'L_opt indep':>12} "
          f"{'L_opt reuse':>12} {'|ΔL|':>8}")
    for budget in sorted(oa):
        a, b = oa[budget], ob[budget]
        if a.x_opt is None or b.x_opt is None:
            print(f"{budget:10.3g}  no interior optimum ({a.status} / {b.status}); best runs "
                  f"{_best(fa, budget)} / {_best(fb, budget)}")
            continue
        print(f"{budget:10.3g} {a.x_opt:12.4g} {b.x_opt:12.4g} {a.loss_opt:12.4f} "
              f"{b.loss_opt:12.4f} {abs(a.loss_opt - b.loss_opt):8.4f}")
    print("Chinchilla fit (50 bootstrap refits, 95 % intervals):")
    for name in ("E", "A", "alpha", "B", "beta"):
        ia, ib = fit_a.ci.get(name), fit_b.ci.get(name)
        print(f"  {name:>5}: independent {fit_a.params[name]:9.4g} {_interval(ia)}   "
              f"reuse {fit_b.params[name]:9.4g} {_interval(ib)}")


def _best(frame, budget: float) -> str:
    """The lowest mean loss over seeds at ``budget`` and its N."""
    at = frame[frame["budget"] == budget].groupby("N")["loss"].mean()
    return f"N={at.idxmin():.4g} L={at.min():.4f}"


def _interval(ci) -> str:
    return "[-, -]" if not ci else f"[{ci[0]:.4g}, {ci[1]:.4g}]"


if __name__ == "__main__":
    main()
