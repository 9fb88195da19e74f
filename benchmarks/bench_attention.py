"""Causal attention at small head dimensions on CPU: the alternatives, timed in one run.

For each head dimension, forward + backward of causal self-attention on a micro batch
(isoflop-mini's: 16 windows × 128 tokens, 2 heads), fp32, one thread:

- ``sdpa``: ``F.scaled_dot_product_attention(is_causal=True)``, PyTorch's default CPU backend
  (what the model used before issue 33);
- ``sdpa-math``: the same through the math backend (``SDPBackend.MATH``);
- ``bmm``: ``baddbmm`` of q·kᵀ onto a precomputed additive causal mask, softmax, ·v
  (:func:`causal_attention` below);
- ``compiled``: ``torch.compile`` of ``bmm`` (only when a C++ compiler is present; its compile
  time is printed, to weigh against a sweep's steps).

Exactness: each variant's output and input gradients against a float64 reference of the same
inputs (max abs error); a variant is exact when its error is within 4× ``sdpa``'s.
Also printed: attention's share of a whole training step of the isoflop-mini model of that
width (forward + backward + AdamW, as the trainer runs it).

    python benchmarks/bench_attention.py [--repeats 200]
"""

from __future__ import annotations

import argparse
import os
import shutil
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402

B, H, S = 16, 2, 128
MASKS: dict[int, torch.Tensor] = {}


def causal_attention(q, k, v):
    """``softmax(q·kᵀ/√d + M)·v`` with the additive causal mask ``M`` (precomputed per length)
    by ``baddbmm``, softmax and ``bmm``: the same maths as sdpa, to fp32 rounding."""
    b, h, s, d = q.shape
    if s not in MASKS:
        MASKS[s] = torch.full((s, s), -float("inf")).triu(1)
    scores = torch.baddbmm(MASKS[s], q.reshape(b * h, s, d),
                           k.reshape(b * h, s, d).transpose(1, 2), alpha=d ** -0.5)
    return torch.bmm(scores.softmax(dim=-1), v.reshape(b * h, s, d)).view(b, h, s, d)


def sdpa(q, k, v):
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def sdpa_math(q, k, v):
    with sdpa_kernel(SDPBackend.MATH):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def timed(variants: dict, q, k, v, repeats: int) -> dict[str, float]:
    """Median seconds of forward + backward of each variant, interleaved (one call of each in
    turn), so a change in the machine's load hits every variant alike."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            q.grad = k.grad = v.grad = None
            t0 = time.perf_counter()
            fn(q, k, v).sum().backward()
            times[name].append(time.perf_counter() - t0)
    return {name: sorted(t)[len(t) // 2] for name, t in times.items()}


def error(fn, q, k, v) -> float:
    """Max abs error of output and input gradients against float64."""
    g = torch.randn(B, H, S, q.shape[-1], generator=torch.Generator().manual_seed(1))
    outs = []
    for dtype in (torch.float32, torch.float64):
        args = [t.detach().to(dtype).requires_grad_() for t in (q, k, v)]
        y = (sdpa if dtype == torch.float64 else fn)(*args)
        y.backward(g.to(dtype))
        outs.append([y.detach()] + [a.grad for a in args])
    return max(float((a.double() - b).abs().max()) for a, b in zip(*outs, strict=True))


def step_seconds(d: int, repeats: int) -> float:
    """Median seconds of one training step of isoflop-mini's model at width ``d``."""
    from moescale.accounting.architecture import Architecture
    from moescale.training.model import MoETransformer
    from moescale.training.options import model_options

    arch = Architecture(n_layers=2, first_dense_layers=1, hidden_size=d, n_heads=H,
                        vocab_size=256, seq_len=S, n_experts=4, top_k=1, expert_ffn=2 * d,
                        dense_ffn=4 * d)
    model = MoETransformer(arch, model_options())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(0, 256, (B, S + 1))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = model(x[:, :-1])
        F.cross_entropy(out.logits.flatten(0, 1), x[:, 1:].flatten()).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--head-dims", default="6,8,12,16,24,32,64")
    args = parser.parse_args()
    torch.set_num_threads(1)
    variants = {"sdpa": sdpa, "sdpa-math": sdpa_math, "bmm": causal_attention}
    if shutil.which("g++") or shutil.which("c++"):
        compiled = torch.compile(causal_attention, dynamic=False)
        variants["compiled"] = compiled
    print(f"causal attention fwd+bwd, B={B} H={H} S={S}, fp32, 1 thread; "
          f"median of {args.repeats}")
    print(f"{'d_head':>6} " + " ".join(f"{n:>16}" for n in variants)
          + f" {'attn/step (sdpa)':>17} {'(bmm)':>7}")
    for d_head in map(int, args.head_dims.split(",")):
        gen = torch.Generator().manual_seed(0)
        q, k, v = (torch.randn(B, H, S, d_head, generator=gen).requires_grad_()
                   for _ in range(3))
        base_err = error(sdpa, q, k, v)
        compile_s = None
        if "compiled" in variants:  # its first call compiles it for this shape
            t0 = time.perf_counter()
            variants["compiled"](q, k, v).sum().backward()
            compile_s = time.perf_counter() - t0
        seconds = timed(variants, q, k, v, args.repeats)
        cells = []
        for name, fn in variants.items():
            exact = "" if error(fn, q, k, v) <= 4 * base_err + 1e-7 else "!"
            note = f" c{compile_s:.0f}s" if name == "compiled" else ""
            cells.append(f"{seconds[name] * 1e3:6.3f} ms{exact:1}"
                         f"{seconds['sdpa'] / seconds[name]:4.2f}×{note}")
        step = step_seconds(H * d_head, max(args.repeats // 4, 10))
        share = 2 * seconds["sdpa"] / step  # two attention layers per step
        share_bmm = 2 * seconds["bmm"] / (step - 2 * seconds["sdpa"] + 2 * seconds["bmm"])
        print(f"{d_head:6d} " + " ".join(f"{c:>16}" for c in cells)
              + f" {share:16.1%} {share_bmm:7.1%}")
    print("× = speed relative to sdpa; ! = not exact (error over 4× sdpa's against float64)")


if __name__ == "__main__":
    main()
