"""``sweep analyze`` on a synthetic store whose losses come from a known law (Chinchilla,
Hoffmann et al. 2022 preset): the isoFLOP optima and their power law are recovered, and a
budget whose minimum lies at the grid edge is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_cli
from moescale.laws import get_law
from moescale.laws.chinchilla import compute_optimal
from moescale.sweeps.analyze import analyze
from moescale.sweeps.export import runs_frame, runs_from_store
from moescale.sweeps.spec import SweepSpec
from moescale.sweeps.store import SweepStore

SPEC = """
name = "synthetic-chinchilla"
budgets = [1e18, 1e19, 1e20]
convention = "chinchilla"     # C = 6·N·D with N including embeddings, as Hoffmann et al.
[base]
n_layers = 24
n_heads = 16
vocab_size = 32000
seq_len = 256
dense_ffn = 4096
[grid]
hidden_size = HIDDEN
[train]
tokenizer = "bpe"
vocab_size = 32000
batch_tokens = 65536
"""
LAW = get_law("chinchilla")
PRESET = LAW.presets["hoffmann2022"].values


def synthetic_store(tmp_path, hidden: list[int], noise: float = 0.003, seed: int = 0):
    """A store whose done runs have Chinchilla losses (plus Gaussian noise, nats)."""
    path = tmp_path / "spec.toml"
    path.write_text(SPEC.replace("HIDDEN", str(hidden)))
    runs = SweepSpec.load(path).expand()
    store = SweepStore(tmp_path / "synthetic.db")
    store.add_runs(runs)
    rng = np.random.default_rng(seed)
    from moescale.accounting.counting import count

    while (claim := store.claim()) is not None:
        run = claim.run
        n = count(run.arch(), "chinchilla", context=256).params
        loss = float(LAW.predict(PRESET, {"N": n, "D": run.tokens})) + rng.normal(0, noise)
        store.finish(run.id, claim.token, {"eval_loss": loss, "train_loss": loss,
                                           "tokens": run.tokens, "unique_tokens": run.tokens,
                                           "repeated_tokens": 0, "seconds": 1.0})
    return store


# d from 512 to 4096 at 24 layers: N from ~0.1B to ~5B, around N_opt(1e19) ≈ 0.5B
HIDDEN = [512, 768, 1024, 1536, 2048, 3072, 4096]


def test_recovers_the_known_optimum_and_its_power_law(tmp_path):
    store = synthetic_store(tmp_path, HIDDEN)
    frame = runs_frame(store)
    assert len(frame) == 21
    # chinchilla convention: realised C = 6·N·D exactly (up to whole steps)
    np.testing.assert_allclose(frame["C_chinchilla"], 6 * frame["N_chinchilla"] * frame["D"])
    result = analyze(frame.assign(N=frame["N_chinchilla"]), x="N", bootstrap=300)
    ok = {b.budget: b for b in result.budgets if b.status == "ok"}
    for budget in (1e19, 1e20):
        n_true, _ = compute_optimal(budget, PRESET)  # closed form of Hoffmann et al. Eq. 4
        b = ok[budget]
        assert b.x_opt == pytest.approx(n_true, rel=0.2)
        assert b.x_opt_ci[0] < n_true < b.x_opt_ci[1]
        assert b.D_opt == pytest.approx(budget / (6 * b.x_opt), rel=0.05)
    # N_opt ∝ C^(β/(α+β)) (Hoffmann et al. 2022, Eq. 4)
    a, beta = PRESET["alpha"], PRESET["beta"]
    fit = result.power_laws["N_opt"]
    if len(ok) >= 2:
        assert fit.params["p"] == pytest.approx(beta / (a + beta), abs=0.06)


def test_refuses_a_budget_whose_minimum_is_at_the_grid_edge(tmp_path):
    store = synthetic_store(tmp_path, [512, 640, 768, 1024])  # all far below N_opt(1e20)
    result = analyze(runs_frame(store).pipe(lambda f: f.assign(N=f["N_chinchilla"])), x="N")
    b = next(b for b in result.budgets if b.budget == 1e20)
    assert b.status == "edge-high" and b.x_opt is None
    assert "extend the grid to larger N" in b.message


def test_analyze_cli_writes_power_law_fits_plan_accepts(tmp_path, capsys):
    store = synthetic_store(tmp_path, HIDDEN)
    code, out, err = run_cli(["sweep", "analyze", "--store", str(store.path), "--json",
                              "-o", str(tmp_path / "fits")], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert [b["budget"] for b in data["budgets"]] == [1e18, 1e19, 1e20]
    assert data["written"] and all(p.endswith("_fit.json") for p in data["written"])
    from moescale.fitting import FitResult

    fit = FitResult.load(data["written"][0])
    assert fit.law == "power_law_C"
    code, out, err = run_cli(["sweep", "analyze", "--store", str(store.path)], capsys)
    assert code == 0 and "isoFLOP optima" in out


def test_fit_reads_the_store_through_export(tmp_path, capsys):
    store = synthetic_store(tmp_path, HIDDEN, noise=0.0)
    csv = tmp_path / "runs.csv"
    code, out, err = run_cli(["sweep", "export", "--store", str(store.path), "-o", str(csv),
                              "--law", "chinchilla"], capsys)
    assert code == 0, err
    code, out, err = run_cli(["fit", str(csv), "--law", "chinchilla", "--json"], capsys)
    assert code == 0, err
    params = json.loads(out)["params"]
    # noiseless Chinchilla losses: the fit recovers the generating exponents
    assert params["alpha"] == pytest.approx(PRESET["alpha"], abs=0.02)
    assert params["beta"] == pytest.approx(PRESET["beta"], abs=0.02)


def test_errors_of_analyze_and_export(tmp_path, capsys):
    code, out, err = run_cli(["sweep", "analyze", "--store", str(tmp_path / "no.db")], capsys)
    assert code == 2 and err.startswith("Error: sweep store not found")
    store = synthetic_store(tmp_path, [512, 1024])
    code, out, err = run_cli(["sweep", "analyze", "--store", str(store.path), "--x", "bogus"],
                             capsys)
    assert code == 2 and "column 'bogus'" in err
    code, out, err = run_cli(["sweep", "export", "--store", str(store.path), "-o",
                              str(tmp_path / "x.xlsx")], capsys)
    assert code == 2 and ".csv or .parquet" in err


def test_fit_reads_the_store_directly(tmp_path, capsys):
    store = synthetic_store(tmp_path, HIDDEN, noise=0.0)

    table = runs_from_store(store.path, law="chinchilla")
    assert len(table) == 21 and {"N", "D", "loss"} <= set(table.columns)
    code, out, err = run_cli(["fit", "--store", str(store.path), "--law", "chinchilla",
                              "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["params"]["alpha"] == pytest.approx(PRESET["alpha"], abs=0.02)
    code, out, err = run_cli(["fit", "x.csv", "--store", str(store.path), "--law",
                              "chinchilla"], capsys)
    assert code == 2 and "not both" in err
