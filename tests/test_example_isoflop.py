"""A reduced examples/isoflop-mini, end to end through the CLI: sweep plan → sweep run →
sweep status/analyze/export → fit --store → plan --fit for a 100× larger budget."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import ROOT, run_cli
from sweep_helpers import shared_token_cache  # noqa: F401

pytest.importorskip("torch")
pytestmark = pytest.mark.slow

EXAMPLE = ROOT / "examples" / "isoflop-mini" / "sweep.toml"


def reduced_spec(tmp_path: Path) -> Path:
    """The example with budgets 200× smaller, three sizes and a shorter context."""
    text = EXAMPLE.read_text()
    text = re.sub(r"budgets = \[[^\]]*\]", "budgets = [1e9, 2e9]", text)
    text = text.replace("seq_len = 128", "seq_len = 32").replace("batch_tokens = 2048",
                                                                  "batch_tokens = 512")
    text = text.replace("eval_tokens = 16384", "eval_tokens = 2048")
    blocks = text.split("[[points]]")
    text = "[[points]]".join(blocks[:4]) + "\n[train]" + text.split("[train]")[1]
    path = tmp_path / "reduced.toml"
    path.write_text(text)
    return path


def test_reduced_example_end_to_end(tmp_path, capsys):
    spec, db = reduced_spec(tmp_path), tmp_path / "sweep.db"
    code, out, err = run_cli(["sweep", "plan", str(spec), "--json", "--no-estimate"], capsys)
    assert code == 0, err
    plan = json.loads(out)
    assert plan["n_runs"] == 6 and [r["d"] for r in plan["runs"][:3]] == [12, 16, 24]
    code, out, err = run_cli(["sweep", "run", str(spec), "--store", str(db), "--workers", "2",
                              "--threads", "1", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["counts"]["done"] == 6
    code, out, err = run_cli(["sweep", "status", "--store", str(db), "--json"], capsys)
    status = json.loads(out)
    assert status["counts"] == {"pending": 0, "running": 0, "done": 6, "failed": 0, "retired": 0}
    assert all(r["eval_loss"] < 5.0 for r in status["runs"])  # below ln 256 = 5.55
    code, out, err = run_cli(["sweep", "analyze", "--store", str(db), "--json"], capsys)
    assert code == 0, err
    assert {b["status"] for b in json.loads(out)["budgets"]} <= {"ok", "edge-low", "edge-high"}
    code, out, err = run_cli(["sweep", "export", "--store", str(db), "-o",
                              str(tmp_path / "runs.csv")], capsys)
    assert code == 0 and (tmp_path / "runs.csv").read_text().count("\n") == 7
    fit = tmp_path / "fit.json"
    code, out, err = run_cli(["fit", "--store", str(db), "--law", "chinchilla", "-o", str(fit),
                              "--json"], capsys)
    assert code == 0, err
    code, out, err = run_cli(["plan", "--compute", "4e11", "--fit", str(fit), "--vocab", "256",
                              "--seq-len", "32", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["predicted_loss"] > 0
