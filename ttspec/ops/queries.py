"""Questions about a graph that need to know what its primitive ops mean.

Analyses outside the ops package (memory, reports) ask here instead of matching op names
themselves: which parameters are lookup tables, where heads are split and merged, and which
attention reads which keys. Each answer is in terms of nodes and shapes of the IR.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import NamedTuple

from ..ir.graph import Graph, Node
from ..weight_formats import KIND_ROLES, Matrix
from .attention import ATTEND, MERGE_HEADS, SPLIT_HEADS, materialises_scores  # noqa: F401 (re-exported)
from .collectives import ALL_REDUCE, REDUCE_SCATTER
from .elementwise import ADD, complete_values, same_layout
from .linear import LINEAR
from .registry import REGISTRY, Storage


def kind_of(graph: Graph, module: str) -> str:
    """The parameter kind (attention, mlp, norm ...) of component `module`: the nearest enclosing
    component that declares one, else the kind of the primitive op that made it, else "other"."""
    path = module
    while path:
        info = graph.modules.get(path)
        if info is not None and info.kind is not None:
            return info.kind
        path = path.rpartition(".")[0]
    info = graph.modules.get(module)
    opdef = REGISTRY.get(info.block) if info else None
    return opdef.kind if opdef and opdef.kind else "other"


def _component(graph: Graph, module: str, kind: str) -> str:
    """The nearest component enclosing `module` (itself included) that declares `kind`."""
    path = module
    while path:
        info = graph.modules.get(path)
        if info is not None and info.kind == kind:
            return path
        path = path.rpartition(".")[0]
    return ""


def matrix_roles(graph: Graph) -> dict[str, str]:
    """The role (weight_formats.KIND_ROLES) of each linear of `graph` in a kind with roles, by module: the
    kind's first role (wqkv, ff1_ff3) for a linear whose input comes from outside the component declaring
    the kind (it reads the attention's or the MLP's input), the second (wo, ff2) for one reading a value
    made inside it. Keyed by the linear's module and by its parameters' modules (a fused QKV projection
    keeps the modules of the three it replaced)."""
    roles: dict[str, str] = {}
    for node in graph.topo():
        if node.op != LINEAR.name or not node.inputs:
            continue
        kind = kind_of(graph, node.module)
        if kind not in KIND_ROLES:
            continue
        component = _component(graph, node.module, kind)
        source = graph.node(node.inputs[0]).module
        inside = bool(component) and (source == component or source.startswith(component + "."))
        role = KIND_ROLES[kind][1 if inside else 0]
        names = list(node.params.values()) + (node.attrs.fused.param_names if node.attrs.fused else [])
        for module in [node.module] + [graph.params[n].module for n in names if n in graph.params]:
            roles[module] = role
    return roles


# matrix_roles of the graph matrix_of was last asked about, with its node count: callers (the lowering, the cost
# model) ask about one finished graph's linears in turn, and finding the roles per call would make a spec with
# written-out layers quadratic in its layers (tests/test_linear_time.py)
_LAST_ROLES: list = [None, 0, {}]


def matrix_of(graph: Graph, module: str, roles: dict[str, str] | None = None) -> Matrix:
    """Which format the weight matrix of component `module` takes (weight_formats.Matrix): its kind and,
    in a kind with roles, its role. `roles`: matrix_roles(graph), when already found."""
    kind = kind_of(graph, module)
    if kind not in KIND_ROLES:
        return Matrix(kind)
    if roles is None:
        if _LAST_ROLES[0] is not graph or _LAST_ROLES[1] != len(graph.nodes):
            _LAST_ROLES[:] = [graph, len(graph.nodes), matrix_roles(graph)]
        roles = _LAST_ROLES[2]
    return Matrix(kind, roles.get(module))


def lookup_tables(graph: Graph) -> set[str]:
    """Names of the parameters of `graph` (not of its repeat bodies) that are lookup tables
    (stored row-major on the device, read by index), as each op's storage says."""
    return {name for node in graph.topo() if node.op in REGISTRY for local, name in node.params.items()
            if REGISTRY[node.op].storage_of(local) == Storage.TABLE}


# The answers are NamedTuples, not frozen dataclasses: ~7x cheaper to create at import (start-up budget).
class HeadSplit(NamedTuple):
    """A projection whose output features are cut into `heads` heads of `head_dim` each."""

    node: Node  # the node producing [batch, heads, seq, head_dim]
    projection: Node  # the node whose output is split
    heads: int
    head_dim: int


class HeadMerge(NamedTuple):
    """Heads concatenated back into features, read by `readers`."""

    node: Node
    heads: int
    head_dim: int
    readers: tuple[Node, ...]


def head_splits(graph: Graph) -> list[HeadSplit]:
    """Every single-projection head split in `graph` (not in its repeat bodies)."""
    return [HeadSplit(node, graph.node(node.inputs[0]), node.attrs.heads, node.type.shape[-1])
            for node in graph.topo() if node.op == SPLIT_HEADS.name]


