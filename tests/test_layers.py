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


# ----- the import graph: every import, at module level or inside a function ---------------------
# Layers, lowest first (README, "Layout"): a module imports only from its own layer or below.
LAYERS = [
    ("moescale.errors", "moescale.validation", "moescale.units", "moescale.jsonio",
     "moescale.accounting.conventions"),
    ("moescale.accounting",),  # architecture, presets, hf, hf_export, megatron, counting
    ("moescale.laws",),
    ("moescale.runs", "moescale.tracker_runs", "moescale.reference_data", "moescale.fitting"),
    ("moescale.planning",),
    ("moescale.training",),
    ("moescale.sweeps",),
    ("moescale.reporting",),
    ("moescale.api", "moescale.cli", "moescale.__main__"),
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Module → the moescale modules it imports anywhere (``if TYPE_CHECKING:`` blocks left
    out: they never run). ``from package import name`` counts as an import of the submodule
    ``package.name`` when there is one, else of the package."""
    files = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()

        def visit(node, found=found, package=package):
            if isinstance(node, ast.If) and getattr(node.test, "id",
                                                    getattr(node.test, "attr", "")) == "TYPE_CHECKING":
                for child in node.orelse:
                    visit(child)
                return
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    found.add(sub if sub in files else base)
            for child in ast.iter_child_nodes(node):
                visit(child)

        visit(ast.parse(path.read_text(encoding="utf-8")))
        graph[name] = {m for m in found if m in files and m != name}
    return graph


def _layer(module: str) -> int:
    if module == "moescale":  # the root package: __version__ and lazy names only
        return 0
    return next(i for i, layer in enumerate(LAYERS)
                for prefix in layer if module == prefix or module.startswith(prefix + "."))


def test_no_import_cycle_between_modules():
    graph = _import_graph()
    assert len(graph) > 80 and "moescale.fitting.engine" in graph["moescale.fitting"]
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def strong(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while (w := stack.pop()) != v:
                component.append(w)
            if component:
                cycles.append(sorted([v, *component]))

    for v in graph:
        if v not in index:
            strong(v)
    assert not cycles, cycles


def test_no_import_from_a_higher_layer():
    upward = [f"{m} -> {d}" for m, deps in _import_graph().items() for d in sorted(deps)
              if _layer(d) > _layer(m)]
    assert not upward, upward


def test_the_import_graph_sees_imports_inside_functions():
    graph = _import_graph()
    # api imports the planners only inside plan(): a module-level scan would miss it
    assert "moescale.planning.holistic_plan" in graph["moescale.api"]


def test_every_documented_module_exists():
    """Each ``moescale.a.b`` named in the README, the docs or a docstring is a module of the
    package, or a name of a module / of the curated top level (checked on the files, without
    importing anything)."""
    import moescale

    root = SRC.parents[1]
    texts = [root / "README.md", *(root / "docs").rglob("*.md"), *SRC.rglob("*.py")]
    missing = set()
    for path in texts:
        for dotted in re.findall(r"\bmoescale(?:\.[A-Za-z_][A-Za-z0-9_]*)+", path.read_text()):
            parts = dotted.split(".")[1:]
            module = SRC
            while parts and module.is_dir() and ((module / parts[0]).is_dir()
                                                 or (module / f"{parts[0]}.py").is_file()):
                name = parts.pop(0)
                module = module / name if (module / name).is_dir() else module / f"{name}.py"
            if module == SRC and parts[0] not in moescale.__all__:
                missing.add(f"{path.name}: {dotted}")
            elif module != SRC and parts:  # a name inside the module: defined there
                source = module / "__init__.py" if module.is_dir() else module
                if not re.search(rf"^\s*(def|class)\s+{parts[0]}\b|^{parts[0]}\s*[:=]|"
                                 rf"import .*\b{parts[0]}\b", source.read_text(), re.M):
                    missing.add(f"{path.name}: {dotted}")
    assert not missing, sorted(missing)
