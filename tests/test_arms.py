"""Granularity, shared experts and the activation ratio as study axes: one vocabulary (E, K,
G, S, N_a/N), arms at equal active parameters, analysis by any axis with a compute multiplier,
and laws that know their scope. Golden values are the definitions' (Krajewski et al. 2024:
G = d_ff/d_expert against the dense FFN of equal active size; Zhao et al. 2025: S = shared /
activated) and the issue's examples, never the code's."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

import moescale
from conftest import ROOT, run_cli
from moescale.accounting.architecture import Architecture
from moescale.accounting.counting import count
from moescale.errors import MoescaleError
from moescale.sweeps.experts import arm_keys, compare_arms
from moescale.sweeps.export import arm_label, run_columns
from moescale.sweeps.spec import SweepSpec

SPEC = ROOT / "examples" / "granularity-micro" / "sweep.toml"


def moe(**kw) -> Architecture:
    base = dict(hidden_size=32, n_layers=2, n_heads=4, vocab_size=256, seq_len=64,
                n_experts=8, top_k=1, expert_ffn=64)
    return Architecture(**{**base, **kw})


# ----- one vocabulary ----------------------------------------------------------------------------
def test_granularity_is_measured_against_the_dense_model_of_equal_active_size():
    # the definition: 8 experts top-1 as wide as that FFN are G = 1, 16 of half width
    # top-2 are G = 2; a shared expert counts in the FFN a token uses
    assert moe().granularity == 1
    assert moe(n_experts=16, top_k=2, expert_ffn=32).granularity == 2
    assert moe(n_experts=16, top_k=1, expert_ffn=32, n_shared_experts=1).granularity == 2
    assert moe(n_experts=0, top_k=0, expert_ffn=0, dense_ffn=64).granularity == 1


def test_exports_name_each_quantity_once():
    runs = SweepSpec.load(SPEC).expand()
    cols = [run_columns(r.to_dict()) for r in runs]
    assert {"E", "K", "G", "G_act", "S", "n_shared", "activation_ratio", "arm"} <= set(cols[0])
    assert "top_k" not in cols[0] and "granularity" not in cols[0]
    by_arm = {c["arm"]: c for c in cols}
    assert set(by_arm) == {"dense", "E 8", "E 16, K 2, G 2", "E 16, G 2, S 0.5"}
    assert (by_arm["dense"]["E"], by_arm["dense"]["G"], by_arm["dense"]["G_act"],
            by_arm["dense"]["S"]) == (1, 1, 1, 0)  # dense: one expert, one activated, no shared
    assert (by_arm["E 8"]["K"], by_arm["E 8"]["G"]) == (1, 1)
    assert (by_arm["E 16, K 2, G 2"]["K"], by_arm["E 16, K 2, G 2"]["G"]) == (2, 2)
    shared = by_arm["E 16, G 2, S 0.5"]
    assert (shared["K"], shared["n_shared"], shared["G"], shared["G_act"], shared["S"]) == \
        (1, 1, 2, 2, 0.5)
    for c in cols:  # activation ratio N_a/N, non-embedding
        assert 0 < c["activation_ratio"] <= 1
        assert c["activation_ratio"] == pytest.approx(c["N_active_ne"] / c["N_ne"])


def test_help_uses_the_same_names(capsys):
    code, out, _ = run_cli(["sweep", "analyze", "--help"], capsys)
    flat = " ".join(out.split())
    assert code == 0 and all(name in flat for name in ("E, K, G, S", "--reference"))
    code, out, _ = run_cli(["sweep", "plan", "examples/granularity-micro/sweep.toml",
                            "--no-estimate"], capsys)
    assert code == 0 and " E/K " in out.replace("┃", " ") and "top_k" not in out


# ----- arms at equal active parameters ---------------------------------------------------------
def test_arms_have_equal_active_parameters_within_the_router():
    """Every arm of one size uses the same FFN width per token: active parameters differ by the
    routers' d·E per layer only (and dense has none)."""
    runs = SweepSpec.load(SPEC).expand()
    by_size: dict[int, dict[str, Architecture]] = {}
    for r in runs:
        a = r.arch()
        by_size.setdefault(a.hidden_size, {})[arm_label(a)] = a
    for d, arms in by_size.items():
        assert len(arms) == 4, arms.keys()
        active = {k: count(a).active_params for k, a in arms.items()}
        for k, a in arms.items():
            router = a.hidden_size * a.n_experts * a.n_layers if a.is_moe else 0
            assert active[k] - router == active["dense"], (d, k)


def test_dense_appears_once_per_size_and_budget():
    runs = SweepSpec.load(SPEC).expand()
    dense = [r for r in runs if not r.arch().is_moe]
    keys = [(r.budget, r.arch().hidden_size, r.seed) for r in dense]
    assert len(keys) == len(set(keys)) == 7  # 2 budgets × 3 sizes + the seed pair
    assert all("granularity" not in r.tags and "label" not in r.tags for r in dense)


def test_granularity_arms_keep_the_gate_of_the_g1_model():
    runs = SweepSpec.load(SPEC).expand()
    norms = {arm_label(r.arch()): r.train.get("norm_topk_prob") for r in runs if r.arch().is_moe}
    assert set(norms.values()) == {False}  # Switch's unrenormalised gate in every arm


@pytest.mark.parametrize(("arm", "message"), [
    ("granularity = 3", "granularity 3 does not divide the FFN width one token uses"),
    ("granularity = 2\nshared_ratio = 0.3", "not a whole number"),
    ("n_experts = 2\ntop_k = 4\nshared_ratio = 0.75", "3 shared experts exceed the 2 experts"),
])
def test_unrealisable_arms_are_one_error_line_from_sweep_plan(tmp_path, capsys, arm, message):
    text = SPEC.read_text().replace('label = "G 2"                    # 16 experts of d, top-2 '
                                    '(same total and active parameters)\ngranularity = 2',
                                    f'label = "bad"\n{arm}')
    path = tmp_path / "s.toml"
    path.write_text(text)
    code, out, err = run_cli(["sweep", "plan", str(path), "--no-estimate"], capsys)
    assert code == 2 and not out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and re.search(message, lines[0])


