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
    """The same enumeration, one candidate at a time in plain Python (math, no numpy)."""
    dq, nq, nkv = heads
    K, ns, a, S, Ne, r = s.top_k, s.n_shared_experts, s.align, s.seq_len, s.n_experts, s.dense_ffn_ratio
    X, Y = hs._ratio_grid(x_t, y_t, s)
    pairs = list(zip(X.tolist(), Y.tolist(), strict=True))
    L_guess = [max(round((M - 6 * M / x) / (6 * S * nq * dq)), 1) for x, _ in pairs]
    d_hi = 1.05 * max((M / x) / (2 * dq * (nq + nkv) * L) for (x, _), L in zip(pairs, L_guess, strict=True))
    out, tried = [], 0
    for x, y in pairs:
        n_a = M / x
        n = y * n_a
        L = round((M - 6 * n_a) / (6 * S * nq * dq))
        d = float(a)
        while d < d_hi + a:
            tried += 1
            q = (n - n_a) / (3 * d * (Ne - K))
            ld_real = (n_a - 2 * d * dq * (nq + nkv) * L - 3 * d * (K + ns) * q) / (3 * d * r * d)
            L_d = min(max(round(ld_real), 0), max(L - 1, 0))
            L_m = max(L - L_d, 1)
            d_m = a * round(q / L_m / a)
            if L >= 1 and -0.5 < ld_real < L - 0.5 and d_m >= a and q > 0:
                na_r = (2 * d * dq * (nq + nkv) * L + 3 * d * r * d * L_d + 3 * d * d_m * (K + ns) * L_m)
                m_r = 6 * na_r + 6 * S * nq * dq * L
                if abs(m_r / M - 1) <= 0.05:
                    out.append((d, L, L_d, d_m))
            d += a
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
