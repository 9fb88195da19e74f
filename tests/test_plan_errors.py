"""Bad `plan` and `compare` inputs: one `Error:` line on stderr, exit 2, nothing on stdout and
no file left behind (the exports are written all-or-nothing)."""

from __future__ import annotations

import os

import pytest

from conftest import run_cli


@pytest.fixture(scope="module")
def chinchilla_fit(tmp_path_factory):
    """A saved fit of a law without a number of experts (chinchilla, Hoffmann preset)."""
    from moescale.fitting import FitResult
    from moescale.laws import get_law

    law = get_law("chinchilla")
    params = law.preset(next(iter(law.presets))).values
    path = tmp_path_factory.mktemp("fits") / "chinchilla_fit.json"
    FitResult(law="chinchilla", convention=law.convention, target="loss", params=dict(params),
              objective={}, optimizer={}, data={}, train={}).save(path)
    return str(path)


PLAN_CASES = {
    "negative compute": ["--compute", "-1"],
    "not a number": ["--compute", "abc"],
    "beyond any law (law)": ["--compute", "1e40", "--law", "ludziejewski2025"],
    "beyond any law (holistic)": ["--compute", "1e40"],
    "too small for a layer": ["--compute", "1e9"],
    "preset without law": ["--compute", "1e21", "--preset", "X"],
    "unknown law": ["--compute", "1e21", "--law", "nosuch"],
    "unknown preset": ["--compute", "1e21", "--law", "ludziejewski2025", "--preset", "nosuch"],
    "law without allocation": ["--compute", "1e21", "--law", "zhao2025"],
    "holistic with law": ["--compute", "1e21", "--method", "holistic", "--law", "chinchilla"],
    "fit and law": ["--compute", "1e21", "--fit", "{fit}", "--law", "ludziejewski2025"],
    "missing fit": ["--compute", "1e21", "--fit", "{tmp}/missing.json"],
    "empty memory": ["--compute", "1e21", "--memory", ""],
    "bad memory": ["--compute", "1e21", "--memory", "lots"],
    "memory too small": ["--compute", "1e21", "--memory", "1MB"],
    "law memory too small": ["--compute", "1e21", "--law", "ludziejewski2025", "--memory", "1MB"],
    "bad experts": ["--compute", "1e21", "--experts", "1,x"],
    "empty experts": ["--compute", "1e21", "--experts", ""],
    "zero experts": ["--compute", "1e21", "--law", "ludziejewski2025", "--experts", "0"],
    "holistic expert list": ["--compute", "1e21", "--experts", "8,16"],
    "top-k not below experts": ["--compute", "1e21", "--experts", "8", "--top-k", "8"],
    "top-k with law": ["--compute", "1e21", "--law", "ludziejewski2025", "--top-k", "2"],
    "unknown dtype": ["--compute", "1e21", "--dtype", "fp7"],
    "vocab zero": ["--compute", "1e21", "--vocab", "0"],
    "seq-len text": ["--compute", "1e21", "--seq-len", "long"],
    "negative kv tokens": ["--compute", "1e21", "--kv-tokens", "-1"],
    "kv heads do not divide": ["--compute", "1e21", "--heads", "4", "--kv-heads", "3"],
    "negative inference tokens": ["--compute", "1e21", "--inference-tokens", "-5"],
    "serving costs all": ["--compute", "1e18", "--inference-tokens", "1e15"],
    "hf-family without hf-config": ["--compute", "1e21", "--hf-family", "mixtral",
                                    "-o", "{tmp}/plan.json"],
    "unknown hf family, with -o": ["--compute", "1e21", "--hf-config", "{tmp}/hf/config.json",
                                   "--hf-family", "nosuch", "-o", "{tmp}/plan.json"],
    "export into a folder": ["--compute", "1e21", "--hf-config", "{tmp}/adir",
                             "-o", "{tmp}/plan.json", "--megatron", "{tmp}/args.txt"],
    "two exports, one file": ["--compute", "1e21", "-o", "{tmp}/same.json",
                              "--hf-config", "{tmp}/same.json"],
}

