"""The holistic paper's two-phase architecture search (Wan et al. 2026, papers.md §1), vectorised.

Pipeline: ``C → (M_opt, D_opt)`` → targets ``M/N_a`` and ``N/N_a`` → ``N_a = M/(M/N_a)``,
``N = (N/N_a)·N_a`` → for every aligned hidden size ``d`` solve the structure ``(L, L_d, L_m, d_m)``
from the accounting equations (papers.md §1, Appendix A)::

    M   = 6·N_a + 6·S·N_q·d_qkv·L                       → L   (integer)
    N   = N_a + 3·d·d_m·(N_e − K)·L_m                   → d_m·L_m
    N_a = P_attn·L + 3·d·d_d·L_d + 3·d·d_m·(K+n_s)·L_m  → L_d (integer), L_m = L − L_d

All aligned candidates in a window of ratios around the targets are enumerated at once with
numpy (no Python loop over candidates), ranked by a relative-loss surrogate built from the
paper's own curve forms, and the near-optimal band is every candidate within ``tolerance``.

Surrogate (documented assumption; a fit of the per-budget curves replaces its curvatures):

- ``p_M(x) = κ_M·(x − x*)²/(x − 6)`` — the form ``a/(x−6) + b·x + c`` with its minimum at the
  target ``x*``; ``κ_M`` makes ±``m_band`` (10 %) around ``x*`` cost exactly the tolerance.
- ``p_N(y) = κ_N·[(y*−1)²/(y−1) + (y_max−y*)²/(y_max−y) − (y_max−1)]`` — the form
  ``a/(y−1) + b/(y_max−y) + c`` with minimum at ``y*``; ``κ_N`` makes the worse end of
  ``[18, 25]`` cost 1 % (the paper: loss flat within < 1 % over that range at every scale).
- ``p_w = κ_w·ln(w/4)²`` in the MoE width ratio ``w = (K+n_s)·d_m/d``, centred in the range
  3–5 that the paper reports changes loss by < 0.5 %; ``κ_w`` makes ``w = 3`` cost 0.5 %.
  (The ranking of ``(M, N_a, N)`` does not depend on ``d`` — the paper's rank-preserving
  property — so ``d`` only chooses among structures of the same triad; the paper's
  median-feasible-``d`` proxy is reported with every candidate.)
- ``p_C = κ_C·ln(M/M_opt)²``: integer layer counts move the realised ``M`` off ``M_opt``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from moescale.architecture import Architecture
from moescale.errors import MoescaleError

# Holistic Table 4: per-scale attention shapes (d_qkv, N_q, N_kv), chosen by nearest log10(C).
HEADS_BY_SCALE = {1e18: (64, 4, 2), 3e18: (64, 8, 4), 1e19: (64, 8, 4), 3e19: (128, 8, 4),
                  1e20: (128, 8, 4), 3e20: (128, 16, 8)}


@dataclass(frozen=True)
class HolisticSettings:
    """Engineering constants fixed by the paper (papers.md §1 "Reduction") and search options."""

    seq_len: int = 8192  # S
    top_k: int = 8  # K
    n_experts: int = 288  # N_e
    n_shared_experts: int = 1  # one shared expert of width d_m per MoE layer
    vocab_size: int = 152064
    dense_ffn_ratio: int = 3  # d_d = 3·d
    align: int = 8  # d, d_m multiples of this (hardware alignment, 8 … 128)
    heads: tuple[int, int, int] | None = None  # (d_qkv, N_q, N_kv); None → per-scale table
    tolerance: float = 0.001  # near-optimal band: within 0.1 % of the best
    m_band: float = 0.10  # relative M/N_a deviation that costs `tolerance` (surrogate)
    kappa_width: float = 0.06  # surrogate: width ratio 3 or 5 (vs 4) costs 0.5 %
    kappa_compute: float = 0.1  # surrogate: realised M 5 % off M_opt costs 0.025 %
    ratio_steps: int = 17  # grid points per ratio axis

    def heads_for(self, compute: float) -> tuple[int, int, int]:
        if self.heads is not None:
            return self.heads
        scale = min(HEADS_BY_SCALE, key=lambda c: abs(np.log10(c) - np.log10(compute)))
        return HEADS_BY_SCALE[scale]

    @property
    def ratio_max(self) -> float:
        """``x_max = (N_e + n_s)/(K + n_s)``: N/N_a when the whole model is MoE experts."""
        return (self.n_experts + self.n_shared_experts) / (self.top_k + self.n_shared_experts)


@dataclass(frozen=True)
class Candidates:
    """Every feasible candidate as parallel numpy arrays (one entry per candidate)."""

    hidden: np.ndarray
    n_layers: np.ndarray
    dense_layers: np.ndarray
    expert_ffn: np.ndarray
    M: np.ndarray  # realised FLOPs per token (holistic convention)
    N_a: np.ndarray  # realised active non-embedding parameters
    N: np.ndarray  # realised total non-embedding parameters
    target_M_over_Na: np.ndarray
    target_N_over_Na: np.ndarray
    excess: np.ndarray  # surrogate relative loss excess over the optimum (0.001 = 0.1 %)
    median_d: np.ndarray  # the paper's proxy: median feasible d of the candidate's (M, N_a, N)

    def __len__(self) -> int:
        return int(self.hidden.size)

    def take(self, idx: np.ndarray) -> Candidates:
        return Candidates(**{k: getattr(self, k)[idx] for k in self.__dataclass_fields__})

    @property
    def M_over_Na(self) -> np.ndarray:
        return self.M / self.N_a

    @property
    def N_over_Na(self) -> np.ndarray:
        return self.N / self.N_a


def solve_structure(M, N_a, N, d, s: HolisticSettings, heads: tuple[int, int, int]):
    """Vectorised structural solution ``(L, L_d, L_m, d_m)`` for targets ``(M, N_a, N)`` and ``d``.

    All arguments broadcast. Returns integer arrays and a feasibility mask: ``L ≥ 1``,
    ``0 ≤ L_d < L``, ``d_m ≥ align``.
    """
    dq, nq, nkv = heads
    K, ns, a = s.top_k, s.n_shared_experts, s.align
    d = np.asarray(d, dtype=float)
    L = np.rint((M - 6.0 * N_a) / (6.0 * s.seq_len * nq * dq))
    p_attn = 2.0 * d * dq * (nq + nkv)
    q = (N - N_a) / (3.0 * d * (s.n_experts - K))  # d_m · L_m
    ld_real = (N_a - p_attn * L - 3.0 * d * (K + ns) * q) / (3.0 * d * s.dense_ffn_ratio * d)
    L_d = np.clip(np.rint(ld_real), 0, np.maximum(L - 1, 0))
    L_m = np.maximum(L - L_d, 1)
    d_m = a * np.rint(q / L_m / a)
    ok = (L >= 1) & (ld_real > -0.5) & (ld_real < L - 0.5) & (d_m >= a) & (q > 0)
    return L.astype(np.int64), L_d.astype(np.int64), L_m.astype(np.int64), d_m.astype(np.int64), ok


def realised_counts(d, L, L_d, L_m, d_m, s: HolisticSettings, heads: tuple[int, int, int]):
    """``(M, N_a, N)`` of solved structures, exactly as the holistic convention counts them."""
    dq, nq, nkv = heads
    d = np.asarray(d, dtype=float)
    n_a = (2.0 * d * dq * (nq + nkv) * L + 3.0 * d * s.dense_ffn_ratio * d * L_d
           + 3.0 * d * d_m * (s.top_k + s.n_shared_experts) * L_m)
    n = n_a + 3.0 * d * d_m * (s.n_experts - s.top_k) * L_m
    m = 6.0 * n_a + 6.0 * s.seq_len * nq * dq * L
    return m, n_a, n


def enumerate_candidates(M: float, x_target: float, y_target: float, s: HolisticSettings,
                         heads: tuple[int, int, int]) -> Candidates:
    """All feasible aligned candidates on a ratio window × every aligned ``d`` (vectorised)."""
    X, Y = _ratio_grid(x_target, y_target, s)
    N_a = M / X
    pair, d = _hidden_sizes(M, N_a, Y * N_a, s, heads)
    L, L_d, L_m, d_m, ok = solve_structure(M, N_a[pair], Y[pair] * N_a[pair], d, s, heads)
    m_r, na_r, n_r = realised_counts(d, L, L_d, L_m, d_m, s, heads)
    ok &= np.abs(m_r / M - 1.0) <= 0.05
    sel = np.flatnonzero(ok)
    if sel.size == 0:
        raise MoescaleError(
            f"no feasible architecture for M = {M:.4g} FLOPs/token with these constants; "
            "the compute budget is too small for one layer at this sequence length and head "
            "shape (raise the compute, lower the sequence length or use fewer heads)"
        )
    c = Candidates(hidden=d[sel].astype(np.int64), n_layers=L[sel], dense_layers=L_d[sel],
                   expert_ffn=d_m[sel], M=m_r[sel], N_a=na_r[sel], N=n_r[sel],
                   target_M_over_Na=X[pair[sel]], target_N_over_Na=Y[pair[sel]],
                   excess=np.zeros(sel.size), median_d=_median_by_group(d[sel], pair[sel]))
    excess = surrogate_excess(c, M, x_target, y_target, s)
    return dataclasses.replace(c, excess=excess)


def _hidden_sizes(M: float, N_a: np.ndarray, N: np.ndarray, s: HolisticSettings,
                  heads: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Aligned ``d`` worth solving for each target pair: those with ``L_d`` in ``[0, L)`` and
    attention not above ``1.05·N_a`` (a closed-form pre-filter; returns pair index and ``d``).

    With ``R = N_a − (K+n_s)(N−N_a)/(N_e−K)``, ``L_d = (R − P·L·d)/(3·r·d²)`` where
    ``P = 2·d_qkv·(N_q+N_kv)`` and ``d_d = r·d``; ``L_d < L − ½`` gives the lower bound on ``d``.
    """
    dq, nq, nkv = heads
    K, ns, r, a = s.top_k, s.n_shared_experts, s.dense_ffn_ratio, s.align
    P = 2.0 * dq * (nq + nkv)
    L = np.maximum(np.rint((M - 6.0 * N_a) / (6.0 * s.seq_len * nq * dq)), 1)
    R = N_a - (K + ns) * (N - N_a) / (s.n_experts - K)
    q2 = 3.0 * r * np.maximum(L - 0.5, 0.5)
    d_lo = (-P * L + np.sqrt((P * L) ** 2 + 4 * q2 * np.maximum(R, 0))) / (2 * q2)
    d_hi = 1.05 * N_a / (P * L)
    lo = np.maximum(np.floor(d_lo / a), 1).astype(np.int64)
    hi = np.floor(d_hi / a).astype(np.int64) + 1
    n = np.maximum(hi - lo + 1, 0)
    pair = np.repeat(np.arange(N_a.size), n)
    offset = np.arange(pair.size) - np.repeat(np.cumsum(n) - n, n)
    return pair, ((lo[pair] + offset) * a).astype(float)


