"""Rules the code states about itself, checked over the source: the sweep store is the only
module that speaks SQL."""

from __future__ import annotations

import ast
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


# A command-line flag in a message: ``--memory``, not a CSS variable (``--ink:``) and not an
# argument vector for another program (a string that is itself a flag, e.g. ``"--num-layers"``).
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*(?!\s*:)")


def _message_strings(tree: ast.AST):
    """Every string literal of a module except docstrings (f-strings by their literal parts)."""
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                       ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                and id(node) not in docstrings):
            yield node.lineno, node.value


def test_no_library_message_names_a_command_line_flag():
    """The library names its Python parameters (in backticks); only ``cli/`` speaks in flags,
    translating `` `name` `` into the invoked command's flag."""
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        if rel.parts[0] == "cli":
            continue
        for line, text in _message_strings(ast.parse(path.read_text(encoding="utf-8"))):
            if re.fullmatch(r"--[a-z][a-z0-9-]*=?", text):  # another program's argument
                continue
            if FLAG.search(text):
                offenders.append(f"{rel}:{line}: {text.strip()[:70]}")
    assert not offenders, "\n".join(offenders)


def test_the_cli_translates_parameters_into_the_invoked_commands_flags():
    from moescale.cli import _invoked_command
    from moescale.cli._output import as_flags

    message = "raise `memory_bytes` or lower `inference_tokens`; `no_such_thing` stays"
    out = as_flags(message, _invoked_command(["plan", "--compute", "1e21"]))
    assert out == "raise --memory or lower --inference-tokens; no_such_thing stays"
    assert as_flags("`resume`", _invoked_command(["train"])) == "--resume"
    assert as_flags("`memory_bytes`", _invoked_command(["count"])) == "memory_bytes"
    assert _invoked_command(["sweep", "run", "x.toml"]).name == "run"
