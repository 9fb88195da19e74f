"""Plain-JSON conversion and atomic file writes shared by the library and the CLI.

>>> import numpy as np
>>> jsonable({"a": np.float64(1.5), "b": (1, 2), "c": float("nan")})
{'a': 1.5, 'b': [1, 2], 'c': None}
"""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path
from typing import Any

from moescale.errors import MoescaleError

__all__ = ["content_hash", "jsonable", "read_json_object", "write_json_atomic"]


def jsonable(obj: Any) -> Any:
    """``obj`` as plain JSON values: numpy scalars and arrays become numbers and lists,
    objects with ``to_dict`` their dict, tuples lists, non-finite floats ``None``."""
    if hasattr(obj, "to_dict"):
        return jsonable(obj.to_dict())
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "tolist"):
        return jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json_atomic(path: str | Path, obj: Any, what: str = "the result") -> Path:
    """Write ``obj`` as indented JSON to ``path`` through a temporary file and a rename, so a
    crash never leaves half a file. An unwritable path is a :class:`MoescaleError`."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(jsonable(obj), indent=2))
        tmp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise MoescaleError(f"cannot write {what} to {path}: {exc.strerror or exc}") from None
    return path


def read_json_object(path: str | Path, what: str = "a JSON object",
                     kind: str = "file") -> dict[str, Any]:
    """The JSON object in a file; a missing, unreadable or non-object file is one clear error
    (``kind`` names the file in those messages: "fit file not found: …")."""
    p = Path(path)
    if not p.exists():
        raise MoescaleError(f"{kind} not found: {p}")
    if not p.is_file():
        raise MoescaleError(f"{kind} {p} is not a file" if kind != "file" else f"{p} is not a file")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise MoescaleError(f"{p} is not valid JSON: {exc.msg} (line {exc.lineno})") from None
    except UnicodeDecodeError:
        raise MoescaleError(f"{p} is not a text (UTF-8 JSON) file") from None
    except RecursionError:
        raise MoescaleError(f"{p} is nested too deeply to be {what}") from None
    if not isinstance(data, dict):
        raise MoescaleError(f"{p} is not {what}: it must hold a JSON object")
    return data


def content_hash(content: Any) -> str:
    """16 hex digits of the SHA-256 of ``content`` as canonical JSON (sorted keys): the id of a
    run's content, the same on every machine."""
    import hashlib

    blob = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
