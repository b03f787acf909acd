"""Collectives, inserted by the sharding planner (ttspec/passes/shard.py), never written in a spec.

Types in the IR stay logical (unsharded), so their shape rule is the identity; what they move
is described by the plan. Each is emitted as the ttnn CCL op of the same name on its mesh
axis (`cluster_axis`): the tensor-parallel one, or either axis of a 2-D plan.
"""

from __future__ import annotations

from typing import NamedTuple

from .elementwise import same_layout
from .registry import ArgSpec, OpDef, T, register


class CollectiveAttrs(NamedTuple):
    dim: int = -1  # the dim gathered or scattered
    axis: int = 1  # the mesh axis it runs over (`cluster_axis`)


def _identity(ins, attrs, ctx):
    return ins[0]


def _collective(name: str, doc: str) -> OpDef:
    """`dim` is ignored by all_reduce, which moves whole values."""
    return register(OpDef(
        name, (T("x"), ArgSpec("dim", "int", -1), ArgSpec("axis", "int", 1)), _identity, CollectiveAttrs,
        doc=doc, in_spec=False,
        var_name=lambda node: node.hint or "h",
        shard=same_layout,  # a 2-D plan's second axis: a collective on the first leaves this axis's layout
    ))


ALL_GATHER = _collective("all_gather", "Gather the shards of `dim` from the devices along mesh axis `axis`.")
REDUCE_SCATTER = _collective("reduce_scatter",
                             "Sum partial results over mesh axis `axis`, leaving each device one slice of `dim`.")
ALL_REDUCE = _collective("all_reduce", "Sum partial results over mesh axis `axis`; every device gets the total.")
MESH_PARTITION = _collective("mesh_partition",
                             "Each device keeps its own slice of `dim` of a replicated value (no data moves).")

COLLECTIVES = (ALL_GATHER, REDUCE_SCATTER, ALL_REDUCE, MESH_PARTITION)

# The collective each op is in tt-metal's CCL benchmarks (targets.WORMHOLE_CCL holds their measured
# time models); mesh_partition moves no data.
CCL_PATTERN = {ALL_GATHER.name: "all-gather", REDUCE_SCATTER.name: "reduce-scatter", ALL_REDUCE.name: "all-reduce"}
