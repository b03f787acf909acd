"""The sharding planner: a pass that makes a lowered graph tensor-parallel over a mesh.

Megatron-style, as tt-metal's hand-written tt_transformers models shard: a linear that
reads a replicated activation is column-parallel (its output features split over the
devices), one that reads feature-split activations is row-parallel (each device holds a
partial sum). Layouts propagate through the graph and collectives are inserted where an
op needs another layout: reduce_scatter turns partial sums back into a hidden-split
residual stream, all_gather rebuilds the full activation before each norm.

2-D tensor parallelism (docs/design-2d-tp.md) runs the same rules once per mesh axis: the rows
as above with the residual replicated, then the columns in the hidden-side role, where every
matmul splits its hidden dim (so a projection out of the residual is row-parallel and one back
into it column-parallel) and norms are distributed. Each axis keeps its own layouts and
placements (AxisPlan); collectives carry the axis they run on (ttnn's cluster_axis).

What each op needs is its sharding rule in the op registry (ttspec/ops/); this module walks
the graph, runs the rules, and owns the conversions between layouts (the collectives).
The result is data (ShardPlan: a placement per parameter, a layout per value, each
collective with its reason, per axis) plus the rewritten graph that codegen emits.
"""

from __future__ import annotations

import copy
import fnmatch
from dataclasses import replace

from ..errors import ArchError, Note
from ..ir.graph import Graph, Model, Node, in_stdlib, layer_variants, point_at_spec, with_bodies
from ..ir.layout import Layout, Placement
from ..ir.sharding import (
    HIDDEN_SIDE,
    TENSOR_PARALLEL,
    AxisPlan,
    Collective,
    ShardPlan,
    one_chip,
    split_dim,
)
from ..ops import ALL_GATHER, ALL_REDUCE, EMBEDDING, MESH_PARTITION, REDUCE_SCATTER, REGISTRY, ops_feeding_output
from ..ops.collectives import CollectiveAttrs
from ..ops.linear import fused_qkv
from ..targets import SINGLE_CHIP_HINT, TILE

# The collective that turns one layout into another.
CONVERSIONS = {
    (Layout.PARTIAL, Layout.SPLIT): REDUCE_SCATTER,
    (Layout.PARTIAL, Layout.REPLICATED): ALL_REDUCE,
    (Layout.SPLIT, Layout.REPLICATED): ALL_GATHER,
    (Layout.REPLICATED, Layout.SPLIT): MESH_PARTITION,
}


def plan_sharding(model: Model, mesh: tuple[int, int], axis: int | None = None,
                  dp: bool = False, strategy: str = "1d") -> tuple[Model, ShardPlan]:
    """1-D: tensor parallelism over one mesh axis (by default the longer one); the other axis holds
    replicas, which split the batch between them with `dp` (data parallelism).
    2-D (as tt-metal's Galaxy models): both axes at once, a weight matrix split on one dim over each.
    The rows (axis 0) take the wide dims (heads, MLP hidden, vocabulary) Megatron-style; the columns
    (axis 1) take the hidden-side dim, so the residual stream is split on hidden over the columns and
    replicated over the rows. Each axis is planned by its own pass of the same sharding rules."""
    if mesh == (1, 1):  # one chip: no axis to plan, so nothing is split and no collective runs
        return model, one_chip()
    if strategy == "2d":
        return _plan_2d(model, mesh, dp)
    if strategy != "1d":
        raise ValueError(f"unknown strategy {strategy!r}")
    if axis is None:
        axis = 1 if mesh[1] >= mesh[0] else 0
    devices = mesh[axis]
    hidden = _hidden(model)
    residual = Layout.SPLIT if hidden % (devices * TILE) == 0 else Layout.REPLICATED
    plan = ShardPlan(mesh, [AxisPlan(axis, devices, TENSOR_PARALLEL, residual)], dp=dp and mesh[1 - axis] > 1)
    if mesh[1 - axis] > 1:
        plan.notes.append(f"mesh axis {1 - axis} ({mesh[1 - axis]} devices) holds "
                          + ("data-parallel replicas: the batch is split across them" if plan.dp else
                             "replicas of the tensor-parallel group (--dp splits the batch across them)"))
    if residual == Layout.REPLICATED:
        plan.notes.append(f"hidden {hidden} is not a multiple of {devices} x {TILE}: the residual stream stays "
                          "replicated and reductions are all_reduce")
    return _plan_axis(model, model, plan, plan.primary), plan


