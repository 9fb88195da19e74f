"""Checkpoints written atomically: a temporary file in the same folder, flushed, then renamed
over the old one (``os.replace`` is atomic on POSIX), so a crash mid-write never corrupts the
last finished checkpoint."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from moescale.errors import MoescaleError

CHECKPOINT_NAME = "checkpoint.pt"


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# What every checkpoint written by the trainer holds (see Trainer._state).
REQUIRED_KEYS = ("model", "optimizer", "step", "tokens", "train_seconds", "initial_eval_loss",
                 "data", "rng", "architecture", "config", "total_steps")


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint (tensors and plain data only: nothing in it is executed); a missing,
    truncated or foreign file is a :class:`MoescaleError`."""
    path = Path(path)
    if not path.is_file():
        raise MoescaleError(f"no checkpoint to resume from at {path}; drop `resume` or fix `out`")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged or foreign file
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise MoescaleError(f"{path} is not a readable moescale checkpoint ({reason}); "
                            "it may be truncated or from another program — use a new `out` "
                            "or the run's own folder") from None
    if not isinstance(state, dict) or any(k not in state for k in REQUIRED_KEYS):
        missing = [k for k in REQUIRED_KEYS if not isinstance(state, dict) or k not in state]
        raise MoescaleError(f"{path} is not a moescale checkpoint (missing {', '.join(missing)})")
    return state


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
