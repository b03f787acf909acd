"""The graph IR: primitive-op nodes in a DAG, torch.fx style.

A repeated block is one `repeat` node holding its body Graph and a count, never unrolled.
When layers differ (arguments that use `layer`), the node also holds one body per distinct
variant and which variant each layer uses; `layer_variants` is how every consumer iterates.
Parameters have stable hierarchical names; inside a repeat body they are relative to one
layer ("attn.wq.weight") and `iter_params` expands them ("layers.3.attn.wq.weight").

Nodes live in an insertion-ordered dict (insertion order is topological: a node is added
after its inputs). `Graph.to_networkx()` gives the same graph as a networkx DiGraph for
graph algorithms; it is built on demand because importing networkx costs ~0.25 s, most of
the start-up budget of `ttspec check` and `ttspec params`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, NamedTuple

from ..errors import ArchError, Loc, Note
from .sharding import NO_SHARD, NodeShard
from .types import TensorType


class NodeKind(str, Enum):
    """The structural nodes that are not primitive ops: a graph input, and a repeated block (its body
    graph and layer count in its RepeatAttrs). A str, so `Node.op` holds either a REGISTRY op name or one of these."""

    INPUT = "input"
    REPEAT = "repeat"

    def __str__(self) -> str:
        return self.value


class InputAttrs(NamedTuple):
    """An input node's attributes: none (its name is the node's id, its type the node's type)."""


class RepeatAttrs(NamedTuple):
    """A repeat node's attributes: `count` layers of block `block`; `body` the body of layer 0. With more
    than one variant (see layer_variants) also `bodies` (one Graph per variant, numbered in order of first
    use), `pattern` (the variant of each layer) and `variant_args` (each variant's per-layer argument
    values as (parameter, value) pairs, for messages and comments)."""

    count: int
    body: Graph
    block: str
    bodies: tuple[Graph, ...] | None = None
    pattern: tuple[int, ...] | None = None
    variant_args: tuple[tuple[tuple[str, object], ...], ...] = ()


@dataclass
class Node:
    """One op applied in the graph: its inputs (node ids), attributes, parameters and type."""

    id: str
    op: str  # a REGISTRY op name, or a NodeKind (INPUT, REPEAT)
    inputs: list[str]
    attrs: Any  # an instance of the op's attrs class (OpDef.attrs), or InputAttrs, RepeatAttrs; immutable
    type: TensorType
    module: str  # hierarchical path of the component that made it ("" at top level)
    loc: Loc | None = None
    params: dict[str, str] = field(default_factory=dict)  # local name ("weight") -> param name
    hint: str | None = None  # the spec's variable name for this value, for readable generated code
    hint_scope: str | None = None  # module path of the scope that named it
    origins: dict[str, Loc] = field(default_factory=dict)  # attr -> where its value was written down
    shard: NodeShard = NO_SHARD  # what the sharding pass decided for it (ir/sharding.py), written only there

    @property
    def is_input(self) -> bool:
        return self.op == NodeKind.INPUT

    @property
    def is_repeat(self) -> bool:
        return self.op == NodeKind.REPEAT

    @property
    def is_op(self) -> bool:
        """A primitive op (of the op registry), not a structural node."""
        return not (self.is_input or self.is_repeat)


@dataclass
class Param:
    """A stored parameter: its full name, shape, module, and the one it is tied to."""

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
    """Nodes in order, their users, the inputs and named outputs, and the parameters."""

    nodes: dict[str, Node] = field(default_factory=dict)
    users: dict[str, list[str]] = field(default_factory=dict)  # node id -> ids of nodes reading it
    inputs: list[str] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)  # output name -> node id
    params: dict[str, Param] = field(default_factory=dict)
    modules: dict[str, ModuleInfo] = field(default_factory=dict)
    _next_suffix: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def add(self, node: Node) -> Node:
        assert node.id not in self.nodes, node.id
        assert all(src in self.nodes for src in node.inputs), node.inputs
        self.nodes[node.id] = node
        self.users[node.id] = []
        for src in node.inputs:
            self.users[src].append(node.id)
        return node

    def __contains__(self, node_id: str) -> bool:
        return node_id in self.nodes

    def node(self, node_id: str) -> Node:
        return self.nodes[node_id]

    def fresh_id(self, base: str) -> str:
        if base not in self.nodes:
            return base
        k = self._next_suffix.get(base, 1)  # remembered, so N ids of one base cost O(N), not O(N^2)
        while f"{base}_{k}" in self.nodes:
            k += 1
        self._next_suffix[base] = k + 1
        return f"{base}_{k}"

    def topo(self) -> list[Node]:
        return list(self.nodes.values())

    def live(self) -> set[str]:
        """Ids of the nodes some output depends on."""
        seen: set[str] = set()
        stack = list(self.outputs.values())
        while stack:
            nid = stack.pop()
            if nid not in seen:
                seen.add(nid)
                stack.extend(self.nodes[nid].inputs)
        return seen

    def to_networkx(self):
        import networkx as nx

        g = nx.DiGraph()
        for node in self.nodes.values():
            g.add_node(node.id, node=node)
            g.add_edges_from((src, node.id) for src in node.inputs)
        return g

    def repeats(self) -> list[Node]:
        return [n for n in self.topo() if n.is_repeat]


