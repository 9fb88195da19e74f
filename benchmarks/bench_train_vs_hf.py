"""Training throughput of the moescale model vs ``transformers``' ``MixtralForCausalLM``.

Same configuration (4 layers, d=128, 4 heads / 2 KV heads, 8 experts top-2, expert width 448,
vocabulary 256), same batch (16 × 256 byte tokens of the KJV Bible), AdamW in fp32, the same
thread count, a few warm-up steps, then the same number of timed optimizer steps, alternating
the two models in rounds so machine noise hits both alike (shared/reference/benchmarks.md).
The reference is the faster of the ``transformers`` experts implementations that run on this
machine (``grouped_mm``, ``eager``; ``batched_mm`` gathers one weight matrix per
token slot and runs out of memory at this batch).

With CUDA it also trains the ``gpu-100m`` preset (about 110 M active parameters) in bf16 and
``transformers``' Mixtral of the same shape, and reports both throughputs, their MFU against
the GPU's dense bf16 peak and the ratio.

    python benchmarks/bench_train_vs_hf.py [--steps 10] [--rounds 3] [--threads N] [--no-compile]

Also reported: moescale with ``torch.compile`` (its ``--compile`` option; the reference stays
eager, as ``transformers`` trains by default).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F

from moescale.accounting.architecture import Architecture
from moescale.accounting.counting import count
from moescale.accounting.hf_export import to_hf_config
from moescale.training.data import kjv_text
from moescale.training.model import ModelOptions, MoETransformer

D, LAYERS, HEADS, KV, EXPERTS, TOP_K, FFN, VOCAB = 128, 4, 4, 2, 8, 2, 448, 256
BATCH, SEQ = 16, 256


def batches(n: int, seed: int = 0) -> list[torch.Tensor]:
    """``n`` random (BATCH, SEQ + 1) windows of KJV bytes."""
    data = torch.frombuffer(bytearray(kjv_text().encode()), dtype=torch.uint8).long()
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(data) - SEQ - 1, (n, BATCH), generator=g)
    return [torch.stack([data[s:s + SEQ + 1] for s in row.tolist()]) for row in starts]


def hf_model(experts_impl: str):
    import transformers

    cfg = transformers.MixtralConfig(
        hidden_size=D, intermediate_size=FFN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
        num_key_value_heads=KV, num_local_experts=EXPERTS, num_experts_per_tok=TOP_K,
        vocab_size=VOCAB, max_position_embeddings=SEQ, sliding_window=None)
    cfg._experts_implementation = experts_impl
    torch.manual_seed(0)
    model = transformers.MixtralForCausalLM(cfg).train()

    def loss(w: torch.Tensor) -> torch.Tensor:
        return model(input_ids=w[:, :-1], labels=w[:, :-1].clone()).loss
    return model, loss


def moescale_model(compile_model: bool = False):
    arch = Architecture(hidden_size=D, n_layers=LAYERS, n_heads=HEADS, n_kv_heads=KV,
                        vocab_size=VOCAB, n_experts=EXPERTS, top_k=TOP_K, expert_ffn=FFN,
                        seq_len=SEQ)
    torch.manual_seed(0)
    model = MoETransformer(arch, ModelOptions(norm_eps=1e-5)).train()
    forward = torch.compile(model) if compile_model else model

    def loss(w: torch.Tensor) -> torch.Tensor:
        out = forward(w[:, :-1])
        ce = F.cross_entropy(out.logits.flatten(0, 1), w[:, 1:].flatten())
        return ce + 0.01 * out.aux_loss() + 1e-3 * out.z_loss()
    return model, loss


def make_stepper(model, loss_fn):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)

    def step(w: torch.Tensor) -> float:
        loss = loss_fn(w)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()
    return step


def timed(step, data: list[torch.Tensor]) -> float:
    """Seconds per optimizer step over ``data``."""
    t0 = time.perf_counter()
    for w in data:
        step(w)
    return (time.perf_counter() - t0) / len(data)


def hf_reference(warm: list[torch.Tensor]) -> tuple[str, object]:
    """The fastest ``transformers`` experts implementation that trains on this machine."""
    best = None
    for impl in ("grouped_mm", "eager"):  # batched_mm copies a weight per slot: GBs here
        try:
            step = make_stepper(*hf_model(impl))
            for w in warm:
                step(w)
            t = timed(step, warm)
        except Exception as exc:  # noqa: BLE001 - an implementation this build cannot run
            print(f"  transformers experts_implementation={impl}: unavailable ({type(exc).__name__})")
            continue
        print(f"  transformers experts_implementation={impl}: {BATCH * SEQ / t:,.0f} tokens/s (probe)")
        if best is None or t < best[0]:
            best = (t, impl, step)
    return best[1], best[2]


def cpu_comparison(steps: int, rounds: int, warmup: int, with_compile: bool) -> None:
    data = batches(warmup + steps * rounds)
    warm, timed_data = data[:warmup], data[warmup:]
    impl, hf_step = hf_reference(warm)
    runs = {f"transformers Mixtral ({impl})": hf_step, "moescale": make_stepper(*moescale_model())}
    if with_compile:
        runs["moescale + torch.compile"] = make_stepper(*moescale_model(compile_model=True))
    for step in list(runs.values())[1:]:
        for w in warm:
            step(w)
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(rounds):
        chunk = timed_data[r * steps:(r + 1) * steps]
        for name, step in runs.items():
            seconds[name].append(timed(step, chunk))
    tokens = BATCH * SEQ
    tps = {name: tokens / statistics.median(s) for name, s in seconds.items()}
    print(f"threads={torch.get_num_threads()} batch={BATCH}x{SEQ} steps={steps}x{rounds} "
          f"warmup={warmup} (median over rounds)")
    ref = next(iter(tps.values()))
    for name, value in tps.items():
        print(f"{name:36s} {value:8,.0f} tokens/s   ratio {value / ref:.2f}x")


def gpu_mfu(steps: int = 20, batch: int = 16, seq: int = 1024) -> None:
    """bf16 training throughput and MFU of the ``gpu-100m`` preset on the first GPU, against
    ``transformers``' Mixtral built from the same architecture (same batch, same steps)."""
    import transformers

    from moescale.accounting.presets import get_preset
    from moescale.training.metrics import peak_flops

    arch = get_preset("gpu-100m").replace(seq_len=seq)
    dev = torch.device("cuda")
    torch.manual_seed(0)
    ours = MoETransformer(arch).to(dev).train()
    hf_cfg = transformers.MixtralConfig(**{k: v for k, v in to_hf_config(arch, "mixtral").items()
                                           if k not in ("model_type", "architectures")})
    ref = transformers.MixtralForCausalLM(hf_cfg).to(dev).train()

    def ours_loss(x):
        out = ours(x[:, :-1])
        return F.cross_entropy(out.logits.float().flatten(0, 1), x[:, 1:].flatten()) \
            + 0.01 * out.aux_loss()

    def ref_loss(x):
        return ref(input_ids=x[:, :-1], labels=x[:, :-1].clone()).loss

    c = count(arch, context=seq)
    peak = peak_flops(dev)
    results = {}
    for name, model, loss_fn in (("moescale", ours, ours_loss),
                                 ("transformers Mixtral", ref, ref_loss)):
        tps = _gpu_tokens_per_second(model, loss_fn, arch.vocab_size, steps, batch, seq, dev)
        results[name] = tps
        mfu = f"{100 * tps * c.training_flops_per_token / peak:.1f} %" if peak else "unknown peak"
        print(f"GPU {torch.cuda.get_device_name(dev)}: {name} gpu-100m "
              f"({c.active_params / 1e6:.0f}M active, {c.total_params / 1e6:.0f}M total), "
              f"{batch}x{seq} tokens/step: {tps:,.0f} tokens/s, MFU {mfu} "
              "(exact convention, causal halving)")
    print(f"ratio moescale / transformers on GPU: "
          f"{results['moescale'] / results['transformers Mixtral']:.2f}x")


def _gpu_tokens_per_second(model, loss_fn, vocab: int, steps: int, batch: int, seq: int,
                           dev) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), fused=True)
    w = torch.randint(0, vocab, (steps + 3, batch, seq + 1), device=dev)

    def step(x):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = loss_fn(x)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for i in range(3):
        step(w[i])
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in range(3, steps + 3):
        step(w[i])
    torch.cuda.synchronize()
    return steps * batch * seq / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cpu_comparison(args.steps, args.rounds, args.warmup, not args.no_compile)
    if torch.cuda.is_available():
        gpu_mfu()
    else:
        print("no CUDA device: GPU MFU not measured")


if __name__ == "__main__":
    main()
