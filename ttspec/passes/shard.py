"""The sharding planner: a pass that makes a lowered graph tensor-parallel over a mesh.

Megatron-style, as tt-metal's hand-written tt_transformers models shard: a linear that
reads a replicated activation is column-parallel (its output features split over the
devices), one that reads feature-split activations is row-parallel (each device holds a
partial sum). Layouts propagate through the graph and collectives are inserted where an
op needs another layout: reduce_scatter turns partial sums back into a hidden-split
residual stream, all_gather rebuilds the full activation before each norm.

What each op needs is its sharding rule in the op registry (ttspec/ops/); this module walks
the graph, runs the rules, and owns the conversions between layouts (the collectives).
The result is data (ShardPlan: a placement per parameter, a layout per value, each
collective with its reason) plus the rewritten graph that codegen emits.
"""

from __future__ import annotations

import copy
import fnmatch
from dataclasses import dataclass, field, replace

from ..errors import ArchError, Note
from ..ir.graph import Graph, Model, Node, in_stdlib, layer_variants, point_at_spec
from ..ir.layout import Layout, Placement
from ..ops import ALL_GATHER, ALL_REDUCE, EMBEDDING, MESH_PARTITION, REDUCE_SCATTER, REGISTRY, ops_feeding_output
from ..targets import TILE

# The collective that turns one layout into another.
CONVERSIONS = {
    (Layout.PARTIAL, Layout.SPLIT): REDUCE_SCATTER,
    (Layout.PARTIAL, Layout.REPLICATED): ALL_REDUCE,
    (Layout.SPLIT, Layout.REPLICATED): ALL_GATHER,
    (Layout.REPLICATED, Layout.SPLIT): MESH_PARTITION,
}


@dataclass
class Collective:
    node: str  # the inserted node's id
    op: str
    dim: int
    axis: int
    source: str  # the value it converts
    reason: str
    variant: int = 0  # inside a repeat whose layers differ: the variant (ir.graph.layer_variants) it belongs to


@dataclass
class ShardPlan:
    mesh: tuple[int, int]
    axis: int  # the tensor-parallel mesh axis
    devices: int  # devices along it
    residual: Layout  # the residual stream: split on hidden, or replicated
    dp: bool = False  # the other mesh axis splits the batch
    placements: dict[str, Placement] = field(default_factory=dict)  # param name (per layer) -> placement
    kv_copies: dict[str, int] = field(default_factory=dict)  # copied K/V params -> devices holding each head
    padded_rows: dict[str, int] = field(default_factory=dict)  # vocab-split params -> rows after zero padding
    layouts: dict[str, Layout] = field(default_factory=dict)
    collectives: list[Collective] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def plan_sharding(model: Model, mesh: tuple[int, int], axis: int | None = None,
                  dp: bool = False) -> tuple[Model, ShardPlan]:
    """Tensor parallelism over one mesh axis (by default the longer one); the other axis holds
    replicas, which split the batch between them with `dp` (data parallelism)."""
    if axis is None:
        axis = 1 if mesh[1] >= mesh[0] else 0
    devices = mesh[axis]
    hidden = _hidden(model)
    residual = Layout.SPLIT if hidden % (devices * TILE) == 0 else Layout.REPLICATED
    plan = ShardPlan(mesh, axis, devices, residual, dp=dp and mesh[1 - axis] > 1)
    if mesh[1 - axis] > 1:
        plan.notes.append(f"mesh axis {1 - axis} ({mesh[1 - axis]} devices) holds "
                          + ("data-parallel replicas: the batch is split across them" if plan.dp else
                             "replicas of the tensor-parallel group (--dp splits the batch across them)"))
    if residual == Layout.REPLICATED:
        plan.notes.append(f"hidden {hidden} is not a multiple of {devices} x {TILE}: the residual stream stays "
                          "replicated and reductions are all_reduce")
    sharded = copy.copy(model)
    planner = Planner(model, plan)
    sharded.graph = planner.run(model.graph, {i: Layout.REPLICATED for i in model.graph.inputs}, "")
    for name, node_id in sharded.graph.outputs.items():
        if planner.layouts[node_id] == Layout.PARTIAL:  # e.g. a row-parallel output head
            sharded.graph.outputs[name] = planner.convert(node_id, Layout.REPLICATED,
                                                          "outputs leave the devices as complete values")
    for stmt in model.shard_overrides:
        if id(stmt) not in planner.used_overrides:
            raise ArchError(f'shard "{stmt.pattern}" matches no linear or embedding', stmt.loc,
                            hint="patterns name components, e.g. \"layers.*.mlp.w2\", \"lm_head\", \"embedding\"")
    return sharded, plan


