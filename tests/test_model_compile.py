"""``torch.compile`` (the trainer's ``--compile``) gives the eager model's logits and gradients:
the hand-written RMSNorm/RoPE fall back to their formulas and the routed experts run eagerly."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from moescale.accounting.architecture import Architecture  # noqa: E402
from moescale.training.model import MoETransformer  # noqa: E402


def test_compiled_model_matches_eager():
    arch = Architecture(hidden_size=32, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=64,
                        n_experts=4, top_k=2, expert_ffn=16, n_shared_experts=1, seq_len=16)
    torch.manual_seed(0)
    model = MoETransformer(arch)
    idx = torch.randint(0, 64, (2, 16), generator=torch.Generator().manual_seed(1))

    def run(fn):
        model.zero_grad(set_to_none=True)
        out = fn(idx)
        (out.logits.square().mean() + 0.01 * out.aux_loss()).backward()
        return out.logits.detach(), [p.grad.clone() for p in model.parameters()]

    want_logits, want_grads = run(model)
    got_logits, got_grads = run(torch.compile(model))
    torch.testing.assert_close(got_logits, want_logits, atol=1e-5, rtol=1e-4)
    for got, want in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
