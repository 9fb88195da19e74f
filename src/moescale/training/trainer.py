"""Train an :class:`~moescale.accounting.architecture.Architecture` on real text and report loss,
tokens, FLOPs (by :mod:`moescale.accounting.counting`) and speed.

>>> from moescale.accounting.presets import get_preset               # doctest: +SKIP
>>> result = train(get_preset("tiny"), TrainConfig(tokens=200_000))  # doctest: +SKIP
>>> result.eval_loss < result.unigram_entropy                       # doctest: +SKIP
True

One optimizer step = ``grad_accum`` micro-batches on each of ``world_size`` ranks, together
``batch_tokens`` tokens. Loss = cross-entropy + ``aux_loss_coef`` × load-balance loss +
``z_loss_coef`` × z-loss (router losses summed over MoE layers by default; the coefficients
default to the router's paper: see :class:`TrainConfig`). bf16 autocast on GPU, fp32
on CPU. The model's vocabulary is the tokenizer's and its ``seq_len`` the training context.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from moescale.accounting.architecture import Architecture
from moescale.accounting.counting import count
from moescale.errors import MoescaleError, TrainingDiverged
from moescale.training import checkpoint as ckpt
from moescale.training.config import (
    BRANCH_MAY_DIFFER,
    KEPT_CHECKPOINT,
    TrainConfig,
    default_eval_every,
)
from moescale.training.corpora import open_corpus
from moescale.training.data import WindowSampler, default_cache_dir, eval_windows
from moescale.training.distributed import DistInfo, all_reduce_sum, barrier, init_from_env
from moescale.training.metrics import JsonlLog, load_balance, peak_flops
from moescale.training.model import ModelOptions, MoETransformer
from moescale.training.routing import frozen_router_gate
from moescale.training.schedules import lr_at
from moescale.training.startup import defer_dynamo, optimizer_step


@dataclass(frozen=True)
class TrainResult:
    """Summary of a run (the ``moescale train --json`` object). Losses in nats per token."""

    train_loss: float  # mean cross-entropy over the last logged interval
    eval_loss: float
    initial_eval_loss: float
    tokens: int  # training tokens processed (all ranks)
    steps: int
    flops: float  # training FLOPs under ``convention`` (tokens × flops_per_token)
    flops_per_token: float
    tokens_per_second: float  # training throughput, evaluation time excluded
    mfu: float | None  # model FLOPs utilisation when the hardware peak is known
    vocab_size: int
    unique_tokens: int
    repeated_tokens: int
    unigram_entropy: float  # of the training tokens, nats: the loss of a unigram model
    total_params: int
    active_params: int
    seconds: float
    world_size: int
    device: str
    convention: str
    out: str | None
    # what the run trained on (moescale.training.corpora): names and SHA-256 of the corpus
    # and of the tokenizer, and the size of the corpus's training split
    corpus: str | None = None
    corpus_sha256: str | None = None
    tokenizer: str | None = None
    tokenizer_sha256: str | None = None
    corpus_tokens: int | None = None
    # this attempt's seconds in evaluations (the initial one included) and in checkpoints
    eval_seconds: float = 0.0
    checkpoint_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def train(arch: Architecture, config: TrainConfig | None = None,
          options: ModelOptions | None = None) -> TrainResult:
    """Train ``arch`` as ``config`` says and return the summary."""
    return Trainer(arch, config or TrainConfig(), options).run()


def _device(config: TrainConfig) -> torch.device:
    name = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise MoescaleError("`device` cuda was asked for but no CUDA GPU is visible")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise MoescaleError(f"`device` {name}: only {torch.cuda.device_count()} CUDA "
                                "device(s) are visible")
    elif name == "mps" and not torch.backends.mps.is_available():
        raise MoescaleError("`device` mps was asked for but no Apple GPU (MPS) is available")
    elif name not in ("cpu", "mps"):
        raise MoescaleError(f"`device` {name!r} is not supported; use cpu, cuda, cuda:N or mps")
    return torch.device(name)


RUN_FILES = ("log.jsonl", "run.json", ckpt.CHECKPOINT_NAME)


def check_out_folder(config: TrainConfig) -> None:
    """A new run never writes into a folder that holds another run (it would mix two logs and
    overwrite a checkpoint); ``resume`` continues the run that is there."""
    out = config.out_path
    if out is None:
        return
    if out.exists() and not out.is_dir():
        raise MoescaleError(f"`out` {out} is a file, not a folder")
    if not config.resume:
        found = [name for name in RUN_FILES if (out / name).exists()]
        if found:
            raise MoescaleError(f"`out` {out} already holds a run ({', '.join(found)}); add "
                                "`resume` to continue it or choose a new `out`")


def available_memory(device: torch.device) -> int | None:
    """Bytes a new model may still use on ``device`` (free GPU memory; on the CPU the
    smaller of MemAvailable and the cgroup's remaining limit), or None when unknown."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
            found.append(max(int(limit) - used, 0))
    except (OSError, ValueError):
        pass
    if not found:
        try:
            import os

            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            return None
    return min(found)


def training_memory(counts, arch: Architecture, micro_tokens: int) -> float:
    """A lower estimate of the bytes training needs: fp32 weights, gradients and two AdamW
    moments (16 B per parameter) plus the activations of one micro-batch (residual stream,
    attention and active FFN per layer, and the logits)."""
    d, layers = arch.hidden_size, arch.n_layers
    ffn = max(arch.dense_ffn, (arch.top_k * arch.expert_ffn
                               + arch.n_shared_experts * arch.shared_ffn))
    per_token = layers * (16 * d + 4 * ffn) * 4 + 3 * arch.vocab_size * 4
    return 16.0 * counts.total_params + float(micro_tokens) * per_token


def check_router_trains(arch: Architecture, options: ModelOptions) -> None:
    """Refuse top-1 routing with renormalised weights: every gate is then exactly 1, so the
    language-model loss sends the router no gradient and only the balance losses move it
    (routing stays near random; measured: worse than dense at equal active size)."""
    if arch.is_moe and frozen_router_gate(arch.top_k, options.moe.norm_topk_prob):
        raise MoescaleError(
            "top-1 routing with norm_topk_prob=True gives every token the weight 1, so the "
            "router learns nothing from the language-model loss; use norm_topk_prob=False "
            "(Switch Transformer's gate, the default for top-1) or top_k >= 2")


class Trainer:
    """Holds the model, optimizer, data position and log of one run; ``run()`` trains."""

    def __init__(self, arch: Architecture, config: TrainConfig,
                 options: ModelOptions | None = None) -> None:
        self.config = config
        check_out_folder(config)
        if config.threads:
            torch.set_num_threads(config.threads)
        self.device = _device(config)
        self.dist: DistInfo = init_from_env(self.device.type)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        torch.manual_seed(config.seed)
        self._prepare_data(arch)
        self.arch = arch.replace(vocab_size=self.vocab_size, seq_len=self.seq_len)
        self.counts = count(self.arch, config.convention, context=self.seq_len)
        self.flops_per_token = self.counts.training_flops_per_token
        self._check_memory()
        check_router_trains(self.arch, options or ModelOptions())
        self.model = MoETransformer(self.arch, options).to(self.device)
        score = (options or ModelOptions()).moe.score
        self.aux_coef, self.z_coef = config.router_loss_coefs(score)
        self.optimizer = self._make_optimizer()
        self.forward_model = self._wrap_model()
        self.step, self.tokens, self.train_seconds = 0, 0, 0.0
        self.eval_seconds = self.checkpoint_seconds = 0.0  # this attempt's
        self.train_loss = float("nan")  # mean loss of the last logged window (checkpointed)
        self.initial_eval_loss: float | None = None
        self.log = JsonlLog(None)  # opened by run(), once a resumed checkpoint has loaded

    # ----- setup ---------------------------------------------------------------------------
    def _prepare_data(self, arch: Architecture) -> None:
        """Open the corpus (tokenising a text source once into the token cache, on rank 0),
        set the model's vocabulary, the sampler and the fixed evaluation windows."""
        c = self.config
        self.seq_len = c.seq_len or min(arch.seq_len, 256)
        cache = Path(c.cache_dir) if c.cache_dir else default_cache_dir()

        def load(create: bool):
            return open_corpus(c.data, c.tokenizer, c.vocab_size, c.text_column, c.val_fraction,
                               cache, model_vocab=arch.vocab_size, create=create)
        if self.dist.is_main:  # one writer for the cache, the others wait and read
            corpus = load(True)
        barrier(self.dist)
        if not self.dist.is_main:
            corpus = load(False)
        self.corpus, self.tokenizer, self.vocab_size = corpus, corpus.tokenizer, corpus.vocab_size
        if corpus.max_token_id >= self.vocab_size:
            raise MoescaleError(f"{c.data} holds token id {corpus.max_token_id:,}, beyond the "
                                f"model's vocabulary of {self.vocab_size:,}")
        n_train, n_val = len(corpus.train), len(corpus.val)
        if n_train < 2 * (self.seq_len + 1) or n_val < self.seq_len + 1:
            raise MoescaleError(
                f"the corpus has {n_train:,} training and {n_val:,} validation tokens: too few "
                f"for seq_len={self.seq_len}; use more text or a shorter `seq_len`")
        per_step = self.seq_len * c.grad_accum * self.dist.world_size
        if c.batch_tokens % per_step:
            raise MoescaleError(
                f"`batch_tokens`={c.batch_tokens} must be a multiple of `seq_len` × `grad_accum` × ranks"
                f" = {per_step}")
        self.windows_per_micro = c.batch_tokens // per_step  # per rank
        self.total_steps = c.tokens // c.batch_tokens
        if self.total_steps < 1:
            raise MoescaleError(f"tokens={c.tokens} is less than one batch ({c.batch_tokens})")
        self.sampler = WindowSampler(corpus.train, self.seq_len, c.seed)
        self.eval_data = eval_windows(corpus.val, self.seq_len, max(c.eval_tokens // self.seq_len, 1))
        self.unigram_entropy = corpus.unigram_entropy
        out = c.out_path
        if out is not None and self.dist.is_main and getattr(self.tokenizer, "kind", "") == "bpe":
            out.mkdir(parents=True, exist_ok=True)  # the trained BPE, reusable as --tokenizer
            shutil.copyfile(self.tokenizer.path, out / "tokenizer.json")

    def _check_memory(self) -> None:
        """Refuse, before building anything, a model this device cannot train (exact parameter
        counts from moescale.accounting.counting; every rank on one machine shares the CPU memory)."""
        need = training_memory(self.counts, self.arch, self.windows_per_micro * self.seq_len)
        if self.device.type == "cpu":
            need *= self.dist.world_size
        have = available_memory(self.device)
        if have is not None and need > have:
            raise MoescaleError(
                f"this model has {self.counts.total_params:,} parameters and needs about "
                f"{need / 1e9:,.1f} GB to train (16 B per parameter for fp32 weights, gradients "
                f"and AdamW moments, plus activations) but {self.device.type} has "
                f"{have / 1e9:,.1f} GB available; choose a smaller architecture")

    def _make_optimizer(self) -> torch.optim.Optimizer:
        """AdamW; weight decay on matrices (≥ 2-D) only, not on norms, biases or embeddings."""
        c = self.config
        decay = [p for n, p in self.model.named_parameters() if p.dim() >= 2 and n != "embed.weight"]
        ids = {id(p) for p in decay}
        rest = [p for p in self.model.parameters() if id(p) not in ids]
        groups = [{"params": decay, "weight_decay": c.weight_decay},
                  {"params": rest, "weight_decay": 0.0}]
        fused = self.device.type == "cuda"
        defer_dynamo(torch.optim.AdamW)
        return torch.optim.AdamW(groups, lr=c.lr, betas=c.betas, fused=fused)

    def _wrap_model(self) -> torch.nn.Module:
        model: torch.nn.Module = self.model
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            model = DDP(model, device_ids=ids)
        if self.config.compile:
            from moescale.training.fused import prepare_for_compile

            prepare_for_compile()
            model = torch.compile(model)
        return model

    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # ----- one optimizer step --------------------------------------------------------------
    def _micro_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's rows of the next global micro-batch (inputs, targets)."""
        n, rank = self.windows_per_micro, self.dist.rank
        rows = self.sampler.next_batch(n * self.dist.world_size)[rank * n:(rank + 1) * n]
        w = torch.from_numpy(rows).to(self.device, non_blocking=True)
        return w[:, :-1], w[:, 1:]

    def _loss(self, x: torch.Tensor, y: torch.Tensor):
        with self._autocast():
            out = self.forward_model(x)
        ce = F.cross_entropy(out.logits.float().flatten(0, 1), y.flatten())
        reduction = self.config.router_loss_reduction
        aux, z = out.aux_loss(reduction), out.z_loss(reduction)
        loss = ce + self.aux_coef * aux + self.z_coef * z
        loads = [r.load_E for r in out.routing]
        dropped = sum((r.dropped for r in out.routing), torch.zeros((), device=self.device))
        return loss, torch.stack([ce.detach(), aux.detach(), z.detach(), dropped.float()]), loads

    def _train_step(self) -> dict[str, float]:
        """Forward/backward over ``grad_accum`` micro-batches, clip, AdamW, bias update."""
        c = self.config
        warmup = (c.warmup_steps if c.warmup_steps is not None
                  else max(int(c.warmup_fraction * self.total_steps), 0))
        lr = lr_at(self.step, self.total_steps, c.lr, c.schedule, warmup, c.decay_fraction,
                   c.min_lr_ratio, c.cooldown)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        sums, load_LE = torch.zeros(4, device=self.device), None
        for micro in range(c.grad_accum):
            x, y = self._micro_batch()
            sync = micro == c.grad_accum - 1 or not self.dist.enabled
            with contextlib.nullcontext() if sync else self.forward_model.no_sync():
                loss, stats, loads = self._loss(x, y)
                (loss / c.grad_accum).backward()
            sums += stats
            if loads:
                batch = torch.stack(loads).float()
                load_LE = batch if load_LE is None else load_LE + batch
        grad_norm = self._clip()
        if not math.isfinite(grad_norm):
            self._diverged(TrainingDiverged(self.step + 1, "gradient norm", grad_norm))
        optimizer_step(self.optimizer)
        self.optimizer.zero_grad(set_to_none=True)
        return self._after_step(lr, sums / c.grad_accum, load_LE, grad_norm)

    def _clip(self) -> float:
        if self.config.grad_clip > 0:
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        else:
            norm = torch.linalg.vector_norm(
                torch.stack([p.grad.norm() for p in self.model.parameters() if p.grad is not None]))
        return float(norm)

    def _after_step(self, lr: float, means: torch.Tensor, load_LE, grad_norm: float) -> dict:
        """Average statistics over ranks, nudge DeepSeek-style router biases, count tokens."""
        all_reduce_sum(means, self.dist)
        means = means / self.dist.world_size
        balance = {"load_cv": 0.0, "load_max_over_mean": 1.0}
        if load_LE is not None:
            all_reduce_sum(load_LE, self.dist)
            for layer, load_E in zip(self.model.moe_layers(), load_LE, strict=True):
                layer.router.update_balance_bias(load_E, self.config.bias_update_rate)
            balance = load_balance(load_LE)
        ce, aux, z, dropped = means.tolist()
        if not all(math.isfinite(x) for x in (ce, aux, z)):
            bad = next((n, x) for n, x in (("training loss", ce), ("load-balance loss", aux),
                                           ("router z-loss", z)) if not math.isfinite(x))
            self._diverged(TrainingDiverged(self.step + 1, *bad))
        self.step += 1
        self.tokens += self.config.batch_tokens
        slots = self.windows_per_micro * self.seq_len * self.arch.top_k * self.arch.n_moe_layers
        return {"train_loss": ce, "aux_loss": aux, "z_loss": z, "lr": lr, "grad_norm": grad_norm,
                "dropped_fraction": dropped / slots if slots else 0.0, **balance}

    # ----- evaluation ----------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> float:
        """Mean cross-entropy (nats/token) on the fixed held-out windows, over all ranks."""
        started = time.perf_counter()
        self.model.eval()
        rows = self.eval_data[self.dist.rank::self.dist.world_size]
        total = torch.zeros(2, dtype=torch.float64, device=self.device)
        for start in range(0, len(rows), max(self.windows_per_micro, 1)):
            w = torch.from_numpy(rows[start:start + self.windows_per_micro]).to(self.device)
            with self._autocast():
                logits = self.model(w[:, :-1]).logits
            loss = F.cross_entropy(logits.float().flatten(0, 1), w[:, 1:].flatten(), reduction="sum")
            total += torch.stack([loss.double(), total.new_tensor(w[:, 1:].numel())])
        all_reduce_sum(total, self.dist)
        self.model.train()
        self.eval_seconds += time.perf_counter() - started
        loss = float(total[0] / total[1])
        if not math.isfinite(loss):
            self._diverged(TrainingDiverged(self.step, "evaluation loss", loss))
        return loss

    def _diverged(self, exc: TrainingDiverged) -> None:
        """Record why the run stopped (log event; the last checkpoint stays the last good
        state) and raise ``exc``."""
        self.log.write({"event": "diverged", "step": exc.step, "what": exc.what,
                        "reason": str(exc), "time": time.time()})
        self.log.close()
        raise exc

    # ----- checkpoints ---------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "step": self.step, "tokens": self.tokens, "train_seconds": self.train_seconds,
                "train_loss": self.train_loss, "initial_eval_loss": self.initial_eval_loss, "data": self.sampler.state_dict(),
                "rng": ckpt.rng_state(), "architecture": self.arch.to_dict(),
                "config": self.config.to_dict(), "total_steps": self.total_steps}

    def save(self, keep: bool = False) -> None:
        """Write ``checkpoint.pt`` (and, with ``keep``, a copy kept at this step for the
        branches that start here: ``KEPT_CHECKPOINT``)."""
        out = self.config.out_path
        started = time.perf_counter()
        if out is not None and self.dist.is_main:
            state = self._state()
            if keep:
                ckpt.save_checkpoint(out / KEPT_CHECKPOINT.format(step=self.step), state)
            ckpt.save_checkpoint(out / ckpt.CHECKPOINT_NAME, state)
        barrier(self.dist)
        self.checkpoint_seconds += time.perf_counter() - started

    def restore(self, path: Path | None = None) -> None:
        """Exact resume: weights, AdamW moments, step, data position and RNG states, from the
        run's own ``checkpoint.pt``, or (``path``) from a trunk's checkpoint kept at the branch
        point, which must share everything with this run but the token budget."""
        branch = path is not None
        path = path or self.config.out_path / ckpt.CHECKPOINT_NAME
        state = ckpt.load_checkpoint(path)
        if branch:
            _check_branch_point(state, self.arch, self.config, path, self.total_steps)
        elif state["architecture"] != self.arch.to_dict() or (
                state["total_steps"] != self.total_steps and not self._extends_trunk(state)):
            raise MoescaleError("the checkpoint in `out` belongs to a different architecture or "
                                "token budget; resume with the same settings or use a new `out`")
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.sampler.load_state_dict(state["data"])
            ckpt.set_rng_state(state["rng"])
            self.step, self.tokens = int(state["step"]), int(state["tokens"])
            self.train_seconds = float(state["train_seconds"])
            self.initial_eval_loss = state["initial_eval_loss"]
            self.train_loss = float(state.get("train_loss", float("nan")))
        except MoescaleError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
            reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            raise MoescaleError(f"{path} is damaged and cannot be resumed ({reason}); "
                                "use a new `out`") from None
        if not 0 <= self.step <= self.total_steps:
            raise MoescaleError(f"{path} is damaged: step {self.step} is outside "
                                f"0..{self.total_steps}; use a new `out`")

    def _extends_trunk(self, state: dict[str, Any]) -> bool:
        """Whether this run is a trunk (constant rate up to ``stop_after_steps``, keeping
        branch points) resuming a checkpoint of the same trunk to a later end: its token budget
        grew with a larger budget of the sweep, and every step it trains is at the peak rate."""
        c = self.config
        return bool(c.keep_steps and c.stop_after_steps and state["config"].get("keep_steps")
                    and int(state["step"]) <= c.stop_after_steps)

    # ----- the loop ------------------------------------------------------------------------
    def _write_header(self) -> None:
        if self.config.out_path is not None and self.dist.is_main:
            info = {"architecture": self.arch.to_dict(), "config": self.config.to_dict(),
                    "total_params": self.counts.total_params,
                    "active_params": self.counts.active_params,
                    "flops_per_token": self.flops_per_token, "world_size": self.dist.world_size,
                    "unigram_entropy": self.unigram_entropy, "device": str(self.device),
                    "data": self.corpus.record()}
            (self.config.out_path / "run.json").write_text(json.dumps(info, indent=2) + "\n")
        self.log.write({"event": "resume" if self.step else "start", "step": self.step,
                        "tokens": self.tokens, "time": time.time()})

    def _open_trackers(self):
        """The run's trackers (rank 0; none asked for: a no-op), with what identifies it:
        architecture, N, N_active, E, K, G, S, tokens, FLOPs budget, seed, sweep and run."""
        from moescale.training.trackers import open_trackers

        c, a = self.config, self.arch
        names = c.trackers if self.dist.is_main else ()
        params = {"run_id": c.run_name, "sweep": c.group, "N": self.counts.total_params,
                  "N_active": self.counts.active_params, "E": max(a.n_experts, 1), "K": a.top_k,
                  "G": a.granularity, "S": a.shared_ratio, "D": self.total_steps * c.batch_tokens,
                  "C": self.total_steps * c.batch_tokens * self.flops_per_token,
                  "seed": c.seed, "architecture": a.to_dict(),
                  "config": {k: v for k, v in c.to_dict().items() if k != "trackers"}}
        name = c.run_name or (c.out_path.name if c.out_path else "run")
        return open_trackers(names, run_id=name, group=c.group, params=params, folder=c.out)

    def _record(self, stats: dict[str, float], interval_tokens: int, interval_s: float,
                eval_loss: float | None) -> dict[str, Any]:
        tps = interval_tokens / interval_s if interval_s > 0 else float("nan")
        peak = peak_flops(self.device)
        record = {"step": self.step, "tokens": self.tokens, **stats, "eval_loss": eval_loss,
                  "tokens_per_second": tps, "flops": self.tokens * self.flops_per_token,
                  "unique_tokens": self.sampler.unique_tokens,
                  "repeated_tokens": self.sampler.repeated_tokens, "epoch": self.sampler.epoch,
                  "mfu": tps * self.flops_per_token / (peak * self.dist.world_size)
                  if peak else None}
        self.log.write(record)
        self.trackers.log(record, self.step)
        return record

    def _progress(self, total: int):
        """A rich progress bar on rank 0 when asked for; otherwise a no-op."""
        if not (self.config.progress and self.dist.is_main):
            return contextlib.nullcontext(lambda stats: None)
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        bar = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(),
                       TextColumn("loss {task.fields[loss]:.3f}"), TimeRemainingColumn())
        task = bar.add_task("train", total=total, completed=self.step, loss=float("nan"))

        @contextlib.contextmanager
        def running():
            with bar:
                yield lambda stats: bar.update(task, advance=1, loss=stats["train_loss"])
        return running()

    def run(self) -> TrainResult:
        """Train to the token budget (or ``stop_after_steps``), evaluating and checkpointing."""
        c = self.config
        if c.resume:
            self.restore()
        elif c.branch_from:
            self.restore(Path(c.branch_from))
        if c.out_path and self.dist.is_main and self.log.path is None:
            self.log = JsonlLog(c.out_path / "log.jsonl")
        eval_every = c.eval_every or default_eval_every(self.total_steps, c.batch_tokens,
                                                        c.eval_tokens)
        ckpt_every = c.checkpoint_every or eval_every
        stop = min(self.total_steps, c.stop_after_steps or self.total_steps)
        self._write_header()
        self.trackers = self._open_trackers()
        with self.trackers:  # closed FAILED if training raises, FINISHED once finish() ran
            return self._loop(stop, eval_every, ckpt_every)

    def _loop(self, stop: int, eval_every: int, ckpt_every: int) -> TrainResult:
        c = self.config
        if self.initial_eval_loss is None:
            self.initial_eval_loss = self.evaluate()
        eval_loss = None
        window = {"tokens": 0, "seconds": 0.0, "loss": 0.0, "steps": 0}
        with self._progress(stop) as advance:
            while self.step < stop:
                t0 = time.perf_counter()
                stats = self._train_step()
                dt = time.perf_counter() - t0
                self.train_seconds += dt
                for key, v in (("tokens", c.batch_tokens), ("seconds", dt),
                               ("loss", stats["train_loss"]), ("steps", 1)):
                    window[key] += v
                keep = self.step in c.keep_steps
                evaluated = self.step % eval_every == 0 or self.step == stop or keep
                if evaluated:
                    eval_loss = self.evaluate()
                if self.step % c.log_every == 0 or evaluated:
                    self.train_loss = window["loss"] / window["steps"]
                    self._record(stats | {"train_loss": self.train_loss, "step_train_loss":
                                          stats["train_loss"]}, window["tokens"],
                                 window["seconds"], eval_loss if evaluated else None)
                    window = dict.fromkeys(window, 0)
                if self.step % ckpt_every == 0 or self.step == stop or keep:
                    self.save(keep)
                advance(stats)
        if eval_loss is None:  # resumed at the end (a finished run not yet recorded)
            eval_loss = self.evaluate()
        return self._finish(self.train_loss, eval_loss)

    def _finish(self, train_loss: float, eval_loss: float) -> TrainResult:
        tps = self.tokens / self.train_seconds if self.train_seconds else float("nan")
        peak = peak_flops(self.device)
        result = TrainResult(
            train_loss=train_loss, eval_loss=eval_loss, initial_eval_loss=self.initial_eval_loss,
            tokens=self.tokens, steps=self.step, flops=self.tokens * self.flops_per_token,
            flops_per_token=self.flops_per_token, tokens_per_second=tps,
            mfu=tps * self.flops_per_token / (peak * self.dist.world_size) if peak else None,
            vocab_size=self.arch.vocab_size, unique_tokens=self.sampler.unique_tokens,
            repeated_tokens=self.sampler.repeated_tokens, unigram_entropy=self.unigram_entropy,
            total_params=self.counts.total_params, active_params=self.counts.active_params,
            seconds=self.train_seconds, world_size=self.dist.world_size, device=str(self.device),
            convention=self.counts.convention.name, out=self.config.out,
            **{k: self.corpus.info.get(k) for k in ("corpus", "corpus_sha256", "tokenizer",
                                                     "tokenizer_sha256")},
            corpus_tokens=int(len(self.corpus.train)), eval_seconds=self.eval_seconds,
            checkpoint_seconds=self.checkpoint_seconds)
        self.log.write({"event": "end", **result.to_dict()})
        self.trackers.finish(result.to_dict())
        self.log.close()
        return result


def _check_branch_point(state: dict[str, Any], arch: Architecture, config: TrainConfig,
                        path: Path, total_steps: int) -> None:
    """A branch starts only from a checkpoint of its own trunk: the same architecture and the
    same settings except the token budget (``BRANCH_MAY_DIFFER``), before its own end."""
    if state["architecture"] != arch.to_dict():
        raise MoescaleError(f"{path} belongs to a different architecture; a branch starts "
                            "from its own trunk's checkpoint")
    mine, theirs = config.to_dict(), state["config"]
    differ = sorted(k for k in mine if k not in BRANCH_MAY_DIFFER
                    and _plain(mine[k]) != _plain(theirs.get(k)))
    if differ:
        raise MoescaleError(f"{path} was trained with other settings ({', '.join(differ)}); "
                            "a branch shares every setting with its trunk but the tokens")
    if not 0 < int(state["step"]) < total_steps:
        raise MoescaleError(f"{path} is at step {state['step']}, not inside this run's "
                            f"{total_steps} steps")


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value

