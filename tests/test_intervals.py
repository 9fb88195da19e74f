"""Honest intervals: bootstrap refits that do not converge are counted and excluded, too few
converged refits refuse the interval (with the count), an estimate outside its own interval
warns; `plan` and `predict` show the interval and warn on extrapolation and on tokens beyond
the corpus; one Huber δ rule for a single fit and the leaderboard."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

import moescale.fitting as fitting
import moescale.fitting.engine as engine
from conftest import run_cli as run
from moescale.errors import MoescaleError
from moescale.laws import get_law


def chinchilla_runs(n=40, seed=5, noise=3e-3) -> pd.DataFrame:
    """``n`` runs from Hoffmann's coefficients, N 1e8–1e10, D 2e9–2e11, ``noise`` in ln L."""
    rng = np.random.default_rng(seed)
    N = np.exp(rng.uniform(np.log(1e8), np.log(1e10), n))
    D = np.exp(rng.uniform(np.log(2e9), np.log(2e11), n))
    loss = get_law("chinchilla").predict("hoffmann2022", {"N": N, "D": D})
    return pd.DataFrame({"N": N, "D": D, "loss": loss * np.exp(rng.normal(0, noise, n))})


@pytest.fixture
def no_convergence(monkeypatch):
    """One Levenberg–Marquardt iteration per refit: no refit can meet its tolerance."""
    monkeypatch.setattr(engine, "BOOTSTRAP_LM_ITER", 1)


@pytest.fixture(scope="module")
def fit_file(tmp_path_factory):
    """A bootstrapped chinchilla fit saved as JSON (its runs reach D = 2e11)."""
    path = tmp_path_factory.mktemp("fit") / "fit.json"
    result = fitting.fit("chinchilla", chinchilla_runs(), bootstrap=40, seed=1)
    assert result.interval_refused is None
    result.save(path)
    return path


# ----- bootstrap convergence ------------------------------------------------------------------
def test_refits_that_cannot_converge_refuse_the_interval(no_convergence):
    result = fitting.fit("chinchilla", chinchilla_runs(), bootstrap=40, seed=1)
    converged = result.bootstrap_converged
    assert converged is not None and converged < engine.bootstrap_needed(40) == 20
    reason = result.interval_refused
    assert reason and f"only {converged} of 40 refits converged" in reason
    assert reason.startswith("bootstrap interval refused")
    assert result.ci == {} and result.se == {} and result.bootstrap_params == []
    assert reason in result.warnings
    assert result.to_dict()["interval_refused"] == reason
    with pytest.raises(MoescaleError, match="only .* of 40 refits converged"):
        result.interval(N=1e9, D=2e10)


def test_refused_interval_in_the_cli_json_and_table(no_convergence, tmp_path, capsys):
    path = tmp_path / "runs.csv"
    chinchilla_runs().to_csv(path, index=False)
    code, out, err = run(["fit", str(path), "--law", "chinchilla", "--bootstrap", "40",
                          "--json"], capsys)
    assert code == 0, err
    res = json.loads(out)
    assert re.match(r"bootstrap interval refused: only \d+ of 40 refits converged",
                    res["interval_refused"])
    assert res["ci"] == {} and res["n_bootstrap"] == 0
    assert res["optimizer"]["bootstrap_refits"] == 40
    assert res["optimizer"]["bootstrap_converged"] < 20
    code, out, err = run(["fit", str(path), "--law", "chinchilla", "--bootstrap", "40"], capsys)
    assert code == 0, err
    assert "refused" in out and re.search(r"only \d+ of 40 refits converged", out)


def test_a_converged_bootstrap_gives_intervals_around_the_estimate():
    result = fitting.fit("chinchilla", chinchilla_runs(), bootstrap=60, seed=2)
    assert result.interval_refused is None and result.bootstrap_converged == 60
    assert len(result.bootstrap_params) == 60
    for k, value in {**result.params, **result.derived}.items():
        lo, hi = result.ci[k]
        assert lo <= value <= hi, (k, value, lo, hi)
    assert result.ci["alpha"][0] < 0.34 < result.ci["alpha"][1]   # the truth, too
    assert not any("outside its own" in w for w in result.warnings)
    lo, hi = result.interval(N=1e9, D=2e10)
    assert lo < result.predict(N=1e9, D=2e10) < hi


def test_an_estimate_outside_its_own_interval_is_a_warning():
    warnings = engine._interval_warnings({"alpha": 0.30, "beta": 0.28},
                                          {"alpha": [0.32, 0.36], "beta": [0.25, 0.30]}, 0.95)
    assert len(warnings) == 1 and warnings[0].startswith("alpha = 0.3 lies outside its own 95%")


def test_the_refusal_rule():
    assert [engine.bootstrap_needed(n) for n in (8, 20, 40, 41, 100, 1000)] == \
        [20, 20, 20, 21, 50, 500]


