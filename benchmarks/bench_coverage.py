"""Interval coverage: how honest are moescale's 95 % bootstrap intervals?

1. Synthetic truths. For each law a known truth generates a small sweep (2 seeds per
   configuration, multiplicative noise ``loss·exp(N(0, 0.005))``); ``moescale.fit`` with
   ``bootstrap`` refits gives ``interval(kind="mean")`` and ``interval(kind="run")``. Checked,
   over ``--trials`` data seeds: does the mean interval at 3× beyond the data (3× the largest
   size and 3× the largest token count) cover the true mean; does the run interval there cover
   a fresh noisy draw; do the run intervals at the sweep's own configurations cover fresh
   draws there. Truths:

   - ``chinchilla``: the ``hoffmann2022`` preset; N ∈ 5e7…1e9 (4), D ∈ 1e9…2e10 (4);
   - ``ludziejewski2025``: its preset (Table 3); N_active ∈ 1e8…1e9 (4), D ∈ 2e9…2e10 (3),
     E ∈ {1, 4, 8, 16}; the 3× point is at E = 16;
   - ``clark2022`` (no preset): the law fitted once to Clark et al.'s final-step runs (Dense +
     S-Base, top-1, every other layer routed, ``loss_validation``); N ∈ 2e7…4e8 (4),
     E ∈ {1, 4, 16, 64}; the 3× point is 3× the largest N at E = 64 (the law has no D).

   The run interval uses the seed noise the sweep's seed pairs measure (the frame has a
   ``seed`` column); the column "run, RMSE σ" is the same interval widened by the training
   RMSE instead (what a frame without seed pairs gets), from the same fit.

2. Public data, largest runs held out: fit on the rest (bootstrap), then the share of held-out
   runs inside their 95 % run and mean intervals, the intervals' median width and the ratio
   |held-out error| / interval half-width.

    python benchmarks/bench_coverage.py [--quick] [--trials 20] [--replicates 200]
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import moescale  # noqa: E402
from moescale.errors import MoescaleError  # noqa: E402
from moescale.fitting import support  # noqa: E402
from moescale.fitting.holdout import holdout_mask  # noqa: E402
from moescale.laws import get_law  # noqa: E402
from moescale.runs import RunTable  # noqa: E402

DATA = Path(os.environ.get("MOESCALE_REFERENCE_DATA",
                           Path(__file__).resolve().parents[1] / "../shared/data"))
NOISE = 0.005   # multiplicative noise of a run's loss: loss·exp(N(0, NOISE))
SEEDS = 2       # seeds per configuration in a synthetic sweep
BEYOND = 3.0    # the extrapolation point: this many times the largest size and token count


# ----- part 1: synthetic truths ----------------------------------------------------------------
def clark_frame() -> pd.DataFrame:
    """Clark et al.'s final-step runs: Dense + S-Base, top-1, routing every other layer."""
    c = pd.read_csv(DATA / "clark2022_routing/curves.csv")
    last = c.loc[c.groupby("hyper_id")["step"].idxmax()]
    keep = (last["router_type"].isin(["Dense", "S-Base"]) & (last["k"] == 1)
            & np.isclose(last["routing_frequency"], 0.5))
    return last[keep].reset_index(drop=True)


def clark_table() -> RunTable:
    return RunTable.from_frame(clark_frame()[["dense_parameter_count", "num_experts", "seed",
                                              "loss_validation", "router_type"]],
                               mapping={"dense_parameter_count": "N", "num_experts": "E",
                                        "loss_validation": "loss"}, source="clark2022 final step")


def synthetic_cases() -> list[dict]:
    clark_truth = moescale.fit("clark2022", clark_table()).params
    return [
        dict(law="chinchilla", truth=get_law("chinchilla").preset("hoffmann2022").values,
             truth_name="hoffmann2022 preset",
             grid={"N": np.geomspace(5e7, 1e9, 4), "D": np.geomspace(1e9, 2e10, 4)},
             far={"N": BEYOND * 1e9, "D": BEYOND * 2e10}),
        dict(law="ludziejewski2025",
             truth=get_law("ludziejewski2025").preset("ludziejewski2025").values,
             truth_name="ludziejewski2025 preset",
             grid={"N_active": np.geomspace(1e8, 1e9, 4), "D": np.geomspace(2e9, 2e10, 3),
                   "E": np.array([1.0, 4.0, 8.0, 16.0])},
             far={"N_active": BEYOND * 1e9, "D": BEYOND * 2e10, "E": 16.0}),
        dict(law="clark2022", truth=clark_truth, truth_name="fit to Clark et al. (final step)",
             grid={"N": np.geomspace(2e7, 4e8, 4), "E": np.array([1.0, 4.0, 16.0, 64.0])},
             far={"N": BEYOND * 4e8, "E": 64.0}),
    ]


