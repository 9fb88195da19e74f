"""The mixture-of-experts layer's names, kept importable from their former module.

The layer itself (router, balance losses, routed and shared experts) is written out in
:mod:`moescale.training.model`, its fused expert kernel in :mod:`moescale.training.fused`.
"""

from __future__ import annotations

from moescale.training.fused import RoutedExperts, dispatch, routed_experts
from moescale.training.model import (
    FeedForward,
    GroupedExperts,
    MoEFeedForward,
    MoEOptions,
    Router,
    RouterOutput,
    activation,
    balance_losses,
)

__all__ = ["FeedForward", "GroupedExperts", "MoEFeedForward", "MoEOptions", "Router",
           "RouterOutput", "RoutedExperts", "activation", "balance_losses", "dispatch",
           "routed_experts"]
