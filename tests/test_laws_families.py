"""Every registered law: broadcasting, analytic gradients, variable projection, presets."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from moescale.errors import MoescaleError
from moescale.laws import LAWS, get_law

# Plausible parameter values per fit-only law (for laws with presets, the first preset).
EXAMPLES = {
    "clark2022": dict(a=-0.07, b=-0.04, c=0.002, d=2.3, E_start=1.9, E_max=300.0),
    "wang2024": dict(A=300.0, alpha=0.3, gamma=0.15, B=400.0, beta=0.3, sigma=1.7),
    "wang2024_batch": dict(k=2e7, p=3.0),
    "wang2024_lr": dict(k=3e-3, p=1.5),
    "holistic2026_m_ratio": dict(a=0.2, b=0.004, c=2.5),
    "holistic2026_n_ratio": dict(a=0.5, b=0.3, c=2.4),
    "holistic2026_d": dict(q=2e-7, d0=1100.0, L0=2.6),
    "power_law_C": dict(k=30.0, p=-0.05),
}


def example_params(law):
    return dict(law.presets[next(iter(law.presets))].values) if law.presets else EXAMPLES[law.name]


def example_variables(law, n=40, seed=0):
    rng = np.random.default_rng(seed)
    ranges = {"N": (1e7, 1e10), "N_active": (1e7, 5e9), "N_a": (3e7, 2e9), "D": (1e9, 2e11),
              "E": (1, 64), "G": (1, 16), "S": (0.05, 0.7), "C": (1e18, 3e20),
              "loss": (2.0, 4.0), "M_over_Na": (6.5, 20.0), "N_over_Na": (2.0, 30.0),
              "x_max": (32.1, 32.1), "d": (256.0, 4096.0)}
    v = {k: np.exp(rng.uniform(*np.log(ranges[k]), n)) for k in law.variables}
    if "E" in v:
        v["E"] = np.round(v["E"])
    if "N_a" in v:
        v["N_a"] = np.minimum(v["N_a"], 0.8 * v["N"])
    return v


@pytest.mark.parametrize("name", LAWS)
def test_describe_and_broadcasting(name):
    law = get_law(name)
    d = law.describe()
    assert d["name"] == name and d["variables"] and d["params"]
    p, v = example_params(law), example_variables(law)
    single = law.predict(p, v)
    assert single.shape == (40,) and np.all(np.isfinite(single)) and np.all(single > 0)
    # two parameter sets stacked as (starts, 1): row i must be the prediction of set i
    other = {k: x * 1.01 if x else 0.01 for k, x in p.items()}
    stacked = {k: np.array([[p[k]], [other[k]]]) for k in p}
    both = np.broadcast_to(np.exp(law.log_loss(stacked, law.check_variables(v))), (2, 40))
    assert np.allclose(both[0], single, rtol=1e-12)
    with np.errstate(all="ignore"):
        second = np.exp(law.log_loss(other, law.check_variables(v)))
    assert np.allclose(both[1], np.broadcast_to(second, (40,)), rtol=1e-12, equal_nan=True)


@pytest.mark.parametrize("name", LAWS)
def test_fit_space_round_trip(name):
    law = get_law(name)
    p = {k: v for k, v in example_params(law).items() if v != 0 or k not in law.log_params}
    p = {**{k: 1.0 for k in law.params}, **p}
    back = law.from_fit_space(law.to_fit_space(p))
    assert all(float(back[k]) == pytest.approx(p[k], rel=1e-12) for k in law.params)


@pytest.mark.parametrize("name", [n for n in LAWS if get_law(n).grad_log_loss is not None])
def test_analytic_gradient_matches_central_differences(name):
    law = get_law(name)
    p = example_params(law)
    if name == "krajewski2024":
        p = dict(law.presets["moe"].values)
    v = law.check_variables(example_variables(law))
    theta = law.to_fit_space(p)
    grads = law.grad_log_loss(p, v)
    for k in law.params:
        h = 1e-6 * max(1.0, abs(theta[k]))
        up, down = dict(theta), dict(theta)
        up[k] += h
        down[k] -= h
        fd = (law.log_loss(law.from_fit_space(up), v) - law.log_loss(law.from_fit_space(down), v)) / (2 * h)
        assert np.allclose(np.broadcast_to(grads[k], fd.shape), fd, rtol=1e-5, atol=1e-8), k


@pytest.mark.parametrize("name", [n for n in LAWS if get_law(n).linear is not None])
def test_linear_basis_reproduces_the_law(name):
    law = get_law(name)
    p = dict(law.presets["moe"].values) if name == "krajewski2024" else example_params(law)
    v = law.check_variables(example_variables(law))
    names, basis = law.linear(p, v)
    assert np.allclose(basis @ np.array([p[k] for k in names]), law.predict(p, v), rtol=1e-10)


def test_krajewski_presets():
    # Krajewski et al. 2024 (papers.md §5): more granularity lowers the MoE loss; the dense
    # preset ignores G; both share c = 0.47 as the irreducible loss.
    law = get_law("krajewski2024")
    v = {"N": np.array([1e9] * 3), "D": np.array([2e10] * 3), "G": np.array([1.0, 8.0, 64.0])}
    moe = law.predict("moe", v)
    assert moe[0] > moe[1] > moe[2] > 0.47
    dense = law.predict("dense", v)
    assert np.ptp(dense) == 0
    # value by hand: c + (g/G^γ + a)/N^α + b/D^β at G = 1
    hand = 0.47 + (2.1 + 18.1) / 1e9**0.115 + 30.8 / 2e10**0.147
    assert moe[0] == pytest.approx(hand, rel=1e-12)


def test_wang_closed_form_equals_numeric_optimum():
    from moescale.laws import wang2024

    law, p, c = get_law("wang2024"), EXAMPLES["wang2024"], 1e21
    for e in (1, 8, 64):
        n_opt, d_opt = wang2024.compute_optimal(c, e, p)
        res = minimize_scalar(lambda ln, e=e: float(law.predict(
                                  p, {"N": np.exp(ln), "D": c / 6 / np.exp(ln), "E": e})),
                              bounds=(np.log(1e6), np.log(1e13)), method="bounded",
                              options={"xatol": 1e-10})
        assert n_opt == pytest.approx(np.exp(res.x), rel=1e-4)
        assert 6 * n_opt * d_opt == pytest.approx(c)


def test_hyper_parameter_presets_reproduce_their_sources():
    # joint-MoE code: LR = exp(8.3916 − 0.8122·ln N_act − 0.25·ln E) (papers.md §3)
    lr = get_law("ludziejewski2025_lr").predict("ludziejewski2025", {"N_active": 1e9, "E": 8})
    assert float(lr) == pytest.approx(np.exp(8.391640956234012 - 0.8121798244457074
                                             * np.log(1e9) - 0.25 * np.log(8)))
    # holistic Table 4 (papers.md §1): LR 1.20e-3 … 4.82e-4, batch 64 … 288 sequences of 8192
    c = np.array([1e18, 3e18, 1e19, 3e19, 1e20, 3e20])
    table_lr = np.array([1.20e-3, 1.00e-3, 8.28e-4, 6.95e-4, 5.74e-4, 4.82e-4])
    table_batch = np.array([64, 80, 128, 160, 208, 288]) * 8192
    assert np.allclose(get_law("holistic2026_lr").predict("wan2026", {"C": c}), table_lr, rtol=0.06)
    assert np.allclose(get_law("holistic2026_batch").predict("wan2026", {"C": c}), table_batch,
                       rtol=0.15)
    assert get_law("holistic2026_lr").presets["wan2026"].values["p"] == pytest.approx(-0.160, abs=2e-3)


def test_holistic_m_ratio_optimum_is_where_the_curve_is_lowest():
    law, p = get_law("holistic2026_m_ratio"), EXAMPLES["holistic2026_m_ratio"]
    x = np.linspace(6.1, 30, 20001)
    best = x[np.argmin(law.predict(p, {"M_over_Na": x}))]
    assert law.derived(p)["optimal_M_over_Na"] == pytest.approx(best, abs=2e-3)


def test_unknown_law_and_missing_variable_are_clear_errors():
    with pytest.raises(MoescaleError, match="unknown law"):
        get_law("nope")
    with pytest.raises(MoescaleError, match="needs variable E"):
        get_law("clark2022").predict(EXAMPLES["clark2022"], {"N": 1e9})


def test_comprehensive_efficiency_aware_optimum():
    # Zhao et al. 2025: G* ≈ 6.78, S* ≈ 0.31, N_a/N ≈ 40 % at 30B (papers.md §2). Under the
    # tolerance criterion the efficiency-aware choice is cheaper (fewer activated experts,
    # sparser) and costs exactly the allowed loss; a larger tolerance buys more sparsity.
    # Under the default (marginal) criterion larger models go sparser too; its paper values
    # are tested in test_zhao_efficiency.py.
    from moescale.laws import zhao2025

    for n in (3e10, 6.71e11):
        eff = zhao2025.efficiency_aware_optimum(n, tolerance=0.005)
        assert eff["criterion"] == "tolerance"
        assert eff["G"] < eff["G_opt"] == pytest.approx(6.78, abs=0.01)
        assert eff["activation_ratio"] < eff["activation_ratio_opt"]
        assert eff["loss_increase_G"] == pytest.approx(0.005, rel=1e-6)
        looser = zhao2025.efficiency_aware_optimum(n, tolerance=0.02)
        assert looser["activation_ratio"] < eff["activation_ratio"] and looser["G"] < eff["G"]
    small, large = (zhao2025.efficiency_aware_optimum(n) for n in (3e10, 6.71e11))
    assert large["activation_ratio"] < small["activation_ratio"]
    assert get_law("zhao2025").derived(zhao2025.TABLE2)["S_opt"] == pytest.approx(0.31, abs=0.01)


# Published initialisation grids (papers.md §5 and §3); every other law keeps a modest grid.
PUBLISHED_GRID_SIZES = {"chinchilla": 6 * 6 * 5 * 5 * 5, "ludziejewski2025": 3**9}


@pytest.mark.parametrize("name", LAWS)
def test_fitting_metadata_is_consistent(name):
    law = get_law(name)
    for group in (law.log_params, law.bounds, law.init_grid, law.init):
        assert set(group) <= set(law.params), group
    size = int(np.prod([len(axis) for axis in law.init_grid.values()]))
    assert size == PUBLISHED_GRID_SIZES.get(name, size) and (name in PUBLISHED_GRID_SIZES
                                                             or size <= 500)
    for k, (lo, hi) in law.bounds.items():
        assert lo < hi
        start = law.init_grid.get(k, (law.init.get(k, 0.0),))
        assert all(lo <= x <= hi for x in start), (k, start)
    # every grid start gives a finite prediction on plausible runs
    grid = np.stack(np.meshgrid(*law.init_grid.values(), indexing="ij"), -1).reshape(
        -1, len(law.init_grid))
    theta = {k: np.asarray(law.init.get(k, 0.0)) for k in law.params}
    theta.update({k: grid[:, [i]] for i, k in enumerate(law.init_grid)})
    out = law.log_loss(law.from_fit_space(theta), law.check_variables(example_variables(law)))
    assert np.all(np.isfinite(out))
    for preset in law.presets.values():  # published values sit inside the fit bounds
        fit = {k: v for k, v in preset.values.items() if v > 0 or k not in law.log_params}
        theta = law.to_fit_space({**{k: 1.0 for k in law.params}, **fit})
        assert all(lo <= theta[k] <= hi for k, (lo, hi) in law.bounds.items() if k in fit)


def test_joint_moe_grid_is_the_papers_with_signed_exponents():
    # papers.md §3: α, β ∈ {0.05, 0.25, 0.5} (negative as printed), a, b ∈ {30, 100, 300},
    # c ∈ {0.5, 1, 2} fitted in log space, δ, γ, ω, ζ ∈ {−0.5, 0, 0.5}.
    law = get_law("ludziejewski2025")
    g = law.init_grid
    assert sorted(g["alpha"]) == sorted(g["beta"]) == [-0.5, -0.25, -0.05]
    assert np.allclose(np.exp(sorted(g["a"])), [30, 100, 300])
    assert np.allclose(np.exp(sorted(g["c"])), [0.5, 1, 2])
    assert all(sorted(g[k]) == [-0.5, 0, 0.5] for k in ("delta", "gamma", "omega", "zeta"))
    assert np.exp(law.init["E_start"]) == pytest.approx(2) and np.exp(law.init["E_max"]) == pytest.approx(300)


@pytest.mark.parametrize("name", [n for n in LAWS if get_law(n).derived is not None])
def test_derived_quantities_are_finite(name):
    law = get_law(name)
    assert all(np.isfinite(v) for v in law.derived(example_params(law)).values())


def test_holistic_n_ratio_optimum_is_where_the_curve_is_lowest():
    from moescale.laws.holistic_curves import PAPER_X_MAX, optimal_N_over_Na

    law, p = get_law("holistic2026_n_ratio"), EXAMPLES["holistic2026_n_ratio"]
    assert PAPER_X_MAX == pytest.approx((288 + 1) / (8 + 1))  # N_e = 288, K = 8 (papers.md §1)
    for x_max in (PAPER_X_MAX, 12.0):
        x = np.linspace(1.001, x_max - 1e-3, 200001)
        best = x[np.argmin(law.predict(p, {"N_over_Na": x, "x_max": np.full_like(x, x_max)}))]
        assert optimal_N_over_Na(p, x_max) == pytest.approx(best, abs=1e-3)
    assert law.derived(p)["optimal_N_over_Na"] == optimal_N_over_Na(p)


def test_zhao_gradient_matches_its_loss_function_not_just_itself():
    # The analytic gradient of the comprehensive law against differences of zhao2025.loss
    # (the function the presets test checks against the paper's optima).
    from moescale.laws import zhao2025

    law, p = get_law("zhao2025"), dict(zhao2025.TABLE2)
    v = {"N": np.array([3e9]), "N_a": np.array([1e9]), "D": np.array([5e10]),
         "G": np.array([4.0]), "S": np.array([0.3])}
    h = 1e-7
    fd = (np.log(zhao2025.loss(**v, p={**p, "beta": p["beta"] + h}))
          - np.log(zhao2025.loss(**v, p={**p, "beta": p["beta"] - h}))) / (2 * h)
    assert law.grad_log_loss(p, v)["beta"] == pytest.approx(fd, rel=1e-6)


def test_krajewski_granularity_optimum_is_the_largest_affordable():
    # The law alone is monotone in G (g > 0, γ > 0), so the optimum is the top of the grid the
    # routing cost allows (documented in compute_optimal_granularity).
    from moescale.laws.krajewski2024 import compute_optimal_granularity

    p = get_law("krajewski2024").presets["moe"].values
    assert compute_optimal_granularity(1e9, 2e10, p, grid=[1, 2, 4, 8]) == 8
    assert compute_optimal_granularity(1e9, 2e10, p) == 64
