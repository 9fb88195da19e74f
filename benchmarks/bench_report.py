"""Report rendering speed: the full report of a 2,000-run sweep store.

A synthetic store (``tests/synthetic_sweep.py``: real run specs expanded and counted by
the sweep library, losses and curves from a Chinchilla-form law plus noise) with 2,000 finished
runs (8 budgets × 25 hidden sizes × 10 seeds) and their learning curves — hundreds of
thousands of curve points. Timed separately: writing the store (setup), reading it into frames
(``SweepStore.runs_frame`` / ``curves_frame``), the isoFLOP analysis (``sweeps.analyze``, 200
bootstrap resamples per budget) and drawing every figure (PNG + SVG) and the page. Target: the
report (analysis + figures + page) in seconds; learning curves are decimated (≤ 150 points per
curve) and rasterised.

    python benchmarks/bench_report.py [--seeds 10] [--points 200] [--keep DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10, help="seeds per (budget, size)")
    ap.add_argument("--points", type=int, default=200, help="curve points per run (at most)")
    ap.add_argument("--keep", type=Path, default=None, help="write the store and report here")
    args = ap.parse_args()

    from moescale.reporting import build

    # the synthetic store is a test fixture: it lives in the tests folder, not the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from synthetic_sweep import synthetic_store

    out = args.keep or Path(tempfile.mkdtemp(prefix="moescale-bench-report-"))
    out.mkdir(parents=True, exist_ok=True)
    store = out / "sweep.db"
    store.unlink(missing_ok=True)
    budgets = tuple(float(b) for b in np.geomspace(3e10, 3e12, 8))
    sizes = tuple(range(16, 216, 8))  # 25 hidden sizes
    t = time.perf_counter()
    n = synthetic_store(store, budgets=budgets, hidden_sizes=sizes,
                        seeds=tuple(range(args.seeds)), points=args.points, batch_tokens=64)
    t_store = time.perf_counter() - t

    t, c = time.perf_counter(), time.process_time()
    inp = build.load_store(store)
    t_load, c_load = time.perf_counter() - t, time.process_time() - c
    t, c = time.perf_counter(), time.process_time()
    inp.analysis("N")
    t_analysis, c_analysis = time.perf_counter() - t, time.process_time() - c
    t, c = time.perf_counter(), time.process_time()
    report = build.build_report(inp, out / "report")
    t_render, c_render = time.perf_counter() - t, time.process_time() - c

    print(f"store: {n:,} runs, {len(inp.curves):,} curve points (written in {t_store:.1f} s, "
          "setup)")
    print("(wall time; CPU time of this process in brackets — the machine may be shared)")
    print(f"read store into frames:  {t_load:6.2f} s  [{c_load:.2f} s]")
    print(f"isoFLOP analysis (N):     {t_analysis:6.2f} s  [{c_analysis:.2f} s]")
    for d in report.figures:
        print(f"  {d.name:<16} {d.seconds:6.2f} s  ({', '.join(f.suffix[1:] for f in d.files)})")
    print(f"figures + page:           {t_render:6.2f} s  [{c_render:.2f} s]")
    print(f"report (analysis + figures + page): {t_analysis + t_render:.2f} s "
          f"[{c_analysis + c_render:.2f} s]; with reading the store: "
          f"{t_load + t_analysis + t_render:.2f} s [{c_load + c_analysis + c_render:.2f} s]")
    print(f"page: {report.page}")


if __name__ == "__main__":
    main()
