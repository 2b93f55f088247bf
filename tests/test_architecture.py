"""The layout docs/architecture.md describes, checked: no import circles anywhere in the package (imports inside
functions included: a lazy import that closes a circle still ties two modules together), and the engine imports
nothing of ours outside itself but ``forensic_face.paths``."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "forensic_face"


@functools.lru_cache(maxsize=1)
def module_files() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of import nodes under ``if TYPE_CHECKING:`` (never run, so never part of a circle)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return skip


@functools.lru_cache(maxsize=1)
def import_graph() -> dict[str, set[str]]:
    """module -> the package's modules it imports. ``from pkg import name`` counts as importing ``pkg.name`` when
    that is a module; imports of a module's own ancestor packages are left out (Python runs them first anyway)."""
    modules = module_files()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _type_checking_nodes(tree)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name and not name.startswith(target + "."):
                    graph[name].add(target)
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm; components of more than one module are import circles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_graph_sees_lazy_and_relative_imports() -> None:
    graph = import_graph()
    # Engine.search imports the stages at module level; the CLI imports its commands inside a function.
    assert "forensic_face.engine.templates" in graph["forensic_face.engine.search"]
    assert "forensic_face.cli.search" in graph["forensic_face.cli"]
    # A circle is found when there is one.
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"], ["d"]]


def test_no_import_circles() -> None:
    circles = [c for c in strongly_connected(import_graph()) if len(c) > 1]
    assert not circles, f"import circles: {circles}"


@pytest.mark.parametrize("module", sorted(m for m in module_files() if m.startswith("forensic_face.engine")))
def test_engine_imports_nothing_above_it(module: str) -> None:
    outside = {t for t in import_graph()[module]
               if not t.startswith("forensic_face.engine") and t not in ("forensic_face", "forensic_face.paths")}
    assert not outside, f"{module} imports {sorted(outside)}"


def test_no_function_body_is_written_twice() -> None:
    """One copy of each piece of logic: no two functions of the package (four statements or more, docstrings
    aside) have the same body. A copy that drifted is how the shortlist and the search came to disagree."""
    import collections

    seen: dict[str, list[str]] = collections.defaultdict(list)
    for name, path in module_files().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                body = body[1:]
            if sum(isinstance(n, ast.stmt) for b in body for n in ast.walk(b)) < 4:
                continue
            seen["".join(ast.dump(b, annotate_fields=False) for b in body)].append(f"{name}.{node.name}")
    copies = [places for places in seen.values() if len(places) > 1]
    assert not copies, f"the same function body in several places: {copies}"


#: What the layers above the engine may import of it (docs/architecture.md, "The engine's public surface"):
#: the engine package, whose exports name every stage's public names, and the backend packages.
ENGINE_PUBLIC_MODULES = frozenset({
    "forensic_face.engine", "forensic_face.engine.recognizers", "forensic_face.engine.upsamplers",
    "forensic_face.engine.degradations",
})


def test_outer_layers_import_only_the_engines_public_surface() -> None:
    """A stage module is the engine's to reorganise: code above the engine (window, command line, case store,
    reports, calibration, evaluation, training, large galleries) imports the engine's public packages only."""
    reaching_in = []
    for name, path in module_files().items():
        if name == "forensic_face.engine" or name.startswith("forensic_face.engine."):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            modules = ([node.module] if isinstance(node, ast.ImportFrom) and node.module
                       else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            reaching_in += [f"{name}:{node.lineno} imports {m}" for m in modules
                            if m.startswith("forensic_face.engine.") and m not in ENGINE_PUBLIC_MODULES]
    assert not reaching_in, "\n".join(reaching_in)


def test_every_public_engine_name_resolves() -> None:
    """The engine's export table names modules and names that exist (a renamed function fails here, not in the
    first outer module that imports it)."""
    import forensic_face.engine as engine

    missing = [name for name in engine.__all__ if not hasattr(engine, name)]
    assert not missing, missing


def test_type_checkers_see_the_same_engine_exports() -> None:
    """``forensic_face/engine/__init__.py`` names its exports twice: the lazy table that runs and the
    ``TYPE_CHECKING`` imports type checkers read. They must list the same names from the same modules."""
    import forensic_face.engine as engine

    tree = ast.parse((PACKAGE / "engine" / "__init__.py").read_text(encoding="utf-8"))
    typed = {alias.asname or alias.name: node.module.rpartition(".")[2]
             for node in ast.walk(tree) if id(node) in _type_checking_nodes(tree)
             and isinstance(node, ast.ImportFrom) and node.module for alias in node.names}
    assert typed == engine._EXPORTS
