"""A validated table of scaling-law runs with explicit units.

Canonical numeric columns and their units (:data:`UNITS`); aliases accepted in files after
the semicolon:

==============  =========================================================================
``N``           total parameters (count; which ones a law's convention says)
``N_active``    active parameters per token (count); ``N_a``, ``N_act``, ``active_params``
``D``           training tokens (count); ``tokens``
``E``           routed experts per MoE layer (count; 1 = dense); ``experts``
``K``           routed experts per token, top-k (count); ``top_k``
``G``           activated experts per token, shared included (count)
``S``           shared experts as a fraction of the activated ones (in [0, 1]; 0 allowed)
``M``           training FLOPs per token (FLOPs/token)
``C``           training FLOPs (FLOPs); ``compute``, ``flops``
``loss``        loss (nats/token)
``lr``          peak learning rate (optional target; 1)
``batch_size``  global batch (optional target; tokens)
``d``           hidden size (features)
==============  =========================================================================

Every other column is kept as a free-form tag (strings or numbers). Loaders by extension:
``.csv``/``.tsv``, ``.parquet`` (needs pyarrow), ``.jsonl``/``.ndjson`` (one object per line),
``.json`` (a list of objects). Missing columns are derived when possible:
``D = C/(6·N_active)`` (or ``C/(6·N)``), ``C = 6·N_active·D`` (or ``6·N·D``), ``M = C/D``.

>>> import pandas as pd
>>> runs = RunTable.from_frame(pd.DataFrame({"Model Size": [1e8, 2e8], "C": [6e17, 2.4e18],
...                                          "loss": [3.0, 2.8]}), mapping={"Model Size": "N"})
>>> runs.require(["N", "D"]).arrays(["D"])["D"].tolist(), runs.derived
([1000000000.0, 2000000000.0], ['D', 'M'])
"""

from __future__ import annotations

import hashlib
import io
import json
import keyword
import re
import tokenize
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
# Derived when absent (in order), with the first formula whose inputs are all present.
AUTO_DERIVE = (("D", ("C / (6 * N_active)", "C / (6 * N)")),
               ("C", ("6 * N_active * D", "6 * N * D")), ("M", ("C / D",)))
# Exact decimal → float parsing, as the JSON reader does (pandas 3 does it by default).
_CSV_EXACT = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}
_FORMATS = {".csv": "CSV", ".tsv": "TSV", ".parquet": "Parquet", ".jsonl": "JSON lines",
            ".ndjson": "JSON lines", ".json": "JSON"}


