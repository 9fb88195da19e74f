"""Micro sweep specs for the sweep tests: runs of a few optimizer steps on 16-wide models."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

MICRO_BASE = """
[base]
n_layers = 1
n_heads = 2
vocab_size = 256
seq_len = 32
n_experts = 4
top_k = 1
expert_ffn = 32
dense_ffn = 64
"""


def micro_spec(tmp_path: Path, name: str = "micro", budgets: str = "[2e8]",
               grid: str = "hidden_size = [16, 24]", train: str = "", extra: str = "",
               steps_flops: str = "") -> Path:
    """Write a micro spec; each run is a few steps of 256 tokens (seconds on one thread)."""
    text = (f'name = "{name}"\nbudgets = {budgets}\nseeds = [0]\n{extra}\n{MICRO_BASE}\n'
            f'[grid]\n{grid}\n\n[train]\nbatch_tokens = 256\nlr = 3e-3\neval_tokens = 1024\n'
            f'{train}\n')
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def moescale_cmd(*args: str) -> list[str]:
    """The console entry point as a subprocess command (same interpreter as the tests)."""
    return [sys.executable, "-c", "from moescale.cli import main; main()", *args]


def run_moescale(*args: str, cwd: Path | None = None, timeout: float = 300):
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    return subprocess.run(moescale_cmd(*args), capture_output=True, text=True, cwd=cwd,
                          timeout=timeout, env=env)


@pytest.fixture(autouse=True)
def shared_token_cache(tmp_path_factory, monkeypatch):
    """One token cache per test session, and one thread per training process (import this
    fixture into a test module to apply it to every test there)."""
    monkeypatch.setenv("MOESCALE_CACHE", str(tmp_path_factory.getbasetemp() / "token-cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
