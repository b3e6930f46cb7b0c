"""The project's layers, read from the source: the core imports no layer above it, and no file import circles.

Why a test: ``titans/`` is the core that ``serving/``, ``pipelines/`` and ``bench/`` build on. An import the
other way (even one inside a function, or a module name handed to importlib) ties the core to a server or to
Kubeflow, and a circle between two files makes their import order matter. Both creep in one line at a time,
so the source is parsed (never imported) and every import counted: top-level, inside functions, and
``importlib.import_module`` / ``__import__`` calls and module-name strings that name a project module.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORE = "titans"
UPPER_LAYERS = ("serving", "pipelines", "bench", "dashboard")
PROJECT = (CORE, "components", *UPPER_LAYERS)


def source_files(*packages: str) -> list[Path]:
    return sorted(p for package in packages for p in (REPO / package).rglob("*.py"))


def module_file(name: str, roots: tuple[Path, ...]) -> Path | None:
    """The file that holds module ``name`` (``a.b`` -> ``a/b.py`` or ``a/b/__init__.py``) under one of ``roots``."""
    for root in roots:
        base = root.joinpath(*name.split("."))
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def imported_modules(path: Path, dotted_strings: bool = False) -> Iterator[tuple[int, str]]:
    """(line, module name) of every import in ``path``, wherever it stands; callers keep the project's.

    ``from a import b`` yields ``a`` and ``a.b`` (``b`` may be a module). ``importlib.import_module(...)``
    and ``__import__(...)`` with a constant yield that constant. With ``dotted_strings``, so does every
    string shaped like a dotted module name (a list of modules that importlib is handed later).
    """
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            package = path.relative_to(REPO).parts[: -node.level] if node.level else ()  # relative imports
            base = ".".join([*package, *([node.module] if node.module else [])])
            yield node.lineno, base
            yield from ((node.lineno, f"{base}.{alias.name}") for alias in node.names)
        elif isinstance(node, ast.Call) and _names_import(node.func) and node.args:
            if isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                yield node.lineno, node.args[0].value
        elif dotted_strings and isinstance(node, ast.Constant) and isinstance(node.value, str):
            parts = node.value.split(".")
            if len(parts) > 1 and all(part.isidentifier() for part in parts):
                yield node.lineno, node.value


def _names_import(func: ast.expr) -> bool:
    """``import_module`` (plain or as ``importlib.import_module``) or ``__import__``."""
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    return name in ("import_module", "__import__")


def roots_for(path: Path) -> tuple[Path, ...]:
    """Where ``path``'s imports resolve: the repository, and for the bench scripts their own folder too."""
    return (REPO, REPO / "bench") if path.is_relative_to(REPO / "bench") else (REPO,)


def import_graph() -> dict[Path, set[Path]]:
    """File -> the project files it imports (a package's own ``__init__`` is not counted for its modules)."""
    graph: dict[Path, set[Path]] = {}
    for path in source_files(*PROJECT):
        targets = {module_file(name, roots_for(path)) for _, name in imported_modules(path)}
        graph[path] = {target for target in targets if target is not None and target != path}
    return graph


def reachable(graph: dict[Path, set[Path]], start: Path) -> set[Path]:
    """Every file ``start`` imports, directly or through others."""
    seen: set[Path] = set()
    todo = [start]
    while todo:
        for target in graph.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def cycles(graph: dict[Path, set[Path]]) -> list[list[Path]]:
    """The strongly connected components of more than one file: files that each reach all the others."""
    reach = {path: reachable(graph, path) for path in graph}
    components = {frozenset({path} | {other for other in reach[path] if path in reach.get(other, ())})
                  for path in graph if path in reach[path]}
    return sorted(sorted(component) for component in components if len(component) > 1)


def test_the_core_imports_no_layer_above_it() -> None:
    offenders = [
        f"{path.relative_to(REPO)}:{line} imports {name}"
        for path in source_files(CORE)
        for line, name in imported_modules(path, dotted_strings=True)
        if name.split(".")[0] in UPPER_LAYERS and module_file(name, (REPO,)) is not None
    ]
    assert not offenders, "titans/ must not import serving/, pipelines/, bench/ or dashboard/:\n" + "\n".join(offenders)


def test_only_the_dashboard_imports_streamlit() -> None:
    """The model server and the pipeline steps never load the dashboard (its extra is not in their images)."""
    offenders = [
        f"{path.relative_to(REPO)}:{line} imports {name}"
        for path in source_files(CORE, "components", "serving", "pipelines")
        for line, name in imported_modules(path)
        if name.split(".")[0] in ("dashboard", "streamlit", "altair")
    ]
    assert not offenders, "\n".join(offenders)


def test_no_import_cycles_between_project_files() -> None:
    circles = [", ".join(str(p.relative_to(REPO)) for p in component) for component in cycles(import_graph())]
    assert not circles, "files that import each other (directly or through others):\n" + "\n".join(circles)
