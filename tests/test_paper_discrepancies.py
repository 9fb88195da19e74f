"""One test per choice of docs/paper-discrepancies.md. Golden values come from the papers
(papers.md section / table cited at each), never from the code under test."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from moescale.laws import get_law, wang2024, zhao2025
from moescale.laws import ludziejewski2025 as lz
from moescale.planning import Budget, HolisticSettings, plan_holistic, plan_with_law
from moescale.planning import holistic as hs
from moescale.planning import holistic_plan as hp

S, K, N_E = 8192, 8, 288
# Holistic Table 9 / phase-1 rows at 1e18, M/N_a ≈ 7 (papers.md §1): grid N/N_a, row
ROWS = {12: (1496, 1, 4488, 2, 168, 3), 16: (1352, 1, 4056, 2, 248, 3),
        20: (1208, 1, 3624, 2, 336, 3), 22: (1096, 1, 3288, 2, 408, 3),
        26: (816, 1, 2448, 2, 664, 3), 30: (432, 1, 1296, 2, 1456, 3)}


def _appendix(d, L_d, d_d, L_m, d_m, L, nq=4, nkv=2, dq=64):
    """Appendix A of arXiv 2603.21862 by hand: (N_a, N, attention FLOPs term)."""
    n_a = 2 * d * dq * (nq + nkv) * L + 3 * d * d_d * L_d + 3 * d * d_m * (K + 1) * L_m
    return n_a, n_a + 3 * d * d_m * (N_E - K) * L_m, 6 * S * nq * dq * L


# ----- holistic -------------------------------------------------------------------------------
def test_holistic_flops_use_the_appendix_form():
    n_a, _, attn = _appendix(*ROWS[12])
    assert (6 * n_a + attn) / n_a == pytest.approx(7.0, abs=0.05)  # the grid's M/N_a
    assert (6 * n_a * 3 + attn) / n_a == pytest.approx(19.0, abs=0.05)  # Eq. 3 as printed
    m, na_r, _ = hs.realised_counts(1496, 3, 1, 2, 168, HolisticSettings(), (64, 4, 2))
    assert m == pytest.approx(6 * n_a + attn, rel=1e-12) and na_r == n_a


def test_holistic_M_is_training_flops():
    # Step 1: D_opt = 22.8929·C^0.4563, M_opt = 0.04368·C^0.5437, and C = M·D
    assert 0.04368 * 22.8929 == pytest.approx(1.0, abs=1e-3)
    p = plan_holistic(Budget(compute=1e19))
    assert p.allocation["flops_per_token"] * p.allocation["tokens"] <= 1e19
    assert p.allocation["flops_per_token"] * p.allocation["tokens"] >= 0.99e19


@pytest.mark.parametrize(("compute", "y"), [(1e18, 19), (3e18, 20), (1e19, 21), (3e19, 21),
                                            (1e20, 22), (3e20, 22)])
def test_holistic_targets_are_the_stated_values(compute, y):
    """papers.md §1: N/N_a used afterwards 19, 20, 21, 21, 22, 22."""
    _, got = hp.Targets().ratios(compute, HolisticSettings(), [])
    assert got == pytest.approx(y, rel=1e-9)


def test_attention_may_be_wider_than_d():
    assert hs.MAX_ATTENTION_OVER_D >= 2048 / 1248  # the paper's 3e20 configuration
    a = plan_holistic(Budget(compute=3e20)).architecture
    assert a.n_heads * a.head_dim > a.hidden_size


def test_every_candidate_realises_M_within_5_percent():
    s = HolisticSettings()
    m = 0.9345e9  # Step-1 table, 1e19
    c = hs.enumerate_candidates(m, 9.2, 21.0, s, s.head_ladder(1e19))
    assert np.all(np.abs(c.M / m - 1) <= 0.05)


def test_table9_documented_behaviour():
    """The stated definition alone (any L_d ≥ 1): rows 12 and 16 within 3 %, rows 20–30 low
    by 3–10 % — the feasible range there also holds L_d = 2 structures at smaller d."""
    M = 0.2672e9
    for y, row in ROWS.items():
        d = hs.median_feasible_d(M, M / 7.0, y * M / 7.0, HolisticSettings(), (64, 4, 2))
        err = d / row[0] - 1
        if y <= 16:
            assert abs(err) <= 0.03, (y, err)
        else:
            assert -0.10 <= err < -0.03, (y, err)


TABLE9_SPEC = """
name = "table9"
budgets = [1e18]
convention = "holistic"
[base]
n_heads = 4
n_kv_heads = 2
head_dim = 64
seq_len = 8192
vocab_size = 256
n_experts = 288
top_k = 8
n_shared_experts = 1
first_dense_layers = 1
[holistic]
m_over_na = [7]
n_over_na = [12, 16, 20, 22, 26, 30]
[train]
batch_tokens = 524288
"""


def test_table9_with_one_dense_layer(tmp_path):
    """Every Table 9 row has L_d = 1 (papers.md §1): a holistic sweep that holds
    first_dense_layers = 1 from [base] reproduces all six rows' d within 4 % (the vocabulary does
    not enter the structure: N, N_a and M exclude embeddings)."""
    from moescale.sweeps.spec import SweepSpec

    assert all(row[1] == 1 for row in ROWS.values())
    path = tmp_path / "table9.toml"
    path.write_text(TABLE9_SPEC)
    runs = SweepSpec.load(path).expand()
    got = {round(r.tags["n_over_na_target"]): r.arch() for r in runs}
    assert sorted(got) == sorted(ROWS)
    for y, row in ROWS.items():
        a = got[y]
        assert a.first_dense_layers == 1 and a.n_layers == row[5], (y, a)
        assert a.hidden_size == pytest.approx(row[0], rel=0.04), (y, a.hidden_size, row[0])


# ----- joint MoE ------------------------------------------------------------------------------
def test_eq7_uses_magnitudes():
    m, mu, n, nu = lz.reduce_to_chinchilla(8)
    assert mu < 0 and nu < 0  # signed as in Table 4
    g_signed = (mu * m / (nu * n)) ** (1 / (mu + nu))
    g_abs = (abs(mu) * m / (abs(nu) * n)) ** (1 / (abs(mu) + abs(nu)))
    assert g_signed == pytest.approx(1 / g_abs, rel=1e-12)
    F = 1e21
    n_opt, _ = lz.compute_optimal(F, 8)
    res = minimize_scalar(lambda ln: m * math.exp(ln) ** mu + n * (F / 6 / math.exp(ln)) ** nu,
                          bounds=(math.log(1e6), math.log(1e12)), method="bounded",
                          options={"xatol": 1e-10})
    assert n_opt == pytest.approx(math.exp(res.x), rel=1e-3)


def test_eq8_counts_non_embedding_parameters():
    assert get_law("ludziejewski2025_lr").convention == "kaplan"
    p = plan_with_law(Budget(compute=1e20))
    a = p.architecture
    non_emb = 13 * a.n_layers * a.hidden_size**2  # Eq. 10 without 2·d·V
    e = p.allocation["experts"]
    want = math.exp(8.391640956234012 - 0.8121798244457074 * math.log(non_emb) - 0.25 * math.log(e))
    assert p.learning_rate == pytest.approx(want, rel=1e-9)
    code = math.exp(8.391640956234012 - 0.8121798244457074
                    * math.log(non_emb + 2 * a.hidden_size * a.vocab_size) - 0.25 * math.log(e))
    assert 0.10 < 1 - code / p.learning_rate < 0.25  # the documented ≈ 17 %


# papers.md §3, the per-E table: E → (m, μ, n, ν)
PER_E = {1: (30.3640, -0.1817, 53.9838, -0.1965), 2: (27.7982, -0.1780, 66.8401, -0.2065),
         4: (24.8462, -0.1731, 87.7022, -0.2192), 8: (21.8330, -0.1676, 119.9126, -0.2338),
         16: (19.0159, -0.1617, 167.5073, -0.2494), 32: (16.5424, -0.1557, 234.6726, -0.2652)}


@pytest.mark.parametrize("E", sorted(PER_E))
def test_per_expert_table_from_table3(E):
    assert lz.reduce_to_chinchilla(E) == pytest.approx(PER_E[E], rel=0.003)


def test_init_grid_is_signed():
    grid = get_law("ludziejewski2025").init_grid
    assert all(v < 0 for v in grid["alpha"]) and all(v < 0 for v in grid["beta"])
    assert sorted(abs(v) for v in grid["alpha"]) == [0.05, 0.25, 0.5]  # the paper's magnitudes


def test_run_grid_has_270_runs():
    path = Path("/work/shared/data/joint_moe_appendixE_run_grid_NO_LOSS.csv")
    if not path.exists():
        pytest.skip("shared data not available")
    with path.open() as f:
        assert sum(1 for _ in csv.DictReader(f)) == 270


# ----- comprehensive law, dense vs MoE --------------------------------------------------------
def test_zhao_convention_is_stated():
    assert get_law("zhao2025").convention == "holistic"
    assert "stated choice" in zhao2025.__doc__


def test_efficiency_aware_criterion():
    out = zhao2025.efficiency_aware_optimum(30e9, tolerance=0.005)
    assert out["G"] < out["G_opt"] and out["activation_ratio"] < out["activation_ratio_opt"]
    assert out["loss_increase_G"] <= 0.005 + 1e-9


def test_wang_N_factor_only_rescales_A():
    assert not get_law("wang2024").presets  # no published constants
    p = dict(A=400.0, alpha=0.3, gamma=0.1, B=400.0, beta=0.3, sigma=1.7)
    n_ours, d_ours = wang2024.compute_optimal(1e21, 8, p)
    # the paper's N = C/D = 6·N: the same law with A·6^α predicts the same loss for (6N, D)
    q = {**p, "A": p["A"] * wang2024.N_FACTOR ** p["alpha"]}
    law = get_law("wang2024")
    ours = law.predict(p, {"N": n_ours, "D": d_ours, "E": 8})
    theirs = law.predict(q, {"N": wang2024.N_FACTOR * n_ours, "D": d_ours, "E": 8})
    assert float(ours) == pytest.approx(float(theirs), rel=1e-12)


def test_page_names_existing_tests():
    """Every test docs/paper-discrepancies.md names in brackets exists under tests/."""
    import re

    root = Path(__file__).resolve().parents[1]
    page = (root / "docs" / "paper-discrepancies.md").read_text()
    named = set()
    for bracket in re.findall(r"\[(`[^\]]*)\]", page, flags=re.S):
        named |= set(re.findall(r"`(test_\w+)`", bracket))
    defined = set()
    for path in (root / "tests").glob("test_*.py"):
        defined |= set(re.findall(r"^def (test_\w+)", path.read_text(), flags=re.M))
    assert len(named) >= 20
    assert named <= defined, sorted(named - defined)