def head_merges(graph: Graph) -> list[HeadMerge]:
    out = []
    for node in graph.topo():
        if node.op == MERGE_HEADS.name:
            _, heads, _, head_dim = graph.node(node.inputs[0]).type.shape
            out.append(HeadMerge(node, heads, head_dim, tuple(graph.node(u) for u in graph.users[node.id])))
    return out


class Attention(NamedTuple):
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


def reduces_into_residual(graph: Graph, node: Node) -> bool:
    """Whether collective `node` is a reduce-scatter or all-reduce of a linear's partial sums that only the residual
    stream's add reads (a row-parallel wo or w2): the collectives `--ccl-dtype bfloat8_b` sends in bfloat8_b. Others
    keep bf16: ones whose sums feed heads (ttnn's nlp_create_qkv_heads_decode refuses bfloat8_b), an activation or
    the logits."""
    if node.op not in (REDUCE_SCATTER.name, ALL_REDUCE.name) or graph.node(node.inputs[0]).op != LINEAR.name:
        return False
    readers = graph.users.get(node.id, ())
    return bool(readers) and all(graph.node(u).op == ADD.name for u in readers)


def writes_ccl_payload(graph: Graph, node: Node) -> bool:
    """Whether `node` writes the payload of collectives that reduce into the residual (reduces_into_residual) and
    nothing else reads it: the op that writes its output in `--ccl-dtype`'s format."""
    readers = graph.users.get(node.id, ())
    return node.op == LINEAR.name and bool(readers) and all(reduces_into_residual(graph, graph.node(u))
                                                            for u in readers)


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


ACTIVATIONS = ("relu", "gelu", "gelu_tanh", "silu")
NORMS = ("rms_norm", "layer_norm")
_ROPE_SCALING_KEYS = {"linear": ("factor",),
                      "llama3": ("factor", "low_freq_factor", "high_freq_factor", "original_max_positions")}


def model_fields(node: Node, graph: Graph, top_level: bool) -> Iterator[tuple[str, object, Node, str | None]]:
    """The model-level values one node computes with, as (field, value, node that says it, its attribute):
    the sizes, norm, eps, activation, rotary embedding, window, attention scale, softcaps and tied head
    that a Hugging Face config.json also states (checkpoint_config compares the two)."""
    op = node.op
    if op == "embedding":
        yield "vocab", node.attrs.vocab, node, "vocab"
        yield "hidden", node.attrs.dim, node, "dim"
        scale = next((graph.node(u) for u in graph.users[node.id] if graph.node(u).op == "scale"), None)
        yield "embedding_scale", scale.attrs.factor if scale else None, scale or node, "factor"
    elif op == "position_embedding":
        yield "positions", node.attrs.max_positions, node, "max_positions"
    elif op in NORMS:
        yield "norm", op, node, None
        yield "eps", node.attrs.eps, node, "eps"
        if op == "rms_norm":
            yield "norm_offset", node.attrs.offset, node, "offset"
    elif op in ACTIVATIONS:
        yield "activation", op, node, None
        source = graph.node(node.inputs[0])
        if source.op == "linear":
            yield "intermediate", source.attrs.out, source, "out"
    elif op == ATTEND.name:
        q, k = graph.node(node.inputs[0]), graph.node(node.inputs[1])
        heads, head_dim = q.type.shape[1], q.type.shape[-1]
        yield "heads", heads, node, None
        yield "kv_heads", k.type.shape[1], node, None
        yield "head_dim", head_dim, node, None
        rope = q.attrs.rope if q.op == "apply_rope" else None
        yield "rope", rope is not None, q if rope is not None else node, "rope"
        if rope is not None:
            fields = dict(rope.fields)
            for key in ("theta", "fraction", "style", "scaling", *_ROPE_SCALING_KEYS.get(fields["scaling"], ())):
                yield "rope." + key, fields[key], q, "rope"
        yield "window", node.attrs.window, node, "window"
        scale = node.attrs.scale
        yield "attn_scale", float(scale) if scale is not None else 1 / math.sqrt(head_dim), node, "scale"
        yield "attn_softcap", node.attrs.softcap, node, "softcap"
    elif op == "softcap" and top_level:
        yield "final_softcap", node.attrs.cap, node, "cap"
    elif op in ("linear", "tied_linear") and top_level and _is_head(graph, node):
        yield "tied", op == "tied_linear", node, None


def _is_head(graph: Graph, node: Node) -> bool:
    """A top-level projection that is an output, or whose only way out is a softcapped output."""
    outputs = set(graph.outputs.values())
    if node.id in outputs:
        return True
    users = [graph.node(u) for u in graph.users[node.id]]
    return bool(users) and all(u.id in outputs and u.op == "softcap" for u in users)
