"""The sharding planner: a pass that makes a lowered graph tensor-parallel over a mesh.

Megatron-style, as tt-metal's hand-written tt_transformers models shard: a linear that
reads a replicated activation is column-parallel (its output features split over the
devices), one that reads feature-split activations is row-parallel (each device holds a
partial sum). Layouts propagate through the graph and collectives are inserted where an
op needs another layout: reduce_scatter turns partial sums back into a hidden-split
residual stream, all_gather rebuilds the full activation before each norm. The fused QKV
projection is split by heads, so attention runs on each device's own heads; KV heads are
replicated when there are fewer of them than devices. The embedding is split on hidden,
the output head on vocab.

The result is data (ShardPlan: a placement per parameter, a layout per value, each
collective with its reason) plus the rewritten graph that codegen emits.

Layouts: "R" replicated, "S" split on the feature dim (the last dim, or the heads dim of
[b, heads, s, head_dim] values), "P" partial sums awaiting a reduction.
"""

from __future__ import annotations

import copy
import fnmatch
from dataclasses import dataclass, field, replace

from ..errors import ArchError
from ..ir.graph import Graph, Model, Node
from ..targets import TILE

# Ops that keep their input's layout, elementwise or per head.
PASSTHROUGH = {"relu", "gelu", "gelu_tanh", "silu", "apply_rope", "qkv_part"}


@dataclass
class Collective:
    node: str  # the inserted node's id
    op: str
    dim: int
    axis: int
    source: str  # the value it converts
    reason: str


@dataclass
class ShardPlan:
    mesh: tuple[int, int]
    axis: int  # the tensor-parallel mesh axis
    devices: int  # devices along it
    residual: str  # "S" (hidden-split residual stream) or "R"
    dp: bool = False  # the other mesh axis splits the batch
    placements: dict[str, str] = field(default_factory=dict)  # param name (per layer) -> role
    kv_copies: dict[str, int] = field(default_factory=dict)  # replicated K/V params -> devices holding each head
    padded_rows: dict[str, int] = field(default_factory=dict)  # vocab-split params -> rows after zero padding
    layouts: dict[str, str] = field(default_factory=dict)
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
    residual = "S" if hidden % (devices * TILE) == 0 else "R"
    plan = ShardPlan(mesh, axis, devices, residual, dp=dp and mesh[1 - axis] > 1)
    if mesh[1 - axis] > 1:
        plan.notes.append(f"mesh axis {1 - axis} ({mesh[1 - axis]} devices) holds "
                          + ("data-parallel replicas: the batch is split across them" if plan.dp else
                             "replicas of the tensor-parallel group (--dp splits the batch across them)"))
    if residual == "R":
        plan.notes.append(f"hidden {hidden} is not a multiple of {devices} x {TILE}: the residual stream stays "
                          "replicated and reductions are all_reduce")
    sharded = copy.copy(model)
    planner = _Planner(model, plan)
    sharded.graph = planner.run(model.graph, {i: "R" for i in model.graph.inputs}, "")
    for stmt in model.shard_overrides:
        if id(stmt) not in planner.used_overrides:
            raise ArchError(f'shard "{stmt.pattern}" matches no linear or embedding', stmt.loc,
                            hint="patterns name components, e.g. \"layers.*.mlp.w2\", \"lm_head\", \"embedding\"")
    return sharded, plan


def _hidden(model: Model) -> int:
    for node in model.graph.topo():
        if node.op == "embedding":
            return node.attrs["dim"]
    raise ArchError("sharding needs a token embedding", model.loc)


