"""Sweep specs: expansion, deterministic ids, ratio axes, holistic grids, laws for LR/batch,
and one clear error (exit 2) for every malformed spec."""

from __future__ import annotations

import math

import pytest

from conftest import needs_torch, run_cli
from moescale.accounting.counting import count
from moescale.errors import MoescaleError
from moescale.sweeps.spec import SweepSpec

ISSUE_SPEC = """
name = "isoflop-mini"
budgets = [3e11, 1e12]
convention = "exact"
seeds = [0]

[base]
n_layers = 2
n_heads = 2
vocab_size = 256
seq_len = 128
n_experts = 4
top_k = 1
expert_ffn = 128
dense_ffn = 256

[grid]
hidden_size = [32, 64, 96]

[train]
batch_tokens = 2048
lr = 3e-3
data = "kjv"
"""


def load(tmp_path, text: str) -> SweepSpec:
    path = tmp_path / "s.toml"
    path.write_text(text)
    return SweepSpec.load(path)


def test_issue_spec_expands_to_budget_times_grid(tmp_path):
    runs = load(tmp_path, ISSUE_SPEC).expand()
    assert len(runs) == 6
    for run in runs:
        arch = run.arch()
        fpt = count(arch, "exact", context=128).training_flops_per_token
        assert run.flops_per_token == fpt
        # tokens are whole optimizer steps and the realised FLOPs are within half a step
        assert run.tokens % 2048 == 0
        assert abs(run.flops - run.budget) <= 0.5 * 2048 * fpt
    assert [r.arch().hidden_size for r in runs] == [32, 64, 96, 32, 64, 96]


def test_ids_are_deterministic_and_survive_added_points(tmp_path):
    first = {r.id for r in load(tmp_path, ISSUE_SPEC).expand()}
    again = {r.id for r in load(tmp_path, ISSUE_SPEC).expand()}
    assert first == again and len(first) == 6
    grown = load(tmp_path, ISSUE_SPEC.replace("[32, 64, 96]", "[32, 64, 96, 128]")
                 .replace("budgets = [3e11, 1e12]", "budgets = [3e11, 1e12, 3e12]"))
    assert first < {r.id for r in grown.expand()}
    renamed = load(tmp_path, ISSUE_SPEC.replace("lr = 3e-3", "lr = 1e-3"))
    assert not first & {r.id for r in renamed.expand()}


def test_micro_models_are_expressible(tmp_path):
    text = ISSUE_SPEC.replace("n_layers = 2", "n_layers = 1").replace("[32, 64, 96]", "[16]")
    text = text.replace("seq_len = 128", "seq_len = 64").replace("budgets = [3e11, 1e12]",
                                                                 "budgets = [1e9]")
    (run,) = load(tmp_path, text).expand()
    assert run.arch().hidden_size == 16 and run.arch().d_head == 8 and run.arch().seq_len == 64


def test_ratio_axes(tmp_path):
    text = ISSUE_SPEC.replace("[grid]\nhidden_size = [32, 64, 96]",
                              "[grid]\ngranularity = [1, 2, 4]\nhidden_size = [64]")
    runs = load(tmp_path, text).expand()
    # Krajewski et al. 2024: splitting every expert in G keeps active and total expert params.
    assert [(r.arch().expert_ffn, r.arch().n_experts, r.arch().top_k) for r in runs[:3]] == \
        [(128, 4, 1), (64, 8, 2), (32, 16, 4)]
    active = {count(r.arch()).component("routed_experts").active_params for r in runs[:3]}
    assert len(active) == 1
    text = ISSUE_SPEC.replace("n_experts = 4\ntop_k = 1", "n_experts = 16\ntop_k = 4").replace(
        "[grid]\nhidden_size = [32, 64, 96]",
        "[grid]\nhidden_size = [64]\nshared_ratio = [0.0, 0.25, 0.5]\n")
    runs = load(tmp_path, text).expand()
    # Zhao et al. 2025: S = shared / activated with G = top_k + shared fixed.
    assert [(r.arch().top_k, r.arch().n_shared_experts) for r in runs[:3]] == [(4, 0), (3, 1), (2, 2)]
    assert [r.arch().shared_ratio for r in runs[:3]] == [0.0, 0.25, 0.5]
    text = ISSUE_SPEC.replace("n_experts = 4", "n_experts = 16").replace(
        "[grid]\nhidden_size = [32, 64, 96]", "[grid]\nhidden_size = [64]\nactivation_ratio = [0.125, 0.25]")
    # at fixed top-k (and expert width: equal active parameters) the experts are top_k / ratio
    assert [(r.arch().top_k, r.arch().n_experts)
            for r in load(tmp_path, text).expand()[:2]] == [(1, 8), (1, 4)]


