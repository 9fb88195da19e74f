"""``moescale data prepare``: a source's tokenizer (bytes, a trained BPE or a file) and the
prepared folder (``train.bin``, ``val.bin``, ``manifest.json``) written by :func:`prepare`."""



from __future__ import annotations

import hashlib
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
from moescale.training.corpora.documents import Segment, iter_segments, split_pieces
from moescale.training.corpora.sources import (
    BATCH_CHARS,
    BPE_DEFAULT_VOCAB,
    BPE_TRAIN_CHARS,
    FORMAT,
    MANIFEST,
    SEPARATOR,
    TOKEN_SUFFIXES,
    WORKERS,
    Source,
    resolve_source,
)
from moescale.training.tokenization import (
    ByteTokenizer,
    HFTokenizer,
    train_bpe_file,
)


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
