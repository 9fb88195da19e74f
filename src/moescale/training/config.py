"""Settings of one training run (a plain, JSON-able dataclass)."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moescale.errors import MoescaleError
from moescale.training.schedules import SCHEDULES

MAX_TOKENS = 10**15  # training tokens of one run; 25x the largest corpora trained on so far
DEVICE_PATTERN = re.compile(r"cpu|cuda(:[0-9]+)?|mps")


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
        _check_ints(self)
        _check_floats(self)
        if self.tokens > MAX_TOKENS:
            raise MoescaleError(f"tokens must be at most {MAX_TOKENS:.0e}, got {self.tokens:.3g}")
        if self.seq_len is not None and self.seq_len < 2:
            raise MoescaleError(f"seq_len must be at least 2, got {self.seq_len}")
        if self.schedule not in SCHEDULES:
            raise MoescaleError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.tokenizer not in ("bytes", "bpe"):
            raise MoescaleError(f"tokenizer must be 'bytes' or 'bpe', got {self.tokenizer!r}")
        if self.vocab_size is not None:
            if not _is_int(self.vocab_size):
                raise MoescaleError(f"vocab_size must be a whole number, got {self.vocab_size!r}")
            if self.tokenizer == "bytes" and self.vocab_size != 256:
                raise MoescaleError("the byte tokenizer has 256 tokens; drop --vocab-size or "
                                    "use --tokenizer bpe")
            if self.tokenizer == "bpe" and not 257 <= self.vocab_size <= 1 << 20:
                raise MoescaleError(f"--vocab-size for BPE must be in 257..1048576, "
                                    f"got {self.vocab_size}")
        if self.device is not None:
            _check_device_name(self.device)
        for name in ("data", "convention"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise MoescaleError(f"{name} must be a non-empty string, got {getattr(self, name)!r}")
        if self.resume and not self.out:
            raise MoescaleError("--resume needs --out (the run folder holding checkpoint.pt)")
    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def out_path(self) -> Path | None:
        return Path(self.out) if self.out else None


_POSITIVE_INTS = ("tokens", "batch_tokens", "grad_accum", "eval_tokens", "log_every")
_OPTIONAL_POSITIVE_INTS = ("seq_len", "eval_every", "checkpoint_every",
                           "threads", "stop_after_steps")
# name -> (low, high, low_open, high_open)
_FLOATS = {"lr": (0.0, math.inf, True, False), "min_lr_ratio": (0.0, 1.0, False, False),
           "warmup_fraction": (0.0, 1.0, False, True), "decay_fraction": (0.0, 1.0, False, False),
           "weight_decay": (0.0, math.inf, False, False), "grad_clip": (0.0, math.inf, False, False),
           "aux_loss_coef": (0.0, math.inf, False, False),
           "z_loss_coef": (0.0, math.inf, False, False),
           "bias_update_rate": (0.0, math.inf, False, False),
           "val_fraction": (0.0, 1.0, True, True)}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_ints(c: TrainConfig) -> None:
    for name in _POSITIVE_INTS:
        value = getattr(c, name)
        if not _is_int(value) or value <= 0:
            raise MoescaleError(f"{name} must be positive, got {value!r}")
    for name in _OPTIONAL_POSITIVE_INTS:
        value = getattr(c, name)
        if value is not None and (not _is_int(value) or value <= 0):
            what = "at least 1" if name != "seq_len" else "at least 2"
            raise MoescaleError(f"{name} must be {what} (a whole number) or omitted, got {value!r}")
    if not _is_int(c.seed) or c.seed < 0:
        raise MoescaleError(f"seed must be a non-negative whole number, got {c.seed!r}")


def _check_floats(c: TrainConfig) -> None:
    for name, (lo, hi, lo_open, hi_open) in _FLOATS.items():
        value = getattr(c, name)
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
              and math.isfinite(value)
              and (value > lo if lo_open else value >= lo)
              and (value < hi if hi_open else value <= hi))
        if not ok:
            low, high = ("(" if lo_open else "[") + f"{lo:g}", f"{hi:g}" + (")" if hi_open else "]")
            raise MoescaleError(f"{name} must be a finite number in {low}, {high}, got {value!r}"
                                if name != "lr" else f"lr must be positive and finite, got {value!r}")
    betas = c.betas
    if (not isinstance(betas, (tuple, list)) or len(betas) != 2
            or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas)):
        raise MoescaleError(f"betas must be two numbers in [0, 1), got {betas!r}")


def _check_device_name(device: str) -> None:
    if not isinstance(device, str) or not DEVICE_PATTERN.fullmatch(device):
        raise MoescaleError(f"--device {device!r} is not supported; use cpu, cuda, cuda:N or mps")
