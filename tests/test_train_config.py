"""The training settings' own rules (:class:`TrainConfig`), which need no torch."""

from __future__ import annotations

import pytest

from moescale.errors import MoescaleError
from moescale.training.config import TrainConfig


@pytest.mark.parametrize("kw, match", [
    (dict(tokens=0), "`tokens` must be positive"),
    (dict(schedule="linear"), "schedule"),
    (dict(resume=True), "needs `out`"),
])
def test_bad_settings_raise(kw, match):
    with pytest.raises(MoescaleError, match=match):
        TrainConfig(**kw)


def test_router_loss_policy_follows_the_router():
    """Softmax routers get the Switch balance loss and the ST-MoE z-loss; sigmoid routers are
    auxiliary-loss-free (DeepSeek-V3 §2.1.2)."""
    c = TrainConfig()
    assert c.router_loss_coefs("softmax") == (0.01, 1e-3)
    assert c.router_loss_coefs("sigmoid") == (0.0, 0.0)  # auxiliary-loss-free
    assert TrainConfig(aux_loss_coef=1e-4).router_loss_coefs("sigmoid") == (1e-4, 0.0)
