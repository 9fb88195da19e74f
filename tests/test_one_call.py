"""Issue 32: each command with ``--json`` prints the ``to_dict()`` of the object its one
library call returns (sqlite-utils' shape: build, call, translate the error)."""

from __future__ import annotations

import json

import pytest

import moescale
from conftest import run_cli
from moescale.jsonio import jsonable


def _same(out: str, obj) -> None:
    assert json.loads(out) == json.loads(json.dumps(jsonable(obj.to_dict())))


@pytest.mark.parametrize("argv, call", [
    (["count", "--preset", "mixtral-8x7b", "--json"],
     lambda: moescale.count("mixtral-8x7b")),
    (["count", "--preset", "tiny", "--convention", "megatron", "--json"],
     lambda: moescale.count("tiny", "megatron")),
])
def test_count_json_is_the_counts(capsys, argv, call):
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    assert json.loads(out) == json.loads(json.dumps(jsonable(call().to_dict("bf16"))))


@pytest.mark.parametrize("argv, call", [
    (["plan", "--compute", "1e21", "--json"], lambda: moescale.plan(1e21)),
    # a warning the library gives too: training tokens beyond the corpus
    (["plan", "--compute", "1e21", "--corpus-tokens", "1e9", "--json"],
     lambda: moescale.plan(1e21, corpus_tokens=1e9)),
    (["plan", "--compute", "1e19", "--law", "ludziejewski2025", "--experts", "1,8", "--json"],
     lambda: moescale.plan(1e19, law="ludziejewski2025", experts=[1, 8])),
])
def test_plan_json_is_the_plan(capsys, argv, call):
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    plan = call()
    _same(out, plan)
    if "--corpus-tokens" in argv:
        assert any("corpus" in w for w in plan.warnings)


@pytest.mark.parametrize("argv, call", [
    (["compare", "--compute", "1e21", "--json"], lambda: moescale.compare(1e21)),
    (["compare", "--compute", "1e22", "--memory", "24GB,80GB", "--kv-tokens", "16384",
      "--tolerance", "0.01", "--json"],
     lambda: moescale.compare(1e22, memories_bytes=[24e9, 80e9], kv_tokens=16384,
                              tolerance=0.01)),
])
def test_compare_json_is_the_comparison(capsys, argv, call):
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    _same(out, call())


@pytest.mark.parametrize("argv, call", [
    (["predict", "--law", "chinchilla", "--preset", "hoffmann2022", "--N", "7e9", "--D",
      "1.4e11", "--json"],
     lambda: moescale.predict("chinchilla", preset="hoffmann2022", N=7e9, D=1.4e11)),
    (["predict", "--law", "ludziejewski2025", "--N-active", "1e9", "--D", "2e10", "--E", "8",
      "--json"],
     lambda: moescale.predict("ludziejewski2025", N_active=1e9, D=2e10, E=8)),
])
def test_predict_json_is_the_prediction(capsys, argv, call):
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    _same(out, call())


@pytest.mark.parametrize("argv, line", [
    # the library's Architecture check, in the count command's words
    (["count", "--hidden-size", "64", "--layers", "2", "--heads", "2", "--experts", "8",
      "--top-k", "0", "--expert-ffn", "64"],
     "Error: --top-k=0 must be between 1 and --experts=8"),
    (["count", "--hidden-size", "63", "--layers", "2", "--heads", "2", "--dense-ffn", "64"],
     "Error: --heads=2 does not divide --hidden-size=63; choose a divisor or set --head-dim "
     "explicitly"),
    # TrainConfig's and the trainer's checks, in train's words
    (["train", "--preset", "tiny", "--tokens", "8192", "--batch-tokens", "7"],
     "Error: --batch-tokens=7 must be a multiple of --seq-len × --grad-accum × ranks = 256"),
    # the planner's and the comparison's checks
    (["plan", "--compute", "1e21", "--experts", "8", "--top-k", "9"],
     "Error: --top-k must be at least 1 and below --experts (got top_k 9, experts 8)"),
    (["plan", "--compute", "1e21", "--preset", "x"],
     "Error: --preset selects coefficients of --law; give --law too"),
    (["compare", "--compute", "1e21", "--tolerance", "0.1", "--threshold", "0.3"],
     "Error: give --tolerance or --threshold, not both: they belong to two efficiency-aware "
     "criteria"),
])
def test_library_errors_name_the_commands_flags(capsys, argv, line):
    code, out, err = run_cli(argv, capsys)
    assert code == 2 and err.strip() == line
