"""The LM head (the vocabulary-sized linear, or tied linear, after the final norm) in the generated TT-NN
program: which node it is, and the rows it computes in prefill (the tile holding a prompt's last position,
unless every position's logits are asked for: RunState.head_rows)."""

from __future__ import annotations

from ...ops import LINEAR, TIED_LINEAR
from ..common.pyast import Expr


def is_output_head(node, graph) -> bool:
    """Whether `node` is the model's LM head: the projection a graph output of the model (whose input is token
    ids, not a layer's activations) reaches back through ops without parameters (a final softcap, the mesh's
    collectives)."""
    if node.op not in (LINEAR.name, TIED_LINEAR.name) or not graph.inputs:
        return False
    if not graph.node(graph.inputs[0]).type.is_int:
        return False
    for output in graph.outputs.values():
        head = graph.node(output)
        while not head.params and head.inputs:
            head = graph.node(head.inputs[0])
        if head.id == node.id:
            return True
    return False


def head_input(node, x: Expr, ctx) -> Expr:
    """The rows the head reads in prefill: a prompt's last tile where the run state says so, else `x`."""
    return ctx.state().attr("head_rows")(x) if is_output_head(node, ctx.graph) else x
