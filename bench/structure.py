"""Structure figures of the package (issue 11): lines per module, import cycles, `dry_run`
branches outside the door, and monkeypatches in the unit tests.

    .venv/bin/python bench/structure.py

Imports are read from the source (every `import`/`from ... import` of a shellctr module,
also those inside functions), so a lazy import counts as an edge of the graph.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

TOP = Path(__file__).resolve().parent.parent
PACKAGE = TOP / "shellctr"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(TOP).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The shellctr modules `path` imports (a `from pkg import mod` names the module)."""
    found: set[str] = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path.parent)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            for alias in node.names:
                if f"{base}.{alias.name}" in known:
                    found.add(f"{base}.{alias.name}")
                elif base in known:
                    found.add(base)
    found.discard(module_name(path))
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, ()):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10000)
    for node in graph:
        if node not in index:
            visit(node)
    return found


def graph() -> dict[str, set[str]]:
    """Each module's imports; a package's own __init__ (a docstring) is no edge."""
    found = modules()
    known = set(found)
    return {name: {dep for dep in imports_of(path, known) if not name.startswith(dep + ".")}
            for name, path in found.items()}


def main() -> int:
    found = modules()
    lines = {name: len(path.read_text().splitlines()) for name, path in found.items()}
    print(f"modules: {len(found)}, lines: {sum(lines.values())}")
    big = {name: n for name, n in lines.items() if n > 500}
    print(f"over 500 lines: {len(big)} " + " ".join(f"{k}={v}" for k, v in sorted(big.items())))
    print("largest: " + ", ".join(f"{k} {v}" for k, v in
                                  sorted(lines.items(), key=lambda kv: -kv[1])[:5]))
    loops = cycles(graph())
    print(f"import cycles: {len(loops)}" + "".join(f"\n  {' <-> '.join(c)}" for c in loops))
    door = re.compile(r"\bdry_run\b")
    outside = {name: len(door.findall(path.read_text())) for name, path in found.items()
               if not name.startswith("shellctr.core") and name != "shellctr.core.host"}
    print(f"dry_run mentions outside the door: {sum(outside.values())} in "
          f"{sum(1 for n in outside.values() if n)} modules")
    patches = sum(len(re.findall(r"monkeypatch\.setattr", path.read_text()))
                  for path in (TOP / "tests" / "unit").rglob("*.py"))
    print(f"monkeypatch.setattr in tests/unit: {patches}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
