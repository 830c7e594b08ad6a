"""The package's shape, checked on its source (docs/architecture.md): sizes a reader can hold in mind, and
imports that go one way. Reads the code with `ast`; imports nothing of textgan."""

import ast
import functools
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "textgan"
MODULE_LINES, CLASS_LINES, FUNCTION_LINES = 600, 300, 80


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources() -> dict[str, tuple[Path, ast.Module]]:
    return {module_name(p): (p, ast.parse(p.read_text())) for p in sorted(PACKAGE.rglob("*.py"))}


def resolve(module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    """The textgan modules an import statement names (`from . import x` may name a submodule)."""
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - node.level + 1]
        target = ".".join([*base, node.module] if node.module else base)
    else:
        target = node.module or ""
    return [target, *(f"{target}.{a.name}" for a in node.names)]


def imports(tree: ast.Module, module: str, is_package: bool, local: bool) -> set[str]:
    """textgan modules imported at the top level (local=False) or inside functions (local=True); imports
    under `if TYPE_CHECKING:` are not run and are skipped."""
    found = set()
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    inside = {id(n) for f in functions for n in ast.walk(f) if n is not f}
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in typing_only or (id(node) in inside) != local:
            continue
        if isinstance(node, ast.ImportFrom):
            found.update(resolve(module, is_package, node))
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {name for name in found if name.startswith("textgan")}


@functools.lru_cache(maxsize=None)
def graph(local: bool = False) -> dict[str, set[str]]:
    mods = sources()
    return {m: {t for t in imports(tree, m, p.name == "__init__.py", local) if t in mods}
            for m, (p, tree) in mods.items()}


def reaches(edges: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_no_module_class_or_function_is_too_long_to_read():
    long = []
    for module, (path, tree) in sources().items():
        lines = len(path.read_text().splitlines())
        if lines > MODULE_LINES:
            long.append(f"module {module}: {lines} lines")
        for node in ast.walk(tree):
            size = getattr(node, "end_lineno", 0) - getattr(node, "lineno", 0) + 1
            if isinstance(node, ast.ClassDef) and size > CLASS_LINES:
                long.append(f"class {module}.{node.name}: {size} lines")
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and size > FUNCTION_LINES:
                long.append(f"function {module}.{node.name}: {size} lines")
    assert not long, long


@pytest.mark.parametrize("low, high, why", [
    ("textgan.pretrained", "textgan.models", "weight loading imports no model class"),
    ("textgan.decoding", "textgan.mining", "decoding needs no miner"),
    ("textgan.transfer", "textgan.mining", "decoding needs no miner"),
    ("textgan.distributed", "textgan.training", "process plumbing imports no training code"),
    ("textgan.distributed", "textgan.trainer", "process plumbing imports no training code"),
    ("textgan.models", "textgan.decoding", "models know nothing of how they are decoded"),
])
def test_imports_go_one_way(low, high, why):
    """No module under `low` imports (even inside a function, even indirectly) one under `high`."""
    top, local = graph(), graph(local=True)
    edges = {m: top[m] | local[m] for m in top}
    for module in [m for m in edges if m == low or m.startswith(low + ".")]:
        bad = sorted(t for t in reaches(edges, module) if t == high or t.startswith(high + "."))
        assert not bad, f"{module} reaches {bad}: {why}"


def test_no_function_local_import_hides_a_cycle():
    """A function-local import of a module that imports this one back would be a cycle the top-level
    imports cannot express; local imports are only for start-up cost (e.g. the CLI's --help)."""
    top, local = graph(), graph(local=True)
    hidden = sorted(f"{m} -> {t}" for m, targets in local.items() for t in targets
                    if t != m and m in reaches(top, t) | ({t} if m == t else set()))
    assert not hidden, hidden
