"""The package's shape: modules import only downward in the layer order (function-level imports
included), no import cycles between ttspec's modules, and the runtime never imports the command line."""

import ast

import networkx as nx

from .conftest import ROOT

PACKAGE = ROOT / "ttspec"

# The layers, bottom to top (the project's standards): a module may import from its own floor and the
# floors below it, never from one above. A module's floor is that of the longest entry prefixing its name.
LAYERS = [
    ("ttspec", "errors", "inputs", "output", "mock", "ir", "ir.types", "ir.layout"),
    ("frontend", "ir.graph", "targets", "weight_formats"),
    ("ops", "checkpoints"),
    ("elaborate", "passes", "families"),
    ("analysis",),  # pure models: interpreters, params, memory, cost
    ("backends",),
    ("driver",),
    ("reports", "importers", "runtime", "training"),
    ("cli", "api"),  # api: the Python API (`import ttspec`), a peer of the command line over the driver
]
FLOORS = {("ttspec." + name if name != "ttspec" else name): floor
          for floor, names in enumerate(LAYERS) for name in names}
# Imports the floors allow that the standards still forbid: analysis stays below the pass pipeline it
# models (it is handed the pipeline's result), and the IR and its elaborator know no checkpoint layouts.
FORBIDDEN = {
    "ttspec.analysis": ("ttspec.driver", "ttspec.passes", "ttspec.backends"),
    "ttspec.ir": ("ttspec.checkpoints", "ttspec.families"),
    "ttspec.elaborate": ("ttspec.checkpoints", "ttspec.families"),
}
# Known exceptions, each with the issue that removes it.
KNOWN: set[tuple[str, str]] = set()  # (importer, imported) exceptions to the order, each with its reason


def _module(path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> nx.DiGraph:
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph = nx.DiGraph()
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                graph.add_edge(name, target)
                graph.add_edges_from((name, f"{target}.{a.name}") for a in node.names
                                     if f"{target}.{a.name}" in modules)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                absolute = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                graph.add_edges_from((name, t) for t in absolute if t.startswith("ttspec"))
    return graph


def floor_of(module: str) -> int:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in FLOORS:
            return FLOORS[".".join(parts[:n])]
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_every_module_has_a_floor():
    for module in import_graph():
        floor_of(module)


def test_modules_import_only_downward():
    upward = [f"{a} (floor {floor_of(a)}) imports {b} (floor {floor_of(b)})"
              for a, b in import_graph().edges if floor_of(b) > floor_of(a) and (a, b) not in KNOWN]
    assert not upward, "\n".join(sorted(upward))


def test_forbidden_imports():
    graph = import_graph()
    found = sorted((a, b) for a, b in graph.edges for pkg, banned in FORBIDDEN.items()
                   if _under(a, pkg) and any(_under(b, ban) for ban in banned))
    assert set(found) <= KNOWN, "\n".join(f"{a} imports {b}" for a, b in found if (a, b) not in KNOWN)
    assert all(edge in graph.edges for edge in KNOWN), "a known exception is gone: remove it from KNOWN"


def test_the_layer_check_sees_function_level_imports():
    # ttspec.driver imports the TT-NN backend inside prepare() only: a check blind to it would miss upward ones
    assert ("ttspec.driver", "ttspec.backends.ttnn.backend") in import_graph().edges


def test_no_import_cycles():
    cycles = [c for c in nx.simple_cycles(import_graph()) if len(c) > 1]
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_runtime_never_imports_the_cli():
    graph = import_graph()
    runtime = [m for m in graph if m.startswith("ttspec.runtime")]
    cli = [m for m in graph if m == "ttspec.cli" or m.startswith("ttspec.cli.")]
    assert cli and all(not nx.has_path(graph, m, c) for m in runtime for c in cli)
