"""What one chip holds of a tensor under a sharding plan: the one rule the memory model, the cost model
and the sharding planner share (per-chip, "local", shapes).

`plan` is the sharding planner's ShardPlan (ttspec/passes/shard.py), or None for one chip. Each of its
axes (AxisPlan) records a placement per parameter (full names, `*` for a layer: "layers.*.attn.wq.weight")
and a layout per value (prefix + node id); these functions read those records and nothing else.
"""

from __future__ import annotations

from .layout import Layout, Placement


def split_dim(rank: int) -> int:
    """The dim a split value is cut on: the heads of a [batch, heads, seq, head_dim] value, else the
    features (last dim)."""
    return 1 if rank == 4 else -1


def value_splits(plan, key: str) -> tuple[int, ...]:
    """The devices of each plan axis over which value `key` (prefix + node id) is split."""
    if plan is None:
        return ()
    return tuple(ax.devices for ax in plan.axes if ax.layouts.get(key) == Layout.SPLIT)


def local_shape(shape: tuple, plan, key: str, param: bool = False) -> tuple:
    """The shape of the piece of a tensor one chip holds under `plan` (None: the whole tensor).

    A parameter (`param`; `key` its full name) is cut by its placement on each axis (2-D plans cut one
    dim per axis): column-parallel and vocabulary-split matrices on their output features (a vocabulary
    padded with zero rows first), row-parallel ones on their input features (a row-parallel bias stays
    whole: every chip adds it), copied KV heads keep whole heads.
    A value (`key`: prefix + node id) is cut on its split_dim by each axis over which it is split, into
    whole pieces (a chip holding a copied KV head holds all of it). Symbolic dims (batch, seq) are never
    cut."""
    if plan is None:
        return tuple(shape)
    if param:
        for ax in plan.axes:
            shape = _param_on_axis(key, tuple(shape), ax)
        return tuple(shape)
    splits = value_splits(plan, key)
    if not splits:
        return tuple(shape)
    out = list(shape)
    dim = split_dim(len(out))
    for devices in splits:
        out[dim] = -(-out[dim] // devices)
    return tuple(out)


def _param_on_axis(name: str, shape: tuple[int, ...], ax) -> tuple[int, ...]:
    role, n = ax.placements.get(name, Placement.REPLICATE), ax.devices
    if role == Placement.REPLICATE:
        return shape
    if name in ax.kv_copies:  # whole KV heads, each copied on kv_copies chips
        return (shape[0] * ax.kv_copies[name] // n,) + tuple(shape[1:])
    if role in (Placement.COLUMN, Placement.VOCAB):
        return (ax.padded_rows.get(name, shape[0]) // n,) + tuple(shape[1:])
    if role == Placement.ROW and len(shape) == 1:  # a row-parallel bias: every chip adds it (divided by n)
        return shape
    return tuple(shape[:-1]) + (shape[-1] // n,)  # row-parallel, or a table or norm split on hidden


def work_split(plan, key: str, params: list[str]) -> int:
    """Over how many chips an op's work (its FLOPs) is divided: the devices of every plan axis that
    places its weights (`params`, full names) or splits or holds partial sums of its result (`key`)."""
    if plan is None:
        return 1
    factor = 1
    for ax in plan.axes:
        placed = any(ax.placements.get(name, Placement.REPLICATE) != Placement.REPLICATE for name in params)
        if placed or ax.layouts.get(key) in (Layout.SPLIT, Layout.PARTIAL):
            factor *= ax.devices
    return factor