def configs(grid: dict) -> dict[str, np.ndarray]:
    rows = list(itertools.product(*grid.values()))
    return {k: np.array([r[i] for r in rows], float) for i, k in enumerate(grid)}


def draw(rng, mean):
    return np.asarray(mean) * np.exp(rng.normal(0.0, NOISE, np.shape(mean)))


def rmse_noise(res) -> support.SeedNoise:
    """The noise a frame without seed pairs gets: training RMSE, n_train − k dof."""
    dof = int(res.data["n_train"]) - len(res.params) + len(res.fixed)
    return support.SeedNoise(float(res.train["rmse"]), 0, dof, res.ci_level)


def one_trial(case: dict, trial: int, replicates: int) -> dict:
    law = get_law(case["law"])
    rng = np.random.default_rng(10_000 + 97 * trial + len(case["law"]))
    cfg = configs(case["grid"])
    mean = law.predict(case["truth"], cfg)
    frame = pd.DataFrame({**{k: np.repeat(v, SEEDS) for k, v in cfg.items()},
                          "seed": np.tile(np.arange(SEEDS), mean.size),
                          "loss": draw(rng, np.repeat(mean, SEEDS))})
    res = moescale.fit(case["law"], frame, bootstrap=replicates, seed=trial)
    out = {"n": len(frame), "converged": res.bootstrap_converged, "sigma": res.noise().sd,
           "rmse": res.train["rmse"]}
    if res.interval_refused:
        return {**out, "refused": True}
    far = {k: np.array(v, float) for k, v in case["far"].items()}
    mu_far = float(law.predict(case["truth"], far))
    point = float(law.predict(res.params, far))
    lo, hi = (float(x) for x in res.interval(far, kind="mean"))
    rlo, rhi = (float(x) for x in res.interval(far, kind="run"))
    qlo, qhi = (float(x) for x in support.run_interval(point, lo, hi, rmse_noise(res)))
    y_far = float(draw(rng, mu_far))
    ilo, ihi = res.interval(cfg, kind="run")
    y_in = draw(rng, mean)
    return {**out, "refused": False, "mu_far": mu_far,
            "mean_cov": lo <= mu_far <= hi, "run_cov": rlo <= y_far <= rhi,
            "run_rmse_cov": qlo <= y_far <= qhi,
            "in_cov": int(np.sum((ilo <= y_in) & (y_in <= ihi))), "in_n": int(y_in.size),
            "mean_w": hi - lo, "run_w": rhi - rlo, "in_w": float(np.median(ihi - ilo)),
            "err_ratio": abs(point - mu_far) / max((hi - lo) / 2, 1e-300),
            "point_outside": not lo <= point <= hi}


