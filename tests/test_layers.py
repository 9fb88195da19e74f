"""Rules the code states about itself, checked over the source: the sweep store is the only
module that speaks SQL."""

from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "moescale"
# the SQLite module, a connection's execute, or SQL statements in strings
SQL = re.compile(r"\bsqlite3\b|\b(?:db|conn|cursor|cur)\.execute\(|[\"']\s*(?:SELECT|INSERT|UPDATE|"
                 r"DELETE|PRAGMA|CREATE TABLE)\s")


def test_sql_only_in_the_store_module():
    speakers = sorted(str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
                      if SQL.search(p.read_text(encoding="utf-8")))
    assert speakers == ["sweeps/store.py"], speakers
