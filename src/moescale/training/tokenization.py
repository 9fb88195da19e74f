"""Tokenizers: raw UTF-8 bytes (vocabulary 256, the default), a byte-level BPE trained
locally with the Hugging Face ``tokenizers`` library (no download), or any Hugging Face
``tokenizer.json`` (a file, or a tokenizer folder holding one: :class:`HFTokenizer`).

All expose ``name`` (part of the token-cache key), ``vocab_size``, ``encode(text) -> ndarray``
and ``decode(ids) -> str``. A trained BPE is itself saved as a ``tokenizer.json``, so a run's
BPE can be given back as ``--tokenizer RUN/tokenizer.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from moescale.errors import MoescaleError


class ByteTokenizer:
    """One token per UTF-8 byte."""

    name = "bytes"
    kind = "bytes"
    vocab_size = 256
    eos_id = None
    sha256 = None

    def describe(self) -> dict:
        return bytes_description()

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
            raise MoescaleError(f"`vocab_size` for BPE must be in 257..1048576, got {vocab_size}")
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
            raise MoescaleError("the byte tokenizer has 256 tokens; drop `vocab_size` or use `tokenizer` bpe")
        return ByteTokenizer()
    if kind == "bpe":
        return BPETokenizer.train(text, vocab_size or 4096, cache_dir)
    raise MoescaleError(f"unknown tokenizer {kind!r}; choose 'bytes' or 'bpe'")


# ----- tokenizer files (Hugging Face ``tokenizer.json``) ----------------------------------------
# End-of-text tokens looked for, in order, when a tokenizer folder has no tokenizer_config.json
# naming its eos_token: inserted between documents so that none runs into the next.
EOS_CANDIDATES = ("<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>", "<|end|>")
BUILTIN_TOKENIZERS = ("bytes", "bpe")


def file_sha256(path: Path, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def tokenizer_file(spec: str | Path) -> Path:
    """The ``tokenizer.json`` that ``spec`` names: the file itself or the one in a folder."""
    path = Path(spec)
    if path.is_dir():
        inner = path / "tokenizer.json"
        if not inner.is_file():
            raise MoescaleError(
                f"no tokenizer.json in {path}: a Hugging Face tokenizer folder holds one (a "
                "tokenizer with only vocab.json/merges.txt or a sentencepiece .model can be "
                "converted with transformers: AutoTokenizer.from_pretrained(path)"
                ".save_pretrained(new_folder))")
        return inner
    if not path.is_file():
        raise MoescaleError(f"tokenizer not found: {path} (give 'bytes', 'bpe', a "
                            "tokenizer.json or a folder holding one)")
    return path


class HFTokenizer:
    """A Hugging Face ``tokenizers`` tokenizer read from a ``tokenizer.json``.

    ``vocab_size`` is one more than the largest id (added tokens included); ``sha256`` the
    hash of the file; ``eos_id`` the end-of-text token put between documents, when it has one.
    Text is encoded without the special tokens a post-processor would add (no BOS per piece).
    """

    def __init__(self, path: str | Path, kind: str = "hf", label: str | None = None) -> None:
        from tokenizers import Tokenizer

        self.path = tokenizer_file(path)
        try:
            self._tok = Tokenizer.from_file(str(self.path))
        except Exception as exc:  # the Rust parser raises plain Exceptions
            reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            raise MoescaleError(f"{self.path} is not a tokenizer file the tokenizers library "
                                f"can read ({reason})") from None
        vocab = self._tok.get_vocab(with_added_tokens=True)
        if not vocab:
            raise MoescaleError(f"{self.path} holds a tokenizer with an empty vocabulary")
        self.vocab_size = max(vocab.values()) + 1
        self.sha256 = file_sha256(self.path)
        self.kind = kind
        stem = self.path.parent.name if self.path.name == "tokenizer.json" else self.path.stem
        self.label = label or stem or "tokenizer"
        self.name = f"{self.label}@{self.sha256[:12]}"
        self.eos_id, self.eos_token = self._find_eos(vocab)

    def _find_eos(self, vocab: dict[str, int]) -> tuple[int | None, str | None]:
        config = self.path.parent / "tokenizer_config.json"
        names: list[str] = []
        if config.is_file():
            try:
                eos = json.loads(config.read_text(encoding="utf-8")).get("eos_token")
            except (ValueError, OSError, AttributeError):
                eos = None
            if isinstance(eos, dict):
                eos = eos.get("content")
            if isinstance(eos, str):
                names.append(eos)
        special = {t.content for t in self._tok.get_added_tokens_decoder().values() if t.special}
        names += [n for n in EOS_CANDIDATES if n in special]
        for name in names:
            if name in vocab:
                return vocab[name], name
        return None, None

    @property
    def tokenizer(self):
        """The ``tokenizers.Tokenizer`` itself."""
        return self._tok

    def encode_pieces(self, pieces: list[str]) -> list:
        """``tokenizers`` encodings of ``pieces`` (all cores; offsets are not computed)."""
        return self._tok.encode_batch_fast(pieces, add_special_tokens=False)

    def encode(self, text: str) -> np.ndarray:
        ids = self._tok.encode(text, add_special_tokens=False).ids
        return np.asarray(ids, dtype=np.uint16 if self.vocab_size <= 1 << 16 else np.uint32)

    def decode(self, ids) -> str:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=False)

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, "vocab_size": self.vocab_size,
                "sha256": self.sha256, "path": str(self.path), "eos_token": self.eos_token}


def bytes_description() -> dict:
    return {"name": "bytes", "kind": "bytes", "vocab_size": 256, "sha256": None, "path": None,
            "eos_token": None}


def train_bpe_file(lines, vocab_size: int, path: Path) -> Path:
    """Train a byte-level BPE of ``vocab_size`` tokens on an iterator of text ``lines`` (the
    same recipe as :class:`BPETokenizer`) and save it as a ``tokenizer.json`` at ``path``
    (atomically), with ``<|endoftext|>`` as its last token to separate documents."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if not 256 < vocab_size <= 1 << 20:
        raise MoescaleError(f"`vocab_size` for BPE must be in 257..1048576, got {vocab_size}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - 1, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=[])
    tok.train_from_iterator(lines, trainer=trainer)
    tok.add_special_tokens(["<|endoftext|>"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tok.save(str(tmp))
    os.replace(tmp, path)
    return path