def part1(trials: int, replicates: int) -> list[dict]:
    print(f"Part 1 - synthetic truths: {trials} trials per law, {replicates} bootstrap refits, "
          f"noise loss*exp(N(0, {NOISE})), {SEEDS} seeds per configuration, "
          f"extrapolation at {BEYOND:g}x the largest size and tokens")
    rows = []
    for case in synthetic_cases():
        t0 = time.perf_counter()
        res = [one_trial(case, t, replicates) for t in range(trials)]
        secs = time.perf_counter() - t0
        ok = [r for r in res if not r["refused"]]
        row = dict(law=case["law"], truth=case["truth_name"], runs=res[0]["n"], trials=trials,
                   refused=len(res) - len(ok), secs=secs,
                   conv=float(np.median([r["converged"] for r in res])),
                   sigma=float(np.median([r["sigma"] for r in res])),
                   rmse=float(np.median([r["rmse"] for r in res])))
        if ok:
            mu = float(np.median([r["mu_far"] for r in ok]))
            row.update(
                mu_far=mu, ok=len(ok),
                mean_cov=sum(r["mean_cov"] for r in ok), run_cov=sum(r["run_cov"] for r in ok),
                run_rmse_cov=sum(r["run_rmse_cov"] for r in ok),
                in_cov=sum(r["in_cov"] for r in ok), in_n=sum(r["in_n"] for r in ok),
                mean_w=float(np.median([r["mean_w"] for r in ok])),
                run_w=float(np.median([r["run_w"] for r in ok])),
                in_w=float(np.median([r["in_w"] for r in ok])),
                err_ratio=float(np.median([r["err_ratio"] for r in ok])),
                point_outside=sum(r["point_outside"] for r in ok))
        rows.append(row)
        print(f"  {case['law']}: {secs:.1f} s")
    print()
    print("| law (truth) | runs | mean @3x covers truth | run @3x covers a draw | "
          "run @3x, RMSE sigma | run in range | median mean width @3x | median run width @3x "
          "| median run width in range | median abs err/half-width @3x | fit outside own mean "
          "interval @3x |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if "ok" not in r:
            print(f"| {r['law']} ({r['truth']}) | {r['runs']} | every interval refused |")
            continue
        k = r["ok"]
        ref = f" ({r['refused']} refused)" if r["refused"] else ""
        print(f"| {r['law']} ({r['truth']}) | {r['runs']} | {r['mean_cov']}/{k}{ref} | "
              f"{r['run_cov']}/{k} | {r['run_rmse_cov']}/{k} | {r['in_cov']}/{r['in_n']} "
              f"({r['in_cov'] / r['in_n']:.1%}) | {r['mean_w']:.4f} ({r['mean_w'] / r['mu_far']:.2%})"
              f" | {r['run_w']:.4f} | {r['in_w']:.4f} | {r['err_ratio']:.2f} | "
              f"{r['point_outside']}/{k} |")
    print()
    for r in rows:
        print(f"  {r['law']}: true loss @3x ~ {r.get('mu_far', float('nan')):.4f}, true run sd "
              f"there ~ {NOISE * r.get('mu_far', float('nan')):.4f}; median seed sigma "
              f"{r['sigma']:.4f}, median train RMSE {r['rmse']:.4f}; median converged refits "
              f"{r['conv']:.0f}/{replicates}; {r['secs']:.1f} s")
    return rows


# ----- part 2: public data, largest runs held out ----------------------------------------------
def datasets() -> list[dict]:
    out = []

    def add(name, law, holdout, load, note=""):
        try:
            table = load()
        except (OSError, ValueError, KeyError, MoescaleError) as exc:
            out.append(dict(name=name, error=f"{type(exc).__name__}: {exc}"))
            return
        out.append(dict(name=name, law=law, holdout=holdout, table=table, note=note))

    def epoch():
        t = RunTable.from_file(DATA / "epoch_chinchilla_svg_extracted_data.csv",
                               mapping={"Model Size": "N", "Training FLOP": "C"})
        keep = np.argsort(t.frame["loss"].to_numpy())[:-5]  # as bench_fit / Epoch: 240 points
        return t.subset(np.sort(keep))

    def porian():
        t = RunTable.from_file(DATA / "porian2024_isoflop_points.csv",
                               mapping={"n_params": "N"})
        f = t.frame
        return t.subset(((f["source_file"] == "summary_df") & (f["decay"] == "chinchilla")
                         & (f["loss_split"] == "val")).to_numpy())

    def porian_large():
        t = porian()
        return t.subset((t.frame["C"] >= 1e17).to_numpy())

    def openlm():
        t = RunTable.from_file(DATA / "gadre2024_openlm_scaling/openlm_scaling_losses.csv",
                               mapping={"params": "N", "tokens": "D", "loss_c4_val": "loss"})
        return t.subset((t.frame["dataset"] == "c4_original").to_numpy())

    def gemstones():
        return RunTable.from_file(DATA / "mcleish2025_gemstones/wandb_df_for_fitting_cool_end.jsonl",
                                  mapping={"params_active_precise": "N", "tokens": "D",
                                           "final_loss": "loss"})

    add("Epoch Chinchilla (SVG points)", "chinchilla", "largest-C:10%", epoch,
        "240 points (5 highest losses dropped, as bench_fit)")
    add("Clark et al. routing (Dense+S-Base, top-1, final step)", "clark2022", "largest-N:1",
        clark_table, "loss_validation; 3 dense seeds at 132M give the seed noise (2 dof)")
    add("Porian et al. isoFLOP (rw, cosine to end, val)", "chinchilla", "largest-C:2", porian,
        "source summary_df, decay=chinchilla, loss_split=val")
    add("Porian et al. isoFLOP, budgets >= 1e17 only", "chinchilla", "largest-C:2",
        porian_large, "the same without the 4 smallest budgets (far off the law)")
    add("open_lm over-training (c4_original, C4 val)", "chinchilla", "largest-N:2", openlm,
        "the 1.4B and 6.9B models held out, as Gadre et al.")
    add("Gemstones (cool_end, every cooldown point)", "chinchilla", "largest-N:3", gemstones,
        "10 cooled checkpoints per model; final points alone share one D, so B, beta unfittable")
    return out


def part2(replicates: int) -> list[dict]:
    print(f"Part 2 - public data, largest runs held out: {replicates} bootstrap refits, "
          "95 % intervals")
    rows = []
    for ds in datasets():
        if "error" in ds:
            rows.append(ds)
            continue
        t0 = time.perf_counter()
        table, law = ds["table"], get_law(ds["law"])
        try:
            res = moescale.fit(ds["law"], table, holdout=ds["holdout"], bootstrap=replicates)
        except MoescaleError as exc:
            rows.append({**ds, "error": f"fit failed: {exc}"})
            continue
        test = holdout_mask(table.frame, ds["holdout"])
        v = table.subset(test).arrays(law.variables)
        y = table.subset(test).target(law.target)
        row = {**ds, "n_train": res.data["n_train"], "n_test": int(test.sum()),
               "rmse_train": res.train["rmse"], "rmse_test": res.holdout["rmse"],
               "noise": res.noise(), "warnings": res.warnings}
        if res.interval_refused:
            rows.append({**row, "refused": res.interval_refused})
            continue
        pred = law.predict(res.params, v)
        lo, hi = res.interval(v, kind="mean")
        rlo, rhi = res.interval(v, kind="run")
        err = np.abs(y - pred)
        row.update(refused=None, secs=time.perf_counter() - t0,
                   run_in=int(np.sum((rlo <= y) & (y <= rhi))),
                   mean_in=int(np.sum((lo <= y) & (y <= hi))),
                   mean_w=float(np.median(hi - lo)), run_w=float(np.median(rhi - rlo)),
                   ratio_run=float(np.median(err / ((rhi - rlo) / 2))),
                   ratio_mean=float(np.median(err / np.maximum((hi - lo) / 2, 1e-300))),
                   bias=float(np.mean(pred - y)))
        rows.append(row)
    print()
    print("| data (law, held out) | train / held out | train RMSE | held-out RMSE | "
          "mean bias (pred - obs) | run sigma (source) | in run interval | in mean interval | "
          "median run width | median mean width | median abs err / run half-width | "
          "median abs err / mean half-width |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if "error" in r:
            print(f"| {r['name']} | not read: {r['error']} |")
            continue
        head = f"| {r['name']} ({r['law']}, `{r['holdout']}`) | {r['n_train']} / {r['n_test']} "
        if r.get("refused"):
            print(head + f"| {r['rmse_train']:.4f} | {r['rmse_test']:.4f} | interval refused: "
                  f"{r['refused']} |")
            continue
        nz = r["noise"]
        src = f"seed, {nz.dof} dof" if nz.n_configs else f"train RMSE, {nz.dof} dof"
        n = r["n_test"]
        print(head + f"| {r['rmse_train']:.4f} | {r['rmse_test']:.4f} | {r['bias']:+.4f} | "
              f"{nz.sd:.4f} ({src}) | {r['run_in']}/{n} ({r['run_in'] / n:.0%}) | "
              f"{r['mean_in']}/{n} ({r['mean_in'] / n:.0%}) | {r['run_w']:.4f} | "
              f"{r['mean_w']:.4f} | {r['ratio_run']:.2f} | {r['ratio_mean']:.1f} |")
    print()
    for r in rows:
        if "error" in r:
            continue
        print(f"  {r['name']}: {r['note']}; {r.get('secs', float('nan')):.1f} s; "
              f"{len(r['warnings'])} warning(s)")
        for w in r["warnings"]:
            print(f"      - {w[:160]}")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="5 trials, 100 refits")
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--replicates", type=int, default=200)
    ap.add_argument("--skip-synthetic", action="store_true")
    ap.add_argument("--skip-public", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.trials, args.replicates = 5, 100
    t0 = time.perf_counter()
    print(f"moescale {getattr(moescale, '__version__', '?')}, numpy {np.__version__}, "
          f"pandas {pd.__version__}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    if not args.skip_synthetic:
        part1(args.trials, args.replicates)
        print()
    if not args.skip_public:
        part2(args.replicates)
    print(f"\ntotal {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
