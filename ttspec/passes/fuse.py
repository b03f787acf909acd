"""Lowering passes: graph IR -> graph IR rewrites for the TT-NN targets. Each returns a new graph.

fuse_qkv: the q, k and v projections of an attention become one linear of the concatenated
weights and one split, the way TT-NN models compute attention
(`ttnn.transformer.split_query_key_value_and_split_heads`). The projections are recognised by
structure, not by name: three linears of one input, each split into heads (possibly through
rotary embedding and per-head norms, Qwen3's q/k norms), feeding the same `attend` as its q, k and v.

fuse_activations: a linear followed by an activation that ttnn.linear can apply itself; on a
mesh it runs after the sharding planner, and leaves row-parallel linears (partial sums) alone.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, replace

from ..ir.graph import Graph, Model, ModuleInfo, Node, map_bodies, unused_name
from ..ir.layout import Placement
from ..ops import (
    APPLY_ROPE,
    ATTEND,
    LAYER_NORM,
    LINEAR,
    QKV_PART,
    RMS_NORM,
    SPLIT_HEADS,
    SPLIT_QKV_HEADS,
    FusedPart,
    FusedQKV,
)
from ..ops.attention import QKVPartAttrs, SplitQKVHeadsAttrs
from ..ops.linear import LinearAttrs

# Ops between a head split and attention that act on each head alone: rotary embedding, and
# norms over head_dim (on [batch, heads, seq, head_dim] values).
PER_HEAD = (APPLY_ROPE.name, RMS_NORM.name, LAYER_NORM.name)


def fuse_qkv(model: Model) -> Model:
    lowered = copy.copy(model)
    lowered.graph = _fuse_graph(model.graph)
    return lowered


@dataclass
class _Projection:
    linear: Node
    split: Node  # the split_heads of its output


def _single_user(graph: Graph, node_id: str) -> Node | None:
    users = graph.users[node_id]
    return graph.node(users[0]) if len(users) == 1 else None


def _projection(graph: Graph, value_id: str) -> _Projection | None:
    """The linear + split_heads that make an attention input (looking through per-head ops)."""
    node = graph.node(value_id)
    while node.op in PER_HEAD:
        node = graph.node(node.inputs[0])
    if node.op != SPLIT_HEADS.name:
        return None
    linear = graph.node(node.inputs[0])
    if linear.op != LINEAR.name or _single_user(graph, linear.id) is not node:
        return None
    return _Projection(linear, node)


def _parent(module: str) -> str:
    return module.rpartition(".")[0]


def _find_attention_projections(graph: Graph):
    """(q, k, v) projections of each attention that can be computed as one fused linear."""
    claimed: set[str] = set()
    for node in graph.topo():
        if node.op != ATTEND.name:
            continue
        parts = [_projection(graph, i) for i in node.inputs]
        if any(p is None for p in parts):
            continue
        q, k, v = parts
        linears = [p.linear for p in parts]
        ids = {lin.id for lin in linears}
        if len(ids) != 3 or ids & claimed:
            continue
        same_input = len({lin.inputs[0] for lin in linears}) == 1
        same_bias = len({lin.attrs.bias for lin in linears}) == 1
        same_parent = len({_parent(lin.module) for lin in linears}) == 1
        head_dims = {p.split.type.shape[-1] for p in parts}
        kv_heads_match = k.split.attrs.heads == v.split.attrs.heads
        if same_input and same_bias and same_parent and len(head_dims) == 1 and kv_heads_match:
            claimed |= ids
            yield q, k, v


def _origins(**attrs: Node) -> dict:
    """Where the fused op's attrs were written down: each is the `heads` of one split."""
    return {attr: split.origins["heads"] for attr, split in attrs.items() if "heads" in split.origins}


