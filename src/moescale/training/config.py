"""Settings of one training run (a plain, JSON-able dataclass)."""

from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moescale.errors import MoescaleError
from moescale.training.schedules import COOLDOWNS, SCHEDULES

MAX_TOKENS = 10**15  # training tokens of one run; 25x the largest corpora trained on so far
DEVICE_PATTERN = re.compile(r"cpu|cuda(:[0-9]+)?|mps")
KEPT_CHECKPOINT = "branches/step-{step:09d}.pt"  # a run folder's checkpoint kept at a keep step
# config fields a branch may set differently from its trunk's checkpoint
BRANCH_MAY_DIFFER = ("tokens", "out", "resume", "stop_after_steps", "keep_steps", "branch_from",
                     "progress", "threads", "device", "eval_every", "checkpoint_every",
                     "log_every", "compile", "cache_dir", "trackers", "run_name", "group")


@dataclass(frozen=True)
class TrainConfig:
    """How to train. Token counts are tokens (targets), learning rates per optimizer step.

    ``batch_tokens`` is the global batch per optimizer step (all ranks, all micro-batches);
    it must be a multiple of ``seq_len × grad_accum × world size``.
    """

    tokens: int = 1_000_000  # training tokens in total (rounded down to whole steps)
    batch_tokens: int = 8 * 256  # the default of `moescale train` and of a sweep's [train]
    seq_len: int | None = None  # None → min(arch.seq_len, 256)
    grad_accum: int = 1  # micro-batches per optimizer step
    lr: float = 3e-3
    min_lr_ratio: float = 0.1  # final lr = min_lr_ratio × lr
    schedule: str = "wsd"  # "wsd", "cosine" or "constant"
    warmup_fraction: float = 0.05  # of the optimizer steps
    warmup_steps: int | None = None  # overrides warmup_fraction (runs sharing a trunk)
    decay_fraction: float = 0.2  # WSD: last fraction of steps that decay
    cooldown: str = "linear"  # WSD decay shape: "linear" or "1-sqrt" (Hägele et al. 2024)
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.1  # on matrices only (not norms, biases, embeddings' rows alike)
    grad_clip: float = 1.0  # global L2 norm; 0 disables
    # Balancing policy. None → the router's paper default: softmax routers get the Switch
    # load-balance loss (0.01, arXiv:2101.03961 §2.2) and the ST-MoE z-loss (1e-3,
    # arXiv:2202.08906 §3.2); sigmoid routers are auxiliary-loss-free (DeepSeek-V3 §2.1.2:
    # bias updates only) and have no z-loss. A number overrides the default for either router.
    aux_loss_coef: float | None = None  # Switch load-balance loss weight, per MoE layer
    z_loss_coef: float | None = None  # ST-MoE router z-loss weight, per MoE layer
    router_loss_reduction: str = "sum"  # "sum" over MoE layers (papers) or "mean" (÷ L_m)
    bias_update_rate: float = 1e-3  # DeepSeek-V3 aux-loss-free bias step (sigmoid routing)
    eval_every: int | None = None  # steps; None → default_eval_every (2–10 per run)
    eval_tokens: int = 65_536  # held-out tokens per evaluation
    checkpoint_every: int | None = None  # steps; None → every evaluation
    log_every: int = 10  # steps between JSONL lines
    # "kjv", a text file or folder, Parquet / JSON Lines / Arrow files, a saved dataset, a
    # .bin/.npy token file or a folder of `moescale data prepare` (moescale.training.corpora)
    data: str = "kjv"
    # "bytes", "bpe" (trained on the data) or a tokenizer.json / tokenizer folder; a prepared
    # folder or token file holds ids already ("bytes"/"bpe" then do not apply)
    tokenizer: str = "bytes"
    vocab_size: int | None = None  # the model's vocabulary (BPE size; may pad a tokenizer's)
    text_column: str | None = None  # column of row sources (None → "text")
    val_fraction: float = 0.05  # held out at the end (a prepared folder has its own split)
    cache_dir: str | None = None  # token cache; None → ~/.cache/moescale
    convention: str = "exact"  # FLOP convention of moescale.accounting.counting
    out: str | None = None  # run folder (log.jsonl, checkpoint.pt); None → nothing written
    resume: bool = False
    compile: bool = False
    seed: int = 0
    device: str | None = None  # None → cuda if available else cpu
    threads: int | None = None  # CPU threads (torch.set_num_threads); None → torch's default
    stop_after_steps: int | None = None  # stop early (an interruption, or a trunk's end)
    keep_steps: tuple[int, ...] = ()  # evaluate and keep a checkpoint at these steps (a trunk)
    branch_from: str | None = None  # start from this checkpoint of a trunk (a branch)
    progress: bool = False  # rich progress bar (rank 0)
    # Trackers to log to (moescale.training.trackers: "tensorboard", "mlflow", "wandb"); the
    # run's name and group there (a sweep sets its run id and its name)
    trackers: tuple[str, ...] = ()
    run_name: str | None = None
    group: str | None = None

    def __post_init__(self) -> None:
        _check_ints(self)
        _check_floats(self)
        if self.out is not None and not isinstance(self.out, (str, os.PathLike)):
            raise MoescaleError(f"`out` must be a folder path, got {type(self.out).__name__}")
        if not isinstance(self.compile, bool):
            raise MoescaleError(f"`compile` must be true or false, got {self.compile!r}")
        if self.tokens > MAX_TOKENS:
            raise MoescaleError(f"`tokens` must be at most {MAX_TOKENS:.0e}, got {self.tokens:.3g}")
        if self.seq_len is not None and self.seq_len < 2:
            raise MoescaleError(f"`seq_len` must be at least 2, got {self.seq_len}")
        if self.schedule not in SCHEDULES:
            raise MoescaleError(f"`schedule` must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.cooldown not in COOLDOWNS:
            raise MoescaleError(f"`cooldown` must be one of {', '.join(COOLDOWNS)}, got "
                                f"{self.cooldown!r}")
        if self.warmup_steps is not None and (not _is_int(self.warmup_steps)
                                              or self.warmup_steps < 0):
            raise MoescaleError(f"`warmup_steps` must be a whole number ≥ 0, got "
                                f"{self.warmup_steps!r}")
        betas = self.betas
        if (not isinstance(betas, (list, tuple)) or len(betas) != 2
                or not all(isinstance(b, (int, float)) and not isinstance(b, bool)
                           and 0 <= b < 1 for b in betas)):
            raise MoescaleError(f"`betas` must be two numbers in [0, 1), got {betas!r}")
        object.__setattr__(self, "betas", tuple(float(b) for b in betas))
        object.__setattr__(self, "keep_steps", tuple(self.keep_steps))
        if isinstance(self.trackers, str) or not isinstance(self.trackers, (list, tuple)):
            raise MoescaleError(f"`trackers` must be a list of tracker names, got "
                                f"{self.trackers!r}")
        from moescale.training.trackers import check_tracker_names

        object.__setattr__(self, "trackers", tuple(check_tracker_names(self.trackers)))
        if any(not _is_int(s) or s < 1 for s in self.keep_steps):
            raise MoescaleError(f"`keep_steps` must be positive step numbers, got "
                                f"{list(self.keep_steps)}")
        if self.router_loss_reduction not in ("sum", "mean"):
            raise MoescaleError(f"`router_loss_reduction` must be 'sum' or 'mean', got "
                                f"{self.router_loss_reduction!r}")
        if not isinstance(self.tokenizer, str) or not self.tokenizer:
            raise MoescaleError(f"`tokenizer` must be 'bytes', 'bpe' or a tokenizer.json path, "
                                f"got {self.tokenizer!r}")
        if self.text_column is not None and (not isinstance(self.text_column, str)
                                             or not self.text_column):
            raise MoescaleError(f"`text_column` must be a non-empty string, got {self.text_column!r}")
        if self.vocab_size is not None:
            if not _is_int(self.vocab_size):
                raise MoescaleError(f"`vocab_size` must be a whole number, got {self.vocab_size!r}")
            if self.tokenizer == "bytes" and self.vocab_size != 256 and not self._token_data():
                raise MoescaleError("the byte tokenizer has 256 tokens; drop `vocab_size` or "
                                    "use `tokenizer` bpe")
            if self.tokenizer == "bpe" and not 257 <= self.vocab_size <= 1 << 20 \
                    and not self._token_data():
                raise MoescaleError(f"`vocab_size` for BPE must be in 257..1048576, "
                                    f"got {self.vocab_size}")
            if not 1 <= self.vocab_size <= 1 << 24:
                raise MoescaleError(f"`vocab_size` must be in 1..16777216, got {self.vocab_size}")
        if self.device is not None:
            _check_device_name(self.device)
        for name in ("data", "convention"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise MoescaleError(f"`{name}` must be a non-empty string, got {getattr(self, name)!r}")
        if self.resume and not self.out:
            raise MoescaleError("`resume` needs `out` (the run folder holding checkpoint.pt)")

    def _token_data(self) -> bool:
        """Whether ``data`` holds token ids already (then 'bytes' says nothing)."""
        from moescale.training.corpora import is_token_source

        return isinstance(self.data, str) and is_token_source(self.data)

    def router_loss_coefs(self, score: str) -> tuple[float, float]:
        """``(aux, z)`` weights for a ``"softmax"`` or ``"sigmoid"`` router (see the fields)."""
        softmax = score == "softmax"
        aux = self.aux_loss_coef if self.aux_loss_coef is not None else (0.01 if softmax else 0.0)
        z = self.z_loss_coef if self.z_loss_coef is not None else (1e-3 if softmax else 0.0)
        return float(aux), float(z)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def out_path(self) -> Path | None:
        return Path(self.out) if self.out else None


EVAL_SHARE = 0.02  # evaluations cost at most this share of a run's training FLOPs, by default
MAX_EVALS, MIN_EVALS = 10, 2  # evaluations of a run when `eval_every` is not given


def default_eval_every(total_steps: int, batch_tokens: int, eval_tokens: int) -> int:
    """Steps between evaluations (and checkpoints) when ``eval_every`` is not given: about ten
    per run, fewer when ten would cost more than :data:`EVAL_SHARE` of its training compute
    (an evaluation is a forward pass over ``eval_tokens``, a third of a training token's
    FLOPs), at least two: a short micro run spends little of its time evaluating."""
    affordable = EVAL_SHARE * 3 * batch_tokens * total_steps / eval_tokens
    evals = int(min(MAX_EVALS, max(MIN_EVALS, affordable)))
    return max(total_steps // evals, 1)


# Fields a run gets from whoever runs it (a sweep sets tokens and seed per run, its worker the
# folder and threads, trunk reuse the stop and kept steps): not keys of a spec's [train].
RUN_FIELDS = ("tokens", "seed", "out", "resume", "threads", "stop_after_steps", "keep_steps",
              "branch_from", "progress", "convention", "cache_dir", "run_name", "group")
SPEC_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name not in RUN_FIELDS)
TRAIN_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)
                  if f.default is not dataclasses.MISSING}


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


