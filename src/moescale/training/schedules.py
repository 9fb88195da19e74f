"""Learning-rate schedules: linear warmup, then warmup-stable-decay or cosine.

- WSD (Hu et al. 2024, MiniCPM, arXiv:2404.06395; Hägele et al. 2024, arXiv:2405.18392):
  constant peak after warmup, linear decay to ``min_ratio · peak`` over the last
  ``decay_fraction`` of the steps.
- Cosine (Loshchilov & Hutter 2017): half a cosine from peak to ``min_ratio · peak``.
"""

from __future__ import annotations

import math

from moescale.errors import MoescaleError

SCHEDULES = ("wsd", "cosine", "constant")


def lr_at(step: int, total_steps: int, peak: float, schedule: str = "wsd", warmup_steps: int = 0,
          decay_fraction: float = 0.2, min_ratio: float = 0.1) -> float:
    """Learning rate of optimizer step ``step`` (0-based) out of ``total_steps``."""
    if schedule not in SCHEDULES:
        raise MoescaleError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    if schedule == "constant":
        return peak
    floor = peak * min_ratio
    if schedule == "cosine":
        span = max(total_steps - warmup_steps, 1)
        progress = min((step - warmup_steps) / span, 1.0)
        return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    decay_steps = max(int(round(decay_fraction * total_steps)), 1)
    decay_start = total_steps - decay_steps
    if step < decay_start:
        return peak
    progress = min((step - decay_start + 1) / decay_steps, 1.0)
    return peak + (floor - peak) * progress
