"""The package's shape: module sizes, the longest functions and import cycles.

    python scripts/code_shape.py                 # this checkout's musicsearch/
    python scripts/code_shape.py --root OTHER/musicsearch --top 15

Import cycles count every ``import`` of a package module, inside functions too (a lazy import
still ties two modules together). ``tests/test_structure.py`` holds the limits this prints.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "musicsearch"


@dataclass(frozen=True)
class Function:
    module: str
    name: str
    lines: int


def module_name(root: Path, path: Path) -> str:
    """``musicsearch/indexing/feed.py`` -> ``musicsearch.indexing.feed`` (``__init__`` -> the package)."""
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path) -> dict[str, Path]:
    """Every module of the package under ``root``, by dotted name."""
    return {module_name(root, p): p for p in sorted(root.rglob("*.py"))}


def functions(name: str, tree: ast.AST) -> Iterator[Function]:
    """Every function and method with its length in lines (decorators left out)."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield Function(name, node.name, (node.end_lineno or node.lineno) - node.lineno + 1)


def _resolve(current: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module an ``from ... import`` names."""
    if node.level == 0:
        return node.module or ""
    base = current.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports(name: str, path: Path, tree: ast.AST, known: set[str]) -> set[str]:
    """The package modules ``name`` imports, at any depth of its code."""
    out: set[str] = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(name, is_package, node)
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        for t in targets:
            while t and t not in known:  # "pkg.mod.Name" -> "pkg.mod"
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
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
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _package_edges(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph without a package's ``__init__`` re-exporting its own submodules: importing
    ``pkg.sub`` runs ``pkg/__init__``, so ``pkg -> pkg.sub`` is an edge only when ``pkg.sub``
    does not sit inside ``pkg`` (that edge is the package exposing its own parts)."""
    return {m: {t for t in ts if not t.startswith(m + ".")} for m, ts in graph.items()}


@dataclass(frozen=True)
class Shape:
    sizes: dict[str, int]
    functions: list[Function]
    cycles: list[list[str]]


def measure(root: Path) -> Shape:
    """Sizes, functions and import cycles of the package at ``root``."""
    found = modules(root)
    known = set(found)
    sizes: dict[str, int] = {}
    funcs: list[Function] = []
    graph: dict[str, set[str]] = {}
    for name, path in found.items():
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text, str(path))
        sizes[name] = len(text.splitlines())
        funcs.extend(functions(name, tree))
        graph[name] = imports(name, path, tree, known)
    funcs.sort(key=lambda f: -f.lines)
    return Shape(sizes, funcs, cycles(_package_edges(graph)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent / PACKAGE)
    parser.add_argument("--top", type=int, default=10, help="how many modules and functions to list")
    args = parser.parse_args(argv)
    shape = measure(args.root)
    total = sum(shape.sizes.values())
    print(f"{len(shape.sizes)} modules, {total:,} lines")
    print("largest modules:")
    for name, n in sorted(shape.sizes.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"  {n:6,}  {name}")
    print("longest functions:")
    for f in shape.functions[: args.top]:
        print(f"  {f.lines:6,}  {f.module}.{f.name}")
    print(f"import cycles: {len(shape.cycles)}")
    for c in shape.cycles:
        print("  " + " <-> ".join(c))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
