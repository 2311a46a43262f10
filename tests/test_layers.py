"""The package's import graph: layers point down only, and no module imports itself back in a circle.

Every module of the package is parsed (not imported), and every import in it counts: at module
level and inside functions alike. The layers, lowest first, are those of docs/architecture.md.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "centernet_lightning"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

# Lowest first. A module may import modules of lower layers; within a layer, only modules of its
# own group (a subpackage, or one of the base layer's flat modules).
LAYERS: list[tuple[str, ...]] = [
    ("structures", "preprocess", "image_io", "atomic_files", "weights", "visualize", "checks"),
    ("targets", "losses", "decode"),
    ("models",),
    ("datasets",),
    ("tracking",),
    ("eval",),
    ("inference",),
    ("tasks", "callbacks"),
    ("deploy",),
    ("cli",),
]
RANK = {group: rank for rank, groups in enumerate(LAYERS) for group in groups}
BASE_LAYER = 0  # its flat modules may use each other (no circles all the same)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules (or packages) that ``name`` imports anywhere in its source."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = name.split(".")
                base = parts if is_package else parts[:-1]
                base = base[: len(base) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            # `from pkg import sub` imports the submodule when there is one
            targets = [f"{stem}.{alias.name}" if f"{stem}.{alias.name}" in known else stem for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import a.b.c` of a name inside a module
                target = target.rpartition(".")[0]
            if target.startswith(PACKAGE):
                found.add(target)
    found.discard(name)
    return found


def group_of(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def import_graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports_of(name, path, known) for name, path in found.items()}


def test_every_module_belongs_to_a_layer() -> None:
    unplaced = sorted({group_of(name) for name in modules()} - set(RANK) - {""})
    assert not unplaced, f"modules outside every layer of LAYERS: {unplaced}"


def test_layers_point_down_only() -> None:
    wrong = []
    for name, targets in import_graph().items():
        group = group_of(name)
        if not group:  # the package's __init__ re-exports the public API
            continue
        for target in targets:
            other = group_of(target)
            if not other:
                wrong.append(f"{name} imports the package {PACKAGE} itself")
            elif RANK[other] > RANK[group]:
                wrong.append(f"{name} (layer {RANK[group]}) imports {target} (layer {RANK[other]}): upward")
            elif RANK[other] == RANK[group] and other != group and RANK[group] != BASE_LAYER:
                wrong.append(f"{name} imports {target}: a sibling of its layer")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_module_imports_its_own_package_back() -> None:
    wrong = []
    for name, targets in import_graph().items():
        if name.endswith("__main__"):
            continue
        ancestors = {".".join(name.split(".")[:depth]) for depth in range(1, name.count(".") + 1)}
        wrong += [f"{name} imports {target}" for target in targets & ancestors]
    assert not wrong, "a package's __init__ re-exports; its modules import their siblings directly:\n" + "\n".join(
        wrong
    )


def test_no_import_circles() -> None:
    graph = import_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
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
                circles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert not circles, "import circles:\n" + "\n".join(" <-> ".join(circle) for circle in circles)


def test_the_graph_sees_function_level_and_relative_imports(tmp_path: Path) -> None:
    """The parser itself: a lazy import inside a function and a relative import both count."""
    package = tmp_path / PACKAGE / "models"
    package.mkdir(parents=True)
    source = package / "heads.py"
    source.write_text("from .detector import X\n\ndef f():\n    from ..cli import main\n")
    known = {f"{PACKAGE}.models.detector", f"{PACKAGE}.cli", f"{PACKAGE}.models.heads"}
    assert imports_of(f"{PACKAGE}.models.heads", source, known) == {f"{PACKAGE}.models.detector", f"{PACKAGE}.cli"}
