"""Power laws of one variable: optimal quantities in ``C`` (holistic paper) and the
batch-size and learning-rate laws in the loss (Wang et al. 2024).

- ``power_law_C`` — ``y = k·C^p``, fit-only: optimal ``M/N_a``, ``N/N_a``, ``d_opt``, band edges
  … as functions of the budget (holistic paper, phase 1 and 2). Map the fitted column to ``y``.
- ``holistic2026_lr`` / ``holistic2026_batch`` — peak LR and global batch (tokens) in ``C``;
  presets are the least-squares fits to Table 4 of Wan et al. 2026 (arXiv 2603.21862).
- ``wang2024_batch`` / ``wang2024_lr`` — ``B_opt = λ_B·L^(−α_B)``, ``η_opt = λ_η·L^(−α_η)``
  (Wang et al. 2024, arXiv 2410.05661), fit-only; ``p`` is the exponent ``α``.
"""

from __future__ import annotations

from moescale.laws import holistic2026 as hol
from moescale.laws._forms import power_law
from moescale.laws.base import Preset

_WAN = "Wan et al. 2026 (arXiv 2603.21862), Table 4"
_WANG = "Wang et al. 2024, Dense vs MoE scaling laws (arXiv 2410.05661)"

POWER_LAW_C = power_law("power_law_C", "C", "y", "generic (holistic paper's optimum laws)",
                        "y = k·C^p")
HOLISTIC_LR = power_law(
    "holistic2026_lr", "C", "lr", _WAN, "LR = k·C^p",
    {"wan2026": Preset(dict(zip(("k", "p"), hol._FITS["lr"], strict=True)), _WAN,
                       "least-squares fit in log space to the six Table 4 learning rates",
                       ranges={"C": (1e18, 3e20)})})
HOLISTIC_BATCH = power_law(
    "holistic2026_batch", "C", "batch_size", _WAN, "batch (tokens) = k·C^p",
    {"wan2026": Preset({"k": hol._FITS["batch"][0] * 8192, "p": hol._FITS["batch"][1]}, _WAN,
                       "Table 4 batches of 8192-token sequences, in tokens",
                       ranges={"C": (1e18, 3e20)})})
WANG_BATCH = power_law("wang2024_batch", "loss", "batch_size", _WANG,
                       "B_opt = k·L^(−p)", sign=-1.0)
WANG_LR = power_law("wang2024_lr", "loss", "lr", _WANG, "lr_opt = k·L^(−p)", sign=-1.0)
