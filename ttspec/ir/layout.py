"""How values and parameters are laid out over a mesh: the vocabulary of the sharding planner."""

from __future__ import annotations

from enum import Enum

# str-valued, so that JSON reports and the spec's `shard "pattern" column` statements read them directly.


class Layout(str, Enum):
    """Where a value lives over the tensor-parallel devices."""

    REPLICATED = "replicated"  # every device holds all of it
    SPLIT = "split"  # each device holds a slice of the feature dim (the heads dim of [b, heads, s, d] values)
    PARTIAL = "partial"  # each device holds a partial sum awaiting a reduction

    def __str__(self) -> str:
        return self.value


class Placement(str, Enum):
    """Where a parameter lives over the tensor-parallel devices."""

    REPLICATE = "replicate"  # a full copy on every device
    COLUMN = "column"  # output features split (a fused QKV by whole heads)
    ROW = "row"  # input features split; the outputs are partial sums
    HIDDEN = "hidden"  # an embedding table split on its features
    VOCAB = "vocab"  # the output head split on a (zero-padded) vocabulary
    KV_COPIES = "kv_copies"  # K/V projections of fewer KV heads than devices: each head copied to several
    EXPERTS = "experts"  # an expert bank [E, ...] split on its experts: ceil(E / devices) whole experts per device

    @property
    def description(self) -> str:
        return {
            Placement.REPLICATE: "replicated",
            Placement.COLUMN: "column-parallel (output features split)",
            Placement.ROW: "row-parallel (input features split)",
            Placement.HIDDEN: "split on hidden",
            Placement.VOCAB: "column-parallel over the vocabulary",
            Placement.KV_COPIES: "KV heads replicated (each device holds the heads its queries read)",
            Placement.EXPERTS: "split by expert (each device holds whole experts; partial sums out)",
        }[self]

    def __str__(self) -> str:
        return self.value
