"""The adaptive-sweep figure: how fast the uncertainty of the target optimum shrinks with the
FLOPs spent, for runs chosen by :mod:`moescale.sweeps.suggest` against a regular isoFLOP grid
(the comparison ``benchmarks/bench_adaptive.py --json`` writes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from moescale.errors import MoescaleError
from moescale.reporting import style


def load_adaptive(path: str | Path) -> dict[str, Any]:
    """A comparison written by ``benchmarks/bench_adaptive.py --json``."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MoescaleError(f"adaptive comparison not found: {p}") from None
    except (json.JSONDecodeError, UnicodeDecodeError, IsADirectoryError):
        raise MoescaleError(f"{p} is not a JSON adaptive comparison") from None
    try:
        rounds = np.asarray(data["rounds"], dtype=float)
    except (KeyError, TypeError, ValueError):
        rounds = None
    if rounds is None or rounds.ndim != 3 or rounds.shape[2] != 4 or rounds.size == 0:
        raise MoescaleError(f"{p} needs 'rounds': seeds × rounds × [grid FLOPs, grid width, "
                            "suggested FLOPs, suggested width] (the JSON that "
                            "benchmarks/bench_adaptive.py writes)")
    return {**data, "rounds": rounds}


def adaptive_figure(data: dict[str, Any]):
    """Interval width of the target quantity against FLOPs spent: every seed (thin) and the
    mean (thick), regular grid against suggested runs."""
    rounds = np.asarray(data["rounds"], dtype=float)  # (seeds, rounds, 4)
    fig, ax = style.figure()
    for col, (c, w, name) in enumerate(((0, 1, "regular isoFLOP grid"),
                                        (2, 3, "suggested (sweep suggest)"))):
        colour = style.OKABE_ITO[col]
        for seed in rounds:
            ax.plot(seed[:, c], seed[:, w], color=colour, alpha=0.25, lw=1)
        mean = rounds.mean(axis=0)
        ax.plot(mean[:, c], mean[:, w], "o-", color=colour, lw=2, label=f"{name}, mean")
    style.logscale(ax, "x")
    ax.set_xlabel("training FLOPs spent (all runs)")
    ax.set_ylabel(style.text(data.get("quantity", "95 % interval width of ln N_opt")))
    ax.set_title(style.text(data.get("title", "adaptive sweep against a regular grid")))
    ax.legend()
    return fig
