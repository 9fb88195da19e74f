"""The fused path (``ModelOptions(fused=True)``: the kernels of ``moescale.training.fused``)
against the reference path (``fused=False``: plain PyTorch ops) — same weights, same input: the
logits, the loss and every parameter gradient agree (fp32, CPU), and a short training run gives
the same losses."""

from __future__ import annotations

import dataclasses
import json

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from moescale.accounting.architecture import Architecture  # noqa: E402
from moescale.training import fused as fused_module  # noqa: E402
from moescale.training.config import TrainConfig  # noqa: E402
from moescale.training.model import ModelOptions, MoEOptions, MoETransformer  # noqa: E402
from moescale.training.trainer import train  # noqa: E402

BASE = dict(hidden_size=32, n_layers=2, n_heads=4, vocab_size=64, seq_len=16)
MOE = dict(BASE, n_experts=6, top_k=2, expert_ffn=16)

CASES = {
    "dense": (Architecture(**BASE, dense_ffn=48), MoEOptions()),
    "dense-gqa-geglu-bias-qknorm": (
        Architecture(**BASE, n_kv_heads=2, dense_ffn=48, ffn_type="geglu", qkv_bias=True,
                     out_bias=True, mlp_bias=True, qk_norm="head"), MoEOptions()),
    "moe-softmax": (Architecture(**MOE), MoEOptions()),
    "moe-softmax-gqa": (Architecture(**MOE, n_kv_heads=1), MoEOptions(norm_topk_prob=False)),
    "moe-sigmoid": (Architecture(**MOE, n_kv_heads=2, router_bias=True),
                    MoEOptions(score="sigmoid", routed_scaling_factor=2.5)),
    "moe-shared-gate-dense-first": (
        Architecture(**MOE, n_shared_experts=2, shared_expert_gate=True, first_dense_layers=1,
                     dense_ffn=48, qk_norm="full"), MoEOptions()),
    "moe-shared-bias-gelu": (
        Architecture(**MOE, n_shared_experts=2, mlp_bias=True, ffn_type="gelu"), MoEOptions()),
    "moe-capacity-drops": (Architecture(**MOE, n_kv_heads=2, ffn_type="relu"),
                           MoEOptions(capacity_factor=0.5)),
    "moe-layernorm-tied": (Architecture(**MOE, norm_type="layernorm", tie_embeddings=True),
                           MoEOptions(score="sigmoid")),
}


def _twins(arch: Architecture, moe: MoEOptions) -> tuple[MoETransformer, MoETransformer]:
    """A fused and a reference model holding the same weights and buffers."""
    torch.manual_seed(0)
    fused = MoETransformer(arch, ModelOptions(moe=moe, fused=True))
    with torch.no_grad():  # non-trivial gains, biases and sigmoid balancing biases
        for name, t in fused.state_dict().items():
            if "norm" in name or "bias" in name:
                t.add_(0.1 * torch.randn_like(t))
    reference = MoETransformer(arch, ModelOptions(moe=moe, fused=False))
    reference.load_state_dict(fused.state_dict())
    return fused, reference


def _loss(model: MoETransformer, idx: torch.Tensor):
    out = model(idx[:, :-1])
    ce = F.cross_entropy(out.logits.flatten(0, 1), idx[:, 1:].flatten())
    return out, ce + 0.01 * out.aux_loss("sum") + 1e-3 * out.z_loss("sum")


@pytest.mark.parametrize("case", CASES)
def test_fused_and_reference_paths_agree(case):
    arch, moe = CASES[case]
    fused, reference = _twins(arch, moe)
    idx = torch.randint(0, 64, (3, 17), generator=torch.Generator().manual_seed(1))
    (out_f, loss_f), (out_r, loss_r) = _loss(fused, idx), _loss(reference, idx)
    torch.testing.assert_close(out_f.logits, out_r.logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(loss_f, loss_r, atol=1e-6, rtol=1e-6)
    for r_f, r_r in zip(out_f.routing, out_r.routing, strict=True):
        assert torch.equal(r_f.load_E, r_r.load_E) and torch.equal(r_f.dropped, r_r.dropped)
    if moe.capacity_factor is not None:
        assert sum(int(r.dropped) for r in out_f.routing) > 0
    loss_f.backward()
    loss_r.backward()
    params_r = dict(reference.named_parameters())
    for name, p in fused.named_parameters():
        assert p.grad is not None, name
        torch.testing.assert_close(p.grad, params_r[name].grad, atol=1e-6, rtol=1e-5,
                                   msg=lambda m, name=name: f"{name}: {m}")


def test_reference_path_calls_no_fused_kernel(monkeypatch):
    """``fused=False`` runs this module's plain ops only (every kernel entry point raises)."""
    def boom(*args, **kwargs):
        raise AssertionError("a fused kernel ran on the reference path")
    for name in ("rms_norm", "rope", "qkv_rope", "routed_experts"):
        monkeypatch.setattr(fused_module, name, boom)
    arch, moe = CASES["moe-shared-gate-dense-first"]
    _, reference = _twins(arch, moe)
    _, loss = _loss(reference, torch.zeros(1, 9, dtype=torch.long))
    loss.backward()
    with pytest.raises(AssertionError, match="fused kernel"):
        _loss(_twins(arch, moe)[0], torch.zeros(1, 9, dtype=torch.long))


def test_a_few_adamw_steps_give_the_same_losses():
    arch, moe = CASES["moe-sigmoid"]
    models = _twins(arch, moe)
    opts = [torch.optim.AdamW(m.parameters(), lr=3e-3) for m in models]
    g = torch.Generator().manual_seed(2)
    losses = [[], []]
    for _ in range(5):
        idx = torch.randint(0, 64, (4, 17), generator=g)
        for model, opt, log in zip(models, opts, losses, strict=True):
            out, loss = _loss(model, idx)
            loss.backward()
            opt.step()
            opt.zero_grad()
            for layer, r in zip(model.moe_layers(), out.routing, strict=True):
                layer.router.update_balance_bias(r.load_E, 1e-3)
            log.append(loss.item())
    assert losses[0] == pytest.approx(losses[1], rel=1e-5, abs=1e-6)
    assert losses[0][-1] < losses[0][0]


def _step_losses(run_dir) -> list[float]:
    lines = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    return [r["step_train_loss"] for r in lines if "step_train_loss" in r]


def test_trainer_runs_give_the_same_losses_on_both_paths(tmp_path):
    arch = Architecture(**dict(MOE, seq_len=32, vocab_size=256), n_kv_heads=2,
                        n_shared_experts=1)
    losses = []
    for fused in (True, False):
        cfg = TrainConfig(tokens=6 * 256, batch_tokens=256, seq_len=32, lr=3e-3, log_every=1,
                          eval_every=6, eval_tokens=256, cache_dir=str(tmp_path / "cache"),
                          out=str(tmp_path / f"fused-{fused}"), device="cpu")
        options = dataclasses.replace(ModelOptions(), fused=fused,
                                      moe=MoEOptions(capacity_factor=1.0))
        train(arch, cfg, options)
        losses.append(_step_losses(tmp_path / f"fused-{fused}"))
    assert len(losses[0]) == 6
    assert losses[0] == pytest.approx(losses[1], rel=1e-5, abs=1e-6)


def test_train_cli_switch_selects_the_path():
    from moescale.training.options import model_options

    assert ModelOptions().fused is True  # default: the fused kernels
    assert model_options().fused is True
    options = model_options(capacity_factor=0.5, router="sigmoid", fused=False)
    assert options.fused is False
    assert options.moe == MoEOptions(score="sigmoid", capacity_factor=0.5)
