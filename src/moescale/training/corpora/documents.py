"""Reading documents from a source: text files in blocks, Parquet, Arrow and JSON Lines rows
streamed, long documents cut at safe points (:func:`iter_segments`)."""



from __future__ import annotations

import codecs
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from moescale.errors import MoescaleError
from moescale.training.corpora.sources import BLOCK_BYTES, PIECE_CHARS, ROW_SUFFIXES, Source


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
