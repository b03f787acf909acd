"""The sharding plan and what one chip holds of a tensor under it: the data the sharding pass
(ttspec/passes/shard.py) writes, and the one rule the memory model, the cost model and the planner share
(per-chip, "local", shapes).

A ShardPlan has one AxisPlan per mesh axis that splits the model. Each records a placement per parameter
(full names, `*` for a layer: "layers.*.attn.wq.weight") and a layout per value (prefix + node id); these
functions read those records and nothing else. One chip is a plan like any other: a 1x1 mesh with no
axes (one_chip()), over which nothing is split, no work divided and no collective runs.
"""

from __future__ import annotations

from ..records import FrozenRecord, Record, fresh
from .layout import Layout, Placement


class NodeShard(FrozenRecord):
    """What the sharding pass decided for one node (Node.shard), written only there (passes/shard.py:
    the Planner) and read by the lowering, the activation fusion and the memory model: where its
    parameters live on each mesh axis that placed them, the heads one chip holds of an op that cuts or
    reads heads (query heads of split_heads and split_qkv_heads, KV heads of split_qkv_heads and
    attend), and the rows of a vocabulary-split projection after zero padding. None: whole (as on
    one chip, whose nodes keep NO_SHARD)."""

    placements: tuple[tuple[int, Placement], ...] = ()  # (mesh axis, placement), in the order axes are planned
    local_heads: int | None = None
    local_kv_heads: int | None = None
    padded_out: int | None = None

    def on(self, axis: int) -> Placement:
        """The placement of the node's parameters on mesh `axis` (replicated where that axis placed none)."""
        return dict(self.placements).get(axis, Placement.REPLICATE)

    @property
    def placed(self) -> set[Placement]:
        """The placements of the node's parameters over all axes."""
        return {placement for _, placement in self.placements}

    def placed_on(self, axis: int, placement: Placement) -> NodeShard:
        return self.replace(placements=tuple((a, p) for a, p in self.placements if a != axis) + ((axis, placement),))


NO_SHARD = NodeShard()  # a node the sharding pass left whole (every node before it, and on one chip)


class Collective(Record):
    node: str  # the inserted node's id
    op: str
    dim: int
    axis: int
    source: str  # the value it converts
    reason: str
    variant: int = 0  # inside a repeat whose layers differ: the variant (ir.graph.layer_variants) it belongs to


class AxisPlan(Record):
    """What one mesh axis does: the layout of every value and the placement of every parameter over
    the devices along it."""

    axis: int | None  # None only in one chip's stand-in (ShardPlan.primary)
    devices: int
    role: str  # TENSOR_PARALLEL or HIDDEN_SIDE (see plan_sharding)
    residual: Layout  # the residual stream over this axis: split on hidden, or replicated
    placements: dict[str, Placement] = fresh(dict)  # param name (per layer) -> placement
    kv_copies: dict[str, int] = fresh(dict)  # copied K/V params -> devices holding each head
    padded_rows: dict[str, int] = fresh(dict)  # vocab-split params -> rows after zero padding
    layouts: dict[str, Layout] = fresh(dict)


# The roles of a mesh axis. Tensor parallelism (Megatron): column-parallel on complete inputs, row-parallel on
# split ones, splitting the wide dims (heads, MLP hidden, vocabulary). Hidden side (the second axis of 2-D
# tensor parallelism, as tt-metal's Galaxy models split weights): every matmul splits its hidden-side dim (the
# residual's width), so a projection out of the residual is row-parallel and one back into it column-parallel.
TENSOR_PARALLEL, HIDDEN_SIDE = "tensor-parallel", "hidden-side"
STRATEGIES = ("1d", "2d")


