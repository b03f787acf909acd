"""Elementwise ops: add and mul with broadcasting, scaling by a constant, logit softcapping,
and the activation functions.

FLOPs: like every elementwise op (and the norms), `scale` and `softcap` count none: ttspec's
FLOPs are the matmuls' (2 per multiply-add), which is what the reports and memory model use.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from ..ir.layout import Layout
from ..ir.types import TensorType, broadcast
from .registry import ArgSpec, OpDef, OpError, T, float_input, register


def same_layout(planner, node, layouts):
    """Ops linear in their input (per head, or moving features) keep its layout, partial sums included."""
    return planner.set_layout(node, layouts[0])


def complete_values(planner, node, layouts):
    """A nonlinear elementwise op needs complete values: partial sums are reduced first, onto
    feature slices when they split into whole tiles (reduce_scatter), else everywhere."""
    if layouts[0] == Layout.PARTIAL:
        width = node.type.shape[-1]
        want = Layout.SPLIT if planner.splits_features(width, node.inputs[0]) else Layout.REPLICATED
        node = planner.need(node, 0, want, f"{node.op} is not linear: it needs complete sums")
    return planner.set_layout(node, planner.layout_of(node.inputs[0]))


# ---------------------------------------------------------------- add, mul
def _binary_shape(name):
    def rule(ins, attrs, ctx):
        a, b = ins
        float_input(a, name)
        float_input(b, name)
        out = broadcast(a.shape, b.shape)
        if out is None:
            raise OpError(f"cannot {name} {a} and {b}: shapes do not broadcast")
        return TensorType("float", out)

    return rule


def _shard_binary(planner, node, layouts):
    """Partial sums are reduced before an add (into the residual stream's layout); a residual
    stream split on hidden stays split, slicing a replicated operand locally; anything else
    is computed on complete values. Onto slices only where this axis may split every operand
    (Planner.may_split: in a 2-D plan, not one the other axis splits)."""
    if layouts[0] == layouts[1] and layouts[0] != Layout.PARTIAL:
        return planner.set_layout(node, layouts[0])
    residual = planner.residual
    if node.op == ADD.name and Layout.PARTIAL in layouts:
        target = Layout.REPLICATED if Layout.REPLICATED in layouts else residual
        if target == Layout.SPLIT and not all(planner.may_split(i) for i in node.inputs):
            target = Layout.REPLICATED  # e.g. two top-level linears the rows of a 2-D plan split, added
        for i, lay in enumerate(layouts):
            if lay == Layout.PARTIAL:
                node = planner.need(node, i, target, "the residual stream holds complete sums")
        for i in range(2):
            node = planner.need(node, i, target, "both operands of an add share a layout")
        return planner.set_layout(node, target)
    if node.op == ADD.name and set(layouts) == {Layout.SPLIT, Layout.REPLICATED} and residual == Layout.SPLIT \
            and all(planner.may_split(i) for i in node.inputs):
        for i in range(2):
            node = planner.need(node, i, Layout.SPLIT, "the residual stream stays split on hidden")
        return planner.set_layout(node, Layout.SPLIT)
    for i in range(2):
        node = planner.need(node, i, Layout.REPLICATED, f"{node.op} of differently laid out values")
    return planner.set_layout(node, Layout.REPLICATED)


ADD = register(OpDef(
    "add", (T("a"), T("b")), _binary_shape("add"), doc="Elementwise add with numpy broadcasting.",
    symbol="+", shard=_shard_binary,
))

MUL = register(OpDef(
    "mul", (T("a"), T("b")), _binary_shape("mul"), doc="Elementwise mul with numpy broadcasting.",
    symbol="×", shard=_shard_binary,
))


# ---------------------------------------------------------------- scale and softcap
class ScaleAttrs(NamedTuple):
    factor: float


class SoftcapAttrs(NamedTuple):
    cap: float


def _scale_shape(ins, attrs: ScaleAttrs, ctx):
    float_input(ins[0], "scale")
    if not math.isfinite(attrs.factor):
        raise OpError(f"a scale factor must be finite, got {attrs.factor}", arg="factor")
    return ins[0]


# `x * c`, `c * x` and `x / c` in a spec (Gemma's embedding * sqrt(hidden)). Linear: a partial
# sum scaled is the scaled sum's partial, so every layout is kept as it is.
SCALE = register(OpDef(
    "scale", (T("x"), ArgSpec("factor", "float")), _scale_shape, ScaleAttrs,
    doc="x * factor, a constant; written `x * 2.0`, `2.0 * x` or `x / 2.0` in a spec.",
    shard=same_layout,
))


def _softcap_shape(ins, attrs: SoftcapAttrs, ctx):
    float_input(ins[0], "softcap")
    cap = attrs.cap
    if not (math.isfinite(cap) and cap > 0):
        raise OpError(f"softcap needs a positive finite cap, got {cap}", arg="cap",
                      hint="Gemma 2 caps final logits at 30.0 and attention logits at 50.0")
    return ins[0]


# Nonlinear, so partial sums are completed first; elementwise, so a vocabulary-split output head's
# logits stay split.
SOFTCAP = register(OpDef(
    "softcap", (T("x"), ArgSpec("cap", "float")), _softcap_shape, SoftcapAttrs,
    doc="cap * tanh(x / cap): squashes x smoothly into (-cap, cap) (Gemma 2's logit softcapping).",
    shard=complete_values,
))


# ---------------------------------------------------------------- activations
def _unary_shape(name):
    def rule(ins, attrs, ctx):
        float_input(ins[0], name)
        return ins[0]

    return rule


def _activation(name: str, doc: str) -> OpDef:
    return register(OpDef(name, (T("x"),), _unary_shape(name), doc=doc, shard=complete_values))


RELU = _activation("relu", "max(x, 0)")
GELU = _activation("gelu", "x * Phi(x), the exact (erf) GELU")
GELU_TANH = _activation("gelu_tanh", "the tanh approximation of GELU (GPT-2's gelu_new)")
SILU = _activation("silu", "x * sigmoid(x), a.k.a. swish")

# The names `activation(x, "...")` accepts in a spec, with what each computes.
ACTIVATIONS = {op.name: op.doc for op in (RELU, GELU, GELU_TANH, SILU)}
