"""The default holistic plan at the holistic paper's own budgets (Wan et al. 2026,
arXiv 2603.21862): Table 4's head shapes, the phase-2 d range and depth L. Golden values are
the paper's (papers.md §1), never the planner's."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import reference_file
from moescale.api import plan as make_plan
from moescale.planning import Budget, HolisticSettings, plan_holistic
from moescale.planning import holistic as hs

# Table 4 (papers.md §1): budget → (d_qkv, N_q, N_kv)
TABLE4 = {1e18: (64, 4, 2), 3e18: (64, 8, 4), 1e19: (64, 8, 4), 3e19: (128, 8, 4),
          1e20: (128, 8, 4), 3e20: (128, 16, 8)}
# Phase-2 configurations the paper trained: swept d range and depth L.
PHASE2 = {1e18: ((288, 744), {9, 10}), 1e19: ((648, 1272), {13}), 3e20: ((1248, 2200), {16})}


@pytest.mark.parametrize("compute", sorted(TABLE4))
def test_default_plan_uses_table4_heads(compute):
    a = plan_holistic(Budget(compute=compute)).architecture
    assert (a.head_dim, a.n_heads, a.n_kv_heads) == TABLE4[compute]


@pytest.mark.parametrize("compute", sorted(PHASE2))
def test_default_plan_inside_the_papers_phase2_configurations(compute):
    (d_lo, d_hi), depths = PHASE2[compute]
    a = plan_holistic(Budget(compute=compute)).architecture
    assert d_lo <= a.hidden_size <= d_hi
    assert a.n_layers in depths


def test_depth_at_1e20_follows_from_the_papers_heads():
    """Issue 20: with Table 4's 8/4 × 128 heads, L = (M − 6·N_a)/(6·S·N_q·d_qkv) ≈ 18 at 1e20
    (M = 3.2681 GFLOPs, M/N_a = 8.34); 64-wide heads gave L = 37."""
    M = 3.2681e9
    expected = round((M - 6 * M / 8.34) / (6 * 8192 * 8 * 128))
    assert expected == 18
    a = plan_holistic(Budget(compute=1e20)).architecture
    assert abs(a.n_layers - expected) <= 1


def test_attention_wider_than_d_is_allowed_as_in_the_paper():
    """3e20: the paper trains d = 1248 with 16 × 128 = 2048-wide attention."""
    s = HolisticSettings()
    assert s.heads_for(3e20) == (128, 16, 8)
    a = plan_holistic(Budget(compute=3e20)).architecture
    assert a.n_heads * a.head_dim == 2048 and a.hidden_size < 2048


def test_between_and_beyond_table4_the_stated_rule():
    # between two rows: the nearest budget in log C (geometric-mean boundary)
    assert hs.table4_heads(1.5e19) == TABLE4[1e19]  # log-nearer to 1e19 than to 3e19
    assert hs.table4_heads(2e19) == TABLE4[3e19]
    # beyond: width keeps growing (power of two), d_qkv 128, N_q/N_kv = 2 (Table 4's GQA)
    dq, nq, nkv = hs.table4_heads(3e21)
    assert dq == 128 and nq > 16 and nq == 2 * nkv
    # below: width shrinks, never wider than the 1e18 row
    dq, nq, nkv = hs.table4_heads(1e15)
    assert dq * nq < 256 and nq == 2 * nkv


def test_head_overrides_win():
    p = make_plan(1e20, method="holistic", heads=4, kv_heads=2, head_dim=64)
    a = p.architecture
    assert (a.n_heads, a.n_kv_heads, a.head_dim) == (4, 2, 64)


def test_joint_moe_plans_use_their_papers_batch_then_a_stated_law():
    """Ludziejewski et al. 2025 (arXiv 2502.05172, Appendix E) train with a batch ramped to
    256K tokens at every size, up to 6·N_act·D = 6 × 1.103e9 × 80e9 = 5.3e20 FLOPs (the largest
    run of shared/data/joint_moe_appendixE_run_grid_NO_LOSS.csv); beyond it the batch grows as
    the holistic Table 4 law, C^0.263, so a 1e23 plan does not take 1.2M steps."""
    from moescale.planning import Budget
    from moescale.planning import plan_with_law as plan_law

    grid = np.genfromtxt(reference_file("joint_moe_appendixE_run_grid_NO_LOSS.csv"),
                         delimiter=",", names=True)
    c_max = float(np.max(6.0 * grid["N_act_eq10"] * grid["D_tokens"]))
    for compute in (1e19, 5e20):
        plan = plan_law(Budget(compute=compute), law="ludziejewski2025")
        assert plan.batch_size_tokens == 262_144
        assert any("256K" in a and "no batch-size law" in a for a in plan.assumptions)
    for compute in (1e21, 1e23):
        plan = plan_law(Budget(compute=compute), law="ludziejewski2025")
        want = 262_144 * (compute / c_max) ** 0.263
        assert plan.batch_size_tokens == pytest.approx(want, rel=0.01)  # whole sequences of 512
    steps = plan.allocation["tokens"] / plan.batch_size_tokens
    assert steps < 1.01 * float(np.max(grid["D_tokens"])) / 262_144  # within the paper's steps


def test_a_one_candidate_band_says_why():
    from moescale.planning import Budget
    from moescale.planning import plan_with_law as plan_law

    plan = plan_law(Budget(compute=1e20), law="ludziejewski2025")
    band = plan.near_optimal_band
    if band["candidates"] == 1:
        assert "worse, beyond the 0.1 % tolerance" in band["reason"]
    plan = plan_law(Budget(compute=1e20), law="ludziejewski2025", experts=[8])
    assert plan.near_optimal_band["reason"].startswith("only one number of experts")
