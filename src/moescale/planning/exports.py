"""All-or-nothing writing of plan exports: every file is written to a temporary file next to
its target, and only when all are written are they renamed into place (``os.replace`` is
atomic per file). On any failure the temporary files, and folders created for them, are
removed and one :class:`MoescaleError` names the target that failed — never a temporary path.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from moescale.errors import MoescaleError


def write_all(files: list[tuple[str, str]]) -> None:
    """Write ``[(path, text), …]`` atomically as a set (see module docstring)."""
    targets = {Path(p): text for p, text in files}
    if len({t.resolve() for t in targets}) != len(files):
        raise MoescaleError("two exports name the same file; give each its own path")
    created: list[Path] = []
    temps: list[tuple[Path, Path]] = []
    current = None
    try:
        for target, text in targets.items():
            current = target
            if target.is_dir():
                raise MoescaleError(f"cannot write {target}: it is a folder")
            created += _make_parents(target.parent)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
            temps.append((Path(tmp), target))
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
        for tmp, target in temps:
            current = target
            os.replace(tmp, target)
    except OSError as exc:
        _clean(temps, created)
        reason = exc.strerror or type(exc).__name__
        raise MoescaleError(f"cannot write {current}: {reason}") from None
    except BaseException:
        _clean(temps, created)
        raise


def _make_parents(folder: Path) -> list[Path]:
    """Create missing folders; return those created (deepest last)."""
    missing = []
    p = folder
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for m in reversed(missing):
        m.mkdir()
    return list(reversed(missing))


def _clean(temps: list[tuple[Path, Path]], created: list[Path]) -> None:
    for tmp, _ in temps:
        tmp.unlink(missing_ok=True)
    for folder in reversed(created):
        try:
            folder.rmdir()
        except OSError:
            pass
