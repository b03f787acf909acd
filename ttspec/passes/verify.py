"""The IR verifier: invariants every pass must keep, checked between passes (as torch.fx's PassManager
runs its checks), so a broken rewrite fails at the pass that broke it rather than in the code it
makes. ttspec/passes/pipeline.py runs it after each pass when TTSPEC_VERIFY_PASSES=1 (the tests set
it: tests/conftest.py); a compile does not pay for it.

What a graph must be, its repeat bodies included:
- ordered: every node's inputs are nodes before it (the node dict's order is the topological order
  every consumer walks), `users` is the reverse of `inputs`, the graph's inputs are `input` nodes
  and its outputs are nodes of it; a repeat's body reads one input and writes the output `out`;
- typed: every node's attrs is an instance of its op's attrs class (OpDef.attrs; InputAttrs,
  RepeatAttrs for the structural nodes); every op's type is what its shape rule gives on its inputs'
  types, and a repeat hands on the type it gets (layer in = layer out);
- params consistent: every parameter an op names is in its graph's table under that name, with the
  shape the op's parameter rule asks for; a tied parameter names one of the model's;
- after sharding: every value an op or repeat computes has a layout on every axis of the plan, is split
  over one mesh axis at most (a layout says which axis cuts a dim, not how two axes nest: an all_gather over
  one would interleave the other's slices), and every parameter the plan places exists;
- annotated by the sharding pass only: a node's NodeShard (Node.shard) is empty before it and on one
  chip, and after it agrees with the plan (placements on its axes, whole heads, padded vocabularies).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..ir.graph import Graph, InputAttrs, Model, RepeatAttrs, layer_variants
from ..ir.layout import Layout, Placement
from ..ir.sharding import NO_SHARD
from ..ir.types import TensorType
from ..ops import ATTEND, REGISTRY, OpError, ShapeContext
from ..ops.attention import QKVPartAttrs, SplitHeadsAttrs, SplitQKVHeadsAttrs
from ..ops.linear import fused_qkv
from ..ops.norms import NORM_STATISTICS

if TYPE_CHECKING:
    from ..ir.sharding import ShardPlan


class VerifyError(AssertionError):
    """A pass broke an invariant of the IR: a bug in the pass, not in the spec."""


def verify_ir(model: Model, plan: ShardPlan | None = None, after: str = "") -> None:
    """Raise VerifyError naming the first broken invariant of `model` (sharded by `plan`, if given).
    `after`: the pass that made it, for the message."""
    problems: list[str] = []
    _graph(model.graph, "", ShapeContext(model.bounds), problems)
    top = model.graph.params
    problems += [f"parameter `{p.name}` is tied to `{p.tied_to}`, which is not a parameter of the model"
                 for p in top.values() if p.tied_to is not None and p.tied_to not in top]
    if plan is not None and not problems:  # after the sharding pass (before it there is no plan)
        _sharding(model.graph, plan, problems)
    if not problems:  # annotations are read with the attrs, checked above
        _annotations(model.graph, plan, "", problems)
    if problems:
        where = f" after pass `{after}`" if after else ""
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise VerifyError(f"IR of {model.name}{where}: {problems[0]}{more}")


def _graph(graph: Graph, prefix: str, ctx: ShapeContext, problems: list[str]) -> None:
    _order(graph, prefix, problems)
    _attrs(graph, prefix, problems)
    if problems:  # the rest reads attrs by field
        return
    _params(graph, prefix, problems)
    if problems:  # types of a misordered graph cannot be checked
        return
    for node in graph.topo():
        where = f"`{prefix}{node.id}`"
        if node.is_input:
            continue
        ins = [graph.nodes[i].type for i in node.inputs]
        if node.is_repeat:
            for body, _ in layer_variants(node):
                _body(body, f"{prefix}{node.module}.*.", ins, node.type, ctx, problems)
            continue
        opdef = REGISTRY[node.op]
        try:
            out = opdef.shape(ins, node.attrs, ctx)
        except OpError as e:
            problems.append(f"{where} ({node.op}) does not type-check: {e.message}")
            continue
        if out != node.type:
            problems.append(f"{where} ({node.op}) is typed {node.type} but its shape rule gives {out}")
        _param_shapes(graph, node, ins, where, problems)


def _attrs(graph: Graph, prefix: str, problems: list[str]) -> None:
    """Every node is of a registered op or a NodeKind, and its attrs are an instance of that one's class."""
    for node in graph.topo():
        opdef = REGISTRY.get(node.op)
        cls = InputAttrs if node.is_input else RepeatAttrs if node.is_repeat else opdef.attrs if opdef else None
        if cls is None:
            problems.append(f"`{prefix}{node.id}` has op `{node.op}`, which is neither a registered op nor a NodeKind")
        elif type(node.attrs) is not cls:
            problems.append(f"`{prefix}{node.id}` ({node.op}) has attrs of type {type(node.attrs).__name__}, not its "
                            f"op's {cls.__name__}")