def _plan_2d(model: Model, mesh: tuple[int, int], dp: bool) -> tuple[Model, ShardPlan]:
    rows, cols = mesh
    if dp:
        raise ArchError("--dp takes the second mesh axis for data parallelism; 2-D tensor parallelism uses both",
                        model.loc, hint="leave out --dp, or use --strategy 1d")
    if rows < 2 or cols < 2:
        raise ArchError(f"2-D tensor parallelism needs two mesh axes of 2 or more devices; the mesh is {rows}x{cols}",
                        model.loc, hint="use --strategy 1d on a one-row mesh")
    hidden = _hidden(model)
    if hidden % (cols * TILE):
        near = [c for c in range(cols - 1, 1, -1) if hidden % (c * TILE) == 0][:2]
        raise ArchError(f"2-D tensor parallelism splits hidden={hidden} over the {cols} mesh columns, and "
                        f"{hidden} is not a multiple of {cols} x {TILE}", model.loc,
                        hint=("use --strategy 1d" + (" or --mesh " + " or --mesh ".join(f"{rows}x{c}" for c in near)
                                                    if near else "")))
    plan = ShardPlan(mesh, [AxisPlan(0, rows, TENSOR_PARALLEL, Layout.REPLICATED),
                            AxisPlan(1, cols, HIDDEN_SIDE, Layout.SPLIT)])
    plan.notes.append(f"2-D tensor parallelism: the {rows} mesh rows split heads, the MLP hidden and the "
                      f"vocabulary; the {cols} mesh columns split hidden ({hidden} -> {hidden // cols} per chip), "
                      "as tt-metal's Galaxy models place their weights")
    rows_planned = _plan_axis(model, model, plan, plan.axes[0])
    sharded = _plan_axis(model, rows_planned, plan, plan.axes[1])
    return sharded, plan


def _plan_axis(model: Model, current: Model, plan: ShardPlan, ax: AxisPlan) -> Model:
    """One pass of the planner over `current` (the model, or the previous axis's result) for mesh axis `ax`."""
    sharded = copy.copy(current)
    planner = Planner(model, plan, ax)
    sharded.graph = planner.run(current.graph, {i: Layout.REPLICATED for i in current.graph.inputs}, "")
    sharded.graph.outputs = dict(sharded.graph.outputs)
    for name, node_id in sharded.graph.outputs.items():
        if planner.layouts[node_id] == Layout.PARTIAL:  # e.g. a row-parallel output head
            sharded.graph.outputs[name] = planner.convert(node_id, Layout.REPLICATED,
                                                          "outputs leave the devices as complete values")
    for stmt in model.shard_overrides:
        if id(stmt) not in planner.used_overrides:
            raise ArchError(f'shard "{stmt.pattern}" matches no linear or embedding', stmt.loc,
                            hint="patterns name components, e.g. \"layers.*.mlp.w2\", \"lm_head\", \"embedding\"")
    return sharded


def _hidden(model: Model) -> int:
    for node in model.graph.topo():
        if node.op == EMBEDDING.name:
            return node.type.shape[-1]
    raise ArchError("sharding needs a token embedding", model.loc)


def devices_text(n: int) -> str:
    return "1 device" if n == 1 else f"{n} devices"