# ----- plan and predict: intervals and warnings -------------------------------------------------
def test_predict_shows_the_interval_and_warns_on_extrapolation(fit_file, capsys):
    code, out, err = run(["predict", "--fit", str(fit_file), "--N", "1e9", "--D", "2e10"],
                         capsys)
    assert code == 0 and err == ""                        # inside the fitted range: no warning
    m = re.search(r"loss = ([\d.]+) \(95 % interval of the law's mean ([\d.]+)–([\d.]+); of a "
                  r"new run ([\d.]+)–([\d.]+)\)", out)
    assert m, out
    loss, lo, hi, run_lo, run_hi = map(float, m.groups())
    assert run_lo < lo <= loss <= hi < run_hi  # a new run scatters around the law's mean
    d_max = json.loads(fit_file.read_text())["data"]["ranges"]["D"][1]
    code, out, err = run(["predict", "--fit", str(fit_file), "--N", "1e9", "--D",
                          str(35 * d_max)], capsys)
    assert code == 0 and "warning:" in err and re.search(r"D = \S+ is 35× the largest", err)
    code, out, _ = run(["predict", "--fit", str(fit_file), "--N", "1e9", "--D",
                        str(35 * d_max), "--json"], capsys)
    res = json.loads(out)
    assert any(w.startswith("fit of chinchilla") and "D = " in w and "35×" in w
               for w in res["warnings"])
    assert res["ci"][0] <= res["loss"] <= res["ci"][1]


def test_plan_shows_the_interval_and_warns_on_extrapolation_and_corpus(fit_file, capsys):
    args = ["plan", "--compute", "1e24", "--fit", str(fit_file), "--experts", "1"]
    code, out, err = run([*args, "--corpus-tokens", "4e6"], capsys)
    assert code == 0, err
    assert re.search(r"predicted loss\s*│?\s*[\d.]+ \(95 % CI [\d.]+–[\d.]+\)", out), out
    assert re.search(r"warning: fit of chinchilla .*D = \S+ is [\d.]+× the largest", err)
    assert re.search(r"warning: planned \S+ tokens are [\d.e+]+x the 4e6-token corpus", err)
    code, out, _ = run([*args, "--corpus-tokens", "4e6", "--json"], capsys)
    plan = json.loads(out)
    tokens = plan["summary"]["training_tokens"]
    assert any("D = " in w and "× the largest" in w for w in plan["warnings"])
    assert any(f"{tokens / 4e6:.3g}x the 4e6-token corpus" in w for w in plan["warnings"])
    lo, hi = plan["predicted_loss_ci"]
    assert lo <= plan["predicted_loss"] <= hi


def test_the_corpus_a_fit_records_warns_in_predict(tmp_path, capsys):
    """Runs that repeated their corpus record its size in the fit; predictions beyond warn."""
    frame = chinchilla_runs(n=20).assign(unique_tokens=4e6, repeated_tokens=lambda f: f["D"] - 4e6,
                                         id=[f"run{i:02d}" for i in range(20)])
    runs = tmp_path / "runs.csv"
    frame.to_csv(runs, index=False)
    fit_json = tmp_path / "fit.json"
    code, out, err = run(["fit", str(runs), "--law", "chinchilla", "-o", str(fit_json)], capsys)
    assert code == 0, err
    worst = out[out.index("worst-fitted runs"):]
    assert re.search(r"run\d\d", worst)                     # runs named by their id
    assert json.loads(fit_json.read_text())["data"]["corpus_tokens"] == 4e6
    code, out, _ = run(["predict", "--fit", str(fit_json), "--N", "1e9", "--D", "2e10",
                        "--json"], capsys)
    assert any("2e10 tokens are 5e+03x the 4e6-token corpus" in w
               for w in json.loads(out)["warnings"])


# ----- one Huber δ ------------------------------------------------------------------------------
def test_the_leaderboard_and_a_single_fit_use_the_same_delta(monkeypatch):
    from moescale.fitting import objective
    from moescale.fitting.selection import select_laws
    from moescale.runs import RunTable

    assert objective.default_delta("ludziejewski2025") == 0.01
    assert objective.default_delta("chinchilla") == objective.HUBER_DELTA == 1e-3
    import dataclasses

    from moescale.laws import chinchilla

    monkeypatch.setattr(chinchilla, "LAW", dataclasses.replace(chinchilla.LAW, huber_delta=0.05))
    runs = RunTable.from_frame(chinchilla_runs(n=24))
    single = fitting.fit("chinchilla", runs)
    board = select_laws(runs, ["chinchilla"], holdout=None)
    score = board.leaderboard[0]
    assert single.objective["delta"] == score.delta == score.fit.objective["delta"] == 0.05
    assert board.delta is None                                        # no δ given: each law's


def test_the_help_states_the_delta_rule(capsys):
    from moescale.fitting.objective import HUBER_DELTA
    from moescale.laws import LAWS, get_law

    code, out, _ = run(["fit", "--help"], capsys)
    text = " ".join(out.split())
    papers = {n: get_law(n).huber_delta for n in LAWS if get_law(n).huber_delta is not None}
    assert papers == {"ludziejewski2025": 0.01, "krajewski2024": 0.1}  # the papers' §s
    for law, delta in papers.items():
        assert f"{law} {delta:g}" in text
    shared = re.search(r"--delta \S+ .*?else ([0-9.e-]+)\)", text)
    assert shared and float(shared.group(1)) == HUBER_DELTA
