"""The model options of a run, built in one place for ``moescale train``, a sweep's worker
and :func:`moescale.train`."""

from __future__ import annotations

import dataclasses

from moescale.errors import MoescaleError
from moescale.training.hf_weights import options_from_hf_config
from moescale.training.model import ModelOptions


def model_options(hf: dict | None = None, *, router: str | None = None,
                  norm_topk_prob: bool | None = None, capacity_factor: float | None = None,
                  fused: bool = True) -> ModelOptions:
    """The model options of a run: a Hugging Face config's (RoPE θ, norm ε, routing) or the
    defaults, with the routing choices a run sets (``router`` is the score function,
    ``softmax`` or ``sigmoid``; ``None`` keeps the base's). The one place ``moescale train``,
    a sweep's worker and :func:`moescale.train` build them."""
    base = options_from_hf_config(hf) if hf else ModelOptions()
    if capacity_factor is not None and not capacity_factor > 0:
        raise MoescaleError(f"`capacity_factor` must be positive, got {capacity_factor}")
    changes = {k: v for k, v in dict(score=router, norm_topk_prob=norm_topk_prob,
                                     capacity_factor=capacity_factor).items() if v is not None}
    return dataclasses.replace(base, moe=dataclasses.replace(base.moe, **changes), fused=fused)
