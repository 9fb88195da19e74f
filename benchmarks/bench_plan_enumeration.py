"""Benchmark: vectorised holistic candidate enumeration vs a plain Python loop (same candidates).

Prints candidates per second for both and the ratio; both paths must find the same feasible
candidates and the same best one. Run: ``.venv/bin/python benchmarks/bench_plan_enumeration.py``.
"""

from __future__ import annotations

import math
import os
import platform
import time

import numpy as np

from moescale.planning import holistic as hs

BUDGETS = {1e18: (10.9, 19.0), 1e20: (8.34, 22.0), 3e20: (8.22, 22.0)}


def loop_enumeration(M: float, x_t: float, y_t: float, s: hs.HolisticSettings, heads):
    """The same enumeration, one candidate at a time in plain Python (math, no numpy), with the
    planner's rules: 1 ≤ L ≤ max_layers, L_d ≥ min_dense_layers, heads fit in d, M within 5 %."""
    dq, nq, nkv = heads
    K, ns, a, S, Ne, r = s.top_k, s.n_shared_experts, s.align, s.seq_len, s.n_experts, s.dense_ffn_ratio
    X, Y = hs._ratio_grid(x_t, y_t, s)
    pair_idx, d_all = hs._hidden_sizes(M, M / X, Y * M / X, s, heads)  # the same (pair, d) set
    out, tried = [], 0
    for p, d in zip(pair_idx.tolist(), d_all.tolist(), strict=True):
        tried += 1
        n_a = M / X[p]
        n = Y[p] * n_a
        L = round((M - 6 * n_a) / (6 * S * nq * dq))
        q = (n - n_a) / (3 * d * (Ne - K))
        ld_real = (n_a - 2 * d * dq * (nq + nkv) * L - 3 * d * (K + ns) * q) / (3 * d * r * d)
        L_d = min(max(round(ld_real), s.min_dense_layers), max(L - 1, 0))
        L_m = max(L - L_d, 1)
        d_m = a * round(q / L_m / a)
        if (1 <= L <= s.max_layers and s.min_dense_layers - 0.5 < ld_real < L - 0.5
                and d_m >= a and q > 0 and d >= dq * nq):
            na_r = (2 * d * dq * (nq + nkv) * L + 3 * d * r * d * L_d + 3 * d * d_m * (K + ns) * L_m)
            m_r = 6 * na_r + 6 * S * nq * dq * L
            if abs(m_r / M - 1) <= 0.05:
                out.append((d, L, L_d, d_m))
    return out, tried


def main() -> None:
    s = hs.HolisticSettings()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"numpy {np.__version__}")
    for C, (x, y) in BUDGETS.items():
        M = 0.04368 * C ** 0.5437
        heads = s.heads_for(C)
        t0 = time.perf_counter()
        for _ in range(3):
            cands = hs.enumerate_candidates(M, x, y, s, heads)
        t_vec = (time.perf_counter() - t0) / 3
        t0 = time.perf_counter()
        loop, tried = loop_enumeration(M, x, y, s, heads)
        t_loop = time.perf_counter() - t0
        assert len(loop) == len(cands), (len(loop), len(cands))
        print(f"C={C:.0e}: {tried:,} candidates tried, {len(cands):,} feasible | "
              f"vectorised {tried / t_vec:,.0f}/s ({t_vec * 1e3:.0f} ms, incl. ranking) | "
              f"python loop {tried / t_loop:,.0f}/s ({t_loop * 1e3:.0f} ms) | "
              f"speed-up {t_loop / t_vec:.1f}x")
    assert math.isfinite(t_vec)


if __name__ == "__main__":
    main()
