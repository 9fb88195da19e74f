"""Start-up time of a light command: ``moescale count --preset mixtral-8x7b --json`` against the
same interpreter doing nothing (``python -c pass``), both timed in this run.

    python benchmarks/bench_startup.py [--rounds 10]

Prints the median wall time of each and the command's overhead over bare Python; the target is
an answer well under a second (a light command imports no torch, scipy.optimize, pandas or
matplotlib: tests/test_cli_count.py).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def timed(args: list[str], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    rounds = parser.parse_args().rounds
    bare = timed([sys.executable, "-c", "pass"], rounds)
    count = timed([sys.executable, "-m", "moescale", "count", "--preset", "mixtral-8x7b",
                   "--json"], rounds)
    print(f"python -c pass          {bare * 1e3:7.0f} ms (median of {rounds})")
    print(f"moescale count --json   {count * 1e3:7.0f} ms  ({count / bare:.1f}× bare Python, "
          f"+{(count - bare) * 1e3:.0f} ms)")


if __name__ == "__main__":
    main()
