"""Several same-shape models trained as one batched model: does it raise throughput on CPU?

One training step (forward, backward, AdamW) of ``M`` copies of an isoflop-mini-shaped dense
model (2 layers, 2 heads, width ``d``, FFN 4·d, 16 × 128 tokens each), stacked with
``torch.func.stack_module_state`` and run under ``torch.func.vmap`` (one model per seed),
against one step of one model as the trainer runs it (its fused kernels), interleaved, on one
thread. Throughput gain = M × (one model's step) / (the stacked step): above 1 means
stacking pays.

MoE models are not measured: their routed experts group tokens by expert (data-dependent
sizes), which ``vmap`` cannot batch without a batching rule of its own.

    python benchmarks/bench_stacked.py [--widths 12,16,24] [--models 2,4,8] [--repeats 30]
"""

from __future__ import annotations

import argparse
import copy
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.func import functional_call, stack_module_state, vmap  # noqa: E402

from moescale.accounting.architecture import Architecture  # noqa: E402
from moescale.training.model import MoETransformer  # noqa: E402
from moescale.training.options import model_options  # noqa: E402

B, S = 16, 128


def model(d: int, seed: int, fused: bool) -> MoETransformer:
    torch.manual_seed(seed)
    arch = Architecture(n_layers=2, hidden_size=d, n_heads=2, vocab_size=256, seq_len=S,
                        dense_ffn=4 * d)
    return MoETransformer(arch, model_options(fused=fused))


def one_step(d: int):
    net = model(d, 0, fused=True)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    x = torch.randint(0, 256, (B, S + 1))

    def step():
        out = net(x[:, :-1])
        F.cross_entropy(out.logits.flatten(0, 1), x[:, 1:].flatten()).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def stacked_step(d: int, m: int):
    nets = [model(d, seed, fused=False) for seed in range(m)]  # plain ops: vmap batches them
    params, buffers = stack_module_state(nets)
    base = copy.deepcopy(nets[0]).to("meta")
    opt = torch.optim.AdamW(list(params.values()), lr=1e-3)
    x = torch.randint(0, 256, (m, B, S + 1))

    def loss(p, b, w):
        out = functional_call(base, (p, b), (w[:, :-1],))
        return F.cross_entropy(out.logits.flatten(0, 1), w[:, 1:].flatten())

    def step():
        vmap(loss)(params, buffers, x).sum().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", default="12,16,24")
    parser.add_argument("--models", default="2,4,8")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(1)
    import warnings

    warnings.filterwarnings("ignore", message=".*batching rule.*")  # sdpa's vmap fallback
    print(f"one training step, {B}×{S} tokens per model, 1 thread; median of {args.repeats}")
    print(f"{'d':>3} {'M':>2} {'one model':>10} {'M stacked':>10} {'throughput gain':>16}")
    for d in map(int, args.widths.split(",")):
        for m in map(int, args.models.split(",")):
            steps = {"one": one_step(d), "stacked": stacked_step(d, m)}
            times: dict[str, list[float]] = {k: [] for k in steps}
            for _ in range(args.repeats + 2):
                for name, step in steps.items():
                    t0 = time.perf_counter()
                    step()
                    times[name].append(time.perf_counter() - t0)
            one, stacked = (sorted(t[2:])[args.repeats // 2] for t in times.values())
            print(f"{d:3d} {m:2d} {one * 1e3:7.1f} ms {stacked * 1e3:7.1f} ms "
                  f"{m * one / stacked:15.2f}×")


if __name__ == "__main__":
    main()
