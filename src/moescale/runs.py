"""A validated table of scaling-law runs with explicit units (issue 3, "Run tables").

Canonical numeric columns and their units (:data:`UNITS`):

==============  =========================================================
``N``           total parameters (count; which ones a law's convention says)
``N_active``    active parameters per token (count); ``N_a``, ``N_act``, ``active_params``
``D``           training tokens; ``tokens``
``E``           routed experts per MoE layer (1 = dense); ``experts``
``K``           routed experts per token (top-k); ``top_k``
``G``           activated experts per token, shared included (or granularity, Krajewski)
``S``           shared experts as a fraction of the activated ones, in [0, 1]
``M``           training FLOPs per token
``C``           training FLOPs; ``compute``, ``flops``
``loss``        loss in nats per token
``lr``          peak learning rate; ``batch_size`` global batch (tokens); ``d`` hidden size
==============  =========================================================

Every other column is kept as a free-form tag. Loaders: CSV/TSV, Parquet, JSONL, JSON list.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from moescale.errors import MoescaleError

UNITS = {"N": "parameters", "N_active": "parameters", "D": "tokens", "E": "experts",
         "K": "experts", "G": "experts", "S": "fraction", "M": "FLOPs/token", "C": "FLOPs",
         "loss": "nats/token", "lr": "1", "batch_size": "tokens", "d": "features"}
ALIASES = {"N_a": "N_active", "N_act": "N_active", "active_params": "N_active",
           "tokens": "D", "compute": "C", "flops": "C", "experts": "E", "top_k": "K"}
# Derived when absent (in order), from the first formula whose inputs are present.
AUTO_DERIVE = (("D", ("C / (6 * N_active)", "C / (6 * N)")),
               ("C", ("6 * N_active * D", "6 * N * D")), ("M", ("C / D",)))


class RunTable:
    """Runs in canonical columns; build with :meth:`from_file` or :meth:`from_frame`."""

    def __init__(self, frame: pd.DataFrame, source: str, derived: list[str]):
        self.frame, self.source, self.derived = frame.reset_index(drop=True), source, derived

    @classmethod
    def from_file(cls, path, mapping: Mapping[str, str] | None = None,
                  derive: Mapping[str, str] | None = None) -> RunTable:
        """Load CSV/TSV, Parquet, JSONL/NDJSON or a JSON list of objects."""
        return cls.from_frame(_read(Path(path)), mapping, derive, source=str(path))

    @classmethod
    def from_frame(cls, df: pd.DataFrame, mapping: Mapping[str, str] | None = None,
                   derive: Mapping[str, str] | None = None, source: str = "<frame>") -> RunTable:
        """Rename (``mapping``: source column → canonical name), apply aliases, derive columns."""
        df = df.copy()
        missing = [c for c in (mapping or {}) if c not in df.columns]
        if missing:
            raise MoescaleError(f"--map names column {missing[0]!r}, which {source} does not "
                                f"have (columns: {', '.join(map(str, df.columns))})")
        df = df.rename(columns=dict(mapping or {}))
        df = df.rename(columns={a: c for a, c in ALIASES.items()
                                if a in df.columns and c not in df.columns})
        for c in df.columns:  # integers as float64: 6·N·D overflows int64 past 9.2e18
            if pd.api.types.is_integer_dtype(df[c]):
                df[c] = df[c].astype(float)
        derived = []
        for name, expr in (derive or {}).items():
            df[name] = _eval(df, expr, name)
            derived.append(name)
        for name, formulas in AUTO_DERIVE:
            if name in df.columns:
                continue
            for expr in formulas:  # only from numeric inputs; bad ones are reported by require()
                if all(c in df.columns and pd.api.types.is_numeric_dtype(df[c])
                       for c in _names(expr)):
                    df[name] = _eval(df, expr, name)
                    derived.append(name)
                    break
        return cls(df, source, derived)

    def __len__(self) -> int:
        return len(self.frame)

    def require(self, names: Iterable[str], target: str = "loss") -> RunTable:
        """Check that ``names`` and ``target`` are present, numeric, finite, positive (``S`` in
        [0, 1]) and that no run is listed twice; one clear error otherwise."""
        cols = [ALIASES.get(n, n) for n in [*names, target]]
        for c in cols:
            if c not in self.frame.columns:
                raise MoescaleError(f"column {c!r} is missing; the runs have: "
                                    f"{', '.join(map(str, self.frame.columns))} "
                                    f"(rename one with --map \"COLUMN={c}\")")
            values = pd.to_numeric(self.frame[c], errors="coerce").to_numpy(float)
            _check(c, values, ~np.isfinite(values), "is not a finite number")
            bad = (values < 0) | (values > 1) if c == "S" else values <= 0
            _check(c, values, bad, "must be in [0, 1]" if c == "S" else "must be positive")
        dup = self.frame.duplicated(subset=cols, keep=False).to_numpy()
        if dup.any():
            raise MoescaleError(f"runs listed twice (same {', '.join(cols)}): rows "
                                f"{_rows(dup)}")
        return self

    def arrays(self, names: Iterable[str]) -> dict[str, np.ndarray]:
        """Float arrays by variable name (``N_a`` and the other aliases work too)."""
        return {n: self.frame[ALIASES.get(n, n)].to_numpy(dtype=float) for n in names}

    def target(self, name: str = "loss") -> np.ndarray:
        return self.frame[ALIASES.get(name, name)].to_numpy(dtype=float)

    def subset(self, rows) -> RunTable:
        """The runs at a boolean mask or integer positions."""
        rows = np.asarray(rows)
        frame = self.frame[rows] if rows.dtype == bool else self.frame.iloc[rows]
        return RunTable(frame, self.source, self.derived)

    def data_hash(self) -> str:
        """SHA-256 of the content: columns sorted by name, values as text; not the file format."""
        frame = self.frame[sorted(map(str, self.frame.columns))]
        text = frame.to_csv(index=False, float_format="%.17g")
        return hashlib.sha256(text.encode()).hexdigest()

    def to_dict(self) -> dict:
        return {"source": self.source, "n_runs": len(self), "columns": list(self.frame.columns),
                "units": {c: UNITS[c] for c in self.frame.columns if c in UNITS},
                "derived": self.derived, "hash": self.data_hash()}


def parse_mapping(items: Iterable[str]) -> dict[str, str]:
    """``["Model Size=N"]`` → ``{"Model Size": "N"}`` (the CLI's ``--map``)."""
    return parse_pairs(items, "--map", "COLUMN=NAME")


def parse_derive(items: Iterable[str]) -> dict[str, str]:
    """``["D=C/(6*N)"]`` → ``{"D": "C/(6*N)"}`` (the CLI's ``--derive``)."""
    return parse_pairs(items, "--derive", "NAME=EXPRESSION")


def parse_pairs(items: Iterable[str], flag: str, form: str = "NAME=VALUE") -> dict[str, str]:
    """``["a=1", "b = x"]`` → ``{"a": "1", "b": "x"}``; a malformed item is one clear error."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise MoescaleError(f"{flag} {item!r} must look like {form}")
        out[key.strip()] = value.strip()
    return out


def _read(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise MoescaleError(f"file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            df = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
        elif suffix == ".parquet":
            try:
                import pyarrow  # noqa: F401
            except ModuleNotFoundError:
                raise MoescaleError("reading Parquet needs pyarrow: "
                                    "pip install 'moescale[parquet]'") from None
            df = pd.read_parquet(path)
        elif suffix in (".jsonl", ".ndjson"):
            df = pd.read_json(path, lines=True)
        elif suffix == ".json":
            df = pd.read_json(path, orient="records")
        else:
            raise MoescaleError(f"{path}: unknown file type {suffix or '(none)'}; use .csv, .tsv, "
                                ".parquet, .jsonl or .json")
    except (ValueError, pd.errors.ParserError) as exc:
        if isinstance(exc, MoescaleError):
            raise
        raise MoescaleError(f"{path} could not be read: {str(exc).splitlines()[0]}") from None
    if df.empty:
        raise MoescaleError(f"{path} holds no runs")
    return df


def _names(expr: str) -> list[str]:
    import re

    return re.findall(r"[A-Za-z_]\w*", expr)


def _eval(df: pd.DataFrame, expr: str, name: str) -> pd.Series:
    missing = [c for c in _names(expr) if c not in df.columns]
    if missing:
        raise MoescaleError(f"--derive {name}={expr}: column {missing[0]!r} is missing "
                            f"(columns: {', '.join(map(str, df.columns))})")
    try:
        return pd.to_numeric(df.eval(expr), errors="coerce")
    except Exception as exc:  # pandas raises many types for a bad expression
        raise MoescaleError(f"--derive {name}={expr} failed: {exc}") from None


def _check(column: str, values: np.ndarray, bad: np.ndarray, what: str) -> None:
    if bad.any():
        raise MoescaleError(f"column {column!r} {what} in rows {_rows(bad)} "
                            f"(e.g. {values[bad][0]!r})")


def _rows(mask: np.ndarray) -> str:
    """1-based data-row numbers of ``mask``, at most ten."""
    rows = np.flatnonzero(mask) + 1
    return ", ".join(map(str, rows[:10])) + (f" and {rows.size - 10} more" if rows.size > 10 else "")
