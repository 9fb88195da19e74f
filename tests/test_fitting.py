"""Fitting: the Chinchilla replication, synthetic recovery, bootstrap, held-out scoring."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import reference_file
from moescale.errors import MoescaleError
from moescale.fitting import FitResult, fit_arrays
from moescale.fitting.holdout import holdout_mask
from moescale.fitting.objective import Problem, huber
from moescale.laws import get_law


def epoch_points():
    """Epoch AI's 245 Chinchilla points minus the 5 highest losses; D = C/(6N) (papers.md §5)."""
    df = pd.read_csv(reference_file("epoch_chinchilla_svg_extracted_data.csv"))
    df = df.sort_values("loss").iloc[:-5]
    n = df["Model Size"].to_numpy()
    return n, df["Training FLOP"].to_numpy() / (6 * n), df["loss"].to_numpy()


def test_huber_is_quadratic_inside_and_linear_outside():
    r = np.array([-0.5, -1e-4, 0.0, 2e-4, 0.3])
    value, psi = huber(r, 1e-3)
    assert np.allclose(value[1:4], 0.5 * r[1:4] ** 2)
    assert np.allclose(value[[0, 4]], 1e-3 * (np.abs(r[[0, 4]]) - 0.5e-3))
    assert np.allclose(psi, [-1e-3, -1e-4, 0, 2e-4, 1e-3])


def test_objective_gradient_matches_finite_differences():
    n, d, y = epoch_points()
    problem = Problem(get_law("chinchilla"), {"N": n, "D": d}, y, 1e-3)
    theta = np.array([[6.0, 7.5, 0.6, 0.35, 0.37]])
    _, g = problem.value_grad(theta)
    for i in range(theta.shape[1]):
        e = np.zeros_like(theta)
        e[0, i] = 1e-6
        fd = (problem.value(theta + e) - problem.value(theta - e)) / 2e-6
        assert g[0, i] == pytest.approx(fd[0], rel=1e-4, abs=1e-9)


def test_chinchilla_replication_on_epoch_data():
    # Besiroglu et al. 2024 (papers.md §5): objective 0.00101827, A=477.8, B=2143.9, E=1.817,
    # α=0.3473, β=0.3672 from the 4,500-point grid with summed Huber δ=1e-3 on ln L.
    n, d, y = epoch_points()
    assert y.size == 240
    res = fit_arrays("chinchilla", {"N": n, "D": d}, y, delta=1e-3)
    assert res.n_starts == 4500
    assert res.success
    assert res.fun == pytest.approx(0.00101827, rel=1e-5)
    p = res.params
    assert p["A"] == pytest.approx(477.8, rel=2e-3)
    assert p["B"] == pytest.approx(2143.9, rel=2e-3)
    assert p["E"] == pytest.approx(1.817, rel=1e-3)
    assert p["alpha"] == pytest.approx(0.3473, abs=2e-4)
    assert p["beta"] == pytest.approx(0.3672, abs=2e-4)


def test_varpro_starts_reach_the_same_optimum():
    n, d, y = epoch_points()
    grid = {"alpha": np.arange(0.1, 1.01, 0.15), "beta": np.arange(0.1, 1.01, 0.15)}
    res = fit_arrays("chinchilla", {"N": n, "D": d}, y, method="varpro", grid=grid)
    assert res.fun == pytest.approx(0.00101827, rel=1e-5)


def test_a_single_start_at_hoffmann_values_is_not_enough():
    # papers.md §5: a single start at Hoffmann's values stalls; the grid is what finds the optimum.
    n, d, y = epoch_points()
    law = get_law("chinchilla")
    single = {k: [v] for k, v in law.to_fit_space(law.preset("hoffmann2022").values).items()}
    from moescale.fitting import multistart as ms

    problem = Problem(law, {"N": n, "D": d}, y, 1e-3)
    stalled = ms.polish(problem, ms.grid_starts(problem, single)[0], ftol=2.2e-9, gtol=1e-5)
    assert stalled.fun > 0.00101827 * 1.001


def test_bootstrap_standard_errors_match_the_replication():
    # Besiroglu et al. 2024: bootstrap SEs A 124.5, B 1293.3, E 0.026, α 0.0154, β 0.0206
    # (4,000 refits). 300 refits here: same size within a factor of ~1.6.
    from moescale import fitting
    from moescale.runs import RunTable

    n, d, y = epoch_points()
    runs = RunTable.from_frame(pd.DataFrame({"N": n, "D": d, "loss": y}))
    res = fitting.fit("chinchilla", runs, bootstrap=300, seed=1)
    published = {"A": 124.5, "B": 1293.3, "E": 0.026, "alpha": 0.0154, "beta": 0.0206}
    for k, se in published.items():
        assert se / 1.6 < res.se[k] < se * 1.6, (k, res.se[k])
        lo, hi = res.ci[k]
        assert lo < res.params[k] < hi
    lo, hi = res.predict_interval(N=7e10, D=1.4e12)
    assert lo < res.predict(N=7e10, D=1.4e12) < hi


SYNTHETIC = {
    # law: (true parameters, variable generator) — true values are the published presets
    # where the paper gives them.
    "chinchilla": ("hoffmann2022", None),
    "ludziejewski2025": ("ludziejewski2025", None),
}


