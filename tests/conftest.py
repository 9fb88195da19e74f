"""Shared fixtures: where the reference data lives, and skipping when it is absent (failing
under CI, where ``CI`` is set: a skipped replication there would be a silent pass)."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

# Ray (sweep executor tests) on the loopback interface only, in this process and in every
# process it starts (read by Ray when it is imported).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MOESCALE_REFERENCE_DATA", ROOT / "../shared/data"))


# For the tests that train or load a model: the rest of a module runs without torch.
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                 reason="needs torch (the train extra)")


def _missing(reason: str) -> None:
    """Skip locally; fail under CI (``CI`` set), where the reference data must be present."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must provide it", pytrace=False)
    pytest.skip(reason)


def reference_file(relative: str) -> Path:
    """Path of a reference data file; skips the test with a clear reason when it is absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        _missing(f"reference data {relative} not found under {SHARED_DATA} "
                 "(set MOESCALE_REFERENCE_DATA to the shared/data folder)")
    return path


def run_cli(argv, capsys):
    """Run the CLI in-process; return (exit status, stdout, stderr)."""
    from moescale.cli import main

    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared reference-data folder (skips when absent)."""
    if not SHARED_DATA.is_dir():
        _missing(f"reference data folder {SHARED_DATA} not found "
                 "(set MOESCALE_REFERENCE_DATA to the shared/data folder)")
    return SHARED_DATA


# Tiny configs of every supported family (real key names, small sizes) for tests that build
# the transformers model: parameter counts on ``meta`` and FLOPs on CPU.
TINY_HF_CONFIGS: dict[str, dict] = {
    "mixtral": dict(model_type="mixtral", hidden_size=64, intermediate_size=96,
                    num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                    vocab_size=128, num_local_experts=4, num_experts_per_tok=2,
                    max_position_embeddings=64),
    "qwen2_moe": dict(model_type="qwen2_moe", hidden_size=64, intermediate_size=128,
                      moe_intermediate_size=32, shared_expert_intermediate_size=80,
                      num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                      vocab_size=128, num_experts=6, num_experts_per_tok=2,
                      decoder_sparse_step=1, mlp_only_layers=[1], max_position_embeddings=64),
    "qwen3_moe": dict(model_type="qwen3_moe", hidden_size=64, intermediate_size=128,
                      moe_intermediate_size=32, num_hidden_layers=4, num_attention_heads=4,
                      num_key_value_heads=2, head_dim=24, vocab_size=128, num_experts=6,
                      num_experts_per_tok=3, decoder_sparse_step=2, attention_bias=True,
                      max_position_embeddings=64),
    "olmoe": dict(model_type="olmoe", hidden_size=64, intermediate_size=32, num_hidden_layers=2,
                  num_attention_heads=4, vocab_size=128, num_experts=8, num_experts_per_tok=2,
                  max_position_embeddings=64, eos_token_id=1, pad_token_id=0),
    "deepseek_v2": dict(model_type="deepseek_v2", hidden_size=64, intermediate_size=128,
                        moe_intermediate_size=32, num_hidden_layers=3, num_attention_heads=4,
                        num_key_value_heads=4, n_routed_experts=8, n_shared_experts=2,
                        num_experts_per_tok=2, first_k_dense_replace=1, kv_lora_rank=16,
                        q_lora_rank=None, qk_rope_head_dim=8, v_head_dim=16,
                        qk_nope_head_dim=12, vocab_size=128, max_position_embeddings=64),
    "deepseek_v3": dict(model_type="deepseek_v3", hidden_size=64, intermediate_size=128,
                        moe_intermediate_size=32, num_hidden_layers=3, num_attention_heads=4,
                        num_key_value_heads=4, n_routed_experts=8, n_shared_experts=2,
                        num_experts_per_tok=2, first_k_dense_replace=1, n_group=2,
                        topk_group=1, kv_lora_rank=16, q_lora_rank=24, qk_rope_head_dim=8,
                        v_head_dim=16, qk_nope_head_dim=12, vocab_size=128,
                        attention_bias=True, max_position_embeddings=64),
    "glm4_moe": dict(model_type="glm4_moe", hidden_size=64, intermediate_size=96,
                     moe_intermediate_size=32, num_hidden_layers=3, first_k_dense_replace=1,
                     num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                     n_routed_experts=8, num_experts_per_tok=2, n_shared_experts=1,
                     attention_bias=True, use_qk_norm=True, vocab_size=128,
                     max_position_embeddings=64),
    "gpt_oss": dict(model_type="gpt_oss", hidden_size=64, intermediate_size=32,
                    num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                    head_dim=16, vocab_size=128, num_local_experts=4, num_experts_per_tok=2,
                    max_position_embeddings=64, layer_types=["full_attention"] * 2),
    "llama": dict(model_type="llama", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, vocab_size=128,
                  max_position_embeddings=64, attention_bias=True, mlp_bias=True,
                  tie_word_embeddings=True),
    "mistral": dict(model_type="mistral", hidden_size=64, intermediate_size=128,
                    num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                    vocab_size=128, max_position_embeddings=64, sliding_window=None),
    "qwen2": dict(model_type="qwen2", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, vocab_size=128,
                  max_position_embeddings=64, tie_word_embeddings=True),
    "qwen3": dict(model_type="qwen3", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=32, vocab_size=128,
                  max_position_embeddings=64),
}


@pytest.fixture(scope="session")
def tiny_hf_configs() -> dict[str, dict]:
    return TINY_HF_CONFIGS


@pytest.fixture
def ray_cluster(monkeypatch):
    """A 2-CPU Ray cluster started with `ray start` (as on a real cluster), stopped after; on
    the loopback interface, without Ray's token authentication (a test cluster). `ray stop`
    ends every cluster on the machine — and a driver whose cluster died exits at once, taking
    its pytest worker down — so the tests that use it share one xdist group ("ray")."""
    pytest.importorskip("ray")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    ray_cli = Path(sys.executable).parent / "ray"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    subprocess.run([str(ray_cli), "start", "--head", f"--port={port}", "--num-cpus=2",
                    "--node-ip-address=127.0.0.1", "--include-dashboard=false",
                    "--disable-usage-stats"], check=True, capture_output=True, timeout=180)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([str(ray_cli), "stop"], capture_output=True, timeout=180)
