"""Opening tokens for training: a prepared folder, a token file or a cached preparation of
a text source (:func:`open_corpus`), checked against the vocabulary."""



from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from moescale.errors import MoescaleError
from moescale.training.corpora.prepare import (
    _dtype_for,
    _entropy,
    _prepare_into,
    is_token_source,
)
from moescale.training.corpora.sources import (
    BPE_DEFAULT_VOCAB,
    FORMAT,
    MANIFEST,
    SCAN_TOKENS,
    Source,
    _read_json,
    resolve_source,
)
from moescale.training.tokenization import (
    BUILTIN_TOKENIZERS,
    ByteTokenizer,
    HFTokenizer,
    file_sha256,
    tokenizer_file,
)


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
