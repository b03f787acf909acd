"""The graph IR: primitive-op nodes on a networkx DiGraph, torch.fx style.

A repeated block is one `repeat` node holding its body Graph and a count, never unrolled.
Parameters have stable hierarchical names; inside a repeat body they are relative to one
layer ("attn.wq.weight") and `Graph.param_names` expands them ("layers.3.attn.wq.weight").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from .errors import Loc
from .types import TensorType


@dataclass
class Node:
    id: str
    op: str  # a REGISTRY op, "input", or "repeat"
    inputs: list[str]
    attrs: dict
    type: TensorType
    module: str  # hierarchical path of the component that made it ("" at top level)
    loc: Loc | None = None
    params: dict[str, str] = field(default_factory=dict)  # local name ("weight") -> param name


@dataclass
class Param:
    name: str
    shape: tuple[int, ...]
    module: str
    tied_to: str | None = None

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass
class ModuleInfo:
    """One component instance: what block made it and which category (kind) it belongs to."""

    path: str
    block: str  # block or primitive op name
    kind: str | None
    loc: Loc | None = None
    repeat: int | None = None  # set on the module of a `repeat`


@dataclass
class Graph:
    nx: nx.DiGraph = field(default_factory=nx.DiGraph)
    inputs: list[str] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)  # output name -> node id
    params: dict[str, Param] = field(default_factory=dict)
    modules: dict[str, ModuleInfo] = field(default_factory=dict)

    def add(self, node: Node) -> Node:
        assert node.id not in self.nx, node.id
        self.nx.add_node(node.id, node=node)
        for src in node.inputs:
            self.nx.add_edge(src, node.id)
        return node

    def node(self, node_id: str) -> Node:
        return self.nx.nodes[node_id]["node"]

    def fresh_id(self, base: str) -> str:
        if base not in self.nx:
            return base
        k = 1
        while f"{base}_{k}" in self.nx:
            k += 1
        return f"{base}_{k}"

    def topo(self) -> list[Node]:
        # Insertion order is already topological (nodes are added after their inputs).
        return [self.nx.nodes[n]["node"] for n in self.nx.nodes]

    def repeats(self) -> list[Node]:
        return [n for n in self.topo() if n.op == "repeat"]


@dataclass
class Model:
    name: str
    graph: Graph
    bounds: dict[str, int]  # symbolic dim -> inclusive upper bound from `where`
    symbols: list[str]
    file: str
    warnings: list = field(default_factory=list)
    loc: Loc | None = None  # the `model NAME` header


def iter_params(graph: Graph, prefix: str = ""):
    """Every parameter with its full name, expanding repeat bodies layer by layer lazily."""
    for p in graph.params.values():
        yield prefix + p.name, p
    for node in graph.repeats():
        body: Graph = node.attrs["body"]
        for i in range(node.attrs["count"]):
            yield from iter_params(body, f"{prefix}{node.module}.{i}.")
