"""Lowering passes: graph IR -> graph IR rewrites for a target. Each returns a new graph.

fuse_qkv: the q, k and v projections of an attention (three linears of one input, each
split into heads) become one linear of the concatenated weights and one split, the way
TT-NN models compute attention (`ttnn.transformer.split_query_key_value_and_split_heads`).
"""

from __future__ import annotations

import copy
from dataclasses import replace

from ..ir.graph import Graph, Model, ModuleInfo, Node


def fuse_qkv(model: Model) -> Model:
    lowered = copy.copy(model)
    lowered.graph = _fuse_graph(model.graph)
    return lowered


def _single_user(graph: Graph, node_id: str) -> Node | None:
    users = graph.users[node_id]
    return graph.node(users[0]) if len(users) == 1 else None


def _find_triples(graph: Graph):
    """(x, [(linear, split) for q, k, v]) for each attention's projections, in order."""
    by_input: dict[tuple[str, str], list[tuple[Node, Node]]] = {}
    for node in graph.topo():
        if node.op != "linear":
            continue
        split = _single_user(graph, node.id)
        if split is None or split.op != "split_heads":
            continue
        parent = node.module.rpartition(".")[0]
        by_input.setdefault((node.inputs[0], parent), []).append((node, split))
    for (x, parent), pairs in by_input.items():
        labels = [p[0].module.rpartition(".")[2] for p in pairs]
        if labels == ["wq", "wk", "wv"] and len({p[0].attrs["bias"] for p in pairs}) == 1 \
                and pairs[1][1].attrs["heads"] == pairs[2][1].attrs["heads"]:
            yield x, parent, pairs


def _fuse_graph(graph: Graph) -> Graph:
    triples = {pairs[0][0].id: (x, parent, pairs) for x, parent, pairs in _find_triples(graph)}
    removed = {n.id for _, _, pairs in triples.values() for pair in pairs for n in pair}
    renamed: dict[str, str] = {}
    out = Graph(inputs=list(graph.inputs), params=dict(graph.params), modules=dict(graph.modules))
    for node in graph.topo():
        if node.id in triples:
            x, parent, pairs = triples[node.id]
            (lq, sq), (lk, sk), (lv, sv) = pairs
            module = f"{parent}.wqkv"
            width = sum(p[0].attrs["out"] for p in pairs)
            fused = Node(module + ".linear", "linear", [renamed.get(x, x)],
                         {"out": width, "bias": lq.attrs["bias"],
                          "fused": tuple(tuple(sorted(p[0].params.items())) for p in pairs)},
                         lq.type.with_shape(lq.type.shape[:-1] + (width,)), module, lq.loc)
            heads, kv_heads = sq.attrs["heads"], sk.attrs["heads"]
            split = Node(f"{parent}.split_qkv_heads", "split_qkv_heads", [fused.id],
                         {"heads": heads, "kv_heads": kv_heads}, sq.type, parent, sq.loc, hint=sq.hint)
            k = Node(f"{parent}.k", "qkv_part", [split.id], {"index": 1, "kv_heads": kv_heads}, sk.type, parent,
                     sk.loc, hint=sk.hint)
            v = Node(f"{parent}.v", "qkv_part", [split.id], {"index": 2, "kv_heads": kv_heads}, sv.type, parent,
                     sv.loc, hint=sv.hint)
            for new in (fused, split, k, v):
                out.add(new)
            out.modules[module] = ModuleInfo(module, "linear", None, lq.loc)
            for gone in (lq, lk, lv):
                out.modules.pop(gone.module, None)
            renamed.update({sq.id: split.id, sk.id: k.id, sv.id: v.id})
            continue
        if node.id in removed:
            continue
        attrs = node.attrs
        if node.op == "repeat":
            attrs = dict(attrs, body=_fuse_graph(attrs["body"]))
        out.add(replace(node, inputs=[renamed.get(i, i) for i in node.inputs], attrs=attrs))
    out.outputs = {k: renamed.get(v, v) for k, v in graph.outputs.items()}
    return out


FUSABLE = {"silu": "silu", "relu": "relu"}


def fuse_activations(model: Model) -> Model:
    """linear followed by silu or relu (its only user) -> one linear with `activation`."""
    lowered = copy.copy(model)
    lowered.graph = _fuse_activations(model.graph)
    return lowered


def _fuse_activations(graph: Graph) -> Graph:
    fold: dict[str, str] = {}  # activation node id -> linear node id
    for node in graph.topo():
        if node.op in FUSABLE:
            src = graph.node(node.inputs[0])
            if src.op == "linear" and len(graph.users[src.id]) == 1 and not src.attrs.get("activation"):
                fold[node.id] = src.id
    activation_of = {lin: graph.node(act).op for act, lin in fold.items()}
    out = Graph(inputs=list(graph.inputs), params=dict(graph.params), modules=dict(graph.modules))
    for node in graph.topo():
        if node.id in fold:
            continue
        attrs = node.attrs
        if node.id in activation_of:
            attrs = dict(attrs, activation=FUSABLE[activation_of[node.id]])
        elif node.op == "repeat":
            attrs = dict(attrs, body=_fuse_activations(attrs["body"]))
        hint = node.hint
        act = next((a for a, lin in fold.items() if lin == node.id), None)
        if act is not None:
            hint = graph.node(act).hint or hint
        out.add(replace(node, inputs=[fold.get(i, i) for i in node.inputs], attrs=attrs, hint=hint))
    out.outputs = {k: fold.get(v, v) for k, v in graph.outputs.items()}
    return out
