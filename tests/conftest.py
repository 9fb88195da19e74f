"""Shared fixtures: where the reference data lives, and skipping when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MOESCALE_REFERENCE_DATA", ROOT / "../shared/data"))


def reference_file(relative: str) -> Path:
    """Path of a reference data file; skips the test with a clear reason when it is absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"reference data {relative} not found under {SHARED_DATA} "
                    "(set MOESCALE_REFERENCE_DATA to the shared/data folder)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared reference-data folder (skips when absent)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data folder {SHARED_DATA} not found "
                    "(set MOESCALE_REFERENCE_DATA to the shared/data folder)")
    return SHARED_DATA