def _body(body: Graph, prefix: str, ins: list[TensorType], out: TensorType, ctx: ShapeContext,
          problems: list[str]) -> None:
    if len(body.inputs) != 1 or len(ins) != 1 or set(body.outputs) != {"out"}:
        problems.append(f"repeat body `{prefix}` must read one input and write `out`; it reads "
                        f"{body.inputs} from {len(ins)} and writes {sorted(body.outputs)}")
        return
    _graph(body, prefix, ctx, problems)
    if problems:
        return
    if body.nodes[body.inputs[0]].type != ins[0] or body.nodes[body.outputs["out"]].type != out or out != ins[0]:
        problems.append(f"repeat body `{prefix}` must hand on the type it gets ({ins[0]}); it takes "
                        f"{body.nodes[body.inputs[0]].type} and gives {body.nodes[body.outputs['out']].type}")


def _order(graph: Graph, prefix: str, problems: list[str]) -> None:
    seen: set[str] = set()
    readers: dict[str, list[str]] = {}
    for nid, node in graph.nodes.items():
        if nid != node.id:
            problems.append(f"`{prefix}{nid}` is stored under another id than its own (`{node.id}`)")
        for src in node.inputs:
            if src not in graph.nodes:
                problems.append(f"`{prefix}{nid}` reads `{src}`, which is not a node of its graph")
            elif src not in seen:
                problems.append(f"`{prefix}{nid}` reads `{src}` before it is defined (node order is not topological)")
            readers.setdefault(src, []).append(nid)
        seen.add(nid)
    for nid in graph.nodes:
        if sorted(graph.users.get(nid, [])) != sorted(readers.get(nid, [])):
            problems.append(f"users of `{prefix}{nid}` are {graph.users.get(nid, [])}; its readers are "
                            f"{readers.get(nid, [])}")
    for nid in graph.inputs:
        if nid not in graph.nodes or not graph.nodes[nid].is_input:
            problems.append(f"graph input `{prefix}{nid}` is not an input node")
    for name, nid in graph.outputs.items():
        if nid not in graph.nodes:
            problems.append(f"output `{name}` is `{prefix}{nid}`, which is not a node of its graph")


def _params(graph: Graph, prefix: str, problems: list[str]) -> None:
    for name, p in graph.params.items():
        if p.name != name:
            problems.append(f"parameter `{prefix}{name}` is stored under another name than its own (`{p.name}`)")
    for node in graph.topo():
        fused = fused_qkv(node)
        names = list(node.params.values()) + (list(fused.param_names) if fused is not None else [])
        for name in names:
            if name not in graph.params:
                problems.append(f"`{prefix}{node.id}` ({node.op}) reads parameter `{prefix}{name}`, "
                                "which its graph does not have")


def _param_shapes(graph: Graph, node, ins: list[TensorType], where: str, problems: list[str]) -> None:
    """The parameters an op holds have the shapes its parameter rule asks for (a fused op's parts
    are checked by their own names above; its joined weight is not in the table)."""
    if fused_qkv(node) is not None:
        return
    try:
        specs = REGISTRY[node.op].params(ins, node.attrs)
    except OpError:
        return  # its shape rule already reported the inputs
    for local, name in node.params.items():
        spec = specs.get(local)
        if spec is None:
            problems.append(f"{where} ({node.op}) holds parameter `{local}`, which its op does not have")
        elif name in graph.params and tuple(spec.shape) != tuple(graph.params[name].shape):
            problems.append(f"parameter `{name}` of {where} has shape {graph.params[name].shape}; "
                            f"`{node.op}` asks for {tuple(spec.shape)}")


