"""What the runs support (moescale.fitting.support): the same runs give the same intervals in
any order, intervals cover the truth at their rate, seed noise comes from runs identical but
for the seed and its bounds use Student's t, a leaderboard says when no law extrapolates, and
published coefficients warn beyond their papers' runs. Golden values are a t table's and the
papers' (papers.md), never the code's."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

import moescale
from conftest import ROOT, run_cli
from moescale.fitting import support
from moescale.fitting.selection import select_laws
from moescale.laws import get_law
from moescale.runs import RunTable
from moescale.sweeps.analyze import analyze
from moescale.sweeps.experts import compare_experts

LAW = get_law("chinchilla")
SIZES, TOKENS = np.geomspace(1e8, 3e9, 6), np.geomspace(2e9, 6e10, 4)
BEYOND = {"N": 3 * 3e9, "D": 3 * 6e10}  # 3× the largest size and tokens of the runs


def chinchilla_sweep(seed: int, noise: float = 0.005, seeds: int = 2) -> pd.DataFrame:
    """Every size × token count run with ``seeds`` seeds; Hoffmann's law times e^N(0, noise)."""
    rng = np.random.default_rng(seed)
    N, D = (a.ravel() for a in np.meshgrid(SIZES, TOKENS))
    N, D = np.repeat(N, seeds), np.repeat(D, seeds)
    mu = LAW.predict("hoffmann2022", {"N": N, "D": D})
    return pd.DataFrame({"N": N, "D": D, "C": 6 * N * D, "seed": np.tile(range(seeds), N.size // seeds),
                         "loss": mu * np.exp(rng.normal(0, noise, N.size))})


def shuffled(frame: pd.DataFrame, seed: int = 7) -> pd.DataFrame:
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


# ----- the same runs, any order ---------------------------------------------------------------
def test_shuffled_runs_give_identical_fit_intervals():
    frame = chinchilla_sweep(0)
    a = moescale.fit("chinchilla", frame, bootstrap=60, seed=3)
    b = moescale.fit("chinchilla", shuffled(frame), bootstrap=60, seed=3)
    assert a.ci.keys() == b.ci.keys() and a.ci
    for k in a.ci:
        assert b.ci[k] == pytest.approx(a.ci[k], rel=1e-7), k
    assert all(math.isfinite(v) for v in a.optimizer["ci_mc_error"].values())


def test_shuffled_runs_give_identical_analyze_intervals():
    rng = np.random.default_rng(2)
    rows = [{"budget": c, "N": n, "D": c / (6 * n), "seed": 0,
             "loss": float(LAW.predict("hoffmann2022", {"N": n, "D": c / (6 * n)}))
             * math.exp(rng.normal(0, 0.004))}
            for c in (1e19, 1e20) for n in np.geomspace(2e8, 4e9, 7)]
    frame = pd.DataFrame(rows)
    a, b = analyze(frame, x="N", seed=1), analyze(shuffled(frame), x="N", seed=1)
    got = [(o.x_opt_ci, o.x_opt_ci_mc_error) for o in a.budgets]
    assert all(ci is not None for ci, _ in got)
    assert got == [(o.x_opt_ci, o.x_opt_ci_mc_error) for o in b.budgets]


def test_shuffled_runs_give_identical_experts_intervals():
    frame = pd.read_csv(ROOT / "examples" / "experts-micro" / "runs.csv")
    a = compare_experts(frame, bootstrap=300, seed=0)
    b = compare_experts(shuffled(frame), bootstrap=300, seed=0)
    assert [(m.ci, m.delta_ci) for m in a.multipliers] == [(m.ci, m.delta_ci) for m in b.multipliers]
    assert all(m.ci_mc_error is not None for m in a.multipliers)


# ----- coverage ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_intervals_cover_the_truth_beyond_the_runs_and_new_runs_at_their_rate():
    """20 synthetic sweeps (0.5 % noise, two seeds per configuration): the 95 % interval of the
    law's mean covers the true mean 3× beyond the runs in at least 16 of 20, and 95 % intervals
    for a new run cover fresh noisy runs (in range and 3× beyond) at about their rate."""
    rng = np.random.default_rng(99)
    mean_hits, run_hits, draws = 0, 0, 0
    for trial in range(20):
        fit = moescale.fit("chinchilla", chinchilla_sweep(trial), bootstrap=100, seed=0)
        truth = float(LAW.predict("hoffmann2022", BEYOND))
        lo, hi = fit.interval(BEYOND)
        mean_hits += lo <= truth <= hi
        for n, d in ((3e8, 1e10), (1e9, 3e10), (2e9, 5e9), BEYOND.values()):
            x = {"N": n, "D": d}
            new = float(LAW.predict("hoffmann2022", x)) * math.exp(rng.normal(0, 0.005))
            lo, hi = fit.interval(x, kind="run")
            run_hits += lo <= new <= hi
            draws += 1
    assert mean_hits >= 16, mean_hits
    assert 0.88 <= run_hits / draws <= 1.0, (run_hits, draws)


def test_a_run_interval_holds_the_seed_noise_and_a_mean_interval_does_not():
    fit = moescale.fit("chinchilla", chinchilla_sweep(1), bootstrap=60, seed=0)
    x = {"N": 1e9, "D": 2e10}
    mean, run = fit.interval(x), fit.interval(x, kind="run")
    assert run[0] < mean[0] and run[1] > mean[1]
    noise, seed = fit.noise(), fit.data["seed_noise"]
    assert seed["dof"] == 24 and seed["sd"] == pytest.approx(0.005 * 2.6, rel=0.4)  # ≈ σ·loss
    assert noise.sd >= seed["sd"]  # the larger of the seed noise and the residuals' scatter
    half = (run[1] - run[0]) / 2
    assert half >= noise.t() * noise.sd


# ----- seed noise ---------------------------------------------------------------------------------
def test_the_noise_bound_uses_student_t():
    # t(0.975, 3) = 3.182 (any t table): three pairs bound a difference of two runs at
    # 3.182·√2·σ = 4.50σ, not 2·√2·σ = 2.83σ
    noise = support.SeedNoise(0.02, 3, 3)
    assert noise.difference_bound() == pytest.approx(3.182 * math.sqrt(2) * 0.02, rel=1e-3)
    assert noise.within(0.08) is True and noise.within(0.095) is False
    assert support.SeedNoise(None, 0, 0).within(0.5) is None


def test_seed_noise_pairs_only_runs_identical_but_for_the_seed():
    base = {"budget": 1e12, "N": 5e4, "N_active": 5e4, "D": 3e6, "E": 1.0, "lr": 3e-3}
    frame = pd.DataFrame([
        {**base, "role": "run", "seed": 0, "loss": 1.50},
        {**base, "role": "run", "seed": 1, "loss": 1.52},
        {**base, "role": "branch", "seed": 1, "loss": 1.70},  # another schedule: no pair
    ])
    noise = support.seed_noise(frame)
    assert noise.n_configs == 1 and noise.dof == 1
    assert noise.sd == pytest.approx(0.02 / math.sqrt(2))


def test_outliers_are_judged_against_the_seed_noise():
    """A run 1.5 σ of the seed noise from the law is no outlier, however well the law fits
    the others."""
    frame = chinchilla_sweep(4, noise=1e-5, seeds=1)  # on the law, one seed each
    pairs = frame.iloc[:3].assign(seed=1)
    pairs["loss"] += 0.01 * math.sqrt(2)  # three seed pairs that differ by √2·σ: σ = 0.01
    frame = pd.concat([frame, pairs], ignore_index=True)
    frame.loc[10, "loss"] += 0.015  # 1.5 σ off the law
    robust = moescale.fit("chinchilla", frame.drop(columns="seed"))  # no seed noise known
    assert robust.residuals[10]["outlier"]  # the robust rule against a tight fit flags it
    fit = moescale.fit("chinchilla", frame)
    assert fit.data["seed_noise"]["sd"] == pytest.approx(0.01, rel=1e-6)
    assert fit.data["seed_noise"]["dof"] == 3
    assert not fit.outliers and abs(fit.residuals[10]["z"]) < 2


# ----- the leaderboard's verdict ---------------------------------------------------------------
def broken_sweep() -> pd.DataFrame:
    """Two seeds per configuration, 0.5 % noise, and a 0.25-nat break at the largest budget."""
    frame = chinchilla_sweep(5)
    largest = frame["C"] >= frame["C"].max() / 1.0001
    frame.loc[largest, "loss"] += 0.25
    return frame


def test_the_leaderboard_says_when_no_law_extrapolates():
    runs = RunTable.from_frame(broken_sweep())
    sel = select_laws(runs, "chinchilla,ludziejewski2025", holdout="largest-C:2")
    assert sel.extrapolates is False
    assert sel.verdict.ratio > 5 and "no law here extrapolates" in sel.verdict.text
    assert any(w.startswith("not validated") for w in sel.best.fit.warnings)
    data = sel.to_dict()
    assert data["extrapolates"] is False and data["ratio_to_noise"] > 5
    fine = select_laws(RunTable.from_frame(chinchilla_sweep(5)), "chinchilla",
                       holdout="largest-C:2")
    assert fine.extrapolates is True


def test_the_verdict_in_the_cli_table_and_json(tmp_path, capsys):
    path = tmp_path / "runs.csv"
    broken_sweep().to_csv(path, index=False)
    code, out, err = run_cli(["fit", str(path), "--law", "chinchilla", "--holdout",
                              "largest-C:2", "--json"], capsys)  # one law: the fit says it
    assert code == 0, err
    single = json.loads(out)
    assert single["data"]["extrapolates"] is False
    assert any(w.startswith("not validated") for w in single["warnings"])
    code, out, err = run_cli(["fit", str(path), "--law", "chinchilla,clark2022", "--holdout",
                              "largest-C:2", "--json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["extrapolates"] is False and "seed noise" in data["verdict"]
    code, out, err = run_cli(["fit", str(path), "--law", "chinchilla,clark2022",
                              "--holdout", "largest-C:2", "-o", str(tmp_path / "best.json")],
                             capsys)
    assert code == 0, err
    assert "NOT VALIDATED" in out and "no law here extrapolates" in out
    saved = json.loads((tmp_path / "best.json").read_text())
    assert any(w.startswith("not validated") for w in saved["warnings"])


# ----- published coefficients ----------------------------------------------------------------
def test_presets_warn_beyond_their_papers_runs():
    """papers.md §3: the joint-MoE runs reach N_act 2.72e9 (with embeddings), D 8e10."""
    far = moescale.predict("ludziejewski2025", N_active=1e12, D=1e13, E=8)
    assert far.ci is None and far.interval_note == support.NO_INTERVAL
    assert any("N_active" in w and "368×" in w for w in far.warnings)
    near = moescale.predict("ludziejewski2025", N_active=1e9, D=2e10, E=8)
    assert near.warnings == ()
    plan = moescale.plan(1e23, law="ludziejewski2025")
    assert any(w.startswith("Extrapolation of ludziejewski2025") for w in plan.warnings)


def test_predict_json_is_the_library_object(capsys):
    code, out, err = run_cli(["predict", "--law", "ludziejewski2025", "--N-active", "1e12",
                              "--D", "1e13", "--E", "8", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out) == moescale.predict("ludziejewski2025", N_active=1e12, D=1e13,
                                               E=8).to_dict()
    code, out, err = run_cli(["predict", "--law", "ludziejewski2025", "--N-active", "1e12",
                              "--D", "1e13", "--E", "8"], capsys)
    assert code == 0 and "368×" in err and "no interval" in out  # the table: warnings on stderr


def test_report_and_the_cli_use_the_same_number_of_replicates():
    """One default: an interval in the report is the one `sweep analyze` prints."""
    import click

    from moescale.cli import cli
    from moescale.reporting.build import ReportInputs

    def default(command, name):
        ctx = click.Context(cli)
        cmd = cli.get_command(ctx, command)
        if name:
            cmd = cmd.get_command(ctx, name)
        return next(p.default for p in cmd.params if p.name == "bootstrap")

    assert default("report", "") == default("sweep", "analyze") == support.DEFAULT_REPLICATES
    assert ReportInputs().bootstrap == support.DEFAULT_REPLICATES
