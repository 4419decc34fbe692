"""The layers of docs/design.md, checked on the source: imports point down, never up or around."""

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src" / "ddpmkit"
LAYERS = {
    "files": -1,
    "memory": -1,
    "core": 0,
    "networks": 0,
    "data": 0,
    "learning_rate": 0,
    "progress": 0,
    "samplers": 1,
    "likelihood": 1,
    "guidance": 1,
    "evaluation": 1,
    "outputs": 1,
    "inverse": 2,
    "plots": 2,
    "losses": 2,
    "config": 3,
    "storage": 4,
    "generation": 5,
    "pipeline": 6,
    "training": 6,
    "api": 7,
    "cli": 8,
}
"""Rank of each package (or module, where a package spans layers): a module may import its own
package or any lower rank. Packages of one rank are independent of each other."""


def _module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> tuple[str, int]:
    """The longest LAYERS key that ``module`` (ddpmkit.X.Y) falls under, and its rank."""
    inner = module.removeprefix("ddpmkit.")
    keys = [k for k in LAYERS if inner == k or inner.startswith(k + ".")]
    if not keys:
        raise AssertionError(f"{module} belongs to no layer of tests/test_architecture.py")
    key = max(keys, key=len)
    return key, LAYERS[key]


def _imports(path: Path) -> set[str]:
    """Every ddpmkit module imported anywhere in the file (also inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ddpmkit"):
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("ddpmkit")}
    return found


def _existing(name: str) -> str:
    """``name`` cut back to the module or package it names (drops imported attributes)."""
    parts = name.split(".")
    while parts:
        candidate = SOURCE.parent.joinpath(*parts)
        if candidate.with_suffix(".py").is_file() or (candidate / "__init__.py").is_file():
            return ".".join(parts)
        parts.pop()
    raise AssertionError(f"{name} is not a module of ddpmkit")


MODULES = sorted(
    p for p in SOURCE.rglob("*.py") if p.parent != SOURCE or p.stem not in ("__init__", "__main__")
)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SOURCE)))
def test_imports_point_down_the_layers(path):
    module = _module_name(path)
    home, rank = _layer(module)
    for imported in sorted({_existing(name) for name in _imports(path)}):
        if imported == "ddpmkit":
            raise AssertionError(f"{module} imports the ddpmkit facade; import the module itself")
        other, other_rank = _layer(imported)
        same_package = other.split(".")[0] == home.split(".")[0]
        assert same_package or other_rank < rank, (
            f"{module} (layer {home}, rank {rank}) imports {imported} "
            f"(layer {other}, rank {other_rank}): imports must point down the layers"
        )


def test_no_import_cycles():
    graph = {
        _module_name(p): {_existing(n) for n in _imports(p)} - {"ddpmkit"}
        for p in SOURCE.rglob("*.py")
        if p.stem != "__main__" and p.parent != SOURCE
    }
    state: dict[str, int] = {}

    def visit(module: str, stack: list[str]) -> None:
        if state.get(module) == 2:
            return
        assert state.get(module) != 1, f"import cycle: {' -> '.join([*stack, module])}"
        state[module] = 1
        for imported in sorted(graph.get(module, ())):
            visit(imported, [*stack, module])
        state[module] = 2

    for module in sorted(graph):
        visit(module, [])


def test_the_command_line_starts_without_torch():
    import subprocess
    import sys

    code = "import sys, ddpmkit.cli; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def _function_lengths(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    return [
        (node.end_lineno - node.lineno + 1, node.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno
    ]


def test_modules_and_upper_floor_functions_stay_small():
    """No module over 450 lines; in the upper floors (training/, pipeline/, api/, cli/) no
    function over 60 (issues 25 and 26)."""
    for path in MODULES:
        lines = len(path.read_text().splitlines())
        assert lines <= 450, f"{path.relative_to(SOURCE)} has {lines} lines"
    for folder in ("training", "pipeline", "api", "cli"):
        for path in (SOURCE / folder).rglob("*.py"):
            for length, name in _function_lengths(path):
                assert length <= 60, f"{path.relative_to(SOURCE)}:{name} has {length} lines"