def _ratio_grid(x_target: float, y_target: float, s: HolisticSettings):
    """Target pairs (M/N_a, N/N_a): a fine window around the targets plus a coarse cover of
    N/N_a down to 1.25 (so memory-bound plans can trade total size for loss)."""
    xs = x_target * np.linspace(0.8, 1.2, s.ratio_steps)
    xs = xs[xs > 6.05]
    y_hi = s.ratio_max - 0.25
    ys = np.unique(np.concatenate([
        np.linspace(max(1.25, y_target - 5), min(y_hi, y_target + 5), s.ratio_steps),
        np.geomspace(1.25, y_hi, s.ratio_steps),
    ]))
    X, Y = np.meshgrid(xs, ys, indexing="ij")
    return X.ravel(), Y.ravel()


def surrogate_excess(c: Candidates, M_opt: float, x_t: float, y_t: float,
                     s: HolisticSettings) -> np.ndarray:
    """Relative loss excess ``p_M + p_N + p_w + p_C`` of each candidate (module docstring)."""
    x, y = c.M_over_Na, c.N_over_Na
    w = s.m_band
    kappa_m = s.tolerance * (x_t * (1 + w) - 6.0) / (w * x_t) ** 2
    p_m = kappa_m * (x - x_t) ** 2 / np.maximum(x - 6.0, 1e-9)
    y_max = s.ratio_max

    def shape_n(v):
        return ((y_t - 1) ** 2 / (v - 1) + (y_max - y_t) ** 2 / np.maximum(y_max - v, 1e-9)
                - (y_max - 1))

    kappa_n = 0.01 / max(shape_n(18.0), shape_n(min(25.0, y_max - 0.5)), 1e-12)
    p_n = kappa_n * shape_n(y)
    width = (s.top_k + s.n_shared_experts) * c.expert_ffn / c.hidden
    p_w = s.kappa_width * np.log(width / 4.0) ** 2
    p_c = s.kappa_compute * np.log(c.M / M_opt) ** 2
    return p_m + p_n + p_w + p_c


