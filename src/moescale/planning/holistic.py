"""The holistic paper's two-phase architecture search (Wan et al. 2026, arXiv 2603.21862), vectorised.

Pipeline: ``C → (M_opt, D_opt)`` → targets ``M/N_a`` and ``N/N_a`` → ``N_a = M/(M/N_a)``,
``N = (N/N_a)·N_a`` → for every aligned hidden size ``d`` solve the structure ``(L, L_d, L_m, d_m)``
from the accounting equations (arXiv 2603.21862, Appendix A)::

    M   = 6·N_a + 6·S·N_q·d_qkv·L                       → L   (integer)
    N   = N_a + 3·d·d_m·(N_e − K)·L_m                   → d_m·L_m
    N_a = P_attn·L + 3·d·d_d·L_d + 3·d·d_m·(K+n_s)·L_m  → L_d (integer), L_m = L − L_d

Every structure keeps at least one leading dense layer (``L_d ≥ 1``, as every configuration
the paper prints), at most :attr:`HolisticSettings.max_layers` layers, an expert width of at
least the alignment, and a realised ``M`` within 5 % of ``M_opt`` (the paper's tolerance).
Attention heads follow Table 4 (:func:`table4_heads`) and may be wider than ``d``, as in the
paper's own configurations (3e20: ``N_q·d_qkv = 2048`` with ``d`` from 1248), up to
:data:`MAX_ATTENTION_OVER_D` times ``d``.

All aligned candidates on a grid of ratios around the targets are enumerated at once with numpy
and ranked by a relative-loss surrogate built from the paper's own curve forms; the
near-optimal band is every candidate within ``tolerance`` of the best.

Surrogate (documented assumption; a fit of the per-budget curves replaces its curvatures). The
*landscape scale* ``s = ρ(C)/ρ(1e18)`` is the reducible share ``ρ = (L − ε)/L`` of the loss
(zhao2025 at the targets) relative to the calibration budget: a shape deviation changes the
reducible loss by a scale-free fraction, so its relative cost scales with ``s`` and every band
widens as ``s`` falls — the paper's central finding.

- ``p_M(x) = κ_M·(x − x*)²/(x − 6)`` — the form ``a/(x−6) + b·x + c`` with its minimum at the
  target ``x*``; ``κ_M`` makes the band ``{p_M ≤ tolerance}`` exactly ``W = m_band_width/√s``
  wide (``W = 2.18`` at 1e18, ±10 % of the paper's optimum 10.9 there; both ``M/N_a − 6`` and
  ``W`` scale with ``S/8192`` at other sequence lengths).
- ``p_N(y) = κ_N·[(y*−1)²/(y−1) + (y_max−y*)²/(y_max−y) − (y_max−1)]`` — the form
  ``a/(y−1) + b/(y_max−y) + c`` with minimum at ``y*``; ``κ_N`` makes the worse end of the
  paper's flat range (``[18, 25]`` around ``y* ≈ 21``, scaled to ``y*``) cost ``1 %·s``.
- ``p_w = κ_w·ln(w/3.25)²`` in the MoE width ratio ``w = (K+n_s)·d_m/d``: Appendix E finds the
  optimum near 3.0–3.5 and < 0.5 % spread over 3.0–5.0, so ``w = 5`` costs ``0.5 %·s``.
- ``p_C = κ_C·ln(M/M_opt)²``: integer layer counts move the realised ``M`` off ``M_opt``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from moescale.accounting.architecture import Architecture
from moescale.errors import MoescaleError

# Holistic Table 4 (arXiv 2603.21862): per-scale attention shapes (d_qkv, N_q, N_kv).
HEADS_BY_SCALE = {1e18: (64, 4, 2), 3e18: (64, 8, 4), 1e19: (64, 8, 4), 3e19: (128, 8, 4),
                  1e20: (128, 8, 4), 3e20: (128, 16, 8)}
TABLE4_RANGE = (1e18, 3e20)
# Attention width W = N_q·d_qkv of Table 4 as a power law in C (least squares of log W on log C
# through the six rows: W ∝ C^0.37, one doubling per ≈ 0.82 decades). Used only outside the
# table's budgets, rounded to a power of two (see :func:`table4_heads`).
_W_EXPONENT = float(np.polyfit(np.log(list(HEADS_BY_SCALE)),
                               np.log([h[0] * h[1] for h in HEADS_BY_SCALE.values()]), 1)[0])
# Narrower shapes tried, in order, when the rule's shape admits no structure at a budget
# (micro budgets, short sequences); N_q/N_kv = 2 as in the paper, d_qkv a power of two.
HEAD_LADDER = ((128, 16, 8), (128, 8, 4), (64, 8, 4), (64, 4, 2), (32, 4, 2), (16, 4, 2),
               (8, 4, 2), (8, 2, 1), (4, 2, 1))


def table4_heads(compute: float) -> tuple[int, int, int]:
    """The attention shape ``(d_qkv, N_q, N_kv)`` the holistic paper would use at ``compute``.

    Stated rule (the paper gives shapes only at its six budgets, Table 4):

    - inside 1e18–3e20: the Table 4 row of the nearest budget in ``log C`` (the boundary between
      two rows is their geometric mean), i.e. the table interpolated as the step function it is;
    - beyond 3e20: the width ``W = N_q·d_qkv`` continues Table 4's power law in ``C``
      (``W ∝ C^0.37``) from 2048 at 3e20, rounded to a power of two; ``d_qkv`` stays 128 (the
      paper's widest head) and ``N_q = W/128``, ``N_kv = N_q/2``;
    - below 1e18: the same power law from 256 at 1e18, rounded to a power of two, with the
      paper's smallest head count ``N_q = 4, N_kv = 2`` and ``d_qkv = W/4`` (at least 4).

    Attention may be wider than ``d`` (the paper's 3e20 configurations use ``N_q·d_qkv = 2048``
    with ``d`` down to 1248).
    """
    lo, hi = TABLE4_RANGE
    c = float(compute)
    if lo * (1 - 1e-9) <= c <= hi * (1 + 1e-9):
        scale = min(HEADS_BY_SCALE, key=lambda b: abs(np.log(b) - np.log(c)))
        return HEADS_BY_SCALE[scale]
    edge = hi if c > hi else lo
    dq0, nq0, _ = HEADS_BY_SCALE[edge]
    doublings = int(np.rint(_W_EXPONENT * np.log2(c / edge)))
    width = dq0 * nq0 * 2.0 ** doublings
    if c > hi:
        nq = max(int(width // 128), 16)
        return 128, nq, nq // 2
    return max(int(width // 4), 4), 4, 2


# Attention at most this many times wider than d: the paper's configurations reach 1.64
# (3e20: N_q·d_qkv = 2048 at d = 1248); beyond 2 a narrower head shape is used instead.
MAX_ATTENTION_OVER_D = 2

# Frontier shapes (budgets beyond Table 4). Heads of d_qkv = 128 (Table 4's widest, and the
# head size of every open frontier model: Llama 3, Mixtral, Qwen3, DeepSeek-V3, Kimi K2), N_q a
# power of two with N_kv = N_q/2 (Table 4's GQA), and attention width N_q·d_qkv between d and
# 2·d — the range open models span (Mixtral and Llama 3: 1.0; Kimi K2 1.14; Qwen3-235B 2.0) and
# the paper's own 3e20 configurations reach (up to 1.64). Every such shape is enumerated, so the
# width follows d instead of a power law in C extrapolated 0.37 decade per decade (which at
# 1e23 forced d ≥ 8192 and squeezed the model to 8 layers).
FRONTIER_HEAD_DIM = 128
FRONTIER_ATTENTION_OVER_D = (1.0, 2.0)


def frontier_head_shapes() -> list[tuple[int, int, int]]:
    """Every head shape a frontier candidate may use: ``(128, N_q, N_q/2)`` with ``N_q`` a power
    of two or 1.5 times one, 16 … 3072 (GPT-3 175B has 96 heads, Llama 3 405B 128);
    :data:`FRONTIER_ATTENTION_OVER_D` then ties the width to ``d``."""
    counts = sorted({m * 2**k for k in range(4, 12) for m in (2, 3)} - {2**12 * 3})
    return [(FRONTIER_HEAD_DIM, n // 2, n // 4) for n in counts if n // 2 >= 16]
CALIBRATION_BUDGET = 1e18  # where the surrogate's curvatures are calibrated (Table 9 scale)


@dataclass(frozen=True)
class HolisticSettings:
    """Engineering constants fixed by the paper (arXiv 2603.21862, "Reduction") and search options."""

    seq_len: int = 8192  # S
    top_k: int = 8  # K
    n_experts: int = 288  # N_e
    n_shared_experts: int = 1  # one shared expert of width d_m per MoE layer
    vocab_size: int = 152064
    dense_ffn_ratio: int = 3  # d_d = 3·d
    align: int = 8  # d, d_m multiples of this (hardware alignment, 8 … 128)
    heads: tuple[int, int, int] | None = None  # (d_qkv, N_q, N_kv); None → per-scale table
    tolerance: float = 0.001  # near-optimal band: within 0.1 % of the best
    m_band_width: float = 2.18  # width of the M/N_a band at 1e18 (±10 % of 10.9)
    width_optimum: float = 3.25  # Appendix E: optimum of (K+1)·d_m/d near 3.0–3.5
    width_cost: float = 0.005  # Appendix E: w = 5.0 costs < 0.5 %
    kappa_compute: float = 0.1  # surrogate: realised M 5 % off M_opt costs 0.025 %
    ratio_steps: int = 17  # grid points per ratio axis
    proxy_tolerance: float = 0.02  # median-d proxy: realised N_a, N within 2 % of the triad
    min_dense_layers: int = 1  # every configuration the paper prints has L_d ≥ 1
    max_dense_layers: int | None = None  # None: up to L − 1; 1 with min 1 gives Table 9's L_d = 1
    max_layers: int = 128  # deepest structure planned (deeper than any open MoE)
    max_d_per_pair: int = 96  # hidden sizes tried per ratio pair (a coarser multiple of align
    #                           when the feasible range is wider)

    def heads_for(self, compute: float) -> tuple[int, int, int]:
        """The fixed ``heads`` or the paper's shape at ``compute`` (:func:`table4_heads`)."""
        if self.heads is not None:
            return self.heads
        return table4_heads(compute)

    def head_ladder(self, compute: float) -> list[tuple[int, int, int]]:
        """Shapes to try in order: the paper's (or the user's), then narrower ones (used only
        when a wider shape admits no structure at all)."""
        first = self.heads_for(compute)
        if self.heads is not None:
            return [first]
        width = first[0] * first[1]
        return [first] + [h for h in HEAD_LADDER if h[0] * h[1] < width]

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
    head_dim: np.ndarray  # d_qkv of each candidate
    n_heads: np.ndarray  # N_q
    n_kv_heads: np.ndarray  # N_kv

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

    def heads(self, i: int) -> tuple[int, int, int]:
        """``(d_qkv, N_q, N_kv)`` of candidate ``i``."""
        return int(self.head_dim[i]), int(self.n_heads[i]), int(self.n_kv_heads[i])

    def width_ratio(self, s: HolisticSettings) -> np.ndarray:
        """``(K + n_s)·d_m/d`` of every candidate."""
        return (s.top_k + s.n_shared_experts) * self.expert_ffn / self.hidden


def solve_structure(M, N_a, N, d, s: HolisticSettings, heads: tuple[int, int, int]):
    """Vectorised structural solution ``(L, L_d, L_m, d_m)`` for targets ``(M, N_a, N)`` and ``d``.

    All arguments broadcast. Returns integer arrays and a feasibility mask: ``1 ≤ L ≤
    max_layers``, ``min_dense_layers ≤ L_d < L`` (and ``≤ max_dense_layers`` when set),
    ``d_m ≥ align``.
    """
    dq, nq, nkv = heads
    K, ns, a = s.top_k, s.n_shared_experts, s.align
    d = np.asarray(d, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        L = np.rint((M - 6.0 * N_a) / (6.0 * s.seq_len * nq * dq))
        p_attn = 2.0 * d * dq * (nq + nkv)
        q = (N - N_a) / (3.0 * d * (s.n_experts - K))  # d_m · L_m
        ld_real = (N_a - p_attn * L - 3.0 * d * (K + ns) * q) / (3.0 * d * s.dense_ffn_ratio * d)
        ld_cap = _dense_cap(L, s)
        L_d = np.clip(np.rint(ld_real), s.min_dense_layers, np.maximum(ld_cap, 0))
        L_m = np.maximum(L - L_d, 1)
        d_m = a * np.rint(q / L_m / a)
    ok = ((L >= 1) & (L <= s.max_layers) & (ld_real > s.min_dense_layers - 0.5)
          & (ld_real < ld_cap + 0.5) & (d_m >= a) & (q > 0))
    L, L_d, L_m, d_m = (np.where(np.isfinite(v), v, 0) for v in (L, L_d, L_m, d_m))
    return L.astype(np.int64), L_d.astype(np.int64), L_m.astype(np.int64), d_m.astype(np.int64), ok


def _dense_cap(L, s: HolisticSettings):
    """The most leading dense layers a structure of ``L`` layers may have: ``L − 1`` (one MoE
    layer at least), or ``max_dense_layers`` when that is lower."""
    cap = np.asarray(L, dtype=float) - 1
    return cap if s.max_dense_layers is None else np.minimum(cap, s.max_dense_layers)


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
                         heads, scale: float = 1.0, wide: bool = False,
                         every_shape: bool = False) -> Candidates:
    """All feasible aligned candidates on a ratio grid × every aligned ``d`` (vectorised).

    ``heads`` is one shape ``(d_qkv, N_q, N_kv)`` or a ladder of them, widest first: the first
    shape that admits any structure is used for every candidate (the paper's shape wherever it
    admits one; narrower ones only at budgets where it admits none). Attention may be wider
    than ``d``, as in the paper's configurations. ``scale`` is the landscape scale of
    the module docstring; ``wide`` spans the whole realisable range of ratios instead of a
    window around the targets (used when the targets cannot be realised) and accepts a
    realised ``M`` within 50 % of ``M`` (the compute term of the surrogate ranks it).
    ``every_shape`` (frontier budgets) keeps the candidates of every shape whose attention width
    lies within :data:`FRONTIER_ATTENTION_OVER_D` of ``d``, instead of the first shape only.
    Raises :class:`MoescaleError` when nothing is feasible.
    """
    shapes = [tuple(heads)] if np.isscalar(heads[0]) else [tuple(h) for h in heads]
    X, Y = _ratio_grid(x_target, y_target, s, scale, wide)
    m_tol = 0.5 if wide else 0.05  # the paper: realised M within 5 % (wide: p_C decides)
    cat = None
    if every_shape:
        parts = [_enumerate_shape(M, X, Y, s, h, m_tol, FRONTIER_ATTENTION_OVER_D)
                 for h in shapes]
        cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    else:
        for h in shapes:
            cat = _enumerate_shape(M, X, Y, s, h, m_tol)
            if cat["d"].size:
                break
    if cat is None or cat["d"].size == 0:
        raise MoescaleError(
            f"no feasible architecture for M = {M:.4g} FLOPs/token with these constants; "
            "the compute budget is too small for one layer at this sequence length and head "
            "shape (raise the compute, lower the sequence length or use fewer heads)"
        )
    pair = cat["pair"]
    c = Candidates(hidden=cat["d"].astype(np.int64), n_layers=cat["L"], dense_layers=cat["L_d"],
                   expert_ffn=cat["d_m"], M=cat["M"], N_a=cat["N_a"], N=cat["N"],
                   target_M_over_Na=X[pair], target_N_over_Na=Y[pair],
                   excess=np.zeros(pair.size),
                   median_d=_median_by_group(cat["d"], pair, cat["tight"]),
                   head_dim=cat["dq"], n_heads=cat["nq"], n_kv_heads=cat["nkv"])
    excess = surrogate_excess(c, M, x_target, y_target, s, scale)
    return dataclasses.replace(c, excess=excess)


def _enumerate_shape(M: float, X: np.ndarray, Y: np.ndarray, s: HolisticSettings, heads,
                     m_tol: float = 0.05,
                     attention_over_d: tuple[float, float] = (0.0, MAX_ATTENTION_OVER_D),
                     ) -> dict[str, np.ndarray]:
    """Feasible candidates of one head shape whose attention width ``N_q·d_qkv`` lies within
    ``attention_over_d`` times ``d`` (by default: up to twice as wide as ``d``)."""
    N_a = M / X
    pair, d = _hidden_sizes(M, N_a, Y * N_a, s, heads, attention_over_d)
    L, L_d, L_m, d_m, ok = solve_structure(M, N_a[pair], Y[pair] * N_a[pair], d, s, heads)
    m_r, na_r, n_r = realised_counts(d, L, L_d, L_m, d_m, s, heads)
    width = heads[0] * heads[1]
    ok &= ((np.abs(m_r / M - 1.0) <= m_tol) & (attention_over_d[1] * d >= width)
           & (attention_over_d[0] * d <= width))
    tight = ((np.abs(na_r / N_a[pair] - 1) <= s.proxy_tolerance)
             & (np.abs(n_r / (Y[pair] * N_a[pair]) - 1) <= s.proxy_tolerance))
    sel = np.flatnonzero(ok)
    n = sel.size
    return {"pair": pair[sel], "d": d[sel], "L": L[sel], "L_d": L_d[sel], "d_m": d_m[sel],
            "M": m_r[sel], "N_a": na_r[sel], "N": n_r[sel], "tight": tight[sel],
            "dq": np.full(n, heads[0], dtype=np.int64), "nq": np.full(n, heads[1], dtype=np.int64),
            "nkv": np.full(n, heads[2], dtype=np.int64)}


def feasible_d(M: float, N_a: float, N: float, s: HolisticSettings,
               heads: tuple[int, int, int]) -> np.ndarray:
    """Every aligned ``d`` whose structure realises ``(M, N_a, N)``: ``M`` within 5 %, ``N_a``
    and ``N`` within ``proxy_tolerance``, at least ``min_dense_layers`` dense layers,
    ``d_m ≥ align`` (arXiv 2603.21862, "rank-preserving property of d")."""
    d = s.align * np.arange(1, int(np.sqrt(N_a) / s.align) * 4 + 2, dtype=float)
    L, L_d, L_m, d_m, ok = solve_structure(M, N_a, N, d, s, heads)
    m, na, n = realised_counts(d, L, L_d, L_m, d_m, s, heads)
    ok &= ((np.abs(m / M - 1) <= 0.05) & (np.abs(na / N_a - 1) <= s.proxy_tolerance)
           & (np.abs(n / N - 1) <= s.proxy_tolerance))
    return d[ok]


def median_feasible_d(M: float, N_a: float, N: float, s: HolisticSettings,
                      heads: tuple[int, int, int]) -> float:
    """The paper's rank-preserving proxy: the median of :func:`feasible_d` (Table 9)."""
    d = feasible_d(M, N_a, N, s, heads)
    if d.size == 0:
        raise MoescaleError(f"no aligned d realises M = {M:.4g}, N_a = {N_a:.4g}, N = {N:.4g}")
    return float(np.median(d))


def _hidden_sizes(M: float, N_a: np.ndarray, N: np.ndarray, s: HolisticSettings,
                  heads: tuple[int, int, int],
                  attention_over_d: tuple[float, float] = (0.0, MAX_ATTENTION_OVER_D),
                  ) -> tuple[np.ndarray, np.ndarray]:
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
    q2 = 3.0 * r * np.maximum(_dense_cap(L, s) + 0.5, 0.5)
    d_lo = (-P * L + np.sqrt((P * L) ** 2 + 4 * q2 * np.maximum(R, 0))) / (2 * q2)
    r_half = 1.5 * r * s.min_dense_layers if s.min_dense_layers else 0.0  # L_d ≥ min − ½
    d_hi = 1.05 * N_a / (P * L)
    if r_half:
        d_hi = np.minimum(d_hi, (-P * L + np.sqrt((P * L) ** 2 + 4 * r_half * np.maximum(R, 0)))
                          / (2 * r_half) + a)
    lo = np.maximum(np.floor(d_lo / a),
                    max(1, int(dq * nq / (attention_over_d[1] * a)))).astype(np.int64)
    hi = np.floor(d_hi / a).astype(np.int64) + 1
    if attention_over_d[0] > 0:  # attention at least this many times d: d ≤ width/ratio
        hi = np.minimum(hi, int(dq * nq / (attention_over_d[0] * a)))
    # at most ``max_d_per_pair`` values per pair: wide ranges step by a multiple of ``align``
    step = np.maximum(1, -(-(hi - lo + 1) // s.max_d_per_pair))
    n = np.maximum((hi - lo) // step + 1, 0)
    pair = np.repeat(np.arange(N_a.size), n)
    offset = np.arange(pair.size) - np.repeat(np.cumsum(n) - n, n)
    return pair, ((lo[pair] + offset * step[pair]) * a).astype(float)


def m_band_curvature(x_t: float, s: HolisticSettings, scale: float) -> float:
    """``κ_M`` such that ``{κ(x−x*)²/(x−6) ≤ tol}`` is ``W = m_band_width/√scale`` wide.

    With ``u = x − 6`` the band's edges are the roots of ``κ(u−u*)² = tol·u``; their distance
    ``√(4κu*·tol + tol²)/κ`` equals ``W`` for ``κ = tol·(2u* + √(4u*² + W²))/W²``.
    """
    tol, u = s.tolerance, x_t - 6.0
    width = s.m_band_width * s.seq_len / 8192 / np.sqrt(scale)  # M/N_a − 6 scales with S
    return tol * (2 * u + np.sqrt(4 * u * u + width * width)) / width**2


def _ratio_grid(x_target: float, y_target: float, s: HolisticSettings, scale: float = 1.0,
                wide: bool = False):
    """Target pairs (M/N_a, N/N_a): a window around the targets covering twice the band of
    ``M/N_a`` (finer near the target), plus a coarse cover of N/N_a down to 1.25 (so
    memory-bound plans can trade total size for loss). ``wide`` covers ``6 < M/N_a ≤ 60``."""
    y_hi = s.ratio_max - 0.25
    if wide:
        xs = 6.0 + np.geomspace(0.01, 54.0, 4 * s.ratio_steps)
        ys = np.geomspace(1.05, max(y_hi, 1.1), 2 * s.ratio_steps)
    else:
        kappa = m_band_curvature(x_target, s, scale)
        u_t = x_target - 6.0
        # edges of {p_M ≤ 4·tol}: twice the band's width around the target
        t = 4 * s.tolerance
        disc = np.sqrt((2 * kappa * u_t + t) ** 2 - 4 * kappa**2 * u_t**2)
        lo, hi = ((2 * kappa * u_t + t) - disc) / (2 * kappa), ((2 * kappa * u_t + t) + disc) / (2 * kappa)
        xs = 6.0 + np.unique(np.concatenate([
            np.geomspace(max(lo, 1e-3), hi, s.ratio_steps + 4), [u_t]]))
        y_lo, y_hi_band = landscape_band(x_target, y_target, s, scale)["N_over_Na"]
        ys = np.unique(np.concatenate([
            np.linspace(max(1.25, min(y_target - 5, y_lo)), min(y_hi, max(y_target + 5, y_hi_band)),
                        s.ratio_steps),
            np.geomspace(min(1.25, y_target), max(y_hi, 1.3), s.ratio_steps),
        ]))
        ys = ys[(ys > 1.0) & (ys < s.ratio_max)]
    X, Y = np.meshgrid(xs, ys, indexing="ij")
    return X.ravel(), Y.ravel()


def _kappa_n(y_t: float, s: HolisticSettings, scale: float):
    """``(κ_N, shape)`` of ``p_N`` (module docstring)."""
    y_max = s.ratio_max

    def shape_n(v):
        return ((y_t - 1) ** 2 / (v - 1) + (y_max - y_t) ** 2 / np.maximum(y_max - v, 1e-9)
                - (y_max - 1))

    # the paper's flat range [18, 25] around its optimum ≈ 21, mapped to this target
    lo = 1 + (y_t - 1) * 17.0 / 20.0
    hi = min(1 + (y_t - 1) * 24.0 / 20.0, 0.5 * (y_t + y_max))
    return 0.01 * scale / max(shape_n(lo), shape_n(hi), 1e-12), shape_n


def _kappa_w(s: HolisticSettings, scale: float) -> float:
    return scale * s.width_cost / np.log(5.0 / s.width_optimum) ** 2


def surrogate_excess(c: Candidates, M_opt: float, x_t: float, y_t: float,
                     s: HolisticSettings, scale: float = 1.0) -> np.ndarray:
    """Relative loss excess ``p_M + p_N + p_w + p_C`` of each candidate (module docstring)."""
    x, y = c.M_over_Na, c.N_over_Na
    p_m = m_band_curvature(x_t, s, scale) * (x - x_t) ** 2 / np.maximum(x - 6.0, 1e-9)
    kappa_n, shape_n = _kappa_n(y_t, s, scale)
    p_n = kappa_n * shape_n(y)
    p_w = _kappa_w(s, scale) * np.log(c.width_ratio(s) / s.width_optimum) ** 2
    p_c = s.kappa_compute * np.log(c.M / M_opt) ** 2
    return p_m + p_n + p_w + p_c


def landscape_band(x_t: float, y_t: float, s: HolisticSettings, scale: float) -> dict[str, list]:
    """Where each term of the landscape stays within ``tolerance`` of its optimum: the
    near-optimal ranges of ``M/N_a``, ``N/N_a`` and the width ratio ``(K+n_s)·d_m/d``.

    They widen as the landscape scale falls with compute (module docstring); the ``M/N_a``
    range is ``m_band_width/√scale`` wide by construction.
    """
    tol = s.tolerance
    kappa, u = m_band_curvature(x_t, s, scale), x_t - 6.0
    b = 2 * kappa * u + tol
    disc = np.sqrt(b * b - 4 * kappa**2 * u * u)
    x_band = [6.0 + (b - disc) / (2 * kappa), 6.0 + (b + disc) / (2 * kappa)]
    kappa_n, shape_n = _kappa_n(y_t, s, scale)
    ys = np.linspace(1.0, s.ratio_max, 200_001)[1:-1]
    inside = ys[kappa_n * shape_n(ys) <= tol]
    half = np.sqrt(tol / _kappa_w(s, scale))
    return {"M_over_Na": [float(v) for v in x_band],
            "N_over_Na": [float(inside.min()), float(inside.max())],
            "width_ratio": [float(s.width_optimum * np.exp(-half)),
                            float(s.width_optimum * np.exp(half))]}


def _median_by_group(values: np.ndarray, groups: np.ndarray,
                     tight: np.ndarray | None = None) -> np.ndarray:
    """For each entry, the median of ``values`` over entries of the same group (vectorised);
    with ``tight``, over the group's tight entries where it has any."""
    if tight is not None:
        has_tight = np.bincount(groups, weights=tight.astype(float)) > 0
        use = tight | ~has_tight[groups]
        group_median = np.zeros(groups.max() + 1)
        group_median[groups[use]] = _median_by_group(values[use], groups[use])
        return group_median[groups]
    order = np.lexsort((values, groups))
    g_sorted, v_sorted = groups[order], values[order]
    starts = np.flatnonzero(np.r_[True, g_sorted[1:] != g_sorted[:-1]])
    ends = np.r_[starts[1:], g_sorted.size]
    lo, hi = (starts + ends - 1) // 2, (starts + ends) // 2
    med = 0.5 * (v_sorted[lo] + v_sorted[hi])
    group_of = np.searchsorted(g_sorted[starts], groups)
    return med[group_of]


def to_architecture(c: Candidates, i: int, s: HolisticSettings, heads=None,
                    name: str = "") -> Architecture:
    """The complete :class:`Architecture` of candidate ``i`` (its own head shape)."""
    dq, nq, nkv = c.heads(i)
    d = int(c.hidden[i])
    return Architecture(
        hidden_size=d, n_layers=int(c.n_layers[i]), n_heads=nq, n_kv_heads=nkv, head_dim=dq,
        dense_ffn=s.dense_ffn_ratio * d, n_experts=s.n_experts, top_k=s.top_k,
        expert_ffn=int(c.expert_ffn[i]), n_shared_experts=s.n_shared_experts,
        first_dense_layers=int(c.dense_layers[i]), seq_len=s.seq_len, vocab_size=s.vocab_size,
        name=name,
    )


def near_optimal_band(c: Candidates, s: HolisticSettings) -> dict[str, object]:
    """The near-optimal band: every realisable candidate within ``tolerance`` of the best one
    (the paper's definition, arXiv 2603.21862), as the range of each quantity over them —
    ``M/N_a``, ``N/N_a``, the width ratio ``(K+n_s)·d_m/d``, ``d``, ``L`` and ``d/L``. A plan
    chosen inside the band is inside every range."""
    best = float(np.min(c.excess))
    inside = c.excess <= best + s.tolerance
    band = c.take(np.flatnonzero(inside))

    def span(v, kind=float):
        return [kind(np.min(v)), kind(np.max(v))]

    return {
        "tolerance": s.tolerance,
        "candidates": int(inside.sum()),
        "M_over_Na": span(band.M_over_Na), "N_over_Na": span(band.N_over_Na),
        "width_ratio": span(band.width_ratio(s)),
        "hidden_size": span(band.hidden, int), "n_layers": span(band.n_layers, int),
        "aspect_ratio": span(band.hidden / band.n_layers),
    }
