"""The package's import structure: no import cycles, no private names used across modules.

The graph is built from the source with :mod:`ast` (nothing is imported). Every ``import``
counts, at module level or inside a function: an import deferred into a function still makes
the module depend on the other one, and a cycle through it is a cycle all the same (it only
moves the failure from import time to call time). An edge goes to the module named, or to
the package when the imported name is not a submodule; the ``__init__`` of a package that
Python runs before one of its submodules is not an edge (the submodule does not use it).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "dendritect"

# Uses in modules that are being reworked elsewhere, each with what replaces it. Every other
# private name across modules, and every other cycle, fails the tests.
PENDING_PRIVATE: set[tuple[str, str, str]] = set()
# Import edges that close a cycle, each with what removes it (none left).
PENDING_EDGES: set[tuple[str, str]] = set()


def _name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _imports(module: str) -> list[tuple[str, str | None, int]]:
    """``(target module, imported name or None, line)`` of every dendritect import."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, None, node.lineno) for a in node.names
                    if a.name.split(".")[0] == "dendritect"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                src = ".".join(base + ([node.module] if node.module else []))
            else:
                src = node.module or ""
            if src.split(".")[0] != "dendritect":
                continue
            for a in node.names:
                sub = f"{src}.{a.name}"
                out.append((sub, None, node.lineno) if sub in MODULES
                           else (src, a.name, node.lineno))
    return out


def _graph() -> dict[str, set[str]]:
    return {m: {t for t, _, _ in _imports(m) if t in MODULES and t != m} for m in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_the_imports():
    # the parser must find imports at module level, inside functions, and relative ones
    g = _graph()
    assert "dendritect.io.readers" in g["dendritect.io"]
    assert "dendritect.parallel.chunked" in g["dendritect.segment.cracks"]  # in a function
    assert "dendritect.segment.gpu" in g["dendritect.parallel.backend"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    graph = _graph()
    for a, b in PENDING_EDGES:
        graph[a].discard(b)
    assert _cycles(graph) == []


def _private_uses() -> set[tuple[str, str, str]]:
    uses = set()
    for m, path in MODULES.items():
        own_package = m if path.name == "__init__.py" else m.rpartition(".")[0]
        modules_as: dict[str, str] = {}
        for target, name, _ in _imports(m):
            if name is not None and _private(name):
                uses.add((m, target, name))
            if name is None:
                # a private module is the business of its own package
                last = target.rpartition(".")
                if _private(last[2]) and not own_package.startswith(last[0]):
                    uses.add((m, last[0], last[2]))
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for a in node.names:
                    if f"{node.module}.{a.name}" in MODULES:
                        modules_as[a.asname or a.name] = f"{node.module}.{a.name}"
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.asname and a.name in MODULES:
                        modules_as[a.asname] = a.name
        for node in ast.walk(tree):
            # module._name, through an imported module
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in modules_as and _private(node.attr)
                    and modules_as[node.value.id] != m):
                uses.add((m, modules_as[node.value.id], node.attr))
    return uses


def test_the_private_name_check_sees_them(tmp_path, monkeypatch):
    # a private name imported from another module, and a private module of another package,
    # on small modules (the package itself has none left)
    (tmp_path / "pkg").mkdir()
    files = {"dendritect.fake_a": tmp_path / "fake_a.py",
             "dendritect.pkg._inner": tmp_path / "pkg" / "_inner.py",
             "dendritect.fake_b": tmp_path / "fake_b.py"}
    files["dendritect.fake_a"].write_text("_hidden = 1\n", encoding="utf-8")
    files["dendritect.pkg._inner"].write_text("value = 2\n", encoding="utf-8")
    files["dendritect.fake_b"].write_text(
        "from dendritect.fake_a import _hidden\nfrom dendritect.pkg import _inner\n",
        encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "MODULES", files)
    assert _private_uses() == {("dendritect.fake_b", "dendritect.fake_a", "_hidden"),
                               ("dendritect.fake_b", "dendritect.pkg", "_inner")}


def test_no_private_names_across_modules():
    assert sorted(_private_uses() - PENDING_PRIVATE) == []


@pytest.mark.parametrize("module", ["dendritect.track.sparse", "dendritect.parallel.chunked"])
def test_public_replacements_are_exported(module):
    import importlib

    mod = importlib.import_module(module)
    public = {"dendritect.track.sparse": ("shape_zyx_of", "planes_per_read", "z_axis_of"),
              "dendritect.parallel.chunked": ("resolve_budget", "sheetness_block")}[module]
    for name in public:
        assert name in mod.__all__ and callable(getattr(mod, name))


def test_the_private_name_check_sees_module_attributes(tmp_path, monkeypatch):
    # a private name reached through an imported module (``mod._name``), on two small modules
    a = tmp_path / "fake_a.py"
    b = tmp_path / "fake_b.py"
    a.write_text("_hidden = 1\n", encoding="utf-8")
    b.write_text("from dendritect import fake_a\n\nvalue = fake_a._hidden\n", encoding="utf-8")
    fake = {"dendritect.fake_a": a, "dendritect.fake_b": b}
    monkeypatch.setattr(sys.modules[__name__], "MODULES", fake)
    assert _private_uses() == {("dendritect.fake_b", "dendritect.fake_a", "_hidden")}
