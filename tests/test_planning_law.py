"""Continuous allocation with the joint-MoE law (papers.md §3)."""

from __future__ import annotations

import pytest

from moescale.errors import MoescaleError
from moescale.laws import get_law
from moescale.laws import ludziejewski2025 as joint
from moescale.planning import Budget, plan_with_law
from moescale.planning import allocation as al
from moescale.planning.compare import experts_by_memory, flop_savings

LAW = get_law("ludziejewski2025")
P = LAW.preset("ludziejewski2025").values


def loss(n, d, e):
    return LAW.predict(P, {"N_active": n, "D": d, "E": e})


@pytest.mark.parametrize("E", [1, 2, 4, 8, 16, 32])
@pytest.mark.parametrize("compute", [1e19, 1e22])
def test_closed_form_equals_numeric_optimum(E, compute):
    n_closed, d_closed = joint.compute_optimal(compute, E)
    numeric = al.compute_optimal(loss, compute, E)
    assert numeric.active_params == pytest.approx(n_closed, rel=1e-4)
    assert numeric.tokens == pytest.approx(d_closed, rel=1e-4)


def test_more_experts_lower_loss_at_fixed_compute():
    losses = [al.compute_optimal(loss, 1e21, e).loss for e in (1, 2, 4, 8, 16, 32)]
    assert losses == sorted(losses, reverse=True) and losses[0] > losses[-1]


def test_memory_constrained_never_exceeds_budget():
    for mem in (2e9, 8e9, 24e9, 80e9):
        for e in (1, 4, 16):
            a = al.memory_constrained(loss, 1e22, e, mem, bytes_per_value=2.0, kv_tokens=8192)
            used = (al.family_total(a.active_params, e)
                    + al.family_kv_values(a.active_params, 8192)) * 2.0
            assert used <= mem * (1 + 1e-9)
            free = al.compute_optimal(loss, 1e22, e)
            assert a.active_params <= free.active_params * (1 + 1e-9)  # truncated, never larger


def test_plan_with_law_and_comparisons():
    p = plan_with_law(Budget(compute=1e22, memory_bytes=24e9), experts=(1, 4, 8, 32))
    assert p.binding_constraint == "memory" and p.allocation["experts"] > 1  # MoE memory-optimal
    assert p.counts.weights_bytes("bf16") <= 24e9 * 1.1  # realised family member (d rounded)
    rows = flop_savings(loss, 1e20, (2, 8, 32))
    savings = [r["flop_savings"] for r in rows]
    assert savings == sorted(savings) and 0 < savings[0]  # more experts, larger savings
    best = experts_by_memory(loss, 1e22, [4e9, 400e9], (1, 4, 16, 32))
    assert best[0]["experts"] <= best[1]["experts"]


def test_inference_tokens_and_bad_input():
    p = plan_with_law(Budget(compute=1e22, inference_tokens=1e12), experts=(1, 8))
    a = p.allocation
    assert 6 * a["active_params"] * a["tokens"] + 2 * a["active_params"] * 1e12 == pytest.approx(1e22)
    with pytest.raises(MoescaleError, match="cannot drive a continuous allocation"):
        plan_with_law(Budget(compute=1e21), law="zhao2025")
    with pytest.raises(MoescaleError, match="cannot hold even the smallest model"):
        plan_with_law(Budget(compute=1e21, memory_bytes=1e6))
