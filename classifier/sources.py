"""The package's own import graph, read from its source (no module is imported).

Every `classifier` import counts, at module level and inside functions. `tools.imports` checks
the graph against the stage order; the run store of `track` hashes the source of what
`classifier.pipeline` reaches (`closure`), so that no hand list of modules can drift.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_path(module: str) -> Path:
    """The source file of a package module (`classifier.measure` -> classifier/measure/__init__.py)."""
    base = PACKAGE.parent.joinpath(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The package modules `path` imports (`from classifier.x import y` counts y when y is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "classifier":
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in modules else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "classifier")
    return found - {module_name(path)}


def graph() -> dict[str, set[str]]:
    """Every package module -> the package modules it imports."""
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports_of(p, modules) for p in paths}


def closure(module: str) -> list[str]:
    """`module` and every package module it reaches through imports, sorted."""
    edges = graph()
    reached, todo = set(), [module]
    while todo:
        name = todo.pop()
        if name not in reached:
            reached.add(name)
            todo += edges.get(name, ())
    return sorted(reached)
