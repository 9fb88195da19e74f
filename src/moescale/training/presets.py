"""The small debug architectures of the trainer, kept under their old import path; they live in
:mod:`moescale.presets` (one namespace for every command)."""

from moescale.presets import DEBUG_PRESETS as PRESETS
from moescale.presets import get_preset, gpu_100m, small, small_shared, tiny

__all__ = ["PRESETS", "get_preset", "gpu_100m", "small", "small_shared", "tiny"]
