"""The import-layer contract: ecgflow's layers point one way, and no module imports in a cycle.

Every ``import`` in src/ecgflow, components/ and pipelines/ (installed as ``ecgflow.components``
and ``ecgflow.pipelines``) is read, module level and inside functions alike (a lazy import is
still a dependency). A module may import its own layer
or lower ones, never a higher one; and the module graph has no cycles. A new upward arrow or
cycle fails here with the import that makes it. docs/architecture.md draws the same picture.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: top to bottom; a module's layer is that of its first package below ``ecgflow`` (or its name)
LAYERS: list[set[str]] = [
    {"cli"},
    {"submit", "deploy", "pipeline_runner", "services", "run_view", "step_logs"},
    {"pipelines"},
    {"components"},
    {"config"},
    {"stages"},
    {"serving", "evaluation", "render", "k8s"},
    {
        "models",
        "text",
        "labels",
        "training",
        "registry",
        "mlflow_model",
        "group_stratification",
        "parallel",
    },
    {
        "io",
        "signal",
        "params",
        "tracking",
        "manifest",
        "home",
        "artifacts",
        "images",
        "plugins",
        "step_timing",
        "progress",
    },
    {"errors", "ecgflow"},
]
LAYER = {name: depth for depth, names in enumerate(LAYERS) for name in names}
OURS = ("ecgflow",)


def _modules() -> dict[str, Path]:
    """Module name → file; components/ and pipelines/ install as ecgflow.components / .pipelines."""
    found = {}
    for package, folder in (
        ("ecgflow", ROOT / "src" / "ecgflow"),
        ("ecgflow.components", ROOT / "components"),
        ("ecgflow.pipelines", ROOT / "pipelines"),
    ):
        for path in folder.rglob("*.py"):
            parts = (package, *path.relative_to(folder).with_suffix("").parts)
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(name: str, path: Path) -> list[tuple[str, int]]:
    """(imported module, line) for every import of one of our packages."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.startswith(OURS)]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, module] if module else base)
            if module.startswith(OURS):
                found.append((module, node.lineno))
    return found


def _layer_of(module: str) -> tuple[str, int]:
    parts = module.split(".")
    key = parts[1] if parts[0] == "ecgflow" and len(parts) > 1 else parts[0]
    if key not in LAYER:
        pytest.fail(f"{module}: not in any layer of tests/test_layers.py (add it where it belongs)")
    return key, LAYER[key]


def _resolve(module: str, known: dict[str, Path]) -> str | None:
    """The module of ours an import names (``ecgflow.x.y`` may be a name inside ``ecgflow.x``)."""
    while module and module not in known:
        module = module.rpartition(".")[0]
    return module or None


def test_no_module_imports_a_higher_layer() -> None:
    modules = _modules()
    upward = []
    for name, path in sorted(modules.items()):
        own, depth = _layer_of(name)
        for imported, line in _imports(name, path):
            target, target_depth = _layer_of(imported)
            if target_depth < depth:
                upward.append(f"{path.relative_to(ROOT)}:{line}: {own} imports {imported}")
    assert upward == []


def test_the_module_graph_has_no_cycles() -> None:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for imported, _ in _imports(name, path):
            target = _resolve(imported, modules)
            # a package's __init__ is imported with any of its modules: not an edge of its own
            if target and target != name and not name.startswith(target + "."):
                graph[name].add(target)
    cycles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" → ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert cycles == []


def test_the_contract_sees_an_upward_import(tmp_path: Path) -> None:
    """The checker itself: an io module importing a stage is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from ecgflow.stages.ingest import ingest\n", encoding="utf-8")
    ((imported, line),) = _imports("ecgflow.io.bad", bad)
    assert (imported, line) == ("ecgflow.stages.ingest", 2)
    assert _layer_of(imported)[1] < _layer_of("ecgflow.io.bad")[1]


def test_the_architecture_page_names_every_layer_and_package() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    drawing = page.split("```")[1]
    rows = [line.split("  ")[0] for line in drawing.strip().splitlines()]
    layers = [{w.strip().rstrip("/").split(" ")[0] for w in row.split("·")} for row in rows]
    assert layers == LAYERS
    src = ROOT / "src" / "ecgflow"
    packages = {p.name for p in src.iterdir() if (p / "__init__.py").is_file()}
    modules = {p.stem for p in src.glob("*.py") if p.stem != "__init__"}
    assert packages | modules <= set(LAYER)