def _fuse_graph(graph: Graph) -> Graph:
    groups = list(_find_attention_projections(graph))
    first_linear = {}
    position = {nid: i for i, nid in enumerate(graph.nodes)}  # once: a list index per group is quadratic
    for group in groups:
        first = min((p.linear for p in group), key=lambda n: position[n.id])
        first_linear[first.id] = group
    removed = {n.id for group in groups for p in group for n in (p.linear, p.split)}
    renamed: dict[str, str] = {}
    out = Graph(inputs=list(graph.inputs), params=dict(graph.params), modules=dict(graph.modules))
    for node in graph.topo():
        if node.id in first_linear:
            q, k, v = first_linear[node.id]
            parent = _parent(q.linear.module)
            module = unused_name(out.modules, f"{parent}.wqkv" if parent else "wqkv")
            heads, kv_heads = q.split.attrs.heads, k.split.attrs.heads
            fused = FusedQKV(tuple(FusedPart(p.linear.module.rpartition(".")[2], tuple(sorted(p.linear.params.items())))
                                   for p in (q, k, v)),
                             heads, kv_heads, q.split.type.shape[-1])
            width = sum(p.linear.attrs.out for p in (q, k, v))
            x = q.linear.inputs[0]
            linear = Node(out.fresh_id(module + ".linear"), LINEAR.name, [renamed.get(x, x)],
                          LinearAttrs(width, q.linear.attrs.bias, fused=fused),
                          q.linear.type.with_shape(q.linear.type.shape[:-1] + (width,)), module, q.linear.loc)
            out.add(linear)
            split_id = f"{parent}.{SPLIT_QKV_HEADS.name}" if parent else SPLIT_QKV_HEADS.name
            split = out.add(Node(out.fresh_id(split_id),
                                 SPLIT_QKV_HEADS.name, [linear.id], SplitQKVHeadsAttrs(heads, kv_heads),
                                 q.split.type, parent, q.split.loc, hint=q.split.hint, hint_scope=q.split.hint_scope,
                                 origins=_origins(heads=q.split, kv_heads=k.split)))
            renamed[q.split.id] = split.id
            for index, p in ((1, k), (2, v)):
                part = out.add(Node(out.fresh_id(p.split.id), QKV_PART.name, [split.id],
                                    QKVPartAttrs(index, kv_heads), p.split.type, parent, p.split.loc,
                                    hint=p.split.hint, hint_scope=p.split.hint_scope))
                renamed[p.split.id] = part.id
            out.modules[module] = ModuleInfo(module, LINEAR.name, None, q.linear.loc)
            for p in (q, k, v):
                out.modules.pop(p.linear.module, None)
            continue
        if node.id in removed:
            continue
        attrs = node.attrs
        if node.is_repeat:
            attrs = map_bodies(node, _fuse_graph)
        out.add(replace(node, inputs=[renamed.get(i, i) for i in node.inputs], attrs=attrs))
    out.outputs = {k: renamed.get(v, v) for k, v in graph.outputs.items()}
    return out


def fuse_activations(model: Model, activations: Mapping[str, str]) -> Model:
    """A linear followed by an activation the backend's linear can apply (its only user) -> one
    linear. `activations`: op name -> the linear's name for it (the TT-NN lowering table's
    FUSED_ACTIVATIONS: what `ttnn.linear(..., activation=...)` computes)."""
    lowered = copy.copy(model)
    lowered.graph = _fuse_activations(model.graph, activations)
    return lowered


def _fuse_activations(graph: Graph, activations: Mapping[str, str]) -> Graph:
    fold: dict[str, str] = {}  # activation node id -> linear node id
    for node in graph.topo():
        if node.op in activations:
            src = graph.node(node.inputs[0])
            partial = Placement.ROW in src.shard.placed  # a row-parallel linear: partial sums
            if src.op == LINEAR.name and len(graph.users[src.id]) == 1 and not src.attrs.activation \
                    and not partial:
                fold[node.id] = src.id
    activation_of = {lin: act for act, lin in fold.items()}
    out = Graph(inputs=list(graph.inputs), params=dict(graph.params), modules=dict(graph.modules))
    for node in graph.topo():
        if node.id in fold:
            continue
        attrs, hint = node.attrs, node.hint
        if node.id in activation_of:
            act = graph.node(activation_of[node.id])
            attrs = attrs._replace(activation=activations[act.op])
            hint = act.hint or hint
        elif node.is_repeat:
            attrs = map_bodies(node, lambda body: _fuse_activations(body, activations))
        out.add(replace(node, inputs=[fold.get(i, i) for i in node.inputs], attrs=attrs, hint=hint))
    out.outputs = {k: fold.get(v, v) for k, v in graph.outputs.items()}
    return out
