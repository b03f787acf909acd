"""Questions about a graph that only op knowledge can answer, asked by passes and reports."""

from __future__ import annotations

from ..ir.graph import Graph
from .elementwise import same_layout
from .registry import REGISTRY


def ops_feeding_output(graph: Graph) -> set[str]:
    """Ids of the nodes that compute a graph output: the outputs themselves and, through
    elementwise ops of one input (an activation, a softcap), the node that feeds them."""
    found: set[str] = set()
    stack = list(graph.outputs.values())
    while stack:
        node = graph.node(stack.pop())
        if node.id in found:
            continue
        found.add(node.id)
        opdef = REGISTRY.get(node.op)
        if opdef is not None and opdef.shard is same_layout and len(node.inputs) == 1:
            stack.append(node.inputs[0])
    return found
