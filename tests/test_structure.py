"""The package's shape: no import cycles between ttspec's modules (function-level imports
included), and the runtime never imports the command line."""

import ast

import networkx as nx

from .conftest import ROOT

PACKAGE = ROOT / "ttspec"


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


def test_no_import_cycles():
    cycles = [c for c in nx.simple_cycles(import_graph()) if len(c) > 1]
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_runtime_never_imports_the_cli():
    graph = import_graph()
    runtime = [m for m in graph if m.startswith("ttspec.runtime")]
    cli = [m for m in graph if m == "ttspec.cli" or m.startswith("ttspec.cli.")]
    assert cli and all(not nx.has_path(graph, m, c) for m in runtime for c in cli)
