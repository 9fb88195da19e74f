"""Start-up of a sweep worker against a bare ``import torch``, in CPU time (user + system of
the child, which a loaded machine changes far less than wall time), both measured in this run.

    python benchmarks/bench_worker_startup.py [--rounds 5]

The worker imports what it trains with (``moescale.sweeps.worker`` and
``moescale.training.trainer``: torch, the model, the data and the trainer). Target (issue 33):
within 1.15× ``import torch``; before ``torch._dynamo`` stopped loading at import it was 1.5×.
Then the same imports and one AdamW step: torch's ``step`` imports ``torch._dynamo``, the
trainer's (``moescale.training.startup``) does not.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys


def cpu_seconds(code: str, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([sys.executable, "-c", code], check=True,
                       env=os.environ | {"OMP_NUM_THREADS": "1"})
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        times.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    torch_s = cpu_seconds("import torch", rounds)
    worker_s = cpu_seconds("import moescale.sweeps.worker, moescale.training.trainer", rounds)
    print(f"import torch            {torch_s:6.2f} s CPU (median of {rounds})")
    print(f"worker imports          {worker_s:6.2f} s CPU  ({worker_s / torch_s:.2f}× import torch)")
    setup = ("import torch, moescale.training.trainer\n"
             "from moescale.training.startup import defer_dynamo, optimizer_step\n"
             "p = torch.nn.Parameter(torch.ones(4)); p.grad = torch.ones(4)\n")
    plain_s = cpu_seconds(setup + "torch.optim.AdamW([p]).step()", rounds)
    ours_s = cpu_seconds(setup + "defer_dynamo(torch.optim.AdamW)\n"
                         "optimizer_step(torch.optim.AdamW([p]))", rounds)
    print(f"+ first AdamW step: torch's {plain_s:5.2f} s CPU ({plain_s / torch_s:.2f}×), "
          f"the trainer's {ours_s:5.2f} s CPU ({ours_s / torch_s:.2f}× import torch)")


if __name__ == "__main__":
    main()
