"""Normalisations over the feature dim: RMSNorm and LayerNorm.

Both normalise over the last dim, so on [batch, heads, seq, head_dim] values they are per-head
norms (Qwen3's q/k norms). RMSNorm's `offset` multiplies by (offset + weight): Gemma stores w
and applies 1 + w.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import NamedTuple

from ..ir.layout import Layout, Placement
from ..targets import TILE
from .registry import (
    ZERO,
    ArgSpec,
    OpDef,
    OpError,
    ParamSpec,
    Storage,
    T,
    float_input,
    last_dim,
    register,
    unit_gain,
)


# ---------------------------------------------------------------- attributes
# Both norms' attrs answer eps, offset, bias and distributed, so the lowerings they share read them alike.
class RMSNormAttrs(NamedTuple):
    eps: float
    offset: float = 0.0
    distributed: bool = False  # set by the sharding pass: each chip normalises its slice of hidden

    @property
    def bias(self) -> bool:
        return False


class LayerNormAttrs(NamedTuple):
    eps: float
    bias: bool = True
    distributed: bool = False  # set by the sharding pass, as for RMSNormAttrs

    @property
    def offset(self) -> float:
        return 0.0


class NormStatisticsAttrs(NamedTuple):
    mean: bool = False  # a LayerNorm's: sum(x) besides sum(x^2)


def _norm_params(ins, a, with_bias, offset=0.0):
    d = last_dim(ins[0], "norm")
    spec = {"weight": ParamSpec((d,), init=unit_gain(offset))}
    if with_bias:
        spec["bias"] = ParamSpec((d,), init=ZERO)
    return spec


def _norm_shape(name):
    def rule(ins, attrs, ctx):
        float_input(ins[0], name)
        last_dim(ins[0], name)
        if not 0 < attrs.eps < 1:
            raise OpError(f"eps must be in (0, 1), got {attrs.eps}", arg="eps")
        if not math.isfinite(attrs.offset):
            raise OpError(f"offset must be finite, got {attrs.offset}", arg="offset",
                          hint="Gemma's norms use offset = 1.0 (they multiply by 1 + weight)")
        return ins[0]

    return rule


def _shard_norm(planner, node, layouts):
    """A norm reduces over whole rows: its input is gathered, its weights replicated. On
    [batch, heads, seq, head_dim] values (split on heads) each row is one head's, so split heads
    stay split; only partial sums are completed first. Over the columns of a 2-D plan, which hold
    slices of hidden, the norm is distributed instead (_shard_distributed_norm)."""
    if planner.hidden_side and node.type.rank == 3 and planner.splits_features(node.type.shape[-1], node.inputs[0]):
        return _shard_distributed_norm(planner, node, layouts)
    node = planner.place(node, Placement.REPLICATE)
    if node.type.rank == 4 and layouts[0] != Layout.PARTIAL:
        return planner.set_layout(node, layouts[0])
    node = planner.need(node, 0, Layout.REPLICATED, f"{node.op} needs whole rows")
    return planner.set_layout(node, Layout.REPLICATED)


def _shard_distributed_norm(planner, node, layouts):
    """tt-metal's distributed norm (models/tt_transformers/tt/distributed_norm.py on Galaxy): each
    chip sums its slice of hidden (x^2, and x for a LayerNorm: one tile of statistics per chip),
    the statistics are gathered over the columns, and each chip normalises its own slice with its
    slice of the weights. Only the statistics cross the wire, and the output stays split for the
    row-parallel projection that reads it."""
    if layouts[0] != Layout.SPLIT:
        node = planner.need(node, 0, Layout.SPLIT, f"a distributed {node.op} normalises each chip's slice of hidden")
    source = planner.input_node(node, 0)
    mean = node.op == LAYER_NORM_NAME
    stats = planner.insert(NORM_STATISTICS.name, [source.id], NormStatisticsAttrs(mean=mean),
                           source.type.with_shape(source.type.shape[:-1] + (TILE * (2 if mean else 1),)),
                           reader=node, layout=Layout.SPLIT)
    gathered = planner.convert(stats, Layout.REPLICATED, f"{node.op}'s statistics of every slice of hidden", node)
    node = replace(node, inputs=[source.id, gathered], attrs=node.attrs._replace(distributed=True))
    node = planner.place(node, Placement.HIDDEN)
    return planner.set_layout(node, Layout.SPLIT)


def _stats_shape(ins, attrs: NormStatisticsAttrs, ctx):
    (x,) = ins
    return x.with_shape(x.shape[:-1] + (TILE * (2 if attrs.mean else 1),))


NORM_STATISTICS = register(OpDef(
    "norm_statistics", (T("x"), ArgSpec("mean", "bool", False)), _stats_shape, NormStatisticsAttrs, in_spec=False,
    doc="Made by the sharding planner for a distributed norm: each chip's sum(x^2) (and sum(x) with `mean`) over "
        "its slice of the last dim, one tile wide each; gathered over the mesh and read by the norm.",
    shard=lambda planner, node, layouts: planner.set_layout(node, layouts[0]),
    var_name=lambda node: "stats",
))
LAYER_NORM_NAME = "layer_norm"
STATISTICS_BYTES = 4  # a value of norm_statistics' output: float32 (the TT-NN lowering's dtype)


def _width(node) -> int:
    return node.type.shape[-1]


RMS_NORM = register(OpDef(
    "rms_norm", (T("x"), ArgSpec("eps", "float"), ArgSpec("offset", "float", 0.0)), _norm_shape("rms_norm"),
    RMSNormAttrs,
    params=lambda ins, a: _norm_params(ins, a, False, a.offset),
    doc="x / sqrt(mean(x^2) + eps) * (offset + weight) over the last dim; offset 1.0 is Gemma's (1 + w).",
    kind="norm", storage=(("weight", Storage.VECTOR),), shard=_shard_norm,
))


LAYER_NORM = register(OpDef(
    LAYER_NORM_NAME, (T("x"), ArgSpec("eps", "float"), ArgSpec("bias", "bool", True)), _norm_shape("layer_norm"),
    LayerNormAttrs,
    params=lambda ins, a: _norm_params(ins, a, a.bias),
    doc="(x - mean) / sqrt(var + eps) * weight (+ bias).",
    kind="norm", storage=(("weight", Storage.VECTOR), ("bias", Storage.VECTOR)), shard=_shard_norm,
))
