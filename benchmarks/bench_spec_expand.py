"""Speed of expanding a sweep spec: 10,000 runs (10 sizes × 10 learning rates × 10 seeds × 10
budgets) from ``SweepSpec.from_dict(...).expand()``, against the bare work each run needs in
the same run: counting its architecture once (``moescale.count``) and hashing its content.

    python benchmarks/bench_spec_expand.py [--rounds 3]

Prints the median seconds of each and their ratio (measured here rather than asserted by a
test's clock, which fails on a loaded machine whatever the code does).
"""

from __future__ import annotations

import argparse
import statistics
import time

from moescale.jsonio import content_hash
from moescale.sweeps.spec import SweepSpec

SPEC = {"name": "bench", "budgets": [2e9 * 2**i for i in range(10)], "seeds": list(range(10)),
        "base": {"n_layers": 2, "n_heads": 2, "vocab_size": 256, "seq_len": 64, "n_experts": 4,
                 "top_k": 1, "expert_ffn": 32, "dense_ffn": 64},
        "grid": {"hidden_size": [16, 24, 32, 48, 64, 96, 128, 192, 256, 384],
                 "lr": [1e-3 * (i + 1) for i in range(10)]},
        "train": {"batch_tokens": 256}}


def expand() -> int:
    return len(SweepSpec.from_dict(SPEC).expand())


def reference() -> int:
    """The least any expansion does: one count per architecture, one hash per run."""
    import moescale

    arch = {k: v for k, v in SPEC["base"].items()}
    for d in SPEC["grid"]["hidden_size"]:
        moescale.count(moescale.architecture(**arch, hidden_size=d))
    n = 0
    for d in SPEC["grid"]["hidden_size"]:
        for lr in SPEC["grid"]["lr"]:
            for seed in SPEC["seeds"]:
                for budget in SPEC["budgets"]:
                    content_hash({"d": d, "lr": lr, "seed": seed, "budget": budget,
                                  "base": arch, "train": SPEC["train"]})
                    n += 1
    return n


def timed(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    assert expand() == reference() == 10_000
    ref, full = timed(reference, rounds), timed(expand, rounds)
    print(f"reference (counts + hashes) {ref:6.2f} s (median of {rounds})")
    print(f"SweepSpec.expand, 10,000    {full:6.2f} s  ({full / ref:.1f}× the reference)")


if __name__ == "__main__":
    main()