class Planner:
    """Walks a graph once, asking each op's sharding rule (OpDef.shard) where its result lives.

    One planner plans one mesh axis (`ax`); a 2-D plan runs one per axis, the second over the
    first's result. The rules use this interface: `devices`, `residual`, `hidden_side`, `plan`,
    layout_of, set_layout, need (convert an input, inserting a collective), place (record a
    parameter placement), copy_kv, override (the spec's `shard` statement for a node),
    is_output_head, input_node, splits_features, note.
    """

    def __init__(self, model: Model, plan: ShardPlan, ax: AxisPlan):
        self.model, self.plan, self.ax = model, plan, ax
        self.devices = ax.devices
        self.residual = ax.residual
        self.hidden = _hidden(model)
        self.used_overrides: set[int] = set()
        self.outer: list[tuple[Graph, str]] = []  # enclosing graphs and the repeats that lead into them
        self.variant = 0  # the layer variant being planned inside a repeat

    @property
    def devices_text(self) -> str:
        return devices_text(self.devices)

    @property
    def hidden_side(self) -> bool:
        """Whether this axis splits the hidden-side dim of every matmul (the columns of a 2-D plan)."""
        return self.ax.role == HIDDEN_SIDE

    def splits_features(self, width: int, value: str | None = None) -> bool:
        """Whether values `width` features wide may be split over this axis, into whole tiles. A 2-D plan
        gives each width one axis: the columns (hidden side) split only the residual's width, the rows
        every width but that one. And given the `value` (its id), only one that no other axis splits: the
        layouts say which axis cuts a dim, not how two axes nest, so an all_gather over one would
        interleave the other's slices (a top-level hidden-wide linear column-parallel over the rows, e.g.
        an MLM head's transform, then gelu; or row-parallel over them, then gelu)."""
        if self.hidden_side and width != self.hidden:
            return False
        if not self.hidden_side and width == self.hidden and any(a.role == HIDDEN_SIDE for a in self.plan.axes):
            return False  # the rows of a 2-D plan leave hidden-wide values to the columns, which split them next
        if value is not None and self.split_elsewhere(value):
            return False
        return width % (self.devices * TILE) == 0

    def may_split(self, value: str) -> bool:
        """Whether this axis may split `value` (a node id) on its features where a rule would slice it for
        the residual stream: not one another axis splits, and on the hidden side only the residual's width."""
        if self.hidden_side:
            return self.splits_features(self.out.node(value).type.shape[-1], value)
        return not self.split_elsewhere(value)

    def split_elsewhere(self, value: str) -> bool:
        """Whether another mesh axis of the plan splits `value` (a node id of the graph being planned)."""
        return any(ax.layouts.get(self.prefix + value) == Layout.SPLIT for ax in self.plan.axes if ax is not self.ax)

    def meshes_dividing(self, *counts: int) -> str:
        """A hint naming the smaller meshes over which every count in `counts` splits (or is copied)."""
        fits = [d for d in range(self.devices - 1, 1, -1)
                if all(c % d == 0 for c in counts[:1]) and all(c % d == 0 or d % c == 0 for c in counts[1:])][:2]
        if not fits:
            return f"compile for a single chip ({SINGLE_CHIP_HINT})"

        def mesh(d: int) -> str:
            shape = list(self.plan.mesh)
            shape[self.ax.axis] = d
            return f"--mesh {shape[0]}x{shape[1]}"

        return " or ".join(mesh(d) for d in fits) + " would work"

    # ---- walking
    def run(self, graph: Graph, entry: dict[str, Layout], prefix: str) -> Graph:
        out = Graph(inputs=list(graph.inputs), params=dict(graph.params), modules=dict(graph.modules))
        self.out, self.graph, self.prefix = out, graph, prefix
        self.converted: dict[tuple[str, Layout], str] = {}
        self.layouts: dict[str, Layout] = dict(entry)
        self.heads = ops_feeding_output(graph)
        for node in graph.topo():
            if node.is_input:
                out.add(node)
                continue
            new = self.place_repeat(node) if node.is_repeat else self.place_op(node)
            out.add(new)
            self.ax.layouts[prefix + new.id] = self.layouts[new.id]
        out.outputs = dict(graph.outputs)
        return out

    def place_op(self, node: Node) -> Node:
        rule = REGISTRY[node.op].shard
        try:
            if rule is None:
                raise ArchError(f"`{node.op}` has no sharding rule", node.loc)
            new = rule(self, node, [self.layouts[i] for i in node.inputs])
        except ArchError as e:
            raise point_at_spec(e, [(self.graph, node.module)] + self.outer) from None
        return new

    def place_repeat(self, node: Node) -> Node:
        """Each variant of the layer is planned from the layout the repeat gets; the layers' parameters
        (shared names, `layers.*.`) must be placed alike by every variant that has them; a parameter only
        some variants have (layers that differ in structure) is placed by those."""
        entry = self.layouts[node.inputs[0]]
        saved = (self.out, self.graph, self.prefix, self.layouts, self.converted, self.heads, self.variant)
        self.outer.insert(0, (self.graph, node.module))
        prefix = f"{self.prefix}{node.module}.*."
        first: dict = {}  # what the earlier variants placed: a name they share must be placed alike
        bodies = []
        for variant, (body, _) in enumerate(layer_variants(node)):
            before = dict(self.ax.placements)
            self.variant = variant
            new_body = self.run(body, {body.inputs[0]: entry}, prefix)
            if self.layouts[new_body.outputs["out"]] != entry:
                new_body.outputs["out"] = self.convert(new_body.outputs["out"], entry,
                                                       "each layer must hand on the layout it got")
            placed = {k: v for k, v in self.ax.placements.items() if k.startswith(prefix) and before.get(k) != v}
            name = next((k for k in placed if k in first), None)
            if name is not None:
                raise ArchError(f"the layers of `{node.module}` shard `{name}` differently "
                                f"({first[name]} and {placed[name]})", node.loc,
                                hint="label the component differently in the variants that differ, or fix its "
                                     f'placement with `shard "{name.rsplit(".", 1)[0]}" replicate`')
            first.update(placed)
            bodies.append(new_body)
        self.out, self.graph, self.prefix, self.layouts, self.converted, self.heads, self.variant = saved
        self.outer.pop(0)
        self.layouts[node.id] = entry
        return replace(node, attrs=with_bodies(node, bodies))

    # ---- the interface of sharding rules
    def layout_of(self, node_id: str) -> Layout:
        return self.layouts[node_id]

    def set_layout(self, node: Node, layout: Layout) -> Node:
        self.layouts[node.id] = layout
        return node

    def input_node(self, node: Node, index: int) -> Node:
        """The (planned) node feeding input `index`."""
        return self.out.node(node.inputs[index])

    def need(self, node: Node, index: int, want: Layout, why: str) -> Node:
        inputs = list(node.inputs)
        inputs[index] = self.convert(inputs[index], want, why, node)
        return replace(node, inputs=inputs)

    def place(self, node: Node, placement: Placement, padded_rows: int | None = None) -> Node:
        """Place the node's parameters on this axis: recorded in the plan (per parameter) and on the
        node (its NodeShard, per axis, which codegen reads); returns the annotated node."""
        fused = fused_qkv(node)
        names = list(node.params.values()) + (fused.param_names if fused else [])
        for name in names:
            self.ax.placements[self.prefix + name] = placement
            if padded_rows is not None:
                self.ax.padded_rows[self.prefix + name] = padded_rows
        shard = node.shard.placed_on(self.ax.axis, placement)
        return replace(node, shard=shard if padded_rows is None else shard.replace(padded_out=padded_rows))

    def hold_heads(self, node: Node, heads: int | None = None, kv_heads: int | None = None) -> Node:
        """The node annotated with the query and KV heads one chip holds of it (None: as before)."""
        shard = node.shard
        return replace(node, shard=shard.replace(local_heads=shard.local_heads if heads is None else heads,
                                                 local_kv_heads=shard.local_kv_heads if kv_heads is None else kv_heads))

    def copy_kv(self, name: str, copies: int) -> None:
        """A K or V projection whose heads are fewer than the devices: each head on `copies` devices."""
        self.ax.placements[self.prefix + name] = Placement.KV_COPIES
        self.ax.kv_copies[self.prefix + name] = copies

    def origins(self, node: Node, *attrs: str) -> list[Note]:
        """Notes pointing at where the spec wrote these attrs of a node (e.g. `let heads = 9`)."""
        return [Note(f"`{attr}` = {getattr(node.attrs, attr)} comes from here", node.origins[attr]) for attr in attrs
                if attr in node.origins and not in_stdlib(node.origins[attr])]

    def note(self, text: str) -> None:
        self.plan.notes.append(text)

    @property
    def vocab_multiple(self) -> int:
        """What an output head's vocabulary is padded to a multiple of on this axis: whole tiles on each device,
        and in a 2-D plan whole tiles on each of the mesh columns too, which then all-reduce the head's partial
        sums. ttnn 0.81.1's all_reduce of a width that does not split into whole tiles over the devices reducing it
        falls back to AllBroadcast + Concat + MorehSum (the mock Galaxy: [32, 16032] over 4 columns); one that does
        runs ReduceScatter + AllGather ([32, 16128])."""
        columns = [a.devices for a in self.plan.axes if a.role == HIDDEN_SIDE and a is not self.ax]
        return self.devices * TILE * (columns[0] if columns else 1)

    def is_output_head(self, node: Node) -> bool:
        """Whether this node computes the graph's output (possibly through elementwise ops)."""
        return node.id in self.heads

    def override(self, node: Node):
        """The spec's `shard "pattern" placement` for this component, if any (the last one wins)."""
        paths = {self.prefix + node.module}
        fused = fused_qkv(node)
        if fused is not None:  # a fused QKV answers to its parts' names too
            paths |= {self.prefix + name.rsplit(".", 1)[0] for name in fused.param_names}
        found = None
        for stmt in self.model.shard_overrides:
            if any(fnmatch.fnmatchcase(path, stmt.pattern) for path in paths):
                found = stmt
        if found is not None:
            self.used_overrides.add(id(found))
        return found

    def insert(self, op: str, inputs: list[str], attrs, type_, reader: Node, layout: Layout) -> str:
        """An op the plan adds (not a collective: e.g. a distributed norm's statistics) computing from
        `inputs` for `reader`, placed before it; returns its id."""
        source = self.out.node(inputs[0])
        module = _common_module(source.module, reader.module)
        nid = self._fresh_id(f"{module}.{op}" if module else op)
        self.out.add(Node(nid, op, list(inputs), attrs, type_, module, reader.loc))
        self._added(nid, inputs[0], layout)
        return nid

    def _fresh_id(self, base: str) -> str:
        """An id free in the graph being built and in the one being planned (whose nodes still to be
        copied include the ops an earlier axis's pass added)."""
        nid, k = self.out.fresh_id(base), 1
        while nid in self.graph.nodes:
            nid, k = self.out.fresh_id(f"{base}_{k}"), k + 1
        return nid

    def _added(self, nid: str, source: str, layout: Layout) -> None:
        """Layouts of a node this pass added: `layout` on this axis; on the axes planned before, its
        source's (the node moves nothing over them)."""
        self.layouts[nid] = layout
        self.ax.layouts[self.prefix + nid] = layout
        for ax in self.plan.axes:
            if ax is not self.ax and self.prefix + source in ax.layouts:
                ax.layouts.setdefault(self.prefix + nid, ax.layouts[self.prefix + source])

    # ---- conversions
    def convert(self, node_id: str, want: Layout, why: str, reader: Node | None = None) -> str:
        have = self.layouts[node_id]
        if have == want:
            return node_id
        if (node_id, want) in self.converted:  # one collective serves every reader
            return self.converted[(node_id, want)]
        source = self.out.node(node_id)
        dim = split_dim(source.type.rank)  # heads of [b, heads, s, d] values, else features
        collective = CONVERSIONS.get((have, want))
        if collective is None:
            raise ArchError(f"internal: no collective turns {have} into {want}", source.loc)
        # The collective belongs to the innermost component holding both the value and its reader.
        module = _common_module(source.module, reader.module if reader else source.module)
        nid = self._fresh_id(f"{module}.{collective.name}" if module else collective.name)
        self.out.add(Node(nid, collective.name, [node_id], CollectiveAttrs(dim, self.ax.axis), source.type, module,
                          source.loc, hint=source.hint, hint_scope=source.hint_scope))
        self._added(nid, node_id, want)
        self.plan.collectives.append(Collective(self.prefix + nid, collective.name, dim, self.ax.axis,
                                                self.prefix + node_id, why, self.variant))
        self.converted[(node_id, want)] = nid
        return nid


def _common_module(a: str, b: str) -> str:
    common = []
    for x, y in zip(a.split("."), b.split(".")):
        if x != y:
            break
        common.append(x)
    return ".".join(common)
