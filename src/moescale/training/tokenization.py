"""Tokenizers: raw UTF-8 bytes (vocabulary 256, the default) or a byte-level BPE trained
locally with the Hugging Face ``tokenizers`` library (no download).

Both expose ``name`` (part of the token-cache key), ``vocab_size``, ``encode(text) -> ndarray``
and ``decode(ids) -> str``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from moescale.errors import MoescaleError


class ByteTokenizer:
    """One token per UTF-8 byte."""

    name = "bytes"
    vocab_size = 256

    def encode(self, text: str) -> np.ndarray:
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.uint16)

    def decode(self, ids) -> str:
        return bytes(int(i) for i in ids).decode("utf-8", errors="replace")


class BPETokenizer:
    """Byte-level BPE (GPT-2 style pre-tokenisation) trained on the corpus itself."""

    def __init__(self, tokenizer, vocab_size: int, digest: str) -> None:
        self._tok, self.vocab_size = tokenizer, vocab_size
        self.name = f"bpe{vocab_size}-{digest}"

    @classmethod
    def train(cls, text: str, vocab_size: int, cache_dir: Path | None = None) -> BPETokenizer:
        """Train (or load a cached) BPE of ``vocab_size`` tokens on ``text``."""
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        if not 256 < vocab_size <= 1 << 20:
            raise MoescaleError(f"--vocab-size for BPE must be in 257..1048576, got {vocab_size}")
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
        path = cache_dir / f"bpe{vocab_size}-{digest}.json" if cache_dir else None
        if path is not None and path.is_file():
            return cls(Tokenizer.from_file(str(path)), vocab_size, digest)
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(text.splitlines(keepends=True), trainer=trainer)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tok.save(str(tmp))
            os.replace(tmp, path)
        return cls(tok, vocab_size, digest)

    def encode(self, text: str) -> np.ndarray:
        lines = text.splitlines(keepends=True)
        ids = [e.ids for e in self._tok.encode_batch(lines)]
        flat = np.fromiter((i for row in ids for i in row), dtype=np.int64)
        return flat.astype(np.uint16 if self.vocab_size <= 1 << 16 else np.uint32)

    def decode(self, ids) -> str:
        return self._tok.decode([int(i) for i in ids])


def make_tokenizer(kind: str, text: str, vocab_size: int | None = None,
                   cache_dir: Path | None = None):
    """``"bytes"`` (vocab 256) or ``"bpe"`` (trained on ``text``, ``vocab_size`` tokens)."""
    if kind == "bytes":
        if vocab_size not in (None, 256):
            raise MoescaleError("the byte tokenizer has 256 tokens; drop --vocab-size or use --tokenizer bpe")
        return ByteTokenizer()
    if kind == "bpe":
        return BPETokenizer.train(text, vocab_size or 4096, cache_dir)
    raise MoescaleError(f"unknown tokenizer {kind!r}; choose 'bytes' or 'bpe'")