def _sharding(graph: Graph, plan: ShardPlan, problems: list[str]) -> None:
    """Every computed value has a layout on every axis and is split over one axis at most; every placed
    parameter exists."""
    names: set[str] = set()
    plan_inserted = {c.op for c in plan.collectives} | {NORM_STATISTICS.name}

    def visit(g: Graph, prefix: str) -> None:
        names.update(prefix + name for name in g.params)
        for ax in plan.axes:
            # An input's layout is the one it enters with (replicated, or the layer's), not recorded; an op a
            # later axis's pass inserts takes its source's layouts on the earlier axes, so one derived from an
            # input through such ops has none there either.
            unrecorded = set(g.inputs)
            for node in g.topo():
                if node.is_input or prefix + node.id in ax.layouts:
                    continue
                inserted_later = node.op in plan_inserted and any(prefix + node.id in other.layouts
                                                                  for other in plan.axes if other is not ax)
                if node.inputs and node.inputs[0] in unrecorded and inserted_later:
                    unrecorded.add(node.id)
                else:
                    problems.append(f"`{prefix}{node.id}` ({node.op}) has no layout on mesh axis {ax.axis} "
                                    "after sharding")
        for node in g.topo():
            split = [ax.axis for ax in plan.axes if ax.layouts.get(prefix + node.id) == Layout.SPLIT]
            if len(split) > 1:
                problems.append(f"`{prefix}{node.id}` ({node.op}) is split over mesh axes {split} on the same dim")
            if node.is_repeat:
                for body, _ in layer_variants(node):
                    visit(body, f"{prefix}{node.module}.*.")

    visit(graph, "")
    for ax in plan.axes:
        for name in ax.placements:
            if name not in names:
                problems.append(f"the plan places `{name}` on mesh axis {ax.axis}, which is not a parameter")


def _annotations(graph: Graph, plan: ShardPlan | None, prefix: str, problems: list[str]) -> None:
    """Every node's NodeShard (Node.shard, written only by the sharding pass) agrees with the plan: none
    before the sharding pass or on one chip; placements only on axes the plan splits, as the plan places
    the node's parameters (a copied KV head is placed as the fused projection's column split); a whole
    number of heads on each device, at least one; padded rows only on a vocabulary split, no fewer than
    the logits."""
    axes = {ax.axis: ax for ax in (plan.axes if plan is not None else ())}
    for node in graph.topo():
        where, shard = f"`{prefix}{node.id}`", node.shard
        if not axes and shard != NO_SHARD:
            problems.append(f"{where} carries a sharding annotation " + ("before the sharding pass" if plan is None
                                                                          else "on one chip"))
        fused = fused_qkv(node)
        names = list(node.params.values()) + (fused.param_names if fused else [])
        for axis, placement in shard.placements:
            if axis not in axes:
                problems.append(f"{where} is placed on mesh axis {axis}, which the plan does not split")
                continue
            for name in names:
                planned = axes[axis].placements.get(prefix + name, Placement.REPLICATE)
                if planned not in (placement, Placement.KV_COPIES):
                    problems.append(f"{where} is annotated {placement} on mesh axis {axis}, but the plan places "
                                    f"`{prefix}{name}` {planned}")
        for label, count, whole in (("heads", shard.local_heads, _heads(node)),
                                    ("KV heads", shard.local_kv_heads, _kv_heads(graph, node))):
            if count is not None and (whole is None or count < 1 or whole % count):
                problems.append(f"{where} holds {count} {label} per device of {whole}: not a whole share")
        if shard.padded_out is not None and (Placement.VOCAB not in shard.placed
                                             or shard.padded_out < node.type.shape[-1]):
            problems.append(f"{where} pads its {node.type.shape[-1]} output rows to {shard.padded_out} without a "
                            "vocabulary split to need it")
        if node.is_repeat:
            for body, _ in layer_variants(node):
                _annotations(body, plan, f"{prefix}{node.module}.*.", problems)


def _heads(node) -> int | None:
    """The heads a node cuts (split_heads, split_qkv_heads)."""
    return node.attrs.heads if isinstance(node.attrs, (SplitHeadsAttrs, SplitQKVHeadsAttrs)) else None


def _kv_heads(graph: Graph, node) -> int | None:
    """The KV heads a node cuts (split_qkv_heads, qkv_part) or reads (attend: those of its k)."""
    if isinstance(node.attrs, (SplitQKVHeadsAttrs, QKVPartAttrs)):
        return node.attrs.kv_heads
    return graph.nodes[node.inputs[1]].type.shape[1] if node.op == ATTEND.name else None
