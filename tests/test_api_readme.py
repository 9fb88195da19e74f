"""The README's Python examples run (in a folder holding the files they name)."""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def _files(folder: Path) -> None:
    from moescale.accounting.presets import HF_CONFIGS

    (folder / "config.json").write_text(json.dumps(HF_CONFIGS["mixtral-8x7b"]))
    rng = np.random.default_rng(0)
    n = np.geomspace(1e8, 1e10, 24)
    d = np.tile([1e10, 4e10, 1.6e11, 6.4e11], 6)
    loss = (1.69 + 406.4 / n**0.34 + 410.7 / d**0.28) * np.exp(rng.normal(0, 1e-3, 24))
    pd.DataFrame({"Model Size": n, "Training FLOP": 6 * n * d, "loss": loss}).to_csv(
        folder / "runs.csv", index=False)


def test_readme_has_python_examples():
    assert BLOCKS


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_example_runs(index, tmp_path, monkeypatch):
    block = BLOCKS[index]
    _files(tmp_path)
    monkeypatch.chdir(tmp_path)
    exec(compile(block, f"README.md python block {index}", "exec"), {})


def test_the_readme_export_loads_as_a_glm4_moe_config():
    from moescale.accounting.hf_export import to_hf_config
    from moescale.planning import Budget, plan_holistic

    plan = plan_holistic(Budget(compute=1e21, memory_bytes=80e9))
    assert plan.to_hf_config()["model_type"] == "glm4_moe"
    assert to_hf_config(plan.architecture, "glm4_moe")["num_hidden_layers"] == \
        plan.architecture.n_layers
