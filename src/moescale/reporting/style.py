"""One look for every figure: a colour-blind-safe palette, labelled axes with units, log scales.

matplotlib is imported lazily (``moescale report`` is the only command that needs it) and always
with the non-interactive Agg backend, so figures render on machines without a display.

- categorical colours: Okabe & Ito (2008), safe for the common colour-vision deficiencies;
- ordered colours (budgets, sizes): viridis without its palest end (perceptually uniform,
  readable in grey and on white);
- diverging / heat maps: cividis (designed for deuteranopia and protanopia).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442",
             "#000000")
SEQUENTIAL = "viridis"
HEATMAP = "cividis"
WIDTH, HEIGHT = 7.0, 4.4  # inches: legible at the page's width (≈ 700 px at 100 dpi)
DPI = 110
HELD_OUT = OKABE_ITO[3]  # vermillion marks held-out runs everywhere
FIT = OKABE_ITO[0]  # blue marks fitted laws everywhere

_RC = {
    "figure.dpi": DPI, "savefig.dpi": DPI, "font.size": 10, "axes.titlesize": 11,
    "axes.labelsize": 10, "legend.fontsize": 8.5, "legend.frameon": False,
    "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
    "grid.alpha": 0.25, "grid.linewidth": 0.6, "lines.linewidth": 1.6, "lines.markersize": 5,
    "svg.fonttype": "none", "svg.hashsalt": "moescale", "path.simplify": True,
    "agg.path.chunksize": 20000,
}

# Axis labels with units, by column name (the run-table and sweep-store names).
LABELS = {
    "N": "total parameters N", "N_active": "active parameters $N_a$",
    "N_ne": "non-embedding parameters", "N_active_ne": "active non-embedding parameters",
    "D": "training tokens D", "tokens": "training tokens", "C": "training compute C (FLOPs)",
    "flops": "training compute (FLOPs)", "budget": "compute budget (FLOPs)",
    "loss": "loss (nats/token)", "eval_loss": "eval loss (nats/token)",
    "train_loss": "train loss (nats/token)", "E": "routed experts E",
    "M_over_Na": "$M/N_a$ (FLOPs per token per active parameter)",
    "N_over_Na": "$N/N_a$ (total / active parameters)", "d": "hidden size d",
    "m_over_na": "$M/N_a$ (FLOPs per token per active parameter)",
    "n_over_na": "$N/N_a$ (total / active parameters)",
}


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend with moescale's style applied."""
    import matplotlib

    if matplotlib.get_backend().lower() != "agg":
        matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    matplotlib.rcParams.update(_RC)
    matplotlib.rcParams["axes.prop_cycle"] = matplotlib.cycler(color=list(OKABE_ITO))
    return plt


def figure(ncols: int = 1, nrows: int = 1, width: float = WIDTH, height: float = HEIGHT,
           **kw) -> tuple[Any, Any]:
    """A new figure (not registered with pyplot's global state, so nothing leaks)."""
    pyplot()
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=True, **kw)
    return fig, axes


def label(name: str) -> str:
    """The axis label of a column (with its unit), or the column name itself."""
    return LABELS.get(name, text(name))


def text(value: Any) -> str:
    """A user-supplied string made safe for matplotlib text (no mathtext from ``$``)."""
    return str(value).replace("$", r"\$")


def sequential(n: int) -> list:
    """``n`` ordered colours (dark → light, palest yellow left out)."""
    plt = pyplot()
    cmap = plt.get_cmap(SEQUENTIAL)
    if n <= 1:
        return [cmap(0.35)]
    return [cmap(0.88 * i / (n - 1)) for i in range(n)]


def budget_norm(values: Sequence[float]):
    """A log colour scale over ``values`` (compute budgets) with viridis."""
    pyplot()
    from matplotlib.colors import LogNorm, Normalize

    lo, hi = float(min(values)), float(max(values))
    if lo <= 0 or hi <= lo:
        return Normalize(vmin=lo - 1, vmax=hi + 1)
    return LogNorm(vmin=lo, vmax=hi * (hi / lo) ** 0.14)  # keep the top clear of pale yellow


def sci(x: float | None, digits: int = 2) -> str:
    """``3e+20`` → ``3e20``: plain text for legends and titles."""
    if x is None or not math.isfinite(x):
        return "-"
    s = f"{x:.{digits}g}"
    if "e" in s:
        mantissa, exp = s.split("e")
        return f"{mantissa}e{int(exp)}"
    return s