class RunTable:
    """Runs in canonical columns (units in :data:`UNITS`); build with :meth:`from_file` or
    :meth:`from_frame`, then :meth:`require` the columns a law needs.

    Attributes: ``frame`` (canonical names, index 0..n-1), ``source`` (file path or
    ``"<frame>"``), ``derived`` (columns computed by ``derive`` or automatically).
    """

    def __init__(self, frame: pd.DataFrame, source: str, derived: list[str],
                 rows: np.ndarray | None = None):
        self.frame = frame.reset_index(drop=True)
        self.source, self.derived = source, list(derived)
        # 1-based data-row numbers in the source, so errors after subset() still point there.
        self._rows = np.arange(1, len(frame) + 1) if rows is None else np.asarray(rows)

    @classmethod
    def from_file(cls, path, mapping: Mapping[str, str] | None = None,
                  derive: Mapping[str, str] | None = None) -> RunTable:
        """Load CSV/TSV, Parquet, JSONL/NDJSON or a JSON list of objects (by extension)."""
        if not isinstance(path, (str, Path)):
            raise MoescaleError(f"`path` must be a file path, got {type(path).__name__}")
        return cls.from_frame(_read(Path(path)), mapping, derive, source=str(path))

    @classmethod
    def from_frame(cls, df, mapping: Mapping[str, str] | None = None,
                   derive: Mapping[str, str] | None = None, source: str = "<frame>") -> RunTable:
        """Rename (``mapping``: source column → canonical name), apply aliases, make numbers
        float64, add ``derive`` columns (name → ``DataFrame.eval`` expression), then the
        automatic ones."""
        frame = _as_numbers(_rename(pd.DataFrame(df).copy(), dict(mapping or {}), source))
        derived = [_derive(frame, name, expr) for name, expr in (derive or {}).items()]
        return cls(frame, source, [*dict.fromkeys(derived), *_auto_derive(frame)])

    def __len__(self) -> int:
        return len(self.frame)

    def __repr__(self) -> str:
        return f"RunTable({len(self)} runs from {self.source}: {', '.join(self.columns)})"

    @property
    def columns(self) -> list[str]:
        return [str(c) for c in self.frame.columns]

    def require(self, names: Iterable[str], target: str = "loss") -> RunTable:
        """Check that ``names`` and ``target`` are present, numeric, finite and positive (``S``
        in [0, 1]) and that no run is listed twice; one clear error otherwise. Returns self."""
        cols = list(dict.fromkeys(ALIASES.get(n, n) for n in [*names, target]))
        values = pd.DataFrame({c: self._checked(c) for c in cols})
        dup = values.duplicated(keep=False).to_numpy()
        if dup.any():
            raise MoescaleError(f"duplicate runs (identical {', '.join(cols)}) in rows "
                                f"{_rows(self._rows[dup])}; drop or tag them apart")
        return self

    def check_domains(self, law) -> RunTable:
        """Every variable ``law`` uses inside its domain (:class:`moescale.laws.base.Domain`
        with realistic magnitudes: whole numbers of experts, at least one parameter and token,
        a shared fraction in [0, 1], …) and the law's relations between variables (N_a ≤ N);
        one error naming the column and the rows otherwise. Returns self."""
        values = {}
        for name in law.variables:
            col = ALIASES.get(name, name)
            values[name] = v = self._floats(col)
            problem = law.domain(name).violation(v, strict=True)
            if problem is not None:
                bad, rule = problem
                raise MoescaleError(f"column {col!r} {rule} in rows {_rows(self._rows[bad])} "
                                    f"(e.g. {_show(v[bad][0])})")
        for a, op, b in law.relations:
            bad = values[a] > values[b] if op == "<=" else values[a] >= values[b]
            if bad.any():
                ca, cb = ALIASES.get(a, a), ALIASES.get(b, b)
                raise MoescaleError(f"column {ca!r} must be {op} column {cb!r} (law {law.name!r}) "
                                    f"in rows {_rows(self._rows[bad])}")
        return self

    def arrays(self, names: Iterable[str]) -> dict[str, np.ndarray]:
        """Float arrays keyed by the names asked for (``N_a`` and other aliases work too)."""
        return {n: self._floats(ALIASES.get(n, n)) for n in names}

    def target(self, name: str = "loss") -> np.ndarray:
        """The target column (default ``loss``, nats/token) as a float array."""
        return self._floats(ALIASES.get(name, name))

    def subset(self, rows) -> RunTable:
        """The runs at a boolean mask or integer positions, re-indexed 0..k-1."""
        rows = np.asarray(rows)
        if rows.dtype == bool:
            if rows.shape != (len(self),):
                raise ValueError(f"mask of shape {rows.shape} for {len(self)} runs")
            rows = np.flatnonzero(rows)
        rows = rows.astype(np.intp) if rows.size == 0 else rows
        return RunTable(self.frame.iloc[rows], self.source, self.derived, self._rows[rows])

    def data_hash(self) -> str:
        """SHA-256 (hex) of the content: every column sorted by name, numbers at full
        precision, rows in order; independent of the file format and the column order."""
        frame = self.frame[sorted(self.columns)]
        text = frame.to_csv(index=False, float_format="%.17g", lineterminator="\n")
        return hashlib.sha256(text.encode()).hexdigest()

    def to_dict(self) -> dict:
        """Summary: source, n_runs, columns, units of the canonical ones, tags, derived, hash."""
        return {"source": self.source, "n_runs": len(self), "columns": self.columns,
                "units": {c: UNITS[c] for c in self.columns if c in UNITS},
                "tags": [c for c in self.columns if c not in UNITS],
                "derived": list(self.derived), "hash": self.data_hash()}

    def _column(self, name: str) -> pd.Series:
        if name not in self.frame.columns:
            where = "the table" if self.source == "<frame>" else "the file"
            raise MoescaleError(f"column {name!r} is missing; {where} has: "
                                f"{_listing(self.columns)} (rename one to {name!r} "
                                "with `mapping`, or compute it with `derive`)")
        return self.frame[name]

    def _floats(self, name: str) -> np.ndarray:
        raw = self._column(name)
        try:
            return raw.to_numpy(dtype=float)
        except (TypeError, ValueError):
            raise MoescaleError(f"column {name!r} is not numeric (e.g. "
                                f"{_show(raw.iloc[0])})") from None

    def _checked(self, name: str) -> np.ndarray:
        raw = self._column(name)
        if pd.api.types.is_bool_dtype(raw):
            values = np.full(len(raw), np.nan)
        else:
            values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
        self._check(name, raw, ~np.isfinite(values), "is not a finite number")
        if name == "S":
            self._check(name, raw, (values < 0) | (values > 1), "must be in [0, 1]")
        else:
            self._check(name, raw, values <= 0, "must be positive")
        if name in LOSS_COLUMNS:
            self._check(name, raw, values > MAX_LOSS,
                        f"must be at most {MAX_LOSS:g} nats/token (a cross-entropy loss; "
                        "a perplexity or another unit?)")
        return values

    def _check(self, name: str, raw: pd.Series, bad: np.ndarray, what: str) -> None:
        if bad.any():
            raise MoescaleError(f"column {name!r} {what} in rows {_rows(self._rows[bad])} "
                                f"(e.g. {_show(raw.to_numpy()[bad][0])})")


