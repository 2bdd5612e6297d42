"""Find import cycles among the modules of a package; exit 1 when there is one.

Every import counts, at module level or inside a function (a function-level import
only hides a cycle until the function runs), except those under
``if TYPE_CHECKING:``, which never run. Run by ``make lint``:

    python tools/import_cycles.py async_orders
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path


def module_name(path: Path, root: Path) -> str:
    """``async_orders/management/commands/x.py`` -> ``async_orders.management.commands.x``."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_type_checking(test: ast.expr) -> bool:
    """``if TYPE_CHECKING:`` or ``if typing.TYPE_CHECKING:``."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported(tree: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    """Every name an import in ``tree`` may load, outside ``if TYPE_CHECKING:``;
    ``from a import b`` yields ``a.b`` too, which counts when ``b`` is a module."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and is_type_checking(node.test):
            for child in node.orelse:
                yield from imported(ast.Module(body=[child], type_ignores=[]), module, is_package)
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = resolve(node, module, is_package)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)
        yield from imported(node, module, is_package)


def resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module of ``from <node.module> import ...``, relative ones included."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def graph(root: Path) -> dict[str, set[str]]:
    """Each module of the package under ``root`` and the package modules it imports.
    The package itself (``__init__``) is left out: importing ``pkg.mod`` runs it
    first, which would make every edge into ``pkg`` look like a cycle."""
    paths = {module_name(path, root): path for path in sorted(root.rglob("*.py"))}
    modules = set(paths) - {root.name}
    edges: dict[str, set[str]] = {}
    for name, path in paths.items():
        if name not in modules:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        found = imported(tree, name, path.name == "__init__.py")
        edges[name] = {target for target in found if target in modules and target != name}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each a
    cycle or a knot of them, sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(found)


def main(argv: list[str]) -> int:
    root = Path(argv[1] if len(argv) > 1 else "async_orders").resolve()
    edges = graph(root)
    knots = cycles(edges)
    for knot in knots:
        members = set(knot)
        links = [f"{a} -> {b}" for a in knot for b in sorted(edges[a] & members)]
        print(f"import cycle among {', '.join(knot)}:\n  " + "\n  ".join(links))
    return 1 if knots else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
