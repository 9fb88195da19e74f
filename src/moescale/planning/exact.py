"""Vectorised exact counts of planned architectures — the same numbers as :func:`moescale.accounting.counting.count`.

The planners enumerate thousands of candidate structures at once; building an
:class:`~moescale.accounting.architecture.Architecture` and calling ``count()`` for each would be slow, so
the formulas of :func:`moescale.accounting.counting.raw_components` are written here for the one layout the
planners produce (SwiGLU FFNs, RMSNorm, no biases, untied embeddings, leading dense layers then
MoE layers, top-k routing with optional shared experts of the routed width). Tests check that
every number equals ``count()`` of the realised architecture; the planners also re-check the
chosen architecture with ``count()`` before returning it.

Units: parameters and cached values are counts of scalars (int64); multiply by bytes per value.
"""

from __future__ import annotations

import numpy as np


def total_params(d, L, L_d, d_d, n_experts, d_m, n_shared, heads, vocab):
    """Every parameter (``count(arch).total_params``), vectorised over the array arguments.

    ``heads = (d_qkv, N_q, N_kv)``. Components (as :func:`moescale.accounting.counting.raw_components`): embedding and unembedding
    ``2·V·d``; attention ``L·(2·d·N_q·d_qkv + 2·d·N_kv·d_qkv)``; dense FFNs ``L_d·3·d·d_d``;
    routed and shared experts ``L_m·(N_e + n_s)·3·d·d_m``; router ``L_m·d·N_e``; RMSNorm gains
    ``2·d·L + d``.
    """
    dq, nq, nkv = heads
    d, L, L_d, d_d, d_m = (np.asarray(v, dtype=np.int64) for v in (d, L, L_d, d_d, d_m))
    L_m = L - L_d
    attention = L * (2 * d * nq * dq + 2 * d * nkv * dq)
    dense = L_d * 3 * d * d_d
    experts = L_m * (n_experts + n_shared) * 3 * d * d_m if n_experts else 0 * d
    router = L_m * d * n_experts
    norms = 2 * d * L + d
    return 2 * vocab * d + attention + dense + experts + router + norms


def kv_cache_values(L, heads, tokens: int):
    """Cached values for ``tokens`` tokens: ``2·N_kv·d_qkv`` per token per layer."""
    dq, _, nkv = heads
    return np.asarray(L, dtype=np.int64) * 2 * nkv * dq * int(tokens)