def _hidden(model: Model) -> int:
    for node in model.graph.topo():
        if node.op == EMBEDDING.name:
            return node.type.shape[-1]
    raise ArchError("sharding needs a token embedding", model.loc)


def devices_text(n: int) -> str:
    return "1 device" if n == 1 else f"{n} devices"


class Planner:
    """Walks a graph once, asking each op's sharding rule (OpDef.shard) where its result lives.

    The rules use this interface: `devices`, `plan`, layout_of, set_layout, need (convert an
    input, inserting a collective), place (record a parameter placement), copy_kv, override
    (the spec's `shard` statement for a node), is_output_head, input_node, note.
    """

    def __init__(self, model: Model, plan: ShardPlan):
        self.model, self.plan = model, plan
        self.devices = plan.devices
        self.used_overrides: set[int] = set()
        self.outer: list[tuple[Graph, str]] = []  # enclosing graphs and the repeats that lead into them
        self.variant = 0  # the layer variant being planned inside a repeat

    @property
    def devices_text(self) -> str:
        return devices_text(self.devices)

    def meshes_dividing(self, *counts: int) -> str:
        """A hint naming the smaller meshes over which every count in `counts` splits (or is copied)."""
        fits = [d for d in range(self.devices - 1, 1, -1)
                if all(c % d == 0 for c in counts[:1]) and all(c % d == 0 or d % c == 0 for c in counts[1:])][:2]
        if not fits:
            return "compile for a single chip (n150, p150)"

        def mesh(d: int) -> str:
            shape = list(self.plan.mesh)
            shape[self.plan.axis] = d
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
            if node.op == "input":
                out.add(node)
                continue
            new = self.place_repeat(node) if node.op == "repeat" else self.place_op(node)
            out.add(new)
            self.plan.layouts[prefix + new.id] = self.layouts[new.id]
        out.outputs = dict(graph.outputs)
        return out

    def place_op(self, node: Node) -> Node:
        rule = REGISTRY[node.op].shard
        try:
            if rule is None:
                raise ArchError(f"`{node.op}` has no sharding rule", node.loc)
            return rule(self, node, [self.layouts[i] for i in node.inputs])
        except ArchError as e:
            raise point_at_spec(e, [(self.graph, node.module)] + self.outer) from None

    def place_repeat(self, node: Node) -> Node:
        """Each variant of the layer is planned from the layout the repeat gets; the layers' parameters
        (shared names, `layers.*.`) must be placed alike by every variant."""
        entry = self.layouts[node.inputs[0]]
        saved = (self.out, self.graph, self.prefix, self.layouts, self.converted, self.heads, self.variant)
        self.outer.insert(0, (self.graph, node.module))
        prefix = f"{self.prefix}{node.module}.*."
        first: dict | None = None
        bodies = []
        for variant, (body, _) in enumerate(layer_variants(node)):
            before = dict(self.plan.placements)
            self.variant = variant
            new_body = self.run(body, {body.inputs[0]: entry}, prefix)
            if self.layouts[new_body.outputs["out"]] != entry:
                new_body.outputs["out"] = self.convert(new_body.outputs["out"], entry,
                                                       "each layer must hand on the layout it got")
            placed = {k: v for k, v in self.plan.placements.items() if k.startswith(prefix) and before.get(k) != v}
            if first is None:
                first = placed
            elif placed and placed != first:
                name = next(k for k in placed if first.get(k) != placed[k])
                raise ArchError(f"the layers of `{node.module}` shard `{name}` differently "
                                f"({first.get(name)} and {placed[name]})", node.loc,
                                hint="give the layer variants the same structure, or fix the placement with a "
                                     f'`shard "{prefix}..." replicate` statement')
            bodies.append(new_body)
        self.out, self.graph, self.prefix, self.layouts, self.converted, self.heads, self.variant = saved
        self.outer.pop(0)
        self.layouts[node.id] = entry
        attrs = dict(node.attrs, body=bodies[0])
        if "bodies" in attrs:
            attrs["bodies"] = tuple(bodies)
        return replace(node, attrs=attrs)

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

    def place(self, node: Node, placement: Placement, padded_rows: int | None = None) -> None:
        fused = node.attrs.get("fused")
        names = list(node.params.values()) + (fused.param_names if fused else [])
        for name in names:
            self.plan.placements[self.prefix + name] = placement
            if padded_rows is not None:
                self.plan.padded_rows[self.prefix + name] = padded_rows

    def copy_kv(self, name: str, copies: int) -> None:
        """A K or V projection whose heads are fewer than the devices: each head on `copies` devices."""
        self.plan.placements[self.prefix + name] = Placement.KV_COPIES
        self.plan.kv_copies[self.prefix + name] = copies

    def origins(self, node: Node, *attrs: str) -> list[Note]:
        """Notes pointing at where the spec wrote these attrs of a node (e.g. `let heads = 9`)."""
        return [Note(f"`{attr}` = {node.attrs[attr]} comes from here", node.origins[attr]) for attr in attrs
                if attr in node.origins and not in_stdlib(node.origins[attr])]

    def note(self, text: str) -> None:
        self.plan.notes.append(text)

    def is_output_head(self, node: Node) -> bool:
        """Whether this node computes the graph's output (possibly through elementwise ops)."""
        return node.id in self.heads

    def override(self, node: Node):
        """The spec's `shard "pattern" placement` for this component, if any (the last one wins)."""
        paths = {self.prefix + node.module}
        fused = node.attrs.get("fused")
        if fused is not None:  # a fused QKV answers to its parts' names too
            paths |= {self.prefix + name.rsplit(".", 1)[0] for name in fused.param_names}
        found = None
        for stmt in self.model.shard_overrides:
            if any(fnmatch.fnmatchcase(path, stmt.pattern) for path in paths):
                found = stmt
        if found is not None:
            self.used_overrides.add(id(found))
        return found

    # ---- conversions
    def convert(self, node_id: str, want: Layout, why: str, reader: Node | None = None) -> str:
        have = self.layouts[node_id]
        if have == want:
            return node_id
        if (node_id, want) in self.converted:  # one collective serves every reader
            return self.converted[(node_id, want)]
        source = self.out.node(node_id)
        dim = 1 if source.type.rank == 4 else -1  # heads of [b, heads, s, d] values, else features
        collective = CONVERSIONS.get((have, want))
        if collective is None:
            raise ArchError(f"internal: no collective turns {have} into {want}", source.loc)
        # The collective belongs to the innermost component holding both the value and its reader.
        module = _common_module(source.module, reader.module if reader else source.module)
        nid = self.out.fresh_id(f"{module}.{collective.name}" if module else collective.name)
        self.out.add(Node(nid, collective.name, [node_id], {"dim": dim, "axis": self.plan.axis}, source.type, module,
                          source.loc, hint=source.hint, hint_scope=source.hint_scope))
        self.layouts[nid] = want
        self.plan.collectives.append(Collective(self.prefix + nid, collective.name, dim, self.plan.axis,
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


def shard_sizes(model: Model, plan: ShardPlan) -> list[tuple[str, int, int, int]]:
    """(parameter, values per chip, chips holding a copy of each value, repeat count) for every
    stored parameter: what each chip holds under the plan."""
    chips = plan.mesh[0] * plan.mesh[1]
    replicas = chips // plan.devices  # the other mesh axis repeats the tensor-parallel group
    rows = []

    def visit(graph: Graph, prefix: str, count: int) -> None:
        for name, p in graph.params.items():
            key = prefix + name
            placement = plan.placements.get(key, Placement.REPLICATE)
            numel = p.numel
            if placement == Placement.REPLICATE:
                rows.append((key, numel, chips, count))
            elif placement == Placement.KV_COPIES:
                rows.append((key, numel // (plan.devices // plan.kv_copies[key]), plan.kv_copies[key] * replicas,
                             count))
            elif placement == Placement.VOCAB:
                padded = plan.padded_rows.get(key, p.shape[0])
                rows.append((key, padded * numel // p.shape[0] // plan.devices, replicas, count))
            else:
                rows.append((key, numel // plan.devices, replicas, count))
        for node in graph.repeats():
            # Variants place their (shared) parameters alike (Planner.place_repeat): layer 0's body for all.
            visit(node.attrs["body"], f"{prefix}{node.module}.*.", count * node.attrs["count"])

    visit(model.graph, "", 1)
    return rows
