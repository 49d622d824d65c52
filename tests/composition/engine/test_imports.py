"""The engine is a library: no Django, no plotting, no import cycles."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
ENGINE = ROOT / "composition" / "engine"
PACKAGE = "composition.engine"


def imported_names(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth of its code (lazy imports included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            # ``from package import module``
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def engine_imports() -> dict[str, set[str]]:
    """Each engine module and the engine modules it imports."""
    modules = {path.stem for path in ENGINE.glob("*.py")}
    return {
        name: {
            imported.removeprefix(f"{PACKAGE}.")
            for imported in imported_names(ENGINE / f"{name}.py")
        }
        & modules - {name}
        for name in modules
    }


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Groups of modules that import each other, directly or through others (Tarjan)."""
    index: dict[str, int] = {}
    lowest: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(module: str) -> None:
        index[module] = lowest[module] = len(index)
        stack.append(module)
        for other in sorted(graph[module]):
            if other not in index:
                visit(other)
                lowest[module] = min(lowest[module], lowest[other])
            elif other in stack:
                lowest[module] = min(lowest[module], index[other])
        if lowest[module] == index[module]:
            group = []
            while not group or group[-1] != module:
                group.append(stack.pop())
            if len(group) > 1:
                cycles.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return cycles


def test_the_engine_has_no_import_cycles():
    assert import_cycles(engine_imports()) == []


def test_the_cycle_finder_finds_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}

    assert import_cycles(graph) == [["a", "b", "c"]]


def test_no_engine_module_imports_django_or_plotting():
    offenders = {
        path.name: sorted(
            name for name in imported_names(path) if name.split(".")[0] in ("django", "matplotlib")
        )
        for path in sorted(ENGINE.glob("*.py"))
    }

    assert {name: found for name, found in offenders.items() if found} == {}


@pytest.mark.slow
def test_engine_imports_without_django_or_plotting():
    modules = sorted(f"{PACKAGE}.{path.stem}" for path in ENGINE.glob("*.py"))
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "leaked = sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'matplotlib'))\n"
        "assert not leaked, leaked\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
