"""Small architectures for tests, the CLI and quick experiments (torchtitan-style debug presets).

Each preset is a zero-argument function in ``PRESETS``; vocabularies are 256 (bytes) and are
replaced by the tokenizer's when training.
"""

from __future__ import annotations

from collections.abc import Callable

from moescale.architecture import Architecture
from moescale.errors import MoescaleError


def tiny() -> Architecture:
    """2 layers, d=64, 8 experts top-2 (0.26 M parameters, 0.11 M active): seconds on a CPU."""
    return Architecture(hidden_size=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=256,
                        n_experts=8, top_k=2, expert_ffn=64, seq_len=256, name="tiny")


def small() -> Architecture:
    """4 layers, d=128, 8 experts top-2 (the CPU benchmark's Mixtral shape)."""
    return Architecture(hidden_size=128, n_layers=4, n_heads=4, n_kv_heads=2, vocab_size=256,
                        n_experts=8, top_k=2, expert_ffn=256, seq_len=256, name="small")


def small_shared() -> Architecture:
    """DeepSeek-style: a leading dense layer, 16 fine-grained experts top-4, one shared expert."""
    return Architecture(hidden_size=128, n_layers=4, n_heads=4, n_kv_heads=2, vocab_size=256,
                        dense_ffn=384, first_dense_layers=1, n_experts=16, top_k=4,
                        expert_ffn=96, n_shared_experts=1, seq_len=256, name="small-shared")


def gpu_100m() -> Architecture:
    """About 100 M active parameters (GPU MFU measurements): 12 layers, d=768, 8 experts top-2."""
    return Architecture(hidden_size=768, n_layers=12, n_heads=12, n_kv_heads=4, vocab_size=4096,
                        n_experts=8, top_k=2, expert_ffn=1536, seq_len=1024, name="gpu-100m")


PRESETS: dict[str, Callable[[], Architecture]] = {
    "tiny": tiny, "small": small, "small-shared": small_shared, "gpu-100m": gpu_100m}


def get_preset(name: str) -> Architecture:
    if name not in PRESETS:
        raise MoescaleError(f"unknown training preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]()