def test_grid_over_training_settings(tmp_path):
    text = ISSUE_SPEC.replace("[grid]\nhidden_size = [32, 64, 96]",
                              "[grid]\nhidden_size = [32]\nlr = [1e-3, 3e-3]")
    runs = load(tmp_path, text).expand()
    assert sorted({r.train["lr"] for r in runs}) == [1e-3, 3e-3]


def test_learning_rate_and_batch_from_a_law(tmp_path):
    text = ISSUE_SPEC.replace("lr = 3e-3", 'lr = "holistic2026_lr"').replace(
        "batch_tokens = 2048", 'batch_tokens = "holistic2026_batch"')
    runs = load(tmp_path, text).expand()
    from moescale.laws import get_law

    lr_law, batch_law = get_law("holistic2026_lr"), get_law("holistic2026_batch")
    for run in runs:
        assert run.train["lr"] == pytest.approx(float(lr_law.predict("wan2026", {"C": run.budget})))
        want = float(batch_law.predict("wan2026", {"C": run.budget}))
        assert run.train["batch_tokens"] % 128 == 0
        assert abs(run.train["batch_tokens"] - want) <= 64 or run.train["batch_tokens"] == 128


HOLISTIC_MICRO = """
name = "holistic-micro"
budgets = [1e13]
convention = "holistic"
[base]
n_heads = 2
n_kv_heads = 1
head_dim = 16
seq_len = 128
vocab_size = 256
n_experts = 16
top_k = 2
n_shared_experts = 1
[holistic]
m_over_na = [8, 11]
n_over_na = [3, 4]
align = 4
tolerance = 0.1
[train]
batch_tokens = 2048
"""


def test_holistic_phase_one_grid_realises_its_targets(tmp_path):
    runs = load(tmp_path, HOLISTIC_MICRO).expand()
    assert len(runs) == 4
    for run in runs:
        c = count(run.arch(), "holistic", context=128)
        x = c.training_flops_per_token / c.params_active
        y = c.params / c.params_active
        # Integer layers and aligned widths move the realised ratios a little off the targets.
        assert x == pytest.approx(run.tags["m_over_na_target"], rel=0.15)
        assert y == pytest.approx(run.tags["n_over_na_target"], rel=0.15)
        assert run.arch().n_dense_layers >= 1
        # C = M·D with M the holistic FLOPs per token (Wan et al. 2026, Appendix A).
        assert run.flops == pytest.approx(run.budget, rel=0.02)


def test_holistic_sweep_honours_base_seq_len(tmp_path):
    """A [holistic] grid counts M at [base] seq_len; its runs must train at that context."""
    text = HOLISTIC_MICRO.replace("seq_len = 128", "seq_len = 512").replace("budgets = [1e13]",
                                                                             "budgets = [1e14]")
    runs = load(tmp_path, text).expand()
    assert runs and all(r.arch().seq_len == 512 for r in runs)
    conflict = text.replace("batch_tokens = 2048", "batch_tokens = 2048\nseq_len = 256")
    with pytest.raises(MoescaleError, match=r"\[base\] seq_len = 512 and \[train\] seq_len = 256"):
        load(tmp_path, conflict)


def test_holistic_d_sweep(tmp_path):
    text = """
name = "holistic-d"
budgets = [1e13]
convention = "holistic"
[base]
n_heads = 2
head_dim = 16
seq_len = 128
n_experts = 16
top_k = 2
[holistic]
m_over_na = [9]
n_over_na = [4]
d_points = 3
align = 4
tolerance = 0.1
[train]
batch_tokens = 2048
"""
    runs = load(tmp_path, text).expand()
    ds = [r.arch().hidden_size for r in runs]
    assert len(ds) >= 2 and ds == sorted(ds) and len(set(ds)) == len(ds)


