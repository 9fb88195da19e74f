"""The MoE question end to end: a micro isoFLOP sweep of dense and two expert counts from a
one-line grid axis, then the joint-MoE fit, the per-E analysis, a suggestion and the report —
with the dense baseline (E = 1, the papers' convention) present everywhere."""

from __future__ import annotations

import json
import sqlite3

import pytest

from sweep_helpers import run_moescale, shared_token_cache  # noqa: F401

pytest.importorskip("torch")

SPEC = """
name = "experts"
budgets = [1e9, 3e9]
seeds = [0]

[base]
n_layers = 1
n_heads = 2
vocab_size = 256
seq_len = 32
top_k = 1
expert_ffn = 32

[grid]
hidden_size = [8, 16, 32]
n_experts = [0, 4, 8]   # dense and two expert counts, one line

[train]
batch_tokens = 256
lr = 3e-3
eval_tokens = 1024

[[runs]]                # a second seed of the middle size: the seed noise
budget = 1e9
seed = 1
hidden_size = 16
[[runs]]
budget = 1e9
seed = 1
hidden_size = 16
n_experts = 8
"""
SWEEP_FIGURES = {"isoflop", "frontier", "optima", "learning_curves", "experts",
                 "compute_multiplier"}


@pytest.fixture(scope="module")
def experts_store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("experts")
    spec = tmp / "experts.toml"
    spec.write_text(SPEC)
    store = tmp / "experts.db"
    result = run_moescale("sweep", "run", str(spec), "--store", str(store), "--workers", "2",
                          "--threads", "1", "--json", cwd=tmp, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    return tmp, store


@pytest.mark.slow
def test_dense_is_one_expert_with_the_active_width_of_top1(experts_store):
    tmp, store = experts_store
    result = run_moescale("sweep", "export", "--store", str(store), "-o", str(tmp / "runs.csv"))
    assert result.returncode == 0, result.stderr
    import pandas as pd

    runs = pd.read_csv(tmp / "runs.csv")
    assert len(runs) == 2 * 3 * 3 + 2 and runs["loss"].notna().all()
    assert sorted(runs["E"].unique()) == [1, 4, 8]  # dense stored as one expert, never 0
    # at equal d, dense and top-1 MoE have the same active parameters but the router's d·E
    for (_, d), g in runs.groupby(["budget", "d"]):
        dense = g.loc[g["E"] == 1, "N_active_ne"].iloc[0]
        assert ((g["N_active_ne"] - dense) == d * g["E"].where(g["E"] > 1, 0)).all()
    # the old convention (n_experts = 0 in the stored architecture) still reads as E = 1
    with sqlite3.connect(store) as db:
        stored = [json.loads(r[0])["architecture"]["n_experts"]
                  for r in db.execute("SELECT spec FROM runs")]
    assert 0 in stored


@pytest.mark.slow
def test_fit_analyze_suggest_report_keep_the_dense_baseline(experts_store):
    tmp, store = experts_store
    fit = run_moescale("fit", "--store", str(store), "--law", "ludziejewski2025",
                       "--bootstrap", "20", "-o", str(tmp / "joint.json"), "--json", cwd=tmp)
    assert fit.returncode == 0, fit.stderr
    assert json.loads(fit.stdout)["law"] == "ludziejewski2025"

    analyze = run_moescale("sweep", "analyze", "--store", str(store), "--x", "N_active",
                           "--by", "E", "--bootstrap", "50", "--json", cwd=tmp)
    assert analyze.returncode == 0, analyze.stderr
    result = json.loads(analyze.stdout)
    groups = {b["group"]["arm_key"] for b in result["budgets"]}
    assert groups == {"dense", "E 4", "E 8"}  # dense is E = 1, its own arm
    experts = result["experts"]
    assert {b["arm"] for b in experts["best"]} == {"dense", "E 4", "E 8"}
    assert experts["reference"] == "dense"
    assert experts["seed_noise"]["sd"] is not None and experts["seed_noise"]["n_configs"] == 2
    assert {m["arm"] for m in experts["multipliers"]} == {"E 4", "E 8"}

    suggest = run_moescale("sweep", "suggest", "--store", str(store), "--law",
                           "ludziejewski2025", "--target-compute", "1e10", "--n", "3",
                           "--json", cwd=tmp)
    assert suggest.returncode == 0, suggest.stderr
    proposal = json.loads(suggest.stdout)
    assert proposal["suggestions"] and all("E" in r for r in proposal["suggestions"])

    out = tmp / "report"
    report = run_moescale("report", "--store", str(store), "--fit", str(tmp / "joint.json"),
                          "-o", str(out), "--json", cwd=tmp)
    assert report.returncode == 0, report.stderr
    drawn = {f["name"] for f in json.loads(report.stdout)["figures"]}
    assert SWEEP_FIGURES <= drawn, drawn
    skipped = {s["name"] if isinstance(s, dict) else s[0]
               for s in json.loads(report.stdout)["skipped"]}
    assert not skipped & (SWEEP_FIGURES | {"fit_parity", "fit_residuals", "fit_params"})
    html = (out / "index.html").read_text()
    assert "for dense" in html and "Compute multiplier over dense" in html
    # one isoFLOP panel per arm, named by its axes, and the dense line of the frontier
    svg = (out / "figures" / "isoflop.svg").read_text()
    assert all(arm in svg for arm in ("dense", "E 4", "E 8"))
    assert "best dense run per budget" in (out / "figures" / "frontier.svg").read_text()


def test_the_leaderboard_states_the_seed_noise(experts_store):
    tmp, store = experts_store
    board = run_moescale("fit", "--store", str(store), "--law", "chinchilla,ludziejewski2025",
                         "--json", cwd=tmp)
    assert board.returncode == 0, board.stderr
    noise = json.loads(board.stdout)["seed_noise"]
    assert noise["n_configs"] == 2 and noise["sd"] > 0
    text = run_moescale("fit", "--store", str(store), "--law", "chinchilla,ludziejewski2025",
                        cwd=tmp)
    assert "seed noise σ = " in text.stdout
