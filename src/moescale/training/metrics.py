"""Run metrics: expert load balance, hardware peaks for MFU, and a flushed JSONL log."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

# Dense bf16 tensor-core peak, FLOP/s (vendor datasheets; sparsity excluded).
PEAK_BF16_FLOPS = {
    "H200": 989e12,
    "H100": 989e12,  # SXM; the PCIe card is 756e12
    "A100": 312e12,
    "L40S": 362e12,
    "A10": 125e12,
    "L4": 121e12,
}


def peak_flops(device: torch.device) -> float | None:
    """bf16 peak of ``device`` if it is a known GPU (None on CPU or an unknown GPU)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    if "H100" in name and "PCIe" in name:
        return 756e12
    return next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)


def load_balance(load_LE: torch.Tensor) -> dict[str, float]:
    """Coefficient of variation (std/mean, averaged over MoE layers) and the worst max/mean."""
    if load_LE.numel() == 0:
        return {"load_cv": 0.0, "load_max_over_mean": 1.0}
    load = load_LE.double()
    mean = load.mean(dim=1).clamp_min(1e-12)
    cv = (load.std(dim=1, unbiased=False) / mean).mean().item()
    worst = (load.max(dim=1).values / mean).max().item()
    return {"load_cv": cv, "load_max_over_mean": worst}


class JsonlLog:
    """Append-only JSONL log; every line is flushed so a crash loses nothing written."""

    def __init__(self, path: Path | None) -> None:
        self.path = Path(path) if path else None
        self._f = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._f = open(self.path, "a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        if self._f is not None:
            clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                     for k, v in record.items()}
            self._f.write(json.dumps(clean) + "\n")
            self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None