LOSS_COLUMNS = ("loss", "best_loss", "train_loss")
MAX_LOSS = 1e3  # nats/token: ln(vocabulary) is below 17 for any tokenizer; far above, a loss
#                 overflows the fit's exp/log space (numpy warnings, a meaningless fit)


# -- loading -------------------------------------------------------------------------------

def read_frame(path: str | Path) -> pd.DataFrame:
    """A runs file (CSV, TSV, Parquet, JSON lines or JSON) as a frame, columns as written (a
    ``sweep export`` file reads back as the store's runs); every user mistake is one
    :class:`MoescaleError` line."""
    return _read(Path(path))


def _read(path: Path) -> pd.DataFrame:
    """The file as a frame; every user mistake is one MoescaleError line."""
    if not path.is_file():
        raise MoescaleError(f"file not found: {path}" if not path.exists()
                            else f"{path} is not a file")
    suffix = path.suffix.lower()
    if suffix not in _FORMATS:
        raise MoescaleError(f"{path}: unknown file type {suffix or '(no extension)'}; use "
                            ".csv, .tsv, .parquet, .jsonl, .ndjson or .json")
    if path.stat().st_size == 0:
        raise MoescaleError(f"{path} is empty")
    try:
        df = _READERS[suffix](path)
    except MoescaleError:
        raise
    except (ValueError, OSError, pd.errors.ParserError) as exc:  # JSON, Arrow, CSV, decoding
        raise MoescaleError(f"{path} could not be read as {_FORMATS[suffix]}: "
                            f"{_first_line(exc)}") from None
    if df.empty:
        raise MoescaleError(f"{path} holds no runs")
    return df


def _read_csv(path: Path, sep: str = ",") -> pd.DataFrame:
    try:
        return pd.read_csv(path, sep=sep, skipinitialspace=True, **_CSV_EXACT)
    except pd.errors.EmptyDataError:
        raise MoescaleError(f"{path} is empty") from None


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise MoescaleError(f"reading {path} needs pyarrow: "
                            "pip install moescale[parquet]") from None
    return pd.read_parquet(path, engine="pyarrow")


def _read_jsonl(path: Path) -> pd.DataFrame:
    records = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if line.strip():
                records.append(_json_record(path, line, f"line {number}"))
    return pd.DataFrame.from_records(records)


def _read_json(path: Path) -> pd.DataFrame:
    data = _json(path, path.read_text(encoding="utf-8"), "")
    if not isinstance(data, list):
        raise MoescaleError(f"{path} must hold a JSON list of objects, one per run "
                            "(or use .jsonl with one object per line)")
    records = [_json_record(path, item, f"item {i}") for i, item in enumerate(data, start=1)]
    return pd.DataFrame.from_records(records)


def _json(path: Path, text: str, where: str):
    try:  # Python's parser rounds exactly; integers as floats (6·N·D overflows int64)
        return json.loads(text, parse_int=float)
    except json.JSONDecodeError as exc:
        at = (f"{where}, character {exc.pos + 1}" if where
              else f"line {exc.lineno}, column {exc.colno}")
        raise MoescaleError(f"{path} is not valid JSON at {at}: {exc.msg}") from None


def _json_record(path: Path, item, where: str) -> dict:
    record = _json(path, item, where) if isinstance(item, str) else item
    if not isinstance(record, dict):
        raise MoescaleError(f"{path} {where} is not a JSON object (one run per object)")
    return record


_READERS = {".csv": _read_csv, ".tsv": lambda p: _read_csv(p, "\t"), ".parquet": _read_parquet,
            ".jsonl": _read_jsonl, ".ndjson": _read_jsonl, ".json": _read_json}


# -- canonical columns ---------------------------------------------------------------------

