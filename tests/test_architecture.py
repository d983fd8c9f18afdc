"""The import graph has no cycles, even through imports inside functions (which hid
inspection → checks → converters.tflm → inspection, and cli ⇄ cli_bench)."""

from __future__ import annotations

import ast
import re

from helpers import REPO

ROOTS = {"edgekit": "edgekit", "edgekit.converters": "converters", "edgekit.devices": "devices"}


def _modules() -> dict[str, ast.Module]:
    found = {}
    for package, folder in ROOTS.items():
        for path in (REPO / folder).rglob("*.py"):
            parts = [
                p for p in path.relative_to(REPO / folder).with_suffix("").parts if p != "__init__"
            ]
            found[".".join([package, *parts])] = ast.parse(path.read_text())
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, tree in modules.items():
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            graph[name] |= {t for t in targets if t in modules and t != "edgekit"}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycles():
    graph = import_graph()
    assert "edgekit.runtimes.tflm" in graph["edgekit.checks"]  # the walk sees local imports
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def _docstring_nodes(tree: ast.Module) -> set[int]:
    kinds = (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, kinds) and node.body and isinstance(node.body[0], ast.Expr)
    }


def test_runtime_knowledge_lives_in_one_place():
    """The Edge TPU op set is defined once, in edgekit.runtimes.edgetpu; the TFLM op table is
    a data file (TFLM's resolver header, parsed by edgekit.runtimes.tflm_table) read by
    edgekit.runtimes.tflm alone, and no module keeps its own list of resolver methods."""
    defined, readers, resolver_names = {}, set(), {}
    for name, tree in _modules().items():
        docstrings = _docstring_nodes(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name) and target.id == "SUPPORTED_OPS":
                        defined.setdefault(target.id, []).append(name)
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
                continue
            if id(node) in docstrings:
                continue
            if "tflm_ops.toml" in node.value:
                readers.add(name)
            if re.fullmatch(r"Add[A-Z][A-Za-z0-9]+", node.value):
                resolver_names.setdefault(name, set()).add(node.value)
    assert defined == {"SUPPORTED_OPS": ["edgekit.runtimes.edgetpu"]}
    assert readers == {"edgekit.runtimes.tflm"}
    # The parser skips the two methods that are not ops; nothing else names one by hand.
    assert resolver_names == {"edgekit.runtimes.tflm_table": {"AddBuiltin", "AddCustom"}}


# The layers of docs/architecture.md, lowest first. A module may import modules of its own
# layer or a lower one, never a higher one (the most specific prefix places a module).
LAYERS = {
    0: (
        "edgekit.errors",
        "edgekit.signals",
        "edgekit.console",
        "edgekit.files",
        "edgekit.jsonfile",
        "edgekit.metrics",
        "edgekit.records",
        "edgekit._fdcapture",
        "edgekit._tf",
        "edgekit._tfmot",
        "edgekit.isolation",
        "edgekit._worker",
        "edgekit.plotting",
    ),
    1: (
        "edgekit.tflite_model",
        "edgekit.tflite_edit",
        "edgekit.graph",
        "edgekit.data",
        "edgekit.targets",
        "edgekit.signature",
        "edgekit.models",
    ),
    2: ("edgekit.runtimes",),
    3: (
        "edgekit.converters",
        "edgekit.quantization",
        "edgekit.checks",
        "edgekit.verify",
        "edgekit.inspection",
        "edgekit.report",
        "edgekit.bundle",
        "edgekit.devices",
    ),
    4: ("edgekit.stages", "edgekit.bench", "edgekit.options", "edgekit.progress"),
    5: (
        "edgekit.pipeline",
        "edgekit.assemble",
        "edgekit.analyze",
        "edgekit.examples",
        "edgekit.keras",
        "edgekit.fitting",
    ),
    6: ("edgekit.cli", "edgekit.cli_bench", "edgekit.__main__", "edgekit"),
}
LAYER_NAMES = ("base", "formats", "runtimes", "tools", "stages", "pipeline", "interfaces")


def layer_of(module: str) -> int:
    best, found = -1, None
    for layer, prefixes in LAYERS.items():
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, found = len(prefix), layer
    assert found is not None, f"{module} is in no layer of LAYERS (docs/architecture.md)"
    return found


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{a} ({LAYER_NAMES[layer_of(a)]}) imports {b} ({LAYER_NAMES[layer_of(b)]})"
        for a, targets in graph.items()
        for b in targets
        if layer_of(b) > layer_of(a)
    )


def test_every_import_goes_down_the_layers():
    """profile → model → compress → convert → verify → bundle → bench → results: data flows
    one way, and so do imports (docs/architecture.md draws the layers)."""
    assert layer_violations(import_graph()) == []


def test_the_layer_check_finds_an_upward_import():
    graph = {"edgekit.models": {"edgekit.keras.callbacks"}, "edgekit.keras.callbacks": set()}
    assert layer_violations(graph) == [
        "edgekit.models (formats) imports edgekit.keras.callbacks (pipeline)"
    ]


def _package(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 else "edgekit"


def private_imports() -> list[str]:
    """`from X import _name` or an import of a private module (`keras._compat`) from another
    package. edgekit's own top-level internals (`edgekit._tf`, ...) are the base layer and
    shared by every package."""
    found = []
    modules = _modules()
    for name, tree in modules.items():
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom) or not node.module:
                continue
            if not node.module.startswith("edgekit"):
                continue
            if _package(node.module) == _package(name) and node.module in modules:
                continue
            private_module = any(p.startswith("_") for p in node.module.split(".")[2:])
            private_names = [
                a.name for a in node.names if a.name.startswith("_") and not a.name.endswith("__")
            ]
            if private_module or private_names:
                found.append(
                    f"{name}: from {node.module} import {', '.join(a.name for a in node.names)}"
                )
    return sorted(found)


def test_no_module_imports_another_packages_private_names():
    assert private_imports() == []


def metric_literals() -> list[str]:
    """Metric names spelled as strings outside edgekit.metrics (docstrings aside). One-word
    names (macs, count, elf, instructions, parameters) are ordinary words as well, and are
    left out: `from edgekit import metrics as M` spells them where they are metrics."""
    from edgekit import metrics

    names = {n for n in (*metrics.DEPLOY, *metrics.BENCH, *metrics.VERDICTS) if "_" in n}
    found = []
    for name, tree in _modules().items():
        if name in ("edgekit.metrics", "edgekit.targets") or name.startswith("edgekit.devices"):
            # devices/: harnesses run on the device's own Python, without edgekit; targets:
            # a profile's memory budgets (flash_bytes, ram_bytes) bound the figures of the
            # same name and are spelled as the profile files spell them
            continue
        docstrings = _docstring_nodes(tree)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and node.value in names
                and id(node) not in docstrings
            ):
                found.append(f"{name}:{node.lineno} {node.value!r}")
    return sorted(found)


def test_every_metric_name_is_spelled_once():
    """`latency_ms` was spelled in 13 places: each metric's name is now a constant of
    edgekit.metrics, which the CLI summary, report.md, callbacks and the store share."""
    assert metric_literals() == []


def test_every_package_is_in_the_wheel():
    """A new package folder missed in pyproject's explicit list installs with `-e .` but not
    with `pip install .` (edgekit.stages once did)."""
    import tomllib

    listed = set(
        tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    folders = {
        ".".join(["edgekit", *p.parent.relative_to(REPO / "edgekit").parts])
        for p in (REPO / "edgekit").rglob("__init__.py")
    }
    assert folders - listed == set()
