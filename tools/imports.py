"""Import scan of the package (classifier.sources: every `classifier` import, module level and
inside functions), checked against the stage order so that imports flow one way (`python -m tools.imports`).

Rank of a module: its stage package's, or CORE's for the top-level modules below the stages.
A module may import its own package and anything of lower rank; nothing may import upwards or
sideways into another stage of the same rank, and the graph has no circle.
"""
from __future__ import annotations

import sys

from classifier.sources import graph

CORE = ("errors", "formatting", "versions", "console", "settings", "outputs", "registry", "thresholds", "run",
        "sources")
# Data path, low to high: a stage imports only stages of lower rank (and CORE, rank 0).
# `api` (the Python front door) sits above every stage and below the CLI; the package itself
# (`classifier/__init__.py`) only re-exports api's names, lazily.
RANK = {"load": 1, "measure": 2, "label": 3, "render": 4, "pipeline": 4, "reporting": 5,
        "validate": 5, "track": 5, "calibrate": 5, "api": 6, "cli": 7, "classifier": 7}


def stage(module: str) -> str:
    parts = module.split(".")
    name = parts[1] if len(parts) > 1 else "classifier"
    return "core" if name in CORE else name


def rank(module: str) -> int:
    return 0 if stage(module) == "core" else RANK[stage(module)]


def problems(edges: dict[str, set[str]]) -> list[str]:
    """Upward or sideways imports, then circles, each as one line."""
    found = [f"{a} -> {b} (rank {rank(a)} imports rank {rank(b)})"
             for a, targets in sorted(edges.items()) for b in sorted(targets)
             if stage(a) != stage(b) and rank(b) >= rank(a)]
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                found.append("circle: " + " -> ".join(trail[trail.index(nxt):] + [node, nxt]) if nxt in trail
                             else "circle: " + " -> ".join([node, nxt]))
            elif nxt not in state:
                visit(nxt, trail + [node])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [])
    return found


def main() -> int:
    edges = graph()
    for module, targets in sorted(edges.items()):
        print(f"{module} [{rank(module)}] -> {', '.join(sorted(targets)) or '-'}")
    issues = problems(edges)
    print("\n".join(issues) if issues else f"{len(edges)} modules, {sum(map(len, edges.values()))} imports: "
          "no circle, no upward or sideways import")
    return 1 if issues else 0


if __name__ == "__main__":
    sys.exit(main())
