"""Router balancing: the loss values against their papers' formulas, the policy defaults, fp32
routing under autocast, and the fused RoPE path against the per-tensor one."""

import math

import pytest

torch = pytest.importorskip("torch")

from moescale.accounting.architecture import Architecture  # noqa: E402
from moescale.training.config import TrainConfig  # noqa: E402
from moescale.training.model import (  # noqa: E402
    MoETransformer,  # noqa: E402
    Router,
    balance_losses,
)


def test_balance_loss_is_one_for_a_perfectly_balanced_router():
    # Switch eq. 4: E·Σ f_e·P_e with f_e = P_e = 1/E → E·E·(1/E²) = 1
    E, T, K = 8, 64, 2
    probs = torch.full((T, E), 1.0 / E)
    load = torch.full((E,), T * K / E)
    aux, z = balance_losses(probs, torch.zeros(T, E), load, T * K)
    assert aux.item() == pytest.approx(1.0)
    assert z.item() == pytest.approx(math.log(E) ** 2)  # logsumexp of E zeros is ln E


def test_balance_loss_of_a_collapsed_router_is_E():
    E, T = 4, 10
    probs = torch.zeros(T, E)
    probs[:, 0] = 1.0
    load = torch.tensor([T, 0, 0, 0])
    aux, _ = balance_losses(probs, torch.zeros(T, E), load, T)
    assert aux.item() == pytest.approx(E)


def test_z_loss_is_the_st_moe_formula_and_zero_for_sigmoid():
    torch.manual_seed(0)
    logits = torch.randn(5, 6) * 3
    expected = sum(math.log(sum(math.exp(v) for v in row)) ** 2 for row in logits.tolist()) / 5
    probs = torch.softmax(logits, -1)
    _, z = balance_losses(probs, logits, torch.ones(6), 6)
    assert z.item() == pytest.approx(expected, rel=1e-5)
    _, z_sig = balance_losses(torch.sigmoid(logits), logits, torch.ones(6), 6, score="sigmoid")
    assert z_sig.item() == 0.0


def test_router_losses_are_summed_over_moe_layers_by_default():
    arch = Architecture(hidden_size=32, n_layers=3, n_heads=2, vocab_size=64, n_experts=4,
                        top_k=2, expert_ffn=16, seq_len=16)
    torch.manual_seed(0)
    out = MoETransformer(arch)(torch.randint(0, 64, (2, 16)))
    per_layer = torch.stack([r.aux_loss for r in out.routing])
    assert len(out.routing) == 3
    assert out.aux_loss("sum").item() == pytest.approx(per_layer.sum().item())
    assert out.aux_loss("mean").item() == pytest.approx(per_layer.mean().item())
    assert TrainConfig().router_loss_reduction == "sum"


def test_router_logits_are_fp32_under_bf16_autocast():
    torch.manual_seed(0)
    router = Router(64, 8, 2)
    x = torch.randn(16, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, _, probs, logits = router(x)
    assert logits.dtype == torch.float32
    exact = x.double() @ router.gate.weight.double().T
    assert torch.allclose(logits.double(), exact, atol=1e-5)  # bf16 would be ~1e-2 off


def test_fused_and_per_tensor_rope_paths_agree():
    """``qk_norm="none"`` rotates q and k in one call (the fused path, which an earlier version
    never took); the per-tensor path (taken with q/k norms) must give the same output when the
    norms are left out."""
    arch = Architecture(hidden_size=32, n_layers=1, n_heads=4, n_kv_heads=2, vocab_size=64,
                        n_experts=4, top_k=1, expert_ffn=16, seq_len=16)
    torch.manual_seed(0)
    model = MoETransformer(arch)
    x = torch.randint(0, 64, (2, 16))
    fused = model(x).logits
    model.blocks[0].attn.qk_norm = "per-tensor"  # any value but "none": the per-tensor path
    reference = model(x).logits
    assert torch.allclose(fused, reference, atol=1e-5)
