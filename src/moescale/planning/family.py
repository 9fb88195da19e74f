"""The joint-MoE paper's model family, realised exactly (Ludziejewski et al. 2025, arXiv 2502.05172).

Members: hidden size ``d`` on a grid whose step shrinks with the model — the largest power of
two at most ``d/8`` (at least 2), capped at ``align`` (64, the paper's multiple) — so small
models keep a choice of widths (:func:`hidden_grid`), ``N_blocks = max(1,
round(d/64))`` layers, heads of ``head_dim`` (64) so that ``N_heads·head_dim = d`` (one head of
width ``d`` below that), SwiGLU of width ``3·d``, top-1 routing over ``E`` experts each the size
of the dense FFN (``E = 1`` is the dense model), untied embeddings of ``V`` tokens. In the
paper's convention (chinchilla: embeddings included, router and norms not)::

    N_act = 2·d·V + 13·N_blocks·d²        N_total = 2·d·V + (4 + 9E)·N_blocks·d²   (Eq. 9/10)

with grouped-query heads the attention term ``4·d²`` becomes ``2·d²·(1 + N_kv/N_q)``. Every
number here equals :func:`moescale.accounting.counting.count` of :func:`architecture` (tests check it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from moescale.accounting.architecture import Architecture
from moescale.errors import MoescaleError
from moescale.planning import exact


@dataclass(frozen=True)
class FamilySettings:
    """Shape rules of the family (defaults: the joint-MoE paper's setup, arXiv 2502.05172)."""

    vocab_size: int = 50257  # GPT-2 tokenizer
    seq_len: int = 512
    align: int = 64  # coarsest step of d (the paper's multiple); finer below d = 8·align
    head_dim: int = 64
    n_heads: int | None = None  # fixed number of query heads (head_dim = d / n_heads)
    n_kv_heads: int | None = None  # None → n_heads (multi-head attention, as in the paper)

    def __post_init__(self) -> None:
        for name in ("vocab_size", "seq_len", "align", "head_dim"):
            if getattr(self, name) < 1:
                raise MoescaleError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.n_heads is not None and self.n_heads < 1 or \
                self.n_kv_heads is not None and self.n_kv_heads < 1:
            raise MoescaleError("`heads` and `kv_heads` must be positive integers")
        if self.n_heads and self.n_kv_heads and self.n_heads % self.n_kv_heads:
            raise MoescaleError(f"`kv_heads` {self.n_kv_heads} must divide `heads` {self.n_heads}")


@dataclass(frozen=True)
class Members:
    """Realisable members as parallel arrays (one entry per hidden size)."""

    hidden: np.ndarray
    layers: np.ndarray
    heads: np.ndarray
    head_dim: np.ndarray
    kv_heads: np.ndarray
    active: np.ndarray  # N_act, chinchilla convention (embeddings included), float64
    total: np.ndarray  # every parameter (count().total_params), int64
    kv_per_token: np.ndarray  # cached values per token (all layers)

    def take(self, idx) -> Members:
        return Members(**{k: getattr(self, k)[idx] for k in self.__dataclass_fields__})


def members(s: FamilySettings, experts: int, d_max: float) -> Members:
    """Every member with ``align ≤ d ≤ d_max`` whose heads tile ``d`` exactly."""
    d = hidden_grid(s.align, d_max)
    if s.n_heads:
        heads = np.full(d.shape, s.n_heads, dtype=np.int64)
    else:
        heads = np.maximum(d // s.head_dim, 1)
    hd = d // heads
    kv = np.full(d.shape, s.n_kv_heads, dtype=np.int64) if s.n_kv_heads else heads
    ok = (heads * hd == d) & (heads % kv == 0) & (hd >= 1)
    d, heads, hd, kv = d[ok], heads[ok], hd[ok], kv[ok]
    layers = np.maximum(np.rint(d / 64.0), 1).astype(np.int64)
    attn = 2 * d * heads * hd + 2 * d * kv * hd
    df = d.astype(float)
    active = 2.0 * df * s.vocab_size + layers * (attn + 9.0 * df * df)
    moe = experts > 1
    total = exact.total_params(d, layers, 0 if moe else layers, 3 * d, experts if moe else 0,
                               3 * d, 0, (hd, heads, kv), s.vocab_size)
    kv_tok = exact.kv_cache_values(layers, (hd, heads, kv), 1)
    return Members(hidden=d, layers=layers, heads=heads, head_dim=hd, kv_heads=kv,
                   active=active, total=total, kv_per_token=kv_tok)


ALIGN_FRACTION = 8  # the step of d is at most d/8 (and at most ``align``)


def hidden_grid(align: int, d_max: float) -> np.ndarray:
    """Even hidden sizes from 8 (or ``align`` if smaller) up to ``d_max`` (at least one):
    step ``min(align, max(2, 2^⌊log2(d/8)⌋))``.

    The step is a power of two that grows with ``d`` up to ``align``, so every ``d`` is a
    multiple of its step and no step is coarser than ``d/8`` from ``d = 16`` on (``d/4`` at
    the smallest model, d = 8; widths stay even for rotary embeddings): at micro budgets the
    planner still chooses among widths, where a fixed step of 64 leaves d = 64 as the only
    model below 128.
    """
    out, d = [], min(8, align)
    top = max(float(d_max), float(d))
    while d <= top:
        out.append(d)
        step = 1 << max(0, int(np.floor(np.log2(d / ALIGN_FRACTION))))
        step = min(align, max(2, step))
        d = (d // step + 1) * step
    return np.asarray(out, dtype=np.int64)


def architecture(m: Members, i: int, experts: int, s: FamilySettings) -> Architecture:
    """The :class:`Architecture` of member ``i`` with ``experts`` experts (top-1)."""
    d = int(m.hidden[i])
    moe = dict(n_experts=experts, top_k=1, expert_ffn=3 * d) if experts > 1 else {}
    return Architecture(hidden_size=d, n_layers=int(m.layers[i]), n_heads=int(m.heads[i]),
                        n_kv_heads=int(m.kv_heads[i]), head_dim=int(m.head_dim[i]),
                        dense_ffn=0 if experts > 1 else 3 * d, vocab_size=s.vocab_size,
                        seq_len=s.seq_len, name=f"moescale-joint-E{experts}-d{d}", **moe)


def continuous_hidden(active_params: float, vocab: int) -> float:
    """``d`` with ``N_act = 2·d·V + 13·d³/64`` (the paper's family, continuous)."""
    from scipy.optimize import brentq

    def f(d: float) -> float:
        return 2 * d * vocab + 13 * d**3 / 64 - active_params

    if f(1.0) >= 0:
        return 1.0
    hi = 1e3
    while f(hi) < 0:
        hi *= 10
    return float(brentq(f, 1.0, hi))