@dataclass
class Model:
    """An elaborated spec: its graph and what the spec states about it (bounds, family ...)."""

    name: str
    graph: Graph
    bounds: dict[str, int]  # symbolic dim -> inclusive upper bound from `where`
    symbols: list[str]
    file: str
    warnings: list = field(default_factory=list)
    loc: Loc | None = None  # the `model NAME` header
    target: tuple[str, Loc] | None = None  # a `target n150` statement: name and where
    family: str | None = None  # a `family llama` statement: the HF checkpoint layout
    shard_overrides: list = field(default_factory=list)  # `shard "pattern" placement` statements (ast.Shard)


def layer_variants(node: Node) -> list[tuple[Graph, int]]:
    """The distinct bodies of a `repeat` node with how many layers use each, layer 0's first
    (see RepeatAttrs). Variants have the same input and output type; they may differ in behaviour
    and in structure, so in their parameters too (layer_structures groups them by parameters)."""
    attrs: RepeatAttrs = node.attrs
    if attrs.bodies is None:
        return [(attrs.body, attrs.count)]
    counts = [0] * len(attrs.bodies)
    for v in attrs.pattern:
        counts[v] += 1
    return list(zip(attrs.bodies, counts))


def layer_pattern(node: Node) -> tuple[int, ...]:
    """The variant (an index into layer_variants) of each layer of a `repeat` node."""
    return node.attrs.pattern or (0,) * node.attrs.count


def parameter_signature(body: Graph) -> tuple:
    """What a layer's parameters are: names, shapes and tying (equal for variants that differ only in
    behaviour)."""
    return tuple((name, tuple(p.shape), p.tied_to) for name, p in body.params.items())


def layer_structures(node: Node) -> list[tuple[Graph, list[int]]]:
    """The layers of a `repeat` node grouped by their parameters (parameter_signature): for each group
    the body of its first layer and its layers in order, layer 0's group first. One group when the
    layers differ in behaviour only."""
    bodies = [body for body, _ in layer_variants(node)]
    group_of: dict[tuple, int] = {}
    groups: list[tuple[Graph, list[int]]] = []
    signatures = [parameter_signature(b) for b in bodies]
    for layer, variant in enumerate(layer_pattern(node)):
        g = group_of.get(signatures[variant])
        if g is None:
            g = group_of[signatures[variant]] = len(groups)
            groups.append((bodies[variant], []))
        groups[g][1].append(layer)
    return groups


def layers_text(layers: list[int]) -> str:
    """`layer 3`, `layers 0, 2, 5`, `layers 0 to 24 (13 layers, every 2nd)`: a list of layers for people."""
    if len(layers) == 1:
        return f"layer {layers[0]}"
    step = layers[1] - layers[0]
    if len(layers) > 4 and all(b - a == step for a, b in zip(layers, layers[1:])):
        every = "" if step == 1 else f", every {step}{'nd' if step == 2 else 'rd' if step == 3 else 'th'}"
        return f"layers {layers[0]} to {layers[-1]} ({len(layers)} layers{every})"
    if len(layers) <= 8:
        return "layers " + ", ".join(map(str, layers))
    return "layers " + ", ".join(map(str, layers[:6])) + f", ... ({len(layers)} layers)"


def map_bodies(node: Node, fn) -> RepeatAttrs:
    """A repeat node's attrs with `fn` applied to every variant's body (for graph-to-graph passes)."""
    return with_bodies(node, [fn(body) for body, _ in layer_variants(node)])


def with_bodies(node: Node, bodies: list[Graph]) -> RepeatAttrs:
    """A repeat node's attrs with new bodies, one per variant in the order of layer_variants."""
    attrs: RepeatAttrs = node.attrs
    return attrs._replace(body=bodies[0], bodies=None if attrs.bodies is None else tuple(bodies))


def all_nodes(graph: Graph):
    """Every node, the bodies of repeats included (each variant's body once)."""
    for node in graph.topo():
        yield node
        if node.is_repeat:
            for body, _ in layer_variants(node):
                yield from all_nodes(body)


def iter_params(graph: Graph, prefix: str = ""):
    """Every parameter with its full name, expanding repeat bodies layer by layer lazily."""
    for p in graph.params.values():
        yield prefix + p.name, p
    for node in graph.repeats():
        bodies = [body for body, _ in layer_variants(node)]
        for i, v in enumerate(layer_pattern(node)):
            yield from iter_params(bodies[v], f"{prefix}{node.module}.{i}.")


def unused_name(taken, base: str) -> str:
    """`base`, or `base_1`, `base_2` ... : the first name not in `taken`."""
    if base not in taken:
        return base
    k = 1
    while f"{base}_{k}" in taken:
        k += 1
    return f"{base}_{k}"


def in_stdlib(loc: Loc | None) -> bool:
    return loc is not None and loc.file.startswith("<stdlib>")


def point_at_spec(error: ArchError, scopes: list[tuple[Graph, str]]) -> ArchError:
    """Make an error a pass raised inside the standard library point at the user's spec: the
    call in the user's file that led there, with a note on where in the standard block.

    `scopes`: (graph, module path of the node) from the innermost graph (a repeat body) out
    to the model's graph (the path of the repeat there)."""
    d = error.diagnostic
    if not in_stdlib(d.loc):
        return error
    for graph, module in scopes:
        path = module
        while path:
            info = graph.modules.get(path)
            if info is not None and info.loc is not None:
                if not in_stdlib(info.loc):
                    d.notes.insert(0, Note(f"inside standard block `{info.block}`", d.loc))
                    d.loc = info.loc
                    return error
            path = path.rpartition(".")[0]
    return error
