"""Issue 19, `sweep suggest`: distinct runs only, identity by content (budgets at 12
significant digits), --max-run-flops honoured, refused intervals named with --fix as the way
out, and the claimed "s.d. after" checked against refits of synthetic data with a known truth.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli
from moescale import fitting
from moescale.errors import MoescaleError
from moescale.laws import get_law
from moescale.runs import RunTable
from moescale.sweeps.suggest import normalise, quantity, store_candidates, suggest, to_theta
from test_sweep_analyze import HIDDEN, synthetic_store

LAW = get_law("chinchilla")
TRUTH = LAW.presets["hoffmann2022"].values
NOISE = 0.01  # s.d. of the log-loss noise of the synthetic runs
TARGET = 1e22
# The linearised design's s.d. after must be within this factor of the s.d. of the refitted
# optimum over 40 noise replicates (the replicate s.d. alone is known to about ±11 %).
TOLERANCE = 0.30


def _table(n, d, rng) -> RunTable:
    loss = np.asarray(LAW.predict(TRUTH, {"N": n, "D": d})) * np.exp(rng.normal(0, NOISE, len(n)))
    return RunTable.from_frame(pd.DataFrame({"N": n, "D": d, "C": 6 * n * d, "loss": loss}))


def _grid():
    c = np.repeat(np.geomspace(1e18, 1e20, 4), 6)
    n = np.tile(np.geomspace(3e7, 3e9, 6), 4)
    return n, c / (6 * n)


def _candidates(n_old, d_old):
    n, c = np.meshgrid(np.geomspace(1e8, 3e10, 10), np.geomspace(1e20, 4e21, 4))
    n, c = n.ravel(), c.ravel()
    # every candidate three times, plus copies of the runs already made (one with a budget
    # that differs in the 17th digit, as np.geomspace produces)
    n = np.r_[n, n, n, n_old[:3]]
    d = np.r_[c / (6 * n[:40]), c / (6 * n[:40]), c / (6 * n[:40]), d_old[:3] * (1 + 1e-16)]
    return {"N": n, "D": d}, 6 * n * d


@pytest.fixture(scope="module")
def design():
    n, d = _grid()
    runs = _table(n, d, np.random.default_rng(0))
    fit = fitting.fit("chinchilla", runs, bootstrap=100, seed=0)
    cand, cost = _candidates(n, d)
    return n, d, runs, fit, cand, cost, suggest(fit, runs, cand, cost, TARGET, "allocation", n=6)


def test_suggestions_are_distinct_and_new(design):
    n, d, runs, fit, cand, cost, result = design
    points = [(normalise(s.variables["N"]), normalise(s.variables["D"])) for s in result.suggestions]
    assert len(result.suggestions) == 6 and len(set(points)) == 6
    old = {(normalise(a), normalise(b)) for a, b in zip(n, d, strict=True)}
    assert not old & set(points)


def test_claimed_sd_after_matches_refits_against_the_known_truth(design):
    n, d, runs, fit, cand, cost, result = design
    new_n = np.array([s.variables["N"] for s in result.suggestions])
    new_d = np.array([s.variables["D"] for s in result.suggestions])
    optima = []
    for r in range(40):  # the design's runs added, each time with fresh noise, refitted
        refit = fitting.fit("chinchilla", _table(np.r_[n, new_n], np.r_[d, new_d],
                                              np.random.default_rng(1000 + r)))
        optima.append(quantity(LAW, to_theta(LAW, refit.params)[None], TARGET, {},
                               "allocation")[0])
    actual = float(np.std(optima, ddof=1))
    assert result.sd_after < result.sd_now
    assert abs(result.sd_after / actual - 1) < TOLERANCE, (result.sd_after, actual)


def test_copies_would_not_shrink_the_claim(design):
    """Offering only copies of one point: one run is proposed, not six 'independent' ones."""
    n, d, runs, fit, cand, cost, result = design
    one = {"N": np.full(6, 3e9), "D": np.full(6, 4e21 / 1.8e10)}
    copies = suggest(fit, runs, one, np.full(6, 4e21), TARGET, "allocation", n=6)
    assert len(copies.suggestions) == 1


def test_refused_intervals_say_so_and_name_fix(design):
    n, d, runs, fit, cand, cost, result = design
    refused = dataclasses.replace(fit, optimizer=fit.optimizer | {
        "bootstrap_refused": "only 4 of 100 bootstrap refits converged"})
    with pytest.raises(MoescaleError) as err:
        suggest(refused, runs, cand, cost, TARGET)
    message = str(err.value)
    assert "only 4 of 100 bootstrap refits converged" in message
    assert "`fixed`" in message and "\n" not in message
    few = dataclasses.replace(fit, bootstrap_params=fit.bootstrap_params[:3])
    with pytest.raises(MoescaleError, match="only 3 usable bootstrap refits .* `fixed`"):
        suggest(few, runs, cand, cost, TARGET)


def test_budgets_are_compared_by_content(tmp_path):
    store = synthetic_store(tmp_path, [512, 1024])
    rows = [r for r in store.rows() if r["status"] == "done"]
    budgets = sorted({r["spec"]["budget"] for r in rows})
    nudged = np.array([b * (1 + 1e-16) + b * 2e-16 for b in budgets])  # 2000000000.0000002
    assert any(x != b for x, b in zip(nudged, budgets, strict=True))
    assert store_candidates(rows, nudged) == []  # all already run
    cap = budgets[-1] * 2
    found = store_candidates(rows, np.array([*budgets, cap, cap * 2]), max_flops=cap)
    assert found and all(r.flops <= cap * (1 + 1e-12) and r.budget <= cap for r in found)


def test_cli_honours_max_run_flops_and_fix(tmp_path, capsys):
    store = synthetic_store(tmp_path, HIDDEN)
    cap = max(r["spec"]["budget"] for r in store.rows()) * 1.5
    code, out, err = run_cli(["sweep", "suggest", "--store", str(store.path), "--law",
                              "chinchilla", "--target-compute", "1e22", "--n", "6",
                              "--bootstrap", "30", "--max-run-flops", repr(cap),
                              "--fix", "E=1.69", "--json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    ids = [s["id"] for s in data["suggestions"]]
    assert ids and len(set(ids)) == len(ids)
    assert all(s["flops"] <= cap * (1 + 1e-12) and s["budget"] <= cap for s in data["suggestions"])
    done = {r["id"] for r in store.rows()}
    assert not done & set(ids)
    for bad, fragment in ((["--fix", "Q=1"], "has no parameter 'Q'"),
                          (["--fix", "E=abc"], "--fix E must be a number"),
                          (["--fix", "E"], "--fix")):
        code, out, err = run_cli(["sweep", "suggest", "--store", str(store.path), "--law",
                                  "chinchilla", "--target-compute", "1e22", *bad], capsys)
        assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1
