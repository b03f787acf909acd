"""Questions about a graph that need to know what its primitive ops mean.

Analyses outside the ops package (memory, reports) ask here instead of matching op names
themselves: which parameters are lookup tables, where heads are split and merged, and which
attention reads which keys. Each answer is in terms of nodes and shapes of the IR.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..ir.graph import Graph, Node

# Ops whose parameter is a table read by index (stored row-major on the device, not as a matrix).
LOOKUP_OPS = frozenset({"embedding", "position_embedding"})


def lookup_tables(graph: Graph) -> set[str]:
    """Names of the parameters of `graph` (not of its repeat bodies) that are lookup tables."""
    return {name for node in graph.topo() if node.op in LOOKUP_OPS for name in node.params.values()}


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
            for node in graph.topo() if node.op == "split_heads"]


def head_merges(graph: Graph) -> list[HeadMerge]:
    out = []
    for node in graph.topo():
        if node.op == "merge_heads":
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
        if node.op == "attend":
            keys = graph.node(node.inputs[1])
            out.append(Attention(node, keys, keys.type.shape[1], keys.type.shape[-1]))
    return out
