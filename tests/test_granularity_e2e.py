"""The granularity question end to end, on micro models: a sweep of dense, G 1 and G 2 arms
at equal active size ([[arms]]), trained, exported, analysed by G with a multiplier over dense
and over G 1, and reported with the arms named by their axes."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import needs_torch
from sweep_helpers import run_moescale, shared_token_cache  # noqa: F401

SPEC = """
name = "granularity"
budgets = [1e9, 3e9]
seeds = [0]

[base]
n_layers = 1
n_heads = 2
vocab_size = 256
seq_len = 32
n_experts = 4
top_k = 1

[[points]]
hidden_size = 8
expert_ffn = 16
[[points]]
hidden_size = 16
expert_ffn = 32
[[points]]
hidden_size = 32
expert_ffn = 64

[[arms]]
label = "dense"
n_experts = 0
[[arms]]
label = "G 1"
granularity = 1
[[arms]]
label = "G 2"
granularity = 2

[train]
batch_tokens = 256
lr = 3e-3
eval_tokens = 1024

[[runs]]                # a second seed of the middle size: the seed noise
budget = 1e9
seed = 1
hidden_size = 16
expert_ffn = 32
granularity = 2
"""


@needs_torch
@pytest.mark.slow
def test_the_granularity_loop(tmp_path):
    spec = tmp_path / "granularity.toml"
    spec.write_text(SPEC)
    store = tmp_path / "g.db"
    run = run_moescale("sweep", "run", str(spec), "--store", str(store), "--workers", "2",
                       "--threads", "1", "--json", cwd=tmp_path, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    export = run_moescale("sweep", "export", "--store", str(store), "-o",
                          str(tmp_path / "runs.csv"), cwd=tmp_path)
    assert export.returncode == 0, export.stderr
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert len(runs) == 2 * 3 * 3 + 1
    assert set(runs["arm"]) == {"dense", "E 4", "E 8, K 2, G 2"}
    assert set(runs.loc[runs["E"] > 1, "G"]) == {1.0, 2.0}
    # every arm of one size and budget has the active parameters of dense, plus its router
    for (_, d), g in runs.groupby(["budget", "d"]):
        dense = g.loc[g["E"] == 1, "N_active_ne"].iloc[0]
        assert ((g["N_active_ne"] - dense) == d * g["E"].where(g["E"] > 1, 0)).all()
    analyze = run_moescale("sweep", "analyze", "--store", str(store), "--x", "N_active",
                           "--by", "G", "--bootstrap", "50", "--json", cwd=tmp_path)
    assert analyze.returncode == 0, analyze.stderr
    arms = json.loads(analyze.stdout)["experts"]
    assert arms["by"] == "G" and arms["arms"] == ["dense", "G 1", "G 2"]
    assert {m["arm"] for m in arms["multipliers"]} == {"G 1", "G 2"}
    fine = run_moescale("sweep", "analyze", "--store", str(store), "--x", "N_active",
                        "--by", "G", "--reference", "G 1", "--bootstrap", "0", cwd=tmp_path)
    assert fine.returncode == 0 and "over G 1" in fine.stdout
    # Krajewski's law fits N, D, G from the store, leaving the dense runs out and saying so
    kraj = run_moescale("fit", "--store", str(store), "--law", "krajewski2024", "--json",
                        cwd=tmp_path)
    assert kraj.returncode == 0, kraj.stderr
    kfit = json.loads(kraj.stdout)
    assert kfit["data"]["n_runs"] == 13 and any("left out 6 of 19 runs" in w
                                                for w in kfit["warnings"])
    report = run_moescale("report", "--store", str(store), "-o", str(tmp_path / "report"),
                          "--bootstrap", "50", "--json", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    svg = (tmp_path / "report" / "figures" / "isoflop.svg").read_text()
    assert all(arm in svg for arm in ("dense", "E 4", "E 8, K 2, G 2"))