def _median_by_group(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """For each entry, the median of ``values`` over entries of the same group (vectorised)."""
    order = np.lexsort((values, groups))
    g_sorted, v_sorted = groups[order], values[order]
    starts = np.flatnonzero(np.r_[True, g_sorted[1:] != g_sorted[:-1]])
    ends = np.r_[starts[1:], g_sorted.size]
    lo, hi = (starts + ends - 1) // 2, (starts + ends) // 2
    med = 0.5 * (v_sorted[lo] + v_sorted[hi])
    group_of = np.searchsorted(g_sorted[starts], groups)
    return med[group_of]


def to_architecture(c: Candidates, i: int, s: HolisticSettings, heads: tuple[int, int, int],
                    name: str = "") -> Architecture:
    """The complete :class:`Architecture` of candidate ``i``."""
    dq, nq, nkv = heads
    d = int(c.hidden[i])
    return Architecture(
        hidden_size=d, n_layers=int(c.n_layers[i]), n_heads=nq, n_kv_heads=nkv, head_dim=dq,
        dense_ffn=s.dense_ffn_ratio * d, n_experts=s.n_experts, top_k=s.top_k,
        expert_ffn=int(c.expert_ffn[i]), n_shared_experts=s.n_shared_experts,
        first_dense_layers=int(c.dense_layers[i]), seq_len=s.seq_len, vocab_size=s.vocab_size,
        name=name,
    )


def near_optimal_band(c: Candidates, tolerance: float) -> dict[str, object]:
    """Ranges of ``M/N_a``, ``N/N_a`` and ``d`` over candidates within ``tolerance`` of the best."""
    best = float(np.min(c.excess))
    inside = c.excess <= best + tolerance
    band = c.take(np.flatnonzero(inside))
    return {
        "tolerance": tolerance,
        "candidates": int(inside.sum()),
        "M_over_Na": [float(band.M_over_Na.min()), float(band.M_over_Na.max())],
        "N_over_Na": [float(band.N_over_Na.min()), float(band.N_over_Na.max())],
        "hidden_size": [int(band.hidden.min()), int(band.hidden.max())],
    }