BAD_SPECS = [
    ("unknown top-level key", ISSUE_SPEC + "\nfoo = 1\n", "unknown key(s) foo"),
    ("unknown base field", ISSUE_SPEC.replace("n_layers = 2", "n_layers = 2\nlayers = 3"),
     "[base] has unknown architecture field(s) layers"),
    ("unknown grid field", ISSUE_SPEC.replace("hidden_size = [32, 64, 96]", "width = [32]"),
     "[grid] width is not an architecture field"),
    ("unknown train key", ISSUE_SPEC.replace("lr = 3e-3", "lr = 3e-3\nlearning_rate = 1"),
     "[train] has unknown key(s) learning_rate"),
    ("top_k above experts", ISSUE_SPEC.replace("top_k = 1", "top_k = 8"),
     "`top_k`=8 must be between 1 and `n_experts`=4"),
    ("negative budget", ISSUE_SPEC.replace("[3e11, 1e12]", "[-1e12]"), "budget -1e+12"),
    ("zero budget", ISSUE_SPEC.replace("[3e11, 1e12]", "[0]"), "budget 0"),
    ("budget below one step", ISSUE_SPEC.replace("[3e11, 1e12]", "[1e6]"),
     "less than one optimizer step"),
    ("impossible architecture", ISSUE_SPEC.replace("hidden_size = [32, 64, 96]",
                                                   "hidden_size = [33]"),
     "`n_heads`=2 does not divide `hidden_size`=33"),
    ("missing budgets", ISSUE_SPEC.replace("budgets = [3e11, 1e12]", ""), "'budgets' is missing"),
    ("vocab conflicts with bytes", ISSUE_SPEC.replace("vocab_size = 256", "vocab_size = 1000"),
     "bytes tokenizer has 256 tokens"),
    ("batch not whole windows", ISSUE_SPEC.replace("batch_tokens = 2048", "batch_tokens = 2000"),
     "must be a multiple of seq_len"),
    ("unknown convention", ISSUE_SPEC.replace('"exact"', '"flops"'), "convention 'flops'"),
    ("empty grid axis", ISSUE_SPEC.replace("[32, 64, 96]", "[]"), "must be a non-empty list"),
    ("bad seeds", ISSUE_SPEC.replace("seeds = [0]", "seeds = [-1]"), "'seeds'"),
    ("bad toml", ISSUE_SPEC + "\n[[[", "not valid TOML"),
    ("unknown lr law", ISSUE_SPEC.replace("lr = 3e-3", 'lr = "nope"'), "nope"),
    ("law predicting something else", ISSUE_SPEC.replace("lr = 3e-3", 'lr = "holistic2026_batch"'),
     "predicts batch_size, not lr"),
    ("impossible holistic target", ISSUE_SPEC.replace("[grid]\nhidden_size = [32, 64, 96]",
                                                      "[holistic]\nm_over_na = [5]\nn_over_na = [2]")
     .replace("n_heads = 2", "n_heads = 2\nhead_dim = 16"), "M/N_a must exceed 6"),
]


@pytest.mark.parametrize(("case", "text", "message"), BAD_SPECS, ids=[b[0] for b in BAD_SPECS])
def test_malformed_spec_is_one_clear_error(tmp_path, capsys, case, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(MoescaleError, match=None) as info:
        SweepSpec.load(path)
    assert message in str(info.value), str(info.value)
    code, out, err = run_cli(["sweep", "plan", str(path)], capsys)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    # the command line shows the library's `name` as the flag, or plainly where it has none
    assert len(lines) == 1 and lines[0].startswith("Error:")
    assert message.replace("`", "") in lines[0]


def test_per_run_failure_names_the_run(tmp_path):
    text = ISSUE_SPEC.replace("hidden_size = [32, 64, 96]", "hidden_size = [32, 33]")
    with pytest.raises(MoescaleError, match=r"run \(budget 3e\+11, hidden_size=33, seed 0\)"):
        load(tmp_path, text)


def test_missing_spec_file(tmp_path, capsys):
    code, out, err = run_cli(["sweep", "plan", str(tmp_path / "nope.toml")], capsys)
    assert code == 2 and err.startswith("Error: sweep spec not found")


@pytest.mark.slow
@needs_torch  # the estimate times real runs
def test_plan_json_lists_runs_compute_and_repeats(tmp_path, capsys):
    text = ISSUE_SPEC.replace("[3e11, 1e12]", "[3e11, 3e13]")
    path = tmp_path / "s.toml"
    path.write_text(text)
    code, out, err = run_cli(["sweep", "plan", str(path), "--json"], capsys)
    assert code == 0, err
    import json

    plan = json.loads(out)
    assert plan["n_runs"] == 6 and len(plan["runs"]) == 6
    assert plan["flops_total"] == pytest.approx(sum(r["flops"] for r in plan["runs"]))
    assert plan["flops_without_reuse"] == plan["flops_total"]  # no reuse: the same
    assert plan["estimated_seconds"] > 0
    # 3e13 FLOPs at d=32 needs ~1e8 tokens: far more than the KJV's ~4M training bytes.
    repeats = [w for w in plan["warnings"] if "repeats its corpus" in w]
    assert repeats and all(r["epochs"] is None or math.isfinite(r["epochs"]) for r in plan["runs"])
    big = [r for r in plan["runs"] if r["budget"] == 3e13]
    assert all(r["epochs"] > 1 for r in big)


def test_points_vary_fields_together(tmp_path):
    text = ISSUE_SPEC.replace("[grid]\nhidden_size = [32, 64, 96]", """
[[points]]
hidden_size = 32
expert_ffn = 64
[[points]]
hidden_size = 64
expert_ffn = 128
[grid]
seq_len = [64, 128]
""")
    runs = load(tmp_path, text).expand()
    shapes = [(r.arch().hidden_size, r.arch().expert_ffn, r.arch().seq_len) for r in runs[:4]]
    assert shapes == [(32, 64, 64), (32, 64, 128), (64, 128, 64), (64, 128, 128)]
    bad = text.replace("expert_ffn = 64", "expert_width = 64")
    with pytest.raises(MoescaleError, match=r"\[\[points\]\] #1 has unknown field\(s\) expert_width"):
        load(tmp_path, bad)