def human(x: float, digits: int = 3) -> str:
    """46.7B, 131M, 12.3K: parameter and token counts for labels."""
    if x is None or not math.isfinite(x):
        return "-"
    for scale, suffix in ((1e15, "P"), (1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(x) >= scale:
            return f"{x / scale:.{digits}g}{suffix}"
    return f"{x:.{digits}g}"


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def power_of_ten(value: float, mantissa: bool = True) -> str:
    """``1e19`` → ``10¹⁹``, ``3e8`` → ``3×10⁸`` (plain text: no mathtext to parse)."""
    if value <= 0 or not math.isfinite(value):
        return ""
    exp = math.floor(math.log10(value) + 1e-9)
    m = value / 10**exp
    sup = str(exp).translate(_SUPERSCRIPT)
    if abs(m - 1) < 1e-6:
        return f"10{sup}"
    return f"{m:.2g}×10{sup}" if mantissa else ""


def logscale(ax, axis: str = "x", base: float = 10) -> None:
    """Log scale with plain-text tick labels (10¹⁹; 2×10⁸ on short axes): as legible as
    matplotlib's mathtext labels and much faster to lay out."""
    from matplotlib.ticker import FuncFormatter

    getattr(ax, f"set_{axis}scale")("log", base=base)
    target = ax.xaxis if axis == "x" else ax.yaxis
    if base != 10:
        target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        return

    def minor(v, _):
        lo, hi = sorted(getattr(ax, f"get_{axis}lim")())
        if lo <= 0 or math.log10(hi / lo) > 1.3:
            return ""
        m = round(v / 10 ** math.floor(math.log10(v) + 1e-9), 6)
        return power_of_ten(v) if m in (2.0, 3.0, 5.0) else ""

    target.set_major_formatter(FuncFormatter(lambda v, _: power_of_ten(v)))
    target.set_minor_formatter(FuncFormatter(minor))


def log10_axis(ax, axis: str, lo: float, hi: float) -> None:
    """Ticks of a log axis for data already drawn as ``log10(value)`` on a linear axis: much
    faster for thousands of paths (no per-path non-affine transform), same look as
    :func:`logscale`."""
    from matplotlib.ticker import FixedLocator, FuncFormatter

    target = ax.xaxis if axis == "x" else ax.yaxis
    first, last = math.floor(lo), math.ceil(hi)
    major = [k for k in range(first, last + 1) if lo - 1e-9 <= k <= hi + 1e-9]
    minor = [k + math.log10(m) for k in range(first, last + 1) for m in range(2, 10)
             if lo <= k + math.log10(m) <= hi]
    target.set_major_locator(FixedLocator(major))
    target.set_minor_locator(FixedLocator(minor))
    target.set_major_formatter(FuncFormatter(lambda v, _: power_of_ten(10**v)))
    short = hi - lo <= 1.3
    target.set_minor_formatter(FuncFormatter(
        lambda v, _: power_of_ten(10**v) if short and round(10 ** (v % 1), 3) in (2, 3, 5)
        else ""))
    ax.tick_params(axis=axis, which="minor", length=2.5)


def note(ax, message: str, loc: str = "lower left") -> None:
    """A small grey note inside the axes (what was drawn, what was left out)."""
    positions = {"lower left": (0.01, 0.02, "left", "bottom"),
                 "upper right": (0.99, 0.98, "right", "top"),
                 "upper left": (0.01, 0.98, "left", "top"),
                 "lower right": (0.99, 0.02, "right", "bottom")}
    x, y, ha, va = positions[loc]
    ax.text(x, y, message, transform=ax.transAxes, ha=ha, va=va, fontsize=7.5, color="0.35")


_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_name(name: str) -> str:
    """A file-name-safe version of a figure name (letters, digits, ``_ . -`` only)."""
    cleaned = _SAFE.sub("_", name).strip("._") or "figure"
    return cleaned[:80]


def save(fig, directory: str | Path, name: str,
         formats: Sequence[str] = ("png", "svg")) -> list[Path]:
    """Write ``fig`` as ``directory/name.png`` and ``.svg``; returns the paths written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = directory / f"{safe_name(name)}.{fmt}"
        kw = {"metadata": {"Date": None}} if fmt == "svg" else {}
        fig.savefig(path, format=fmt, **kw)
        paths.append(path)
    return paths