COMPARE_CASES = {
    "negative compute": ["--compute", "-1"],
    "not a number": ["--compute", "abc"],
    "beyond any law": ["--compute", "1e40"],
    "empty memory": ["--compute", "1e21", "--memory", ""],
    "bad memory": ["--compute", "1e21", "--memory", "lots"],
    "negative memory": ["--compute", "1e21", "--memory", "8GB,-1GB"],
    "empty sizes": ["--compute", "1e21", "--sizes", ""],
    "bad sizes": ["--compute", "1e21", "--sizes", "abc"],
    "negative sizes": ["--compute", "1e21", "--sizes", "-5"],
    "empty experts": ["--compute", "1e21", "--experts", ""],
    "bad experts": ["--compute", "1e21", "--experts", "1,x"],
    "zero experts": ["--compute", "1e21", "--experts", "0"],
    "unknown law": ["--compute", "1e21", "--law", "nosuch"],
    "law without allocation": ["--compute", "1e21", "--law", "zhao2025"],
    "law without E": ["--compute", "1e21", "--law", "chinchilla"],
    "fit of a law without E": ["--compute", "1e21", "--fit", "{fit}"],
    "fit and law": ["--compute", "1e21", "--fit", "{fit}", "--law", "ludziejewski2025"],
    "missing fit": ["--compute", "1e21", "--fit", "{tmp}/missing.json"],
    "preset without law": ["--compute", "1e21", "--preset", "X"],
    "unknown preset": ["--compute", "1e21", "--law", "ludziejewski2025", "--preset", "nosuch"],
    "unknown dtype": ["--compute", "1e21", "--dtype", "fp7"],
    "negative kv tokens": ["--compute", "1e21", "--kv-tokens", "-1"],
    "kv tokens text": ["--compute", "1e21", "--kv-tokens", "abc"],
    "tolerance too large": ["--compute", "1e21", "--tolerance", "2"],
    "tolerance text": ["--compute", "1e21", "--tolerance", "tight"],
}


def _check(command, argv, tmp_path, chinchilla_fit, capsys):
    (tmp_path / "adir").mkdir()
    before = sorted(os.listdir(tmp_path))
    args = [a.format(tmp=tmp_path, fit=chinchilla_fit) for a in argv]
    code, out, err = run_cli([command, *args], capsys)
    lines = err.splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    assert out == ""
    assert ".tmp" not in err and "Traceback" not in err and "_" + "write" not in err
    after = [p for p in (tmp_path.rglob("*")) if p.name != "adir"]
    assert sorted(os.listdir(tmp_path)) == before and after == [], after


def test_tables_are_large_enough():
    assert len(PLAN_CASES) >= 15 and len(COMPARE_CASES) >= 15


@pytest.mark.parametrize("name", list(PLAN_CASES))
def test_bad_plan_input(name, tmp_path, chinchilla_fit, capsys):
    _check("plan", PLAN_CASES[name], tmp_path, chinchilla_fit, capsys)


@pytest.mark.parametrize("name", list(COMPARE_CASES))
def test_bad_compare_input(name, tmp_path, chinchilla_fit, capsys):
    _check("compare", COMPARE_CASES[name], tmp_path, chinchilla_fit, capsys)


def test_exports_are_all_or_nothing(tmp_path, capsys):
    """A failing export (its target is a folder) leaves none of the other exports behind, and
    a successful run writes all of them (no temporary file remains)."""
    (tmp_path / "adir").mkdir()
    code, _, err = run_cli(["plan", "--compute", "1e19", "-o", str(tmp_path / "p.json"),
                            "--megatron", str(tmp_path / "adir")], capsys)
    assert code == 2 and str(tmp_path / "adir") in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir"]
    code, _, err = run_cli(["plan", "--compute", "1e19", "-o", str(tmp_path / "new" / "p.json"),
                            "--megatron", str(tmp_path / "args.txt")], capsys)
    assert code == 0, err
    names = sorted(p.name for p in tmp_path.rglob("*"))
    assert names == ["adir", "args.txt", "new", "p.json"]


def test_compare_reports_budgets_that_do_not_fit(capsys):
    import json

    code, out, err = run_cli(["compare", "--compute", "1e21", "--memory", "1MB,8GB", "--json"],
                             capsys)
    assert code == 0, err
    rows = json.loads(out)["experts_by_memory"]
    assert [r["memory_bytes"] for r in rows] == [1e6, 8e9]
    assert rows[0]["experts"] is None and "cannot hold" in rows[0]["reason"]
    assert rows[1]["experts"] is not None
    code, out, _ = run_cli(["compare", "--compute", "1e21", "--memory", "1MB"], capsys)
    assert code == 0 and "does not fit" in out