_OPTIONAL_FLOATS = ("aux_loss_coef", "z_loss_coef")  # None → the router's default


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_ints(c: TrainConfig) -> None:
    for name in _POSITIVE_INTS:
        value = getattr(c, name)
        if not _is_int(value) or value <= 0:
            raise MoescaleError(f"`{name}` must be positive, got {value!r}")
    for name in _OPTIONAL_POSITIVE_INTS:
        value = getattr(c, name)
        if value is not None and (not _is_int(value) or value <= 0):
            what = "at least 1" if name != "seq_len" else "at least 2"
            raise MoescaleError(f"`{name}` must be {what} (a whole number) or omitted, got {value!r}")
    if not _is_int(c.seed) or c.seed < 0:
        raise MoescaleError(f"`seed` must be a non-negative whole number, got {c.seed!r}")


def _check_floats(c: TrainConfig) -> None:
    for name, (lo, hi, lo_open, hi_open) in _FLOATS.items():
        value = getattr(c, name)
        if value is None and name in _OPTIONAL_FLOATS:
            continue
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
              and math.isfinite(value)
              and (value > lo if lo_open else value >= lo)
              and (value < hi if hi_open else value <= hi))
        if not ok:
            low, high = ("(" if lo_open else "[") + f"{lo:g}", f"{hi:g}" + (")" if hi_open else "]")
            raise MoescaleError(f"`{name}` must be a finite number in {low}, {high}, got {value!r}"
                                if name != "lr" else f"lr must be positive and finite, got {value!r}")
    betas = c.betas
    if (not isinstance(betas, (tuple, list)) or len(betas) != 2
            or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas)):
        raise MoescaleError(f"betas must be two numbers in [0, 1), got {betas!r}")


def _check_device_name(device: str) -> None:
    if not isinstance(device, str) or not DEVICE_PATTERN.fullmatch(device):
        raise MoescaleError(f"`device` {device!r} is not supported; use cpu, cuda, cuda:N or mps")
