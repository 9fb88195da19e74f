"""Adaptive sweeps against a regular grid, on a synthetic campaign whose truth is known.

Truth: the Chinchilla law with Hoffmann et al.'s coefficients; each run's loss is the law's
times ``exp(ε)``, ``ε ~ N(0, 0.01²)``. Start: isoFLOP grids at 1e17, 3e17 and 1e18 FLOPs
(6 sizes each). Target: ``N_opt`` at 1e21 FLOPs (95 % bootstrap interval of ``ln N_opt``).
Each round adds runs in two ways with the same FLOPs:

- grid: the next isoFLOP budget of the regular ladder (3e18, 1e19, 3e19), 6 sizes;
- suggested: ``moescale.sweeps.suggest`` picks up to 6 runs from sizes 1e7…1e11 × budgets
  1e17…(that round's grid budget), within the FLOPs the grid round spends.

After every round both campaigns are refitted (100 bootstrap refits). Printed: the interval
width against FLOPs spent for each, per seed and averaged.

    python benchmarks/bench_adaptive.py [--seeds 3] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from moescale import fitting
from moescale.laws import get_law
from moescale.laws.chinchilla import compute_optimal
from moescale.runs import RunTable
from moescale.sweeps.suggest import design, held_variables, quantity, to_theta

LAW = get_law("chinchilla")
TRUTH = LAW.presets["hoffmann2022"].values
TARGET = 1e21
NOISE = 0.01
LADDER = [1e17, 3e17, 1e18, 3e18, 1e19, 3e19]
FAST = False  # --fast: a 32-start grid instead of the law's published one
GRID = {"A": (5.0, 7.0), "B": (6.0, 8.0), "E": (0.5, 1.0), "alpha": (0.3, 0.4),
        "beta": (0.25, 0.35)}  # a small start grid in fit space (ln A, ln B, ln E): fast refits


def isoflop(budget: float) -> pd.DataFrame:
    n_opt, _ = compute_optimal(budget, TRUTH)
    n = n_opt * np.geomspace(0.25, 4, 6)
    return pd.DataFrame({"N": n, "D": budget / (6 * n), "C": np.full(6, budget)})


def observe(frame: pd.DataFrame, rng) -> pd.DataFrame:
    loss = LAW.predict(TRUTH, {"N": frame["N"].to_numpy(), "D": frame["D"].to_numpy()})
    return frame.assign(loss=loss * np.exp(rng.normal(0, NOISE, len(frame))))


def width(frame: pd.DataFrame, seed: int):
    table = RunTable.from_frame(frame[["N", "D", "C", "loss"]], source="synthetic")
    fit = fitting.fit("chinchilla", table, bootstrap=100, seed=seed, grid=GRID if FAST else None)
    theta = np.array([to_theta(LAW, b) for b in fit.bootstrap_params])
    q = quantity(LAW, theta[np.isfinite(theta).all(axis=1)], TARGET, {}, "allocation")
    lo, hi = np.quantile(q[np.isfinite(q)], [0.025, 0.975])
    return hi - lo, fit, table


def candidates(max_budget: float) -> tuple[dict, np.ndarray]:
    n, c = np.meshgrid(np.geomspace(1e7, 1e11, 25), np.geomspace(1e17, max_budget, 8))
    n, c = n.ravel(), c.ravel()
    return {"N": n, "D": c / (6 * n)}, c


def one_seed(seed: int, rounds: int) -> list[tuple[float, float, float, float]]:
    rng = np.random.default_rng(seed)
    base = observe(pd.concat([isoflop(b) for b in LADDER[:3]], ignore_index=True), rng)
    grid_frame, adaptive = base.copy(), base.copy()
    rows = []
    for r in range(rounds):
        budget = LADDER[3 + r]
        grid_frame = pd.concat([grid_frame, observe(isoflop(budget), rng)], ignore_index=True)
        spend = 6 * budget
        w_prev, fit, table = width(adaptive, seed)
        theta = to_theta(LAW, fit.params)
        boot = np.array([to_theta(LAW, b) for b in fit.bootstrap_params])
        boot = boot[np.isfinite(boot).all(axis=1)]
        resid = np.log(table.target()) - LAW.log_loss(fit.params, table.arrays(LAW.variables))
        cand, cost = candidates(budget)
        chosen, _, _ = design(LAW, theta, boot, float(np.mean(resid**2)), cand, cost, TARGET,
                              held_variables(LAW, table.frame), "allocation", n=6,
                              budget_flops=spend)
        new = pd.DataFrame({"N": cand["N"][chosen], "D": cand["D"][chosen], "C": cost[chosen]})
        adaptive = pd.concat([adaptive, observe(new, rng)], ignore_index=True)
        w_grid, _, _ = width(grid_frame, seed)
        w_adapt, _, _ = width(adaptive, seed)
        rows.append((grid_frame["C"].sum(), w_grid, adaptive["C"].sum(), w_adapt))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fast", action="store_true", help="small start grid (quick check)")
    parser.add_argument("--plot", default=None, metavar="PNG",
                        help="draw interval width against FLOPs spent (both campaigns)")
    parser.add_argument("--json", default=None, metavar="FILE",
                        help="write the comparison for `moescale report --adaptive FILE`")
    args = parser.parse_args()
    global FAST
    FAST = args.fast
    n_true, _ = compute_optimal(TARGET, TRUTH)
    print(f"target: N_opt at C = {TARGET:.0e} (truth {n_true:.3g}); width = 95 % bootstrap "
          "interval of ln N_opt")
    t0 = time.perf_counter()
    table = np.array([one_seed(s, args.rounds) for s in range(args.seeds)])  # (seeds, rounds, 4)
    for s in range(args.seeds):
        for r in range(args.rounds):
            cg, wg, ca, wa = table[s, r]
            print(f"seed {s} round {r + 1}: grid {cg:.3g} FLOPs width {wg:.3f} | "
                  f"suggested {ca:.3g} FLOPs width {wa:.3f}")
    mean = table.mean(axis=0)
    for r in range(args.rounds):
        cg, wg, ca, wa = mean[r]
        print(f"mean round {r + 1}: grid {cg:.3g} FLOPs → width {wg:.3f}; suggested "
              f"{ca:.3g} FLOPs → width {wa:.3f}; ratio grid/suggested {wg / wa:.2f}x")
    print(f"({time.perf_counter() - t0:.0f} s)")
    if args.plot:
        plot(table, args.plot)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "rounds": table.tolist(), "target_compute": TARGET, "truth_N_opt": n_true,
            "quantity": "95 % interval width of ln N_opt at 1e21 FLOPs",
            "columns": ["grid FLOPs", "grid width", "suggested FLOPs", "suggested width"]},
            indent=1))
        print(f"wrote {args.json}")


def plot(table: np.ndarray, path: str) -> None:
    """The report's adaptive figure (interval width against FLOPs spent), saved to ``path``."""
    from moescale.reporting.adaptive import adaptive_figure

    adaptive_figure({"rounds": table.tolist()}).savefig(path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
