"""The FFN activations, one table for the reference model and the fused kernels."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["activation", "ffn_activation"]


def activation(ffn_type: str, gate: torch.Tensor, up: torch.Tensor | None) -> torch.Tensor:
    """SwiGLU ``silu(g)·u``, GeGLU ``gelu(g)·u`` (Shazeer, arXiv:2002.05202; tanh GELU), or
    plain GELU/ReLU of ``g``."""
    if ffn_type == "swiglu":
        return F.silu(gate) * up
    if ffn_type == "geglu":
        return F.gelu(gate, approximate="tanh") * up
    return F.gelu(gate, approximate="tanh") if ffn_type == "gelu" else F.relu(gate)


def ffn_activation(ffn_type: str, h_X: torch.Tensor) -> torch.Tensor:
    """:func:`activation` of an FFN's input projection (gate‖up halves for gated types)."""
    if ffn_type in ("swiglu", "geglu"):
        gate, up = h_X.chunk(2, dim=-1)
        return activation(ffn_type, gate, up)
    return activation(ffn_type, h_X, None)
