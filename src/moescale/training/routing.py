"""Routing rules that need no torch: which top-k weights are renormalised, and when a router
cannot learn. Used by the model, the trainer and the sweep spec (checked before anything runs).
"""

from __future__ import annotations

__all__ = ["frozen_router_gate", "resolve_norm_topk_prob"]


def resolve_norm_topk_prob(norm_topk_prob: bool | None, top_k: int) -> bool:
    """The renormalisation a router uses: the given choice, else the papers' default (Mixtral
    renormalises its top-2; Switch's top-1 gate is the unrenormalised probability)."""
    return top_k > 1 if norm_topk_prob is None else bool(norm_topk_prob)


def frozen_router_gate(top_k: int, norm_topk_prob: bool | None) -> bool:
    """True when every routed weight is the constant 1 (top-1 renormalised, softmax or
    sigmoid): the language-model loss then sends the router no gradient at all."""
    return top_k == 1 and resolve_norm_topk_prob(norm_topk_prob, top_k)
