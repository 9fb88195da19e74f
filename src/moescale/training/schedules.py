"""Learning-rate schedules: linear warmup, then warmup-stable-decay or cosine.

- WSD (Hu et al. 2024, MiniCPM, arXiv:2404.06395; Hägele et al. 2024, arXiv:2405.18392):
  constant peak after warmup, then a decay to ``min_ratio · peak`` over the last
  ``decay_fraction`` of the steps, ``linear`` or ``1-sqrt`` (Hägele et al. §3:
  ``peak − (peak − floor)·sqrt(progress)``, which they find better than linear).
- Cosine (Loshchilov & Hutter 2017): half a cosine from peak to ``min_ratio · peak``.
"""

from __future__ import annotations

import math

from moescale.errors import MoescaleError

SCHEDULES = ("wsd", "cosine", "constant")
COOLDOWNS = ("linear", "1-sqrt")  # shapes of the WSD decay


def lr_at(step: int, total_steps: int, peak: float, schedule: str = "wsd", warmup_steps: int = 0,
          decay_fraction: float = 0.2, min_ratio: float = 0.1, cooldown: str = "linear") -> float:
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
    if cooldown == "1-sqrt":
        return peak + (floor - peak) * math.sqrt(progress)
    return peak + (floor - peak) * progress
