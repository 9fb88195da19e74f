"""Plans export to Hugging Face (loadable by transformers, same parameter count) and Megatron,
and the `moescale plan` CLI prints the promised JSON and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import needs_torch
from conftest import run_cli as run
from moescale.accounting.hf import from_hf_config
from moescale.accounting.hf_export import to_hf_config
from moescale.planning import Budget, plan_holistic


@needs_torch
@pytest.mark.parametrize("compute", [1e18, 3e19, 3e20])
def test_exported_hf_config_loads_and_counts_equal(compute):
    import torch

    transformers = pytest.importorskip("transformers", reason="the hf extra is required")
    p = plan_holistic(Budget(compute=compute))
    cfg = to_hf_config(p.architecture, "glm4_moe")
    hf_cfg = transformers.AutoConfig.for_model(**cfg)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(hf_cfg)
    assert sum(t.numel() for t in model.parameters()) == p.counts.total_params
    assert from_hf_config(cfg) == p.architecture


def test_plan_cli_json_and_exports(tmp_path, capsys):
    hf, meg, out = tmp_path / "hf" / "config.json", tmp_path / "args.txt", tmp_path / "plan.json"
    code, stdout, err = run(["plan", "--compute", "3e19", "--memory", "80GB", "--kv-tokens",
                             "16384", "--align", "64", "--json", "--hf-config", str(hf),
                             "--megatron", str(meg), "-o", str(out)], capsys)
    assert code == 0, err
    data = json.loads(stdout)
    for key in ("compute", "allocation", "architecture", "counts", "predicted_loss",
                "near_optimal_band", "binding_constraint", "alternatives"):
        assert key in data
    for key in ("active_params", "total_params", "tokens", "experts", "flops_per_token"):
        assert key in data["allocation"]
    assert data["architecture"]["hidden_size"] % 64 == 0
    assert data["counts"]["weights_bytes"] + data["counts"]["kv_cache_bytes"] <= 80e9
    assert json.loads(out.read_text())["architecture"] == data["architecture"]
    assert from_hf_config(json.loads(hf.read_text())).hidden_size == data["architecture"]["hidden_size"]
    assert "--num-experts 288" in meg.read_text()


@pytest.mark.parametrize(("argv", "message"), [
    (["plan", "--compute", "-1"], "--compute must be positive"),
    (["plan", "--compute", "abc"], "--compute must be a number"),
    (["plan", "--compute", "1e21", "--memory", "1MB"], "memory budget 0.001 GB is below"),
    (["plan", "--compute", "1e10"], "too small for one layer"),
    (["plan", "--compute", "1e21", "--memory", "lots"], "--memory must look like 80GB"),
    (["plan", "--compute", "1e21", "--experts", "1,x"], "--experts must be a comma-separated"),
    (["plan", "--compute", "1e21", "--dtype", "fp7"], "unknown dtype"),
])
def test_plan_errors_are_one_line_exit_2(argv, message, capsys):
    code, out, err = run(argv, capsys)
    assert code == 2 and message in err and "Traceback" not in err and out == ""


def test_plan_starts_fast_by_importing_nothing_heavy():
    """`moescale plan` starts fast because it imports no heavy library (design: heavy imports
    happen inside the functions that need them). Checked by what is imported, not by a clock
    (a wall-clock bound fails on a busy machine and passes on a fast one, whatever the code)."""
    code = ("import sys; from moescale.cli import main\n"
            "try:\n    main(['plan', '--compute', '1e21', '--json'])\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
            "heavy = {'torch', 'pandas', 'matplotlib', 'sklearn', 'ray', 'transformers'}\n"
            "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}), file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "[]"
