"""`moescale compare`: dense vs MoE, experts per memory budget, comprehensive-law optima."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli as run


def test_compare_json(capsys):
    code, out, err = run(["compare", "--compute", "1e21", "--memory", "8GB,80GB", "--json"], capsys)
    assert code == 0, err
    res = json.loads(out)
    savings = [r["flop_savings"] for r in res["dense_vs_moe"]]
    # joint-MoE paper: at fixed compute more experts give lower loss, hence growing savings
    assert savings[0] == pytest.approx(0, abs=1e-6) and savings == sorted(savings)
    losses = [r["loss"] for r in res["dense_vs_moe"]]
    assert losses == sorted(losses, reverse=True)
    for row in res["experts_by_memory"]:
        assert row["total_params"] * 2 <= row["memory_bytes"] * (1 + 1e-9)
    assert [r["memory_bytes"] for r in res["experts_by_memory"]] == [8e9, 80e9]
    comp = res["comprehensive"]
    assert all(r["G_opt"] == pytest.approx(6.78, abs=0.01) for r in comp)
    assert [r["activation_ratio_opt"] for r in comp] == sorted(
        [r["activation_ratio_opt"] for r in comp], reverse=True)


def test_compare_table_and_errors(capsys):
    code, out, _ = run(["compare", "--compute", "1e20"], capsys)
    assert code == 0 and "savings" in out and "G*" in out
    code, _, err = run(["compare", "--compute", "-1"], capsys)
    assert code == 2 and "positive" in err
    code, _, err = run(["compare", "--compute", "1e21", "--memory", "lots"], capsys)
    assert code == 2 and "--memory" in err
