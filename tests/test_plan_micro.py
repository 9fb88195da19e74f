"""Micro budgets (1e11–1e14 FLOPs, vocabulary 256, sequences of 128): both planners return a
trainable model, and `train --plan` trains it."""

from __future__ import annotations

import json
import math

import pytest

from conftest import run_cli

MICRO = ["--vocab", "256", "--seq-len", "128", "--json"]
METHODS = {"holistic": [], "holistic-8x2": ["--experts", "8", "--top-k", "2"],
           "law": ["--law", "ludziejewski2025"]}


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("compute", ["1e11", "1e12", "1e13", "1e14"])
def test_micro_plans_are_trainable(compute, method, capsys):
    code, out, err = run_cli(["plan", "--compute", compute, *MICRO, *METHODS[method]], capsys)
    assert code == 0, err
    p = json.loads(out)
    a = p["architecture"]
    assert a["vocab_size"] == 256 and a["seq_len"] == 128
    # attention may be wider than d, as in the holistic paper (3e20: 2048-wide at d = 1248,
    # Table 4 and its phase-2 configurations); moescale allows up to 2·d
    assert a["n_heads"] * a["head_dim"] <= 2 * a["hidden_size"]
    assert isinstance(p["batch_size_sequences"], int) and p["batch_size_sequences"] >= 1
    assert p["batch_size_tokens"] == p["batch_size_sequences"] * 128
    assert 1e-5 <= p["learning_rate"] <= 1e-2
    assert p["predicted_loss"] <= math.log(256) + 1e-12
    assert p["extrapolation"] and any("Extrapolation" in s for s in p["warnings"])
    assert p["realised"]["total_compute"] <= float(compute)
    if method == "holistic-8x2":
        assert (a["n_experts"], a["top_k"]) == (8, 2)


@pytest.mark.parametrize(("compute", "extra"), [("1e11", ["--experts", "8", "--top-k", "2"]),
                                                ("1e12", ["--experts", "8", "--top-k", "2"]),
                                                ("1e13", ["--law", "ludziejewski2025"])])
@pytest.mark.slow
def test_micro_plans_train_20_steps(compute, extra, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MOESCALE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    pytest.importorskip("torch")
    plan = tmp_path / "plan.json"
    code, _, err = run_cli(["plan", "--compute", compute, "--vocab", "256", "--seq-len", "128",
                            *extra, "-o", str(plan)], capsys)
    assert code == 0, err
    p = json.loads(plan.read_text())
    tokens = 20 * int(p["batch_size_tokens"])
    code, out, err = run_cli(["train", "--plan", str(plan), "--tokens", str(tokens),
                              "--threads", "1", "--eval-every", "20", "--out",
                              str(tmp_path / "run"), "--json"], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert result["steps"] == 20 and result["vocab_size"] == 256
    assert math.isfinite(result["train_loss"])
    assert "--tokens" in err and "overrides the plan" in err  # it says what it overrode