class _Planner:
    def __init__(self, model: Model, plan: ShardPlan):
        self.model, self.plan = model, plan
        self.n = plan.devices
        self.used_overrides: set[int] = set()

    def override(self, node: Node):
        """The spec's `shard "pattern" placement` for this component, if any (the last one wins)."""
        paths = {self.prefix + node.module}
        for part in node.attrs.get("fused", ()):  # a fused QKV answers to its parts' names too
            paths |= {self.prefix + name.rsplit(".", 1)[0] for _, name in part}
        found = None
        for stmt in self.model.shard_overrides:
            if any(fnmatch.fnmatchcase(path, stmt.pattern) for path in paths):
                found = stmt
        if found is not None:
            self.used_overrides.add(id(found))
        return found

    def run(self, graph: Graph, entry: dict[str, str], prefix: str) -> Graph:
        out = Graph(inputs=list(graph.inputs), params=dict(graph.params), modules=dict(graph.modules))
        self.out, self.graph, self.prefix = out, graph, prefix
        self.converted: dict[tuple[str, str], str] = {}
        layout: dict[str, str] = dict(entry)
        self.layout = layout
        for node in graph.topo():
            if node.op == "input":
                out.add(node)
                continue
            new = self.place(node)
            out.add(new)
            self.plan.layouts[prefix + new.id] = self.layout[new.id]
        out.outputs = dict(graph.outputs)
        return out

    # ---- conversions
    def convert(self, node_id: str, want: str, why: str, reader: Node | None = None) -> str:
        have = self.layout[node_id]
        if have == want:
            return node_id
        if (node_id, want) in self.converted:  # one collective serves every reader
            return self.converted[(node_id, want)]
        source = self.out.node(node_id)
        heads = source.type.rank == 4
        dim = 1 if heads else -1
        if have == "P" and want == "S":
            op = "reduce_scatter"
        elif have == "P" and want == "R":
            op = "all_reduce"
        elif have == "S" and want == "R":
            op = "all_gather"
        elif have == "R" and want == "S":
            op = "mesh_partition"
        else:
            raise ArchError(f"internal: no collective turns {have} into {want}", source.loc)
        # The collective belongs to the innermost component holding both the value and its reader.
        module = _common_module(source.module, reader.module if reader else source.module)
        nid = self.out.fresh_id(f"{module}.{op}" if module else op)
        self.out.add(Node(nid, op, [node_id], {"dim": dim, "axis": self.plan.axis}, source.type, module,
                          source.loc, hint=source.hint, hint_scope=source.hint_scope))
        self.layout[nid] = want
        self.plan.collectives.append(Collective(self.prefix + nid, op, dim, self.plan.axis,
                                                self.prefix + node_id, why))
        self.converted[(node_id, want)] = nid
        return nid

    def need(self, node: Node, index: int, want: str, why: str) -> Node:
        inputs = list(node.inputs)
        inputs[index] = self.convert(inputs[index], want, why, node)
        return replace(node, inputs=inputs)

    def role(self, node: Node, role: str) -> None:
        for name in node.params.values():
            self.plan.placements[self.prefix + name] = role
        for part in node.attrs.get("fused", ()):
            for _, name in part:
                self.plan.placements[self.prefix + name] = role

    # ---- one node
    def place(self, node: Node) -> Node:
        op, lay = node.op, self.layout
        ins = [lay[i] for i in node.inputs]
        if op in ("embedding", "position_embedding"):
            forced = self.override(node)
            if forced is not None and forced.placement != "replicate":
                raise ArchError(f"an embedding table is split on hidden or replicated, not `{forced.placement}`",
                                forced.placement_loc, hint="use `replicate`")
            split = self.plan.residual == "S" and forced is None
            self.role(node, "hidden" if split else "replicate")
            lay[node.id] = "S" if split else "R"
            return replace(node, attrs=dict(node.attrs, placement="hidden" if split else "replicate"))
        if op in ("rms_norm", "layer_norm"):
            node = self.need(node, 0, "R", f"{op} needs whole rows")
            self.role(node, "replicate")
            lay[node.id] = "R"
            return node
        if op in ("linear", "tied_linear"):
            return self.place_linear(node, ins[0])
        if op == "split_qkv_heads":
            return self.place_qkv(node, ins[0])
        if op in PASSTHROUGH:
            lay[node.id] = ins[0]
            return node
        if op == "attend":
            if len(set(ins)) != 1:
                raise ArchError(f"internal: attention inputs disagree on layout {ins}", node.loc)
            lay[node.id] = ins[0]
            return node
        if op == "merge_heads":
            lay[node.id] = ins[0]
            return node
        if op in ("add", "mul"):
            return self.place_binary(node, ins)
        if op == "repeat":
            body: Graph = node.attrs["body"]
            entry = ins[0]
            saved = (self.out, self.graph, self.prefix, self.layout, self.converted)
            new_body = self.run(body, {body.inputs[0]: entry}, f"{self.prefix}{node.module}.*.")
            out_layout = self.layout[new_body.outputs["out"]]
            if out_layout != entry:
                self.layout = {**self.layout}
                fixed = self.convert(new_body.outputs["out"], entry, "each layer must hand on the layout it got")
                new_body.outputs["out"] = fixed
            self.out, self.graph, self.prefix, self.layout, self.converted = saved
            lay = self.layout
            lay[node.id] = entry
            return replace(node, attrs=dict(node.attrs, body=new_body))
        if op == "sinusoidal_positions":
            lay[node.id] = "R"
            return node
        raise ArchError(f"`{op}` has no sharding rule yet", node.loc)

    def place_linear(self, node: Node, layout: str) -> Node:
        n = self.n
        forced = self.override(node)
        if forced is not None:
            return self.place_forced(node, layout, forced)
        if layout == "P":
            node = self.need(node, 0, "R", "a linear reads complete values")
            layout = "R"
        if layout == "R":
            out = node.type.shape[-1]
            if any(self.graph.node(u).op == "split_qkv_heads" for u in self.graph.users[node.id]):
                head_dim = out // sum(self._qkv_heads(node))
                if head_dim % TILE:
                    raise ArchError(f"head_dim {head_dim} is not a multiple of {TILE}: padded heads are not yet "
                                    "combined with tensor parallelism", node.loc,
                                    hint="compile this spec for a single chip (n150, p150)")
            fused = node.attrs.get("fused")
            if node.op == "tied_linear" or (not fused and out % n) and self.is_output_head(node):
                padded = -(-out // (n * TILE)) * n * TILE
                self.role(node, "vocab")
                for name in node.params.values():
                    self.plan.padded_rows[self.prefix + name] = padded
                self.layout[node.id] = "S"
                if padded != out:
                    self.plan.notes.append(f"{node.module}: vocab {out} padded to {padded} (zero rows) to split "
                                           f"over {n} devices; the padding is cut from the logits")
                return replace(node, attrs=dict(node.attrs, placement="column", padded_out=padded))
            if fused or (out % n == 0 and (out // n) % TILE == 0):
                self.role(node, "column")
                self.layout[node.id] = "S"
                return replace(node, attrs=dict(node.attrs, placement="column"))
            self.role(node, "replicate")
            self.plan.notes.append(f"{node.module}: {out} output features do not split into whole tiles over {n} "
                                   "devices; its weight is replicated")
            self.layout[node.id] = "R"
            return replace(node, attrs=dict(node.attrs, placement="replicate"))
        # layout S: the input features are split, so the weight's input rows are too
        self.role(node, "row")
        self.layout[node.id] = "P"
        return replace(node, attrs=dict(node.attrs, placement="row"))

    def place_forced(self, node: Node, layout: str, forced) -> Node:
        placement, out, n = forced.placement, node.type.shape[-1], self.n
        if placement == "row":
            if layout != "S":
                raise ArchError(f'shard "{forced.pattern}" row: a row-parallel linear needs split input features, '
                                f"but `{node.module}` reads a complete value", forced.placement_loc,
                                hint="row-parallel fits the projection after a column-parallel one (wo, w2)")
            self.role(node, "row")
            self.layout[node.id] = "P"
            return replace(node, attrs=dict(node.attrs, placement="row"))
        node = self.need(node, 0, "R", f'shard "{forced.pattern}" {placement} reads complete values')
        if placement == "column":
            if node.attrs.get("fused"):
                raise ArchError("a fused QKV projection is always split by heads", forced.placement_loc)
            if out % n or (out // n) % TILE:
                raise ArchError(f"`{node.module}`: {out} output features do not split into whole tiles over {n} "
                                "devices", forced.placement_loc, hint="use `replicate`")
            self.role(node, "column")
            self.layout[node.id] = "S"
            return replace(node, attrs=dict(node.attrs, placement="column"))
        self.role(node, "replicate")
        self.layout[node.id] = "R"
        return replace(node, attrs=dict(node.attrs, placement="replicate"))

    def _qkv_heads(self, node: Node) -> tuple[int, int, int]:
        split = next(self.graph.node(u) for u in self.graph.users[node.id])
        return split.attrs["heads"], split.attrs["kv_heads"], split.attrs["kv_heads"]

    def is_output_head(self, node: Node) -> bool:
        return node.id in self.graph.outputs.values() or node.module in ("lm_head",)

    def place_qkv(self, node: Node, layout: str) -> Node:
        n = self.n
        heads, kv = node.attrs["heads"], node.attrs["kv_heads"]
        if layout != "S":
            self.layout[node.id] = layout
            return node
        if heads % n:
            fits = ", ".join(str(d) for d in range(1, n + 1) if n % d == 0 and heads % d == 0)
            raise ArchError(f"heads={heads} cannot be split over {n} devices", node.loc,
                            hint=f"tensor parallelism gives each device whole heads; {fits} devices would work")
        if kv % n == 0:
            local_kv = kv // n
        elif n % kv == 0:
            local_kv = 1
            self.plan.notes.append(f"{node.module}: {kv} KV heads over {n} devices: each KV head is replicated on "
                                   f"{n // kv} devices")
            fused = self.out.node(node.inputs[0]).attrs.get("fused", ())
            for part in fused[1:]:  # the k and v projections
                for _, name in part:
                    self.plan.kv_copies[self.prefix + name] = n // kv
        else:
            raise ArchError(f"kv_heads={kv} over {n} devices: neither divides the other", node.loc,
                            hint="KV heads are split when devices divide them and replicated when they divide "
                                 "the devices")
        self.layout[node.id] = "S"
        return replace(node, attrs=dict(node.attrs, local_heads=heads // n, local_kv_heads=local_kv))

    def place_binary(self, node: Node, ins: list[str]) -> Node:
        if ins[0] == ins[1] and ins[0] != "P":
            self.layout[node.id] = ins[0]
            return node
        if node.op == "add" and "P" in ins:
            target = "R" if "R" in ins else self.plan.residual
            for i, lay in enumerate(ins):
                if lay == "P":
                    node = self.need(node, i, target, "the residual stream holds complete sums")
            if any(self.layout[i] != target for i in node.inputs):
                for i in range(2):
                    node = self.need(node, i, target, "both operands of an add share a layout")
            self.layout[node.id] = target
            return node
        if node.op == "add" and "S" in ins and "R" in ins and self.plan.residual == "S":
            for i in range(2):  # keep the residual stream split: slice the replicated operand locally
                node = self.need(node, i, "S", "the residual stream stays split on hidden")
            self.layout[node.id] = "S"
            return node
        for i in range(2):
            node = self.need(node, i, "R", f"{node.op} of differently laid out values")
        self.layout[node.id] = "R"
        return node


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
            role = plan.placements.get(key, "replicate")
            numel = p.numel
            if role == "replicate":
                rows.append((key, numel, chips, count))
            elif key in plan.kv_copies:
                rows.append((key, numel // (plan.devices // plan.kv_copies[key]), plan.kv_copies[key] * replicas,
                             count))
            elif role == "vocab":
                padded = plan.padded_rows.get(key, p.shape[0])
                rows.append((key, padded * numel // p.shape[0] // plan.devices, replicas, count))
            else:
                rows.append((key, numel // plan.devices, replicas, count))
        for node in graph.repeats():
            visit(node.attrs["body"], f"{prefix}{node.module}.*.", count * node.attrs["count"])

    visit(model.graph, "", 1)
    return rows
