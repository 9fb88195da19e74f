"""``sweep suggest``: the linearised design shrinks the target's variance within its budget,
its variance update matches a refit of the Gaussian model, and appended runs round-trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_cli
from moescale.laws import get_law
from moescale.laws.chinchilla import compute_optimal
from moescale.sweeps.spec import SweepSpec
from moescale.sweeps.suggest import design, quantity, to_theta
from test_sweep_analyze import HIDDEN, synthetic_store

LAW = get_law("chinchilla")
TRUTH = LAW.presets["hoffmann2022"].values


def test_quantity_is_the_closed_form_optimum():
    # Hoffmann et al. 2022, Eq. 4: N_opt = G·(C/6)^(β/(α+β)) for L = E + A/N^α + B/D^β
    theta = to_theta(LAW, TRUTH)[None, :]
    for c in (1e19, 1e21, 1e23):
        n_opt, d_opt = compute_optimal(c, TRUTH)
        assert np.exp(quantity(LAW, theta, c, {}, "allocation")[0]) == pytest.approx(n_opt,
                                                                                      rel=1e-3)
        loss = float(LAW.predict(TRUTH, {"N": n_opt, "D": d_opt}))
        assert np.exp(quantity(LAW, theta, c, {}, "loss")[0]) == pytest.approx(loss, rel=1e-6)


def _problem(seed: int = 0):
    rng = np.random.default_rng(seed)
    theta = to_theta(LAW, TRUTH)
    boot = theta + rng.normal(0, 0.05, size=(200, theta.size))
    n, c = np.meshgrid(np.geomspace(1e7, 1e10, 12), np.geomspace(1e17, 1e19, 5))
    cand = {"N": n.ravel(), "D": c.ravel() / (6 * n.ravel())}
    return theta, boot, cand, c.ravel()


def test_design_shrinks_variance_within_budget_and_count():
    theta, boot, cand, cost = _problem()
    chosen, sds, sd_now = design(LAW, theta, boot, 1e-4, cand, cost, 1e21, {}, "allocation",
                                 n=5, budget_flops=2e19)
    assert 0 < len(chosen) <= 5 and len(set(chosen)) == len(chosen)
    assert cost[chosen].sum() <= 2e19
    assert sd_now > sds[0] and all(a >= b for a, b in zip(sds, sds[1:], strict=False))
    # a budget below the cheapest candidate is an error, not an empty table (an audit's case)
    from moescale.errors import MoescaleError

    with pytest.raises(MoescaleError, match="below the cheapest candidate run"):
        design(LAW, theta, boot, 1e-4, cand, cost, 1e21, {}, "allocation", n=5, budget_flops=1)


def test_variance_update_equals_the_gaussian_posterior():
    """The greedy rank-one updates equal (Σ⁻¹ + JᵀJ/σ²)⁻¹ computed directly."""
    theta, boot, cand, cost = _problem(1)
    sigma2 = 1e-4
    chosen, sds, _ = design(LAW, theta, boot, sigma2, cand, cost, 1e21, {}, "allocation", n=4)
    P = theta.size
    prior = np.cov(boot, rowvar=False) + 1e-10 * np.eye(P)
    eps = 1e-5 * np.maximum(np.abs(theta), 1)

    def jac(v):
        rows = []
        for i in range(P):
            up, dn = theta.copy(), theta.copy()
            up[i] += eps[i]
            dn[i] -= eps[i]
            f = [LAW.log_loss(LAW.from_fit_space(dict(zip(LAW.params, t, strict=True))), v)
                 for t in (up, dn)]
            rows.append((f[0] - f[1]) / (2 * eps[i]))
        return np.array(rows).T

    J = jac({k: a[chosen] for k, a in cand.items()})
    post = np.linalg.inv(np.linalg.inv(prior) + J.T @ J / sigma2)
    g = np.array([(quantity(LAW, (theta + e)[None], 1e21, {}, "allocation")[0]
                   - quantity(LAW, (theta - e)[None], 1e21, {}, "allocation")[0]) / (2 * e[i])
                  for i, e in enumerate(np.diag(eps))])
    assert sds[-1] == pytest.approx(float(np.sqrt(g @ post @ g)), rel=1e-3)


def test_cli_suggests_and_appends_runs_that_expand_to_the_same_ids(tmp_path, capsys):
    store = synthetic_store(tmp_path, HIDDEN)
    spec = tmp_path / "spec.toml"  # written by synthetic_store
    code, out, err = run_cli(["sweep", "suggest", "--store", str(store.path), "--law",
                              "chinchilla", "--target-compute", "1e22", "--n", "3",
                              "--bootstrap", "30", "--append", str(spec), "--json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["appended"] == len(data["suggestions"]) > 0
    assert data["sd_after"] < data["sd_now"]
    # the known truth: N_opt(1e22) of the generating law, within the current uncertainty
    n_true, _ = compute_optimal(1e22, TRUTH)
    assert abs(np.log(data["value"] / n_true)) < 3 * data["sd_now"] + 0.05
    expanded = {r.id for r in SweepSpec.load(spec).expand()}
    assert {s["id"] for s in data["suggestions"]} <= expanded
    code, out, err = run_cli(["sweep", "suggest", "--store", str(store.path), "--law",
                              "chinchilla", "--target-compute", "1e22"], capsys)
    assert code == 0 and "suggested runs" in out


def test_cli_errors(tmp_path, capsys):
    store = synthetic_store(tmp_path, [512, 1024])
    code, out, err = run_cli(["sweep", "suggest", "--store", str(store.path), "--law",
                              "chinchilla", "--target-compute", "-1"], capsys)
    assert code == 2 and err.startswith("Error:") and len(err.strip().splitlines()) == 1
    code, out, err = run_cli(["sweep", "suggest", "--store", str(tmp_path / "none.db"),
                              "--law", "chinchilla", "--target-compute", "1e21"], capsys)
    assert code == 2 and "not found" in err


def test_report_draws_the_adaptive_benchmark(tmp_path, capsys):
    """The recorded benchmark (benchmarks/adaptive.json) is a figure of the report."""
    from conftest import ROOT

    data = ROOT / "benchmarks" / "adaptive.json"
    rounds = np.asarray(json.loads(data.read_text())["rounds"])
    assert rounds.shape[1:] == (3, 4)
    # the recorded result: suggested runs end narrower than the grid, on fewer FLOPs
    mean = rounds.mean(axis=0)
    assert mean[-1, 3] < mean[-1, 1] and mean[-1, 2] < mean[-1, 0]
    code, out, err = run_cli(["report", "--adaptive", str(data), "-o", str(tmp_path / "r"),
                              "--json"], capsys)
    assert code == 0, err
    png = tmp_path / "r" / "figures" / "adaptive.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert "figures/adaptive.png" in (tmp_path / "r" / "index.html").read_text()
    bad = tmp_path / "bad.json"
    bad.write_text('{"rounds": [1, 2]}')
    code, out, err = run_cli(["report", "--adaptive", str(bad), "-o", str(tmp_path / "s")],
                             capsys)
    assert code == 2 and "needs 'rounds'" in err


def test_laws_without_an_allocation_are_refused(tmp_path, capsys):
    store = synthetic_store(tmp_path, [512, 1024])
    for law in ("clark2022", "holistic2026"):
        code, out, err = run_cli(["sweep", "suggest", "--store", str(store.path), "--law", law,
                                  "--target-compute", "1e21"], capsys)
        assert code == 2 and "allocation" in err and len(err.strip().splitlines()) == 1
