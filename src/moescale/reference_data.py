"""Loaders for the public reference measurements that moescale is validated on.

The files live outside the repository (``../shared/data`` beside the project, or the folder in
``$MOESCALE_REFERENCE_DATA``); these functions read them in place and return
:class:`~moescale.runs.RunTable` objects in moescale's units.
"""

from __future__ import annotations

import os
from pathlib import Path

from moescale.errors import MoescaleError

# Clark et al. 2022 trained every model for 250k steps of 256 sequences × 2048 tokens
# (≈ 130B tokens at step 249,000; Clark et al. 2022, arXiv 2202.01169, §2).
CLARK_TOKENS_PER_STEP = 256 * 2048
CLARK_FINAL_STEP = 249_000


def reference_dir() -> Path:
    """The reference-data folder: ``$MOESCALE_REFERENCE_DATA``, else ``shared/data`` beside
    the working directory's repository (``../shared/data`` seen from the repository root, as
    the project lays it out; found by walking up from the current directory, so it works
    the same for an installed package)."""
    env = os.environ.get("MOESCALE_REFERENCE_DATA")
    root = Path(env) if env else _beside_repository(Path.cwd())
    if not root.is_dir():
        raise MoescaleError(f"reference data folder {root} not found; set MOESCALE_REFERENCE_DATA")
    return root


def _beside_repository(start: Path) -> Path:
    """``shared/data`` in the nearest parent of ``start`` that has one (else ``../shared/data``
    of ``start``, for the error message)."""
    for folder in (start, *start.parents):
        if (folder / "shared" / "data").is_dir():
            return folder / "shared" / "data"
    return start.parent / "shared" / "data"


def epoch_chinchilla(path: str | Path | None = None, drop_highest: int = 5):
    """Chinchilla's Figure-4 runs as extracted by Epoch AI (Besiroglu et al. 2024).

    ``N`` = model size, ``C`` = training FLOPs, ``D = C/(6N)``; the ``drop_highest``
    highest-loss points are dropped as in the replication (245 → 240 runs).
    """
    from moescale.runs import RunTable

    path = Path(path) if path else reference_dir() / "epoch_chinchilla_svg_extracted_data.csv"
    runs = RunTable.from_file(path, mapping={"Model Size": "N", "Training FLOP": "C"},
                              derive={"D": "C / (6 * N)"})
    keep = runs.frame["loss"].rank(method="first", ascending=False) > drop_highest
    return runs.subset(keep.to_numpy())


def clark2022(path: str | Path | None = None, routers=("Dense", "S-Base"), k: int = 1,
              routing_frequency: float | None = 0.5, step: int = CLARK_FINAL_STEP):
    """Clark et al. 2022 routed-LM runs at ``step`` (default: the final evaluation).

    Columns: ``N`` = dense-equivalent non-embedding parameters (``dense_parameter_count``),
    ``N_total``-like ``total_parameter_count`` kept as a tag, ``E`` = experts (1 for dense),
    ``K`` = top-k, ``D`` = step × 524,288 tokens, ``loss`` = validation loss. Top-1 routing
    activates one expert of the dense FFN's size, so ``N_active = N`` for ``k = 1`` runs.
    Filters: router types, top-k and routing frequency (``None`` keeps all).
    """
    import pandas as pd

    from moescale.runs import RunTable

    path = Path(path) if path else reference_dir() / "clark2022_routing" / "curves.csv"
    if not Path(path).is_file():
        raise MoescaleError(f"Clark et al. data not found: {path}")
    df = pd.read_csv(path)
    df = df[(df["step"] == step) & df["router_type"].isin(routers) & (df["k"] == k)]
    if routing_frequency is not None:
        df = df[df["routing_frequency"] == routing_frequency]
    frame = pd.DataFrame({
        "N": df["dense_parameter_count"], "N_active": df["dense_parameter_count"],
        "E": df["num_experts"], "K": df["k"], "D": df["step"] * float(CLARK_TOKENS_PER_STEP),
        "loss": df["loss_validation"], "router": df["router_type"],
        "total_params": df["total_parameter_count"], "size": df["model_size_label"],
        "seed": df["seed"], "routing_frequency": df["routing_frequency"],
    }).reset_index(drop=True)
    return RunTable.from_frame(frame, source=str(path))
