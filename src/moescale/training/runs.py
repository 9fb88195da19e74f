"""Folders of ``moescale train`` back into a :class:`~moescale.runs.RunTable` to fit laws on.

Each finished folder (``run.json`` and the ``end`` record of ``log.jsonl``) becomes one row
with the same columns as ``moescale sweep export`` (``N``, ``N_active``, ``D``, ``C``, ``E``,
``G``, ``loss`` = final eval loss, ``epochs``, …; parameter and compute columns also under the
``chinchilla``, ``holistic`` and ``kaplan`` conventions). Needs no torch.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from moescale.errors import MoescaleError


def runs_from_train_folders(folders: str | Path | Iterable[str | Path], law: str | None = None):
    """A RunTable of finished ``moescale train`` run folders.

    Parameters
    ----------
    folders : path or iterable of paths
        Run folders, or one folder whose sub-folders are runs (``runs/*``).
    law : str, optional
        Take ``N``, ``N_active`` and ``C`` under this law's counting convention (as
        ``moescale fit --store`` does), so the table fits that law directly.
    """
    from moescale.runs import RunTable
    from moescale.sweeps.export import (
        law_mapping,
        result_columns,
        run_columns,
        spec_from_train_folder,
    )

    paths = _run_folders(folders)
    rows = []
    for folder in paths:
        run, result, _ = spec_from_train_folder(folder)
        rows.append(run_columns(run.to_dict()) | result_columns(result, str(folder))
                    | {"folder": str(folder)})
    import pandas as pd

    frame = pd.DataFrame(rows)
    mapping = law_mapping(law, frame.columns)
    frame = frame.drop(columns=list(mapping), errors="ignore") \
        .rename(columns={v: k for k, v in mapping.items()})
    source = str(paths[0].parent if len(paths) > 1 else paths[0])
    return RunTable.from_frame(frame.select_dtypes("number"), source=source)


def _run_folders(folders) -> list[Path]:
    """The run folders named, a folder of run folders expanded; none is an error."""
    given = [Path(folders)] if isinstance(folders, (str, Path)) else [Path(f) for f in folders]
    out: list[Path] = []
    for path in given:
        if (path / "run.json").is_file():
            out.append(path)
        elif path.is_dir():
            out.extend(sorted(p for p in path.iterdir() if (p / "run.json").is_file()))
        else:
            raise MoescaleError(f"run folder not found: {path}")
    if not out:
        raise MoescaleError("no moescale train run folder (with run.json) in "
                            + ", ".join(map(str, given)))
    return out
