"""Default holistic plans from the paper's budgets to the frontier (1e18–1e26 FLOPs): shapes a
team would build. The rule (planning.holistic_plan, README "Plans beyond the paper"): beyond the
paper's 3e20, heads of 128 with attention between d and 2·d, and d/L nearest 128 inside the
near-optimal band, never above 256 — Kaplan et al. 2020 (arXiv 2001.08361, Fig. 5) measure loss
flat for d/L ≈ 10–200; open MoE models sit at 44–128 (Qwen3-235B 44, DeepSeek-V3 117, Mixtral
128). Golden values are those sources' and the holistic paper's Table 4 (papers.md §1)."""

from __future__ import annotations

import functools

import pytest

from conftest import run_cli
from moescale.planning import Budget, plan_holistic

HALF_DECADES = [m * 10.0**e for e in range(18, 26) for m in (1, 3)] + [1e26]
DECADES = [10.0**e for e in range(18, 27)]
PAPER_EDGE = 3e20
# Table 4 (papers.md §1): batch in sequences of 8192 at the paper's six budgets
TABLE4_BATCH = {1e18: 64, 3e18: 80, 1e19: 128, 3e19: 160, 1e20: 208, 3e20: 288}


@functools.cache
def default_plan(compute: float):
    return plan_holistic(Budget(compute=compute))


@pytest.mark.parametrize("compute", HALF_DECADES)
def test_every_default_plan_has_a_buildable_shape(compute):
    p = default_plan(compute)
    a = p.architecture
    assert a.hidden_size / a.n_layers <= 256, (a.hidden_size, a.n_layers)
    assert a.seq_len == 8192  # the paper's context at every budget (stated rule)
    if compute > PAPER_EDGE:
        assert a.head_dim == 128 and a.n_heads == 2 * a.n_kv_heads
        assert 1.0 <= a.n_heads * a.head_dim / a.hidden_size <= 2.0
        assert 0.9 * 128 <= a.hidden_size / a.n_layers <= 256
    # the only warnings: the laws used beyond their papers' runs (zhao2025's loss everywhere)
    assert all(w.startswith("Extrapolation of ") for w in p.warnings), p.warnings
    assert any("zhao2025" in w for w in p.warnings) or compute <= PAPER_EDGE


def test_depth_never_falls_as_the_budget_grows():
    """Over every decade from 1e18 to 1e26, and at every half decade beyond the paper. Inside
    it the paper's own depth dips where Table 4 doubles the attention width (3e18, 3e19, 3e20:
    L = (M − 6·N_a)/(6·S·N_q·d_qkv) halves with N_q·d_qkv), and the plan keeps the paper's."""
    depths = [default_plan(c).architecture.n_layers for c in DECADES]
    assert depths == sorted(depths), depths
    beyond = [default_plan(c).architecture.n_layers for c in HALF_DECADES if c >= PAPER_EDGE]
    assert beyond == sorted(beyond), beyond
    assert default_plan(1e23).architecture.n_layers >= 32  # was 8 layers at d = 13448


@pytest.mark.parametrize("compute", HALF_DECADES)
def test_plan_lies_inside_its_reported_band(compute):
    p = default_plan(compute)
    band, a, r = p.near_optimal_band, p.architecture, p.counts.ratios
    values = {"M_over_Na": r["M_over_Na"], "N_over_Na": r["N_over_Na"],
              "width_ratio": (a.top_k + a.n_shared_experts) * a.expert_ffn / a.hidden_size,
              "hidden_size": a.hidden_size, "n_layers": a.n_layers,
              "aspect_ratio": a.hidden_size / a.n_layers}
    reported = [k for k, v in band.items() if isinstance(v, list)]
    assert set(reported) == set(values)
    for key in reported:
        lo, hi = band[key]
        assert lo * (1 - 1e-9) <= values[key] <= hi * (1 + 1e-9), (key, lo, values[key], hi)


def test_explanations_are_true_at_1e23():
    p = default_plan(1e23)
    text = " ".join(p.assumptions)
    assert p.architecture.n_layers < 128 and "limit" not in text  # nothing blames the depth cap
    assert "d/L nearest 128" in text and "Kaplan" in text


@pytest.mark.parametrize("compute", sorted(TABLE4_BATCH))
def test_table4_batch_exactly_at_its_budgets(compute):
    assert default_plan(compute).batch_size_sequences == TABLE4_BATCH[compute]


def test_batch_between_and_beyond_table4_follows_its_law():
    """Between the budgets the power law through Table 4 (∝ C^0.263), not a table row."""
    import numpy as np

    budgets, seqs = np.array(list(TABLE4_BATCH)), np.array(list(TABLE4_BATCH.values()))
    p, logk = np.polyfit(np.log(budgets), np.log(seqs), 1)
    assert p == pytest.approx(0.263, abs=0.002)
    for compute in (2e19, 1e22):
        assert default_plan(compute).batch_size_sequences == round(np.exp(logk) * compute**p)


def test_unmeetable_frontier_budget_is_one_error_line(capsys):
    code, out, err = run_cli(["plan", "--compute", "1e23", "--memory", "10GB"], capsys)
    assert code == 2 and not out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and "memory budget" in lines[0]


def test_readme_frontier_table_is_what_the_planner_gives():
    import re

    from conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| (\de\d\d) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|", readme, flags=re.M)
    assert len(rows) >= 5
    for c, d, layers, aspect, heads in rows:
        a = default_plan(float(c)).architecture
        assert (a.hidden_size, a.n_layers, a.n_heads) == (int(d), int(layers), int(heads))
        assert round(a.hidden_size / a.n_layers) == int(aspect)