class ShardPlan(Record):
    mesh: tuple[int, int]
    axes: list[AxisPlan]  # 1-D: the tensor-parallel axis; 2-D: rows (tensor-parallel), then columns (hidden side)
    dp: bool = False  # 1-D: the other mesh axis splits the batch
    collectives: list[Collective] = fresh(list)
    notes: list[str] = fresh(list)

    @property
    def strategy(self) -> str | None:
        """"1d", "2d", or None for one chip (no axis splits anything)."""
        return STRATEGIES[len(self.axes) - 1] if self.axes else None

    @property
    def primary(self) -> AxisPlan:
        """The tensor-parallel axis: all of a 1-D plan; the rows of a 2-D one; on one chip an axis of one
        device that places nothing (what every view below reads)."""
        return self.axes[0] if self.axes else AxisPlan(None, 1, TENSOR_PARALLEL, Layout.REPLICATED)

    # The tensor-parallel axis's view.
    @property
    def axis(self) -> int | None:
        return self.primary.axis

    @property
    def devices(self) -> int:
        return self.primary.devices

    @property
    def residual(self) -> Layout:
        return self.primary.residual

    @property
    def placements(self) -> dict[str, Placement]:
        return self.primary.placements

    @property
    def kv_copies(self) -> dict[str, int]:
        return self.primary.kv_copies

    @property
    def padded_rows(self) -> dict[str, int]:
        return self.primary.padded_rows

    @property
    def layouts(self) -> dict[str, Layout]:
        return self.primary.layouts

    @property
    def replicas(self) -> int:
        """The data-parallel replicas the batch is split over (1 unless `dp`)."""
        return self.mesh[1 - self.axis] if self.dp else 1

    @property
    def chips(self) -> int:
        return self.mesh[0] * self.mesh[1]

    @property
    def group(self) -> int:
        """Devices in one tensor-parallel group (a model replica)."""
        n = 1
        for ax in self.axes:
            n *= ax.devices
        return n

    def placement(self, name: str) -> tuple[Placement, ...]:
        """A parameter's placement on each of the plan's axes."""
        return tuple(ax.placements.get(name, Placement.REPLICATE) for ax in self.axes)

    def split_on(self, key: str) -> list[AxisPlan]:
        """The axes over which value `key` (prefix + node id) is split."""
        return [ax for ax in self.axes if ax.layouts.get(key) == Layout.SPLIT]




def split_dim(rank: int) -> int:
    """The dim a split value is cut on: the heads of a [batch, heads, seq, head_dim] value, else the
    features (last dim)."""
    return 1 if rank == 4 else -1


def value_splits(plan, key: str) -> tuple[int, ...]:
    """The devices of each plan axis over which value `key` (prefix + node id) is split."""
    return tuple(ax.devices for ax in plan.axes if ax.layouts.get(key) == Layout.SPLIT)


def local_shape(shape: tuple, plan, key: str, param: bool = False) -> tuple:
    """The shape of the piece of a tensor one chip holds under `plan` (one_chip(): the whole tensor).

    A parameter (`param`; `key` its full name) is cut by its placement on each axis (2-D plans cut one
    dim per axis): column-parallel and vocabulary-split matrices on their output features (a vocabulary
    padded with zero rows first), an expert bank on its experts (ceil(E / devices) per device, zero
    experts filling the last devices' slots), row-parallel ones on their input features (a row-parallel bias stays
    whole: every chip adds it), copied KV heads keep whole heads.
    A value (`key`: prefix + node id) is cut on its split_dim by each axis over which it is split, into
    whole pieces (a chip holding a copied KV head holds all of it). Symbolic dims (batch, seq) are never
    cut."""
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
    if role == Placement.EXPERTS:  # whole experts: ceil(E / n) each, the last devices' spare slots zero experts
        return (-(-shape[0] // n),) + tuple(shape[1:])
    if role in (Placement.COLUMN, Placement.VOCAB):
        return (ax.padded_rows.get(name, shape[0]) // n,) + tuple(shape[1:])
    if role == Placement.ROW and len(shape) == 1:  # a row-parallel bias: every chip adds it (divided by n)
        return shape
    return tuple(shape[:-1]) + (shape[-1] // n,)  # row-parallel, or a table or norm split on hidden


def work_split(plan, key: str, params: list[str]) -> int:
    """Over how many chips an op's work (its FLOPs) is divided: the devices of every plan axis that
    places its weights (`params`, full names) or splits or holds partial sums of its result (`key`)."""
    factor = 1
    for ax in plan.axes:
        placed = any(ax.placements.get(name, Placement.REPLICATE) != Placement.REPLICATE for name in params)
        if placed or ax.layouts.get(key) in (Layout.SPLIT, Layout.PARTIAL):
            factor *= ax.devices
    return factor


def one_chip() -> ShardPlan:
    """The plan of one chip: a 1x1 mesh with no axes (nothing split, no collectives)."""
    return ShardPlan((1, 1), [])


# What the analysis functions read when asked of the whole model: one chip's plan (read, never written).
ONE_CHIP = one_chip()
