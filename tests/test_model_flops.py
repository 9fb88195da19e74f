"""Measured matmul FLOPs (FlopCounterMode, forward + backward) equal the ``exact`` convention
for the active path (attention not halved: dense kernels compute the full score matrix)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from moescale.accounting.architecture import Architecture  # noqa: E402
from moescale.accounting.counting import count  # noqa: E402
from moescale.training.model import MoETransformer  # noqa: E402

ARCHS = {
    "mixtral-like": Architecture(hidden_size=64, n_layers=2, n_heads=4, n_kv_heads=2,
                                 vocab_size=256, n_experts=8, top_k=2, expert_ffn=96, seq_len=64),
    "deepseek-like": Architecture(hidden_size=64, n_layers=3, n_heads=4, vocab_size=300,
                                  dense_ffn=160, first_dense_layers=1, n_experts=12, top_k=3,
                                  expert_ffn=32, n_shared_experts=2, seq_len=48),
    "qwen2-like": Architecture(hidden_size=48, n_layers=4, n_heads=6, n_kv_heads=3,
                               vocab_size=128, dense_ffn=96, moe_layer_step=2, n_experts=6,
                               top_k=2, expert_ffn=40, n_shared_experts=1, shared_expert_ffn=64,
                               shared_expert_gate=True, qkv_bias=True, tie_embeddings=True,
                               seq_len=32, ffn_type="gelu"),
}


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_measured_training_flops_match_exact_convention(name):
    arch = ARCHS[name]
    torch.manual_seed(0)
    model = MoETransformer(arch)
    idx = torch.randint(0, arch.vocab_size, (3, arch.seq_len))
    # the math backend runs attention as bmm's, which FlopCounterMode counts
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(idx).logits.sum().backward()
    measured = counter.get_total_flops()
    expected = count(arch, "exact", causal_halving=False).training_flops_per_token * idx.numel()
    assert measured == pytest.approx(expected, rel=0.02)