def _rename(df: pd.DataFrame, mapping: dict, source: str) -> pd.DataFrame:
    """Apply ``mapping`` then the aliases; two columns with one name is an error."""
    df.columns = [str(c).strip() for c in df.columns]
    renames = {str(k).strip(): ALIASES.get(str(v).strip(), str(v).strip())
               for k, v in mapping.items()}
    missing = [k for k in renames if k not in df.columns]
    if missing:
        raise MoescaleError(f"`mapping` names column {missing[0]!r}, which {source} does not have "
                            f"(columns: {_listing(df.columns)})")
    for alias, name in ALIASES.items():  # an alias only where the name is not there already
        names = [renames.get(c, c) for c in df.columns]
        if alias in df.columns and alias not in renames and name not in names:
            renames[alias] = name
    new = [renames.get(c, c) for c in df.columns]
    twice = next((n for n in new if new.count(n) > 1), None)
    if twice is not None:
        both = [c for c, n in zip(df.columns, new, strict=True) if n == twice]
        raise MoescaleError(f"columns {', '.join(map(repr, both))} would both be {twice!r}; "
                            "map only one of them to it")
    df.columns = new
    return df


def _as_numbers(df: pd.DataFrame) -> pd.DataFrame:
    """Integers as float64 (6·N·D overflows int64 past 9.2e18); canonical columns held as
    text ("1e8") as float64 when every value converts (otherwise require() names the row)."""
    for c in df.columns:
        if pd.api.types.is_integer_dtype(df[c]) or (
                c in UNITS and not pd.api.types.is_numeric_dtype(df[c])):
            try:
                df[c] = df[c].astype("float64")
            except (TypeError, ValueError):
                pass
    return df


def _derive(df: pd.DataFrame, name: str, expr: str) -> str:
    name = ALIASES.get(name.strip(), name.strip())
    df[name] = _eval(df, expr, f"`derive` {name}={expr}")
    return name


def _auto_derive(df: pd.DataFrame) -> list[str]:
    """The automatic derivations of :data:`AUTO_DERIVE`, only for absent columns and only
    from numeric inputs (a bad input is reported by require())."""
    derived = []
    for name, formulas in AUTO_DERIVE:
        usable = [f for f in formulas if all(c in df.columns for c in _expr_names(f))]
        if name in df.columns or not usable:
            continue
        if all(pd.api.types.is_numeric_dtype(df[c]) for c in _expr_names(usable[0])):
            df[name] = _eval(df, usable[0], f"deriving {name}={usable[0]}")
            derived.append(name)
    return derived


def _expr_names(expr: str) -> list[str]:
    """Column names an expression reads (not numbers like ``1e9``, functions or keywords)."""
    names = re.findall(r"`([^`]*)`", expr)
    tokens: list[tokenize.TokenInfo] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(re.sub(r"`[^`]*`", "0", expr)).readline):
            tokens.append(tok)
    except (tokenize.TokenError, SyntaxError):
        pass  # unbalanced brackets and the like: DataFrame.eval reports them
    for i, tok in enumerate(tokens):
        after = tokens[i + 1].string if i + 1 < len(tokens) else ""
        before = tokens[i - 1].string if i else ""
        if (tok.type == tokenize.NAME and not keyword.iskeyword(tok.string)
                and after != "(" and before != "."):
            names.append(tok.string)
    return list(dict.fromkeys(names))


def _eval(df: pd.DataFrame, expr: str, what: str) -> pd.Series:
    aliases = {a: df[c] for a, c in ALIASES.items() if c in df.columns and a not in df.columns}
    missing = [c for c in _expr_names(expr) if c not in df.columns and c not in aliases]
    if missing:
        raise MoescaleError(f"{what}: column {missing[0]!r} is missing "
                            f"(columns: {_listing(df.columns)})")
    try:
        value = df.eval(expr, resolvers=(aliases,))
    except Exception as exc:  # pandas raises many types for a bad expression
        raise MoescaleError(f"{what} failed: {_first_line(exc)}") from None
    if isinstance(value, pd.Series):
        return pd.to_numeric(value, errors="coerce")
    if isinstance(value, (int, float, np.number)):
        return pd.Series(float(value), index=df.index)
    raise MoescaleError(f"{what} must be an expression giving one number per run")


# -- messages ------------------------------------------------------------------------------

def _rows(rows: np.ndarray) -> str:
    """1-based data-row numbers, at most ten."""
    more = f" and {rows.size - 10} more" if rows.size > 10 else ""
    return ", ".join(str(int(r)) for r in rows[:10]) + more


def _listing(columns, limit: int = 30) -> str:
    columns = [str(c) for c in columns]
    more = f", … ({len(columns) - limit} more)" if len(columns) > limit else ""
    return ", ".join(columns[:limit]) + more


def _show(value) -> str:
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return f"{float(value):.6g}"
    return repr(value) if isinstance(value, str) else str(value)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
