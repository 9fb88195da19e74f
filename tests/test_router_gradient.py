"""Top-1 routing must train its router from the language-model loss (Switch Transformer,
arXiv:2101.03961 §2.1: the gate is the chosen expert's probability). Renormalised top-1 gates
are the constant 1: no gradient, so the trainer and the sweep spec refuse them. And a finished
run resumed at its end keeps its losses."""

import pytest

torch = pytest.importorskip("torch")

from moescale.accounting.architecture import Architecture  # noqa: E402
from moescale.errors import MoescaleError  # noqa: E402
from moescale.training.model import ModelOptions, MoEOptions, MoETransformer  # noqa: E402

ARCH = Architecture(hidden_size=32, n_layers=2, n_heads=2, vocab_size=64, n_experts=4, top_k=1,
                    expert_ffn=32, seq_len=16)


def _router_grad(norm_topk_prob, fused: bool) -> float:
    torch.manual_seed(0)
    model = MoETransformer(ARCH, ModelOptions(fused=fused,
                                              moe=MoEOptions(norm_topk_prob=norm_topk_prob)))
    ids = torch.randint(0, 64, (2, 16))
    logits = model(ids).logits  # LM loss only: no balance or z-loss term
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 64), ids[:, 1:].reshape(-1))
    loss.backward()
    return sum(float(m.router.gate.weight.grad.abs().sum()) for m in model.modules()
               if hasattr(m, "router"))


@pytest.mark.parametrize("fused", [True, False])
def test_top1_router_gets_gradient_from_lm_loss_by_default(fused):
    assert _router_grad(None, fused) > 1e-6


@pytest.mark.parametrize("fused", [True, False])
def test_renormalised_top1_router_gets_no_gradient(fused):
    # the defect the default avoids: a weight that is always 1 has zero derivative
    assert _router_grad(True, fused) < 1e-6 * _router_grad(None, fused)


def test_top2_renormalises_by_default():
    model = MoETransformer(ARCH.replace(top_k=2))
    assert all(m.router.norm_topk_prob for m in model.modules() if hasattr(m, "router"))


def test_trainer_refuses_renormalised_top1(tmp_path):
    from moescale.training.config import TrainConfig
    from moescale.training.trainer import train

    with pytest.raises(MoescaleError, match="norm_topk_prob"):
        train(ARCH, TrainConfig(tokens=64, batch_tokens=32, seq_len=16, threads=1),
              ModelOptions(moe=MoEOptions(norm_topk_prob=True)))


def test_a_finished_run_resumed_at_its_end_reports_its_losses(tmp_path):
    """A worker that finished training but whose result was never recorded (its driver died)
    runs again from the final checkpoint: the result must be the run's, not a NaN that the
    sweep would record as a divergence."""
    import math

    from moescale.training.config import TrainConfig
    from moescale.training.trainer import train

    config = TrainConfig(tokens=32 * 6, batch_tokens=32, seq_len=16, threads=1,
                         out=str(tmp_path / "run"), eval_tokens=64)
    first = train(ARCH, config)
    again = train(ARCH, config.replace(resume=True))
    assert math.isfinite(again.train_loss) and again.train_loss == first.train_loss
    assert again.eval_loss == pytest.approx(first.eval_loss)
