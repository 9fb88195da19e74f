"""Fitting speed: moescale's vectorised multi-start against a plain scipy per-start loop.

1. Chinchilla on Epoch AI's 240 points (papers.md §5): the replication's 4,500-point grid.
   Reference (shared/reference/benchmarks.md): ``scipy.optimize.minimize(method="L-BFGS-B",
   jac=True)`` from each grid point in turn, with an analytic gradient of the summed
   log-space Huber objective (δ = 1e-3), default tolerances. Same machine, same run.
   Reported: wall time of each, the speed-up, and both best objectives (must be same or lower).
2. The joint-MoE law (Ludziejewski et al. 2025) with the paper's initialisation grid
   (α, β, a, b, c, δ, γ, ω, ζ: 3^9 = 19,683 starts) on Clark et al.'s final-step runs
   (Dense + S-Base, top-1, every other layer routed); target under 30 s on 2 cores.

    python benchmarks/bench_fit.py [--skip-reference]
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from moescale.fitting import fit_arrays
from moescale.laws import get_law

DATA = Path(os.environ.get("MOESCALE_REFERENCE_DATA",
                           Path(__file__).resolve().parents[1] / "../shared/data"))
DELTA = 1e-3


def epoch_points():
    df = pd.read_csv(DATA / "epoch_chinchilla_svg_extracted_data.csv")
    df = df.sort_values("loss").iloc[:-5]  # drop the 5 highest losses → 240 points
    n = df["Model Size"].to_numpy()
    return n, df["Training FLOP"].to_numpy() / (6 * n), df["loss"].to_numpy()


def reference_objective(x, log_n, log_d, log_y):
    """Summed Huber(δ) of ln-space residuals of E + A/N^α + B/D^β and its gradient, for
    x = (a, b, e, α, β) with A = e^a, B = e^b, E = e^e (Epoch's parametrisation)."""
    a, b, e, alpha, beta = x
    t = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])
    m = t.max(axis=0)
    w = np.exp(t - m)
    s = w.sum(axis=0)
    r = m + np.log(s) - log_y
    w /= s
    quad = np.abs(r) <= DELTA
    value = np.where(quad, 0.5 * r * r, DELTA * (np.abs(r) - 0.5 * DELTA)).sum()
    psi = np.where(quad, r, DELTA * np.sign(r))
    grad = np.array([psi @ w[0], psi @ w[1], psi @ w[2], -psi @ (w[0] * log_n),
                     -psi @ (w[1] * log_d)])
    return value, grad


def scipy_loop(n, d, y):
    args = (np.log(n), np.log(d), np.log(y))
    grid = itertools.product(range(0, 30, 5), range(0, 30, 5), np.arange(-1, 1.5, 0.5),
                             np.arange(0, 2.5, 0.5), np.arange(0, 2.5, 0.5))
    best, starts = np.inf, 0
    for x0 in grid:
        res = minimize(reference_objective, np.array(x0, float), args=args, jac=True,
                       method="L-BFGS-B")
        best, starts = min(best, res.fun), starts + 1
    return best, starts


def bench_chinchilla(skip_reference: bool) -> None:
    n, d, y = epoch_points()
    law = get_law("chinchilla")
    fit_arrays(law, {"N": n[:50], "D": d[:50]}, y[:50], grid={"A": [5], "B": [5]})  # warm imports
    t0 = time.perf_counter()
    ours = fit_arrays(law, {"N": n, "D": d}, y, delta=DELTA)
    t_ours = time.perf_counter() - t0
    print(f"chinchilla, Epoch data ({y.size} points), {ours.n_starts} starts")
    print(f"  moescale : {t_ours:7.2f} s   objective {ours.fun:.10f}   "
          f"({ours.optimizer['screened']} screened)  params " +
          ", ".join(f"{k}={v:.5g}" for k, v in ours.params.items()))
    if skip_reference:
        return
    t0 = time.perf_counter()
    ref, starts = scipy_loop(n, d, y)
    t_ref = time.perf_counter() - t0
    print(f"  scipy loop: {t_ref:7.2f} s   objective {ref:.10f}   ({starts} L-BFGS-B calls, "
          f"{1e3 * t_ref / starts:.1f} ms per start)")
    print(f"  speed-up {t_ref / t_ours:.1f}x; objective moescale − scipy = {ours.fun - ref:+.3e}")


def bench_joint_moe() -> None:
    from moescale.reference_data import clark2022

    runs = clark2022(DATA / "clark2022_routing" / "curves.csv")
    law = get_law("ludziejewski2025")
    v, y = runs.arrays(law.variables), runs.target()
    t0 = time.perf_counter()
    res = fit_arrays(law, v, y)
    seconds = time.perf_counter() - t0
    print(f"joint-MoE law, Clark final-step runs ({y.size} runs), paper grid {res.n_starts} starts")
    print(f"  moescale : {seconds:7.2f} s (target < 30 s)   objective {res.fun:.6g}   "
          f"({res.optimizer['screened']} screened)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-reference", action="store_true", help="Skip the 1-minute scipy loop.")
    args = ap.parse_args()
    import multiprocessing

    print(f"machine: {multiprocessing.cpu_count()} cores; numpy {np.__version__}")
    bench_chinchilla(args.skip_reference)
    bench_joint_moe()


if __name__ == "__main__":
    main()