def _design(law, rng, n_runs=160):
    """Log-uniform run variables in the ranges the papers trained on."""
    ranges = {"N": (1e7, 1e10), "N_active": (1e7, 5e9), "N_a": (3e7, 2e9), "D": (1e9, 2e11),
              "E": (1, 64), "G": (1, 20), "S": (0.05, 0.7), "C": (1e18, 3e20)}
    v = {}
    for k in law.variables:
        lo, hi = ranges[k]
        v[k] = np.exp(rng.uniform(np.log(lo), np.log(hi), n_runs))
    if "E" in v:
        v["E"] = np.round(v["E"])
    return v


@pytest.mark.parametrize("name", ["chinchilla", "ludziejewski2025"])
def test_recovers_its_own_parameters_from_noisy_synthetic_runs(name):
    law = get_law(name)
    truth = law.presets[next(iter(law.presets))].values
    rng = np.random.default_rng(0)
    v = _design(law, rng)
    y = law.predict(truth, v) * np.exp(rng.normal(0, 0.002, v[law.variables[0]].size))
    res = fit_arrays(law, v, y)
    pred_true, pred_fit = law.predict(truth, v), law.predict(res.params, v)
    assert np.max(np.abs(pred_fit / pred_true - 1)) < 0.005
    exps = [k for k in law.params if k in ("alpha", "beta")]
    for k in exps:
        assert res.params[k] == pytest.approx(truth[k], abs=0.03), k


def test_holdout_specs():
    frame = pd.DataFrame({"C": [1, 2, 3, 3, 5], "loss": [5, 4, 3, 2, 1], "tag": list("aabba")})
    assert holdout_mask(frame, "largest-C:2").tolist() == [False, False, True, True, True]
    assert holdout_mask(frame, "lowest-loss:2").tolist() == [False, False, False, True, True]
    assert holdout_mask(frame, "largest-C:20%").tolist() == [False, False, False, False, True]
    assert holdout_mask(frame, "tag:tag=b").tolist() == [False, False, True, True, False]
    assert holdout_mask(frame, "query:C > 2 and loss < 3").tolist() == [False] * 3 + [True] * 2
    for bad in ("largest-C", "largest-X:2", "nearest-C:1", "largest-C:x", "largest-C:0",
                "query:C >", "largest-C:100%"):
        with pytest.raises(MoescaleError):
            holdout_mask(frame, bad)


def test_fit_result_round_trips_through_json(tmp_path):
    from moescale import fitting
    from moescale.runs import RunTable

    law = get_law("chinchilla")
    rng = np.random.default_rng(3)
    v = _design(law, rng, 60)
    y = law.predict("hoffmann2022", v) * np.exp(rng.normal(0, 0.003, 60))
    runs = RunTable.from_frame(pd.DataFrame({**v, "loss": y}))
    res = fitting.fit("chinchilla", runs, holdout="largest-N:5", bootstrap=20)
    path = tmp_path / "fit.json"
    res.save(path)
    back = FitResult.load(path)
    assert back.params == res.params and back.data["hash"] == runs.data_hash()
    assert back.holdout["n"] == 5 and back.train["n"] == 55
    assert len(back.bootstrap_params) == 20
    assert float(back.predict(N=1e9, D=2e10)) == pytest.approx(float(res.predict(N=1e9, D=2e10)))
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(MoescaleError):
        FitResult.load(tmp_path / "bad.json")
    with pytest.raises(MoescaleError):
        FitResult.load(tmp_path / "missing.json")


def _truth(law):
    from test_laws_families import example_params

    return example_params(law)


@pytest.mark.parametrize("name", [n for n in __import__("moescale.laws", fromlist=["LAWS"]).LAWS
                                  if n not in ("chinchilla", "ludziejewski2025")])
def test_every_law_recovers_its_parameters_from_noisy_synthetic_runs(name):
    from test_laws_families import example_variables

    law = get_law(name)
    truth = _truth(law)
    if name == "krajewski2024":
        truth = dict(law.presets["moe"].values)
    rng = np.random.default_rng(1)
    v = example_variables(law, n=200, seed=2)
    y = law.predict(truth, v) * np.exp(rng.normal(0, 0.001, 200))
    res = fit_arrays(law, v, y)
    rel = np.abs(law.predict(res.params, v) / law.predict(truth, v) - 1)
    assert rel.max() < 0.004, rel.max()
    for k in law.params:  # exponents and other O(1) shape parameters come back close
        if k in ("alpha", "beta", "gamma", "p", "d0", "c_N", "c_E", "p_D"):
            assert res.params[k] == pytest.approx(truth[k], rel=0.1, abs=0.02), k


def test_weights_count_like_repeated_runs():
    """A weight of 2 on a run is the same objective as listing that run twice."""
    from moescale import fitting
    from moescale.runs import RunTable

    law = get_law("chinchilla")
    rng = np.random.default_rng(4)
    v = _design(law, rng, 40)
    y = law.predict("hoffmann2022", v) * np.exp(rng.normal(0, 0.01, 40))
    w = np.where(np.arange(40) < 10, 2.0, 1.0)
    weighted = fitting.fit("chinchilla", RunTable.from_frame(pd.DataFrame({**v, "loss": y, "w": w})),
                        weights="w")
    doubled = fit_arrays("chinchilla", {k: np.concatenate([a, a[:10]]) for k, a in v.items()},
                  np.concatenate([y, y[:10]]))
    assert weighted.objective["value"] == pytest.approx(doubled.fun, rel=1e-6)
    assert weighted.params["alpha"] == pytest.approx(doubled.params["alpha"], rel=1e-4)


def test_docstring_examples_run():
    import doctest

    import moescale.fitting
    import moescale.laws

    for module in (moescale.fitting, moescale.laws):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__
