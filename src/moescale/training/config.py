"""Settings of one training run (a plain, JSON-able dataclass)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moescale.errors import MoescaleError
from moescale.training.schedules import SCHEDULES


@dataclass(frozen=True)
class TrainConfig:
    """How to train. Token counts are tokens (targets), learning rates per optimizer step.

    ``batch_tokens`` is the global batch per optimizer step (all ranks, all micro-batches);
    it must be a multiple of ``seq_len × grad_accum × world size``.
    """

    tokens: int = 1_000_000  # training tokens in total (rounded down to whole steps)
    batch_tokens: int = 16 * 256
    seq_len: int | None = None  # None → min(arch.seq_len, 256)
    grad_accum: int = 1  # micro-batches per optimizer step
    lr: float = 3e-3
    min_lr_ratio: float = 0.1  # final lr = min_lr_ratio × lr
    schedule: str = "wsd"  # "wsd", "cosine" or "constant"
    warmup_fraction: float = 0.05  # of the optimizer steps
    decay_fraction: float = 0.2  # WSD: last fraction of steps that decay
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.1  # on matrices only (not norms, biases, embeddings' rows alike)
    grad_clip: float = 1.0  # global L2 norm; 0 disables
    aux_loss_coef: float = 0.01  # Switch load-balance loss weight
    z_loss_coef: float = 1e-3  # ST-MoE router z-loss weight
    bias_update_rate: float = 1e-3  # DeepSeek-V3 aux-loss-free bias step (sigmoid routing)
    eval_every: int | None = None  # steps; None → about 10 evaluations per run
    eval_tokens: int = 65_536  # held-out tokens per evaluation
    checkpoint_every: int | None = None  # steps; None → every evaluation
    log_every: int = 10  # steps between JSONL lines
    data: str = "kjv"  # "kjv", a text file or a folder
    tokenizer: str = "bytes"  # "bytes" or "bpe"
    vocab_size: int | None = None  # BPE vocabulary
    val_fraction: float = 0.05
    cache_dir: str | None = None  # token cache; None → ~/.cache/moescale
    convention: str = "exact"  # FLOP convention of moescale.counting
    out: str | None = None  # run folder (log.jsonl, checkpoint.pt); None → nothing written
    resume: bool = False
    compile: bool = False
    seed: int = 0
    device: str | None = None  # None → cuda if available else cpu
    threads: int | None = None  # CPU threads (torch.set_num_threads); None → torch's default
    stop_after_steps: int | None = None  # stop early (simulates an interruption; resumable)
    progress: bool = False  # rich progress bar (rank 0)

    def __post_init__(self) -> None:
        checks = {"tokens": self.tokens, "batch_tokens": self.batch_tokens,
                  "grad_accum": self.grad_accum, "eval_tokens": self.eval_tokens,
                  "log_every": self.log_every}
        for name, value in checks.items():
            if not value or value <= 0:
                raise MoescaleError(f"{name} must be positive, got {value}")
        if self.threads is not None and self.threads < 1:
            raise MoescaleError(f"threads must be at least 1, got {self.threads}")
        if self.lr <= 0:
            raise MoescaleError(f"lr must be positive, got {self.lr}")
        if self.seq_len is not None and self.seq_len < 2:
            raise MoescaleError(f"seq_len must be at least 2, got {self.seq_len}")
        if self.schedule not in SCHEDULES:
            raise MoescaleError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.resume and not self.out:
            raise MoescaleError("--resume needs --out (the run folder holding checkpoint.pt)")

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def out_path(self) -> Path | None:
        return Path(self.out) if self.out else None
