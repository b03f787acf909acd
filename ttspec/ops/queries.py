"""Questions about a graph that need to know what its primitive ops mean.

Analyses outside the ops package (memory, reports) ask here instead of matching op names
themselves: which parameters are lookup tables, where heads are split and merged, and which
attention reads which keys. Each answer is in terms of nodes and shapes of the IR.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..ir.graph import Graph, Node
from .attention import ATTEND, MERGE_HEADS, SPLIT_HEADS, materialises_scores  # noqa: F401 (re-exported)
from .elementwise import complete_values, same_layout
from .registry import REGISTRY, Storage


def lookup_tables(graph: Graph) -> set[str]:
    """Names of the parameters of `graph` (not of its repeat bodies) that are lookup tables
    (stored row-major on the device, read by index), as each op's storage says."""
    return {name for node in graph.topo() if node.op in REGISTRY for local, name in node.params.items()
            if REGISTRY[node.op].storage_of(local) == Storage.TABLE}


@dataclass(frozen=True)
class HeadSplit:
    """A projection whose output features are cut into `heads` heads of `head_dim` each."""

    node: Node  # the node producing [batch, heads, seq, head_dim]
    projection: Node  # the node whose output is split
    heads: int
    head_dim: int


@dataclass(frozen=True)
class HeadMerge:
    """Heads concatenated back into features, read by `readers`."""

    node: Node
    heads: int
    head_dim: int
    readers: tuple[Node, ...]


def head_splits(graph: Graph) -> list[HeadSplit]:
    """Every single-projection head split in `graph` (not in its repeat bodies)."""
    return [HeadSplit(node, graph.node(node.inputs[0]), node.attrs["heads"], node.type.shape[-1])
            for node in graph.topo() if node.op == SPLIT_HEADS.name]


def head_merges(graph: Graph) -> list[HeadMerge]:
    out = []
    for node in graph.topo():
        if node.op == MERGE_HEADS.name:
            _, heads, _, head_dim = graph.node(node.inputs[0]).type.shape
            out.append(HeadMerge(node, heads, head_dim, tuple(graph.node(u) for u in graph.users[node.id])))
    return out


@dataclass(frozen=True)
class Attention:
    """One attention in a graph: the node and the keys it reads ([batch, kv_heads, seq, head_dim];
    values have the same shape), i.e. what a KV cache holds per layer."""

    node: Node
    keys: Node
    kv_heads: int
    head_dim: int


def attentions(graph: Graph) -> list[Attention]:
    """Every attention in `graph` (not in its repeat bodies)."""
    out = []
    for node in graph.topo():
        if node.op == ATTEND.name:
            keys = graph.node(node.inputs[1])
            out.append(Attention(node, keys, keys.type.shape[1], keys.type.shape[-1]))
    return out


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
        if opdef is not None and opdef.shard in (same_layout, complete_values) and len(node.inputs) == 1:
            stack.append(node.inputs[0])
    return found


def input_vocabulary(graph: Graph) -> int | None:
    """The vocabulary a token input indexes: the rows of the lookup table that reads it."""
    for node in graph.topo():
        if any(i in graph.inputs for i in node.inputs) and node.op in REGISTRY:
            for local, name in node.params.items():
                if REGISTRY[node.op].storage_of(local) == Storage.TABLE:
                    return graph.params[name].shape[0]
    return None
