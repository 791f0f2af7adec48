"""The package's folders are its layers, and the door stays shut: read from the source.

- each layer imports only what its `__init__` allows (cli -> engine, parts, core;
  engine -> parts, core, inside; parts -> core's values and parts; core -> core and
  inside.jsonlite;
  inside -> inside), lazy imports inside functions included;
- no import cycles between modules;
- outside core/ and inside/, no module imports subprocess, ctypes or plumbum at run time,
  or calls the os, shutil or pathlib functions that change the host; the exceptions are
  listed below, each with its reason.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "shellctr"

ALLOWED = {  # a layer -> the layers (or modules) its modules may import
    "cli": ("cli", "api", "engine", "parts", "core"),
    "api": ("api", "engine", "parts", "core"),
    "engine": ("engine", "parts", "core", "inside"),
    "parts": ("parts", "core.errors", "core.cmd", "core.layout", "core.ids", "core.records"),
    "core": ("core", "inside.jsonlite"),  # the store reads records with json's C half
    "inside": ("inside",),
}
RUNNERS = ("subprocess", "ctypes", "plumbum")
CHANGES_OS = {"mkdir", "makedirs", "unlink", "remove", "rename", "replace", "chmod", "chown",
              "lchown", "fchown", "fchmod", "rmdir", "mknod", "symlink", "link", "ftruncate",
              "truncate", "utime", "setxattr", "removexattr", "mkfifo", "kill", "mount"}
CHANGES_SHUTIL = {"rmtree", "move", "copy", "copy2", "copyfile", "copytree"}  # not copyfileobj:
# it writes to a stream, and opening one for writing is what the test looks for
CHANGES_PATH = {"mkdir", "unlink", "write_text", "write_bytes", "touch", "chmod",
                "symlink_to", "rmdir", "hardlink_to"}
# (module, what it does) -> why it may: every other host change goes through core.host
EXCEPTIONS = {
    ("engine.copy", "import ctypes"): "cp enters a private mount namespace of its own "
        "(unshare(2)) to mount a stopped container's overlay, as the process that copies",
    **{("engine.copy", f"os.{name}"): "cp writes the copied files relative to directory fds "
       "inside the container's root (O_NOFOLLOW): no host path, no program runs on them"
       for name in ("fchown", "fchmod", "utime", "unlink", "mkdir", "symlink", "chown",
                    "link", "mknod", "chmod")},
    ("engine.attach", "os.write"): "attach writes the container's output to the terminal",
    ("engine.terminal", "os.write"): "the terminal relay writes to the user's terminal",
    ("engine.copy", "os.write"): "cp writes a copied file's bytes to its fd in the container",
    ("api.streams", "os.write"): "an API exec relays its client's input to the command's "
        "terminal or stdin pipe",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        yield module_name(path), ast.parse(path.read_text())


def runtime_nodes(tree: ast.Module) -> Iterator[ast.AST]:
    """Every node but those under `if TYPE_CHECKING:` (imports for mypy only)."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) \
                and node.test.id == "TYPE_CHECKING":
            stack.extend(node.orelse)
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def shellctr_imports(name: str, tree: ast.Module, runtime: bool = True) -> set[str]:
    """The shellctr modules (or packages) `name` imports, without the `shellctr.` prefix."""
    found = set()
    nodes = runtime_nodes(tree) if runtime else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("shellctr"):
            base = node.module.removeprefix("shellctr").lstrip(".")  # type: ignore[union-attr]
            for alias in node.names:
                candidate = f"{base}.{alias.name}" if base else alias.name
                found.add(candidate if (PACKAGE / candidate.replace(".", "/")).with_suffix(
                    ".py").is_file() else base)
        elif isinstance(node, ast.Import):
            found.update(alias.name.removeprefix("shellctr.") for alias in node.names
                         if alias.name.startswith("shellctr."))
    found.discard(name.removeprefix("shellctr."))
    return {item for item in found if item}


def test_each_layer_imports_only_what_its_init_allows() -> None:
    wrong = []
    for name, tree in modules():
        short = name.removeprefix("shellctr.")
        layer = short.split(".")[0]
        if layer not in ALLOWED:
            continue  # shellctr/__init__, __main__
        for imported in shellctr_imports(name, tree, runtime=False):
            if not any(imported == allowed or imported.startswith(allowed + ".")
                       for allowed in ALLOWED[layer]):
                wrong.append(f"{short} imports {imported}")
    assert wrong == []


def test_every_layer_says_what_it_may_import() -> None:
    for layer in ALLOWED:
        doc = ast.get_docstring(ast.parse((PACKAGE / layer / "__init__.py").read_text()))
        assert doc and "May import" in doc, layer


def test_there_are_no_import_cycles() -> None:
    graph = {name.removeprefix("shellctr."): shellctr_imports(name, tree, runtime=False)
             for name, tree in modules()}
    # a package's __init__ (a docstring) is no edge
    graph = {name: {dep for dep in deps if dep in graph and not name.startswith(dep + ".")}
             for name, deps in graph.items()}
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> None:
        if node in path:
            raise AssertionError("import cycle: " + " -> ".join([*path[path.index(node):], node]))
        if node in done:
            return
        path.append(node)
        for dep in sorted(graph[node]):
            visit(dep)
        path.pop()
        done.add(node)

    for node in sorted(graph):
        visit(node)


def host_changes(tree: ast.Module) -> Iterator[str]:
    """What a module does to the host outside the door: runner imports, mutating calls."""
    for node in runtime_nodes(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""])
            for name in names:
                if name.split(".")[0] in RUNNERS:
                    yield f"import {name.split('.')[0]}"
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            attr, base = node.func.attr, node.func.value
            owner = base.id if isinstance(base, ast.Name) else ""
            if owner == "os" and attr in CHANGES_OS | {"write"}:
                yield f"os.{attr}"
            elif owner == "shutil" and attr in CHANGES_SHUTIL:
                yield f"shutil.{attr}"
            elif attr in CHANGES_PATH and owner not in ("host", "os", "shutil", "self"):
                yield f".{attr}()"  # a pathlib.Path method
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id == "open":
            mode = node.args[1] if len(node.args) > 1 else next(
                (k.value for k in node.keywords if k.arg == "mode"), None)
            if isinstance(mode, ast.Constant) and set(str(mode.value)) & set("wax+"):
                yield f"open(..., {mode.value!r})"


@pytest.mark.parametrize("name", [name for name, _ in modules()
                                  if not name.startswith(("shellctr.core", "shellctr.inside"))])
def test_the_door_stays_shut(name: str) -> None:
    tree = ast.parse((PACKAGE.parent / (name.replace(".", "/") + ".py")).read_text()
                     if (PACKAGE.parent / (name.replace(".", "/") + ".py")).is_file()
                     else (PACKAGE.parent / name.replace(".", "/") / "__init__.py").read_text())
    short = name.removeprefix("shellctr.")
    found = sorted({change for change in host_changes(tree)
                    if (short, change) not in EXCEPTIONS})
    assert found == [], f"{short} changes the host outside core.host: {found}"


def test_the_exceptions_are_still_needed() -> None:
    """An exception nobody needs any more goes from the list."""
    seen = {(name.removeprefix("shellctr."), change) for name, tree in modules()
            for change in host_changes(tree)}
    assert set(EXCEPTIONS) <= seen, set(EXCEPTIONS) - seen
