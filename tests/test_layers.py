"""kdzoo's packages import strictly downward (DESIGN.md, "Layers").

Every module of ``kdzoo/`` is read with ``ast``, not imported: imports at any depth (inside
functions too), ``import kdzoo.x``, ``from kdzoo.x import ...``, ``from kdzoo import x`` and
relative imports all count. From them comes the graph of which package imports which, and the
tests check it against the layer order:

    utils < config, data, modeling, memory, checkpoint < losses, solver, evaluation, model_zoo
          < distillers < engine < reports, benchmarks

(``model_zoo`` finds shipped configs and checkpoints by name and needs only ``config``: it sits
low so that the engine's ``--config`` can take a model-zoo name.)

A package imports only packages of lower layers: never one above, never another of its own layer
("sideways"), so no two packages import each other, directly or through others.
"""

import ast
from collections import defaultdict
from pathlib import Path

import pytest

from kdzoo_testing import REPO_ROOT

KDZOO = REPO_ROOT / "kdzoo"
TOP = "kdzoo"  # the top-level package itself (kdzoo.__version__): importable from anywhere

LAYERS = [
    {"utils"},
    {"config", "data", "modeling", "memory", "checkpoint"},
    {"losses", "solver", "evaluation", "model_zoo"},
    {"distillers"},
    {"engine"},
    {"reports", "benchmarks"},
]
LAYER = {package: rank for rank, packages in enumerate(LAYERS) for package in packages}


def module_name(path: Path) -> tuple[str, bool]:
    """``("kdzoo.data.datasets", False)`` for ``kdzoo/data/datasets.py``; packages (their
    ``__init__.py``) are named without it, with ``True``."""
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def package_of(module: str) -> str:
    """The kdzoo package a dotted name lies in: ``kdzoo.data.datasets`` -> ``data``; names of
    the top-level package itself (``kdzoo``, ``kdzoo.__version__``) -> ``kdzoo``."""
    parts = module.split(".")
    if parts[0] != TOP:
        raise ValueError(module)
    if len(parts) == 1 or not ((KDZOO / parts[1]).is_dir() or (KDZOO / f"{parts[1]}.py").is_file()):
        return TOP
    return parts[1]


def imported_names(path: Path) -> list[tuple[int, str]]:
    """``(line, dotted name)`` of everything of kdzoo that ``path`` imports, at any depth, with
    relative imports resolved. ``from A import b`` counts as ``A.b``: ``b`` may be a module."""
    name, is_package = module_name(path)
    here = name.split(".") if is_package else name.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                if node.level - 1 > len(here) - 1:
                    raise AssertionError(f"{path}:{node.lineno}: relative import beyond kdzoo")
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            found += [(node.lineno, f"{source}.{alias.name}") for alias in node.names]
    return [(line, n) for line, n in found if n == TOP or n.startswith(TOP + ".")]


def import_graph() -> dict[str, dict[str, list[str]]]:
    """``{package: {imported package: ["kdzoo/x/y.py:12", ...]}}`` over every module of kdzoo,
    without a package's imports of itself. The top-level ``kdzoo/__init__.py`` is ``kdzoo``."""
    graph = defaultdict(lambda: defaultdict(list))
    for path in sorted(KDZOO.rglob("*.py")):
        source = package_of(module_name(path)[0])
        for line, name in imported_names(path):
            target = package_of(name)
            if target != source:
                graph[source][target].append(f"{path.relative_to(REPO_ROOT)}:{line}")
    return graph


GRAPH = import_graph()


def edges(graph) -> list[tuple[str, str, list[str]]]:
    return [(a, b, where) for a, targets in graph.items() for b, where in targets.items()]


def find_cycle(graph) -> list[str] | None:
    """One cycle of package imports (``[a, b, ..., a]``), or None."""
    state: dict[str, str] = {}  # "open" while on the DFS stack, then "done"
    stack: list[str] = []

    def visit(package: str) -> list[str] | None:
        state[package] = "open"
        stack.append(package)
        for target in sorted(graph.get(package, {})):
            if state.get(target) == "open":
                return stack[stack.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[package] = "done"
        return None

    for package in sorted(graph):
        if package not in state and (cycle := visit(package)):
            return cycle
    return None


def test_the_graph_is_read():
    # Guards the reader itself: these imports exist, so an empty or partial graph is a bug here.
    assert "utils" in GRAPH["distillers"] and "config" in GRAPH["engine"]
    assert "data" in GRAPH["evaluation"]


def test_every_package_has_a_layer():
    packages = {p.name for p in KDZOO.iterdir() if (p / "__init__.py").is_file()}
    assert packages - LAYER.keys() == set(), "add new packages to LAYERS (and to DESIGN.md)"


def test_utils_imports_no_other_kdzoo_package():
    imports = {b: where for a, b, where in edges(GRAPH) if a == "utils" and b != TOP}
    assert imports == {}, f"kdzoo/utils is the bottom layer, but imports {imports}"


def test_no_two_packages_import_each_other():
    graph = {a: {b: w for b, w in targets.items() if b != TOP} for a, targets in GRAPH.items()}
    cycle = find_cycle(graph)
    if cycle:
        steps = [
            f"{a} -> {b} ({', '.join(graph[a][b])})" for a, b in zip(cycle, cycle[1:], strict=False)
        ]
        pytest.fail("import cycle between packages:\n  " + "\n  ".join(steps))


def test_packages_import_only_lower_layers():
    not_down = [
        f"{a} (layer {LAYER[a]}) imports {b} (layer {LAYER[b]}) at {', '.join(where)}"
        for a, b, where in edges(GRAPH)
        if a != TOP and b != TOP and a != b and a in LAYER and b in LAYER and LAYER[b] >= LAYER[a]
    ]
    assert not_down == [], "imports up or sideways:\n" + "\n".join(not_down)


def test_only_distillers_look_up_the_distiller_registry():
    # DESIGN.md, "Building": one function in kdzoo/distillers turns a config into a distiller;
    # elsewhere the registry is only registered into.
    lookups = []
    for path in sorted([*KDZOO.rglob("*.py"), *(REPO_ROOT / "tools").rglob("*.py")]):
        if path.is_relative_to(KDZOO / "distillers"):
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            named = (isinstance(node, ast.Name) and node.id == "DISTILLER_REGISTRY") or (
                isinstance(node, ast.Attribute) and node.attr == "DISTILLER_REGISTRY"
            )
            parent = parents.get(node)
            registers = isinstance(parent, ast.Attribute) and parent.attr == "register"
            if named and not registers:
                lookups.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}")
    assert lookups == [], "build distillers with kdzoo.distillers.build_distiller"
