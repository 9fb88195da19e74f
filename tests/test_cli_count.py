"""`moescale count`: output keys, exactness vs the library, and every error path (exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import run_cli as run
from moescale.accounting.architecture import Architecture
from moescale.accounting.counting import count

MIXTRAL_FLAGS = ["--hidden-size", "4096", "--layers", "32", "--heads", "32", "--kv-heads", "8",
                 "--experts", "8", "--top-k", "2", "--expert-ffn", "14336", "--vocab", "32000"]




def test_count_json_has_required_keys_and_matches_library(capsys):
    code, out, _ = run(["count", *MIXTRAL_FLAGS, "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    for key in ("total_params", "active_params", "total_params_non_embedding",
                "active_params_non_embedding", "training_flops_per_token",
                "inference_flops_per_token", "weights_bytes", "components"):
        assert key in data
    arch = Architecture(hidden_size=4096, n_layers=32, n_heads=32, n_kv_heads=8, n_experts=8,
                        top_k=2, expert_ffn=14336, vocab_size=32000)
    c = count(arch)
    assert data["total_params"] == c.total_params
    assert data["weights_bytes"] == 2 * c.total_params  # bf16 default
    assert sum(x["params"] for x in data["components"]) == data["total_params"]
    # Mixtral-8x7B model card: 46.7B total, 12.9B active.
    assert round(data["total_params"] / 1e9, 1) == 46.7
    assert round(data["active_params"] / 1e9, 1) == 12.9


def test_count_convention_changes_flops(capsys):
    flops = {}
    for conv in ("exact", "megatron", "holistic", "chinchilla", "kaplan"):
        code, out, _ = run(["count", *MIXTRAL_FLAGS, "--convention", conv, "--json"], capsys)
        assert code == 0
        flops[conv] = json.loads(out)["training_flops_per_token"]
    assert flops["megatron"] < flops["exact"]  # no router FLOPs
    assert len(set(flops.values())) == 5


def test_count_arch_file_roundtrip(tmp_path, capsys):
    arch = Architecture(hidden_size=256, n_layers=4, n_heads=4, n_experts=8, top_k=2,
                        expert_ffn=128, dense_ffn=512, first_dense_layers=1, vocab_size=1000)
    path = tmp_path / "arch.json"
    arch.to_json(path)
    code, out, _ = run(["count", "--arch", str(path), "--json"], capsys)
    assert code == 0
    assert json.loads(out)["total_params"] == count(arch).total_params
    assert Architecture.from_dict(json.loads(out)["architecture"]) == arch


def test_count_table_for_people(capsys):
    code, out, _ = run(["count", *MIXTRAL_FLAGS], capsys)
    assert code == 0
    assert "routed_experts" in out and "46.7B" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["count"], "no architecture given"),
        (["count", "--arch", "missing.json"], "file not found: missing.json"),
        (["count", "--hidden-size", "64", "--layers", "2", "--heads", "5", "--dense-ffn", "8"],
         "--heads=5 does not divide --hidden-size=64"),
        (["count", *MIXTRAL_FLAGS, "--top-k", "9"], "--top-k=9 must be between 1 and --experts=8"),
        (["count", *MIXTRAL_FLAGS, "--convention", "nope"], "unknown convention 'nope'"),
        (["count", *MIXTRAL_FLAGS, "--dtype", "fp7"], "unknown dtype 'fp7'"),
        (["count", *MIXTRAL_FLAGS, "--context", "-1"], "--context must be positive"),
        (["count", *MIXTRAL_FLAGS, "--layers", "-3"], "--layers must be a positive integer"),
        (["count", "--layers", "x"], "'x' is not a valid integer"),
    ],
)
def test_count_errors_are_one_line_exit_2(argv, message, capsys):
    code, out, err = run(argv, capsys)
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    assert out == ""


def test_count_bad_json_file(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    code, _, err = run(["count", "--arch", str(bad)], capsys)
    assert code == 2 and "is not valid JSON" in err
    bad.write_text(json.dumps({"hidden_size": 64, "n_layers": 2, "n_heads": 4, "colour": 1}))
    code, _, err = run(["count", "--arch", str(bad)], capsys)
    assert code == 2 and "unknown architecture field(s) colour" in err


def test_count_imports_no_heavy_library(tmp_path):
    """`count` answers without torch, scipy.optimize, pandas or matplotlib (what makes a light
    command start fast; its start-up time is measured by benchmarks/bench_startup.py)."""
    heavy = ("torch", "scipy.optimize", "pandas", "matplotlib")
    code = ("import sys; from moescale.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            f"loaded = [m for m in {heavy!r} if m in sys.modules]\n"
            "assert not loaded, loaded\n")
    proc = subprocess.run([sys.executable, "-c", code, "count", *MIXTRAL_FLAGS, "--json"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["total_params"] > 0