# ----- analysis by any axis ----------------------------------------------------------------------
def synthetic_arms(seed: int = 0) -> pd.DataFrame:
    """Two budgets × three sizes × {dense, G 1, G 2}; G 2 better by 0.04 nats, G 1 by 0.02."""
    rng = np.random.default_rng(seed)
    rows = []
    for budget in (1e12, 3e12):
        for n in (2e4, 4e4, 8e4):
            for E, G, gain in ((1, 1, 0.0), (8, 1, 0.02), (16, 2, 0.04)):
                d = budget / (6 * n)
                loss = 1.5 + 400 / n**0.5 + 400 / d**0.4 - gain + rng.normal(0, 0.002)
                for s in (0, 1) if n == 4e4 else (0,):
                    rows.append({"budget": budget, "N_active": n, "D": d, "E": E, "G": G,
                                 "K": G if E > 1 else 0, "seed": s,
                                 "loss": loss + (0.003 if s else 0)})
    return pd.DataFrame(rows)


def test_analyze_by_G_gives_a_multiplier_over_dense_and_over_a_chosen_reference():
    frame = synthetic_arms()
    assert set(arm_keys(frame, "G")) == {"dense", "G 1", "G 2"}  # dense apart from G 1
    comp = compare_arms(frame, "G", bootstrap=200)
    assert comp.reference == "dense" and comp.arms == ["dense", "G 1", "G 2"]
    summary = {m.arm: m for m in comp.multipliers if m.budget is None}
    assert summary["G 2"].multiplier > summary["G 1"].multiplier > 1
    assert summary["G 2"].ci is not None and summary["G 2"].ci_mc_error is not None
    fine = compare_arms(frame, "G", "G 1", bootstrap=0)  # fine against coarse
    assert {m.arm for m in fine.multipliers} == {"dense", "G 2"}
    d = {m.arm: m.delta_loss for m in fine.multipliers if m.budget == 1e12}
    assert d["G 2"] == pytest.approx(-0.02, abs=0.01)
    with pytest.raises(MoescaleError, match="not an arm"):
        compare_arms(frame, "G", "G 4")


def test_sweep_analyze_by_G_on_the_cli(tmp_path, capsys):
    path = tmp_path / "runs.csv"
    synthetic_arms().to_csv(path, index=False)
    code, out, err = run_cli(["sweep", "analyze", "--runs", str(path), "--x", "N_active",
                              "--by", "G", "--bootstrap", "100", "--json"], capsys)
    assert code == 0, err
    data = json.loads(out)["experts"]
    assert data["by"] == "G" and data["arms"] == ["dense", "G 1", "G 2"]
    code, out, err = run_cli(["sweep", "analyze", "--runs", str(path), "--x", "N_active",
                              "--by", "G", "--reference", "G 1", "--bootstrap", "0"], capsys)
    assert code == 0 and "over G 1" in out
    code, _, err = run_cli(["sweep", "analyze", "--runs", str(path), "--x", "N_active",
                            "--by", "G", "--reference", "G 8"], capsys)
    assert code == 2 and "not an arm" in err and "--reference" in err


# ----- laws that know their domain ------------------------------------------------------------------
def test_the_joint_law_leaves_out_granular_arms_and_says_so():
    frame = synthetic_arms().assign(C=lambda f: 6 * f["N_active"] * f["D"])
    fit = moescale.fit("ludziejewski2025", frame, fixed={"E_start": 2.0732, "E_max": 290.4521})
    left = [w for w in fit.warnings if "defined for dense runs and top-1 experts" in w]
    assert left and "left out 8 of 24 runs" in left[0]  # the G 2 arm: 6 runs + 2 seed pairs
    assert fit.data["n_runs"] == 16
    with pytest.raises(MoescaleError, match="defined for"):
        moescale.fit("ludziejewski2025", frame[frame["G"] == 2])


def test_zhao_reads_activated_experts_and_fits_dense_runs():
    """Zhao et al.'s G is the activated experts (column G_act); dense is one activated expert
    with no shared one (G_act = 1, S = 0)."""
    from moescale.laws import get_law
    from moescale.sweeps.export import law_mapping

    law = get_law("zhao2025")
    assert law.columns == {"G": "G_act"}
    assert law_mapping("zhao2025", ["G", "G_act", "N", "N_a"])["G"] == "G_act"
    rng = np.random.default_rng(3)
    n = 60
    N = rng.choice(np.geomspace(2e8, 3e9, 5), n)
    ratio = rng.choice([1.0, 0.5, 0.25, 0.125], n)
    g_act = np.where(ratio == 1.0, 1.0, rng.choice([2.0, 4.0, 8.0], n))
    S = np.where(ratio == 1.0, 0.0, rng.choice([0.0, 0.25, 0.5], n))
    D = rng.choice(np.geomspace(1e10, 5e10, 4), n)
    frame = pd.DataFrame({"N": N, "N_a": N * ratio, "D": D, "G_act": g_act, "S": S,
                          "G": np.ones(n)})  # G (granularity) is not what zhao2025 reads
    frame["loss"] = law.predict("zhao2025", {"N": N, "N_a": N * ratio, "D": D, "G": g_act,
                                             "S": S}) * np.exp(rng.normal(0, 1e-3, n))
    fit = moescale.fit("zhao2025", frame)
    assert fit.train["rmse"] < 0.01
