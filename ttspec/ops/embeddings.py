"""Token embeddings and absolute positions (learned and sinusoidal)."""

from __future__ import annotations

from typing import NamedTuple

from ..errors import ArchError
from ..ir.layout import Layout, Placement
from ..ir.types import Dim, TensorType
from .registry import (
    ArgSpec,
    OpDef,
    OpError,
    ParamSpec,
    ShapeContext,
    Storage,
    T,
    last_dim,
    positive,
    register,
)


# ---------------------------------------------------------------- attributes
class EmbeddingAttrs(NamedTuple):
    vocab: int
    dim: int


class PositionEmbeddingAttrs(NamedTuple):
    max_positions: int


class SinusoidalPositionsAttrs(NamedTuple):
    base: float = 10000.0


# ---------------------------------------------------------------- shape rules
def _embedding_shape(ins, attrs: EmbeddingAttrs, ctx):
    (ids,) = ins
    if not ids.is_int:
        raise OpError(f"embedding needs integer token ids, got {ids}", arg="ids",
                      hint="declare the input as e.g. `input tokens: int32[batch, seq]`")
    positive(attrs.vocab, "vocab")
    positive(attrs.dim, "dim")
    return TensorType("float", ids.shape + (attrs.dim,))


def _check_positions_fit(seq: Dim, table_rows: int, ctx: ShapeContext) -> None:
    if isinstance(seq, int):
        if seq > table_rows:
            raise OpError(f"sequence length {seq} exceeds the {table_rows} learned positions",
                          arg="max_positions")
        return
    bound = ctx.bounds.get(seq)
    if bound is None:
        raise OpError(f"`{seq}` is unbounded but the position table has {table_rows} rows",
                      hint=f"constrain the input, e.g. `where {seq} <= {table_rows}`")
    if bound > table_rows:
        raise OpError(f"`{seq}` may reach {bound} but the position table has only {table_rows} rows",
                      arg="max_positions", hint=f"use max_positions >= {bound} or `where {seq} <= {table_rows}`")


def _positions_shape(ins, attrs: PositionEmbeddingAttrs, ctx):
    (x,) = ins
    if x.rank < 2:
        raise OpError(f"position_embedding needs [..., seq, dim], got {x}")
    positive(attrs.max_positions, "max_positions")
    _check_positions_fit(x.shape[-2], attrs.max_positions, ctx)
    return TensorType("float", (x.shape[-2], last_dim(x, "position_embedding")))


def _sinusoidal_shape(ins, attrs: SinusoidalPositionsAttrs, ctx):
    (x,) = ins
    if x.rank < 2:
        raise OpError(f"sinusoidal_positions needs [..., seq, dim], got {x}")
    d = last_dim(x, "sinusoidal_positions")
    if d % 2:
        raise OpError(f"sinusoidal positions need an even dim, got {d}")
    if attrs.base <= 1:
        raise OpError(f"base must be greater than 1, got {attrs.base}", arg="base")
    return TensorType("float", (x.shape[-2], d))


# ---------------------------------------------------------------- sharding
def _shard_table(planner, node, layouts):
    """Embedding tables split on hidden when the residual stream is, else replicated."""
    forced = planner.override(node)
    if forced is not None and forced.placement != Placement.REPLICATE:
        raise ArchError(f"an embedding table is split on hidden or replicated, not `{forced.placement}`",
                        forced.placement_loc, hint="use `replicate`")
    split = planner.residual == Layout.SPLIT and forced is None
    placement = Placement.HIDDEN if split else Placement.REPLICATE
    return planner.set_layout(planner.place(node, placement), Layout.SPLIT if split else Layout.REPLICATED)


def _shard_fixed_table(planner, node, layouts):
    return planner.set_layout(node, Layout.REPLICATED)


# ---------------------------------------------------------------- the ops
EMBEDDING = register(OpDef(
    "embedding", (T("ids"), ArgSpec("vocab", "int"), ArgSpec("dim", "int")), _embedding_shape, EmbeddingAttrs,
    params=lambda ins, a: {"weight": ParamSpec((a.vocab, a.dim))},
    doc="Token ids -> vectors: a [vocab, dim] lookup table.",
    kind="embedding", storage=(("weight", Storage.TABLE),), shard=_shard_table,
))

POSITION_EMBEDDING = register(OpDef(
    "position_embedding", (T("x"), ArgSpec("max_positions", "int")), _positions_shape, PositionEmbeddingAttrs,
    params=lambda ins, a: {"weight": ParamSpec((a.max_positions, last_dim(ins[0], "position_embedding")))},
    doc="Learned absolute positions: rows [0, seq) of a [max_positions, dim] table, shape [seq, dim].",
    kind="embedding", storage=(("weight", Storage.TABLE),), shard=_shard_table,
))


SINUSOIDAL_POSITIONS = register(OpDef(
    "sinusoidal_positions", (T("x"), ArgSpec("base", "float", 10000.0)), _sinusoidal_shape,
    SinusoidalPositionsAttrs,
    doc="Fixed sin/cos positions (Vaswani et al.), shape [seq, dim]; no parameters.",
    shard=_shard_fixed_table,
))
