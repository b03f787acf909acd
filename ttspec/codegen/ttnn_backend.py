"""The TT-NN backend: a single-chip program for Wormhole n150 or Blackhole p100/p150.

The graph is lowered first (fused QKV projections, activations fused into linears), then
emitted with the same class plan as the torch reference. Weights arrive as HF-named torch
tensors and go to the device in TILE layout: matrices in the chosen weight dtype (bf16 by
default, or bfloat8_b / bfloat4_b), norms, biases and embedding tables in bf16.
"""

from __future__ import annotations

from ..analysis.params_report import tensor_bytes
from ..errors import ArchError
from ..ir.graph import Model, Node
from ..ir.layout import Layout
from ..targets import TILE, Target
from .backend import Backend, check_lowerable
from .emit import emit_forward
from .plan import ClassPlan, Leaf, all_classes, model_plan
from .render import hf_rules, render

WEIGHT_DTYPES = {"bf16": ("ttnn.bfloat16", "bf16"), "bfloat8_b": ("ttnn.bfloat8_b", "bfloat8_b"),
                 "bfloat4_b": ("ttnn.bfloat4_b", "bfloat4_b")}


def check_supported(model: Model) -> None:
    """Refuse what ttnn 0.81.1 cannot run, with the reason, before generating anything."""
    check_lowerable(model.graph, "TT-NN", lambda opdef: opdef.ttnn)


def _tiles(shape: tuple[int, ...]) -> int:
    """Values a TILE-layout tensor occupies: its last two dims padded to whole 32x32 tiles."""
    rows, cols = (1, shape[0]) if len(shape) == 1 else shape[-2:]
    lead = 1
    for d in shape[:-2]:
        lead *= d
    return lead * -(-rows // TILE) * TILE * -(-cols // TILE) * TILE


def _padded_shapes(graph) -> dict[str, tuple[int, ...]]:
    """Device shapes of attention projections whose heads are zero-padded to whole tiles."""
    shapes: dict[str, tuple[int, ...]] = {}
    for node in graph.topo():
        if node.op == "split_heads" and node.type.shape[-1] % TILE:
            heads, head_dim = node.attrs["heads"], node.type.shape[-1]
            padded = -(-head_dim // TILE) * TILE
            proj = graph.node(node.inputs[0])
            for name in proj.params.values():
                shape = graph.params[name].shape
                shapes[name] = (heads * padded,) + tuple(shape[1:])
        if node.op == "merge_heads" and graph.node(node.inputs[0]).type.shape[-1] % TILE:
            _, heads, _, head_dim = graph.node(node.inputs[0]).type.shape
            padded = -(-head_dim // TILE) * TILE
            for user in graph.users[node.id]:
                weight = graph.node(user).params.get("weight")
                if weight:
                    rows = graph.params[weight].shape[0]
                    shapes[weight] = (rows, heads * padded)
    return shapes


def weight_plan_bytes(model: Model, weights_dtype: str, plan=None) -> int:
    """Device DRAM bytes for the weights as the generated program stores them: matrices in
    `weights_dtype` and TILE layout (attention heads padded to whole tiles), norms and biases
    in bf16 TILE, embedding tables in bf16 ROW_MAJOR; a tied output head keeps its own TILE
    copy of the embedding. With a sharding plan: the bytes on one chip."""

    def share(name: str, numel: int) -> int:
        if plan is None or plan.placements.get(name, "replicate") == "replicate":
            return numel
        return -(-numel // plan.devices)

    def graph_bytes(graph, prefix: str) -> int:
        tables = {name for node in graph.topo() if node.op in ("embedding", "position_embedding")
                  for name in node.params.values()}
        padded = _padded_shapes(graph)
        total = 0
        for name, p in graph.params.items():
            shape = padded.get(name, p.shape)
            if name in tables:
                total += tensor_bytes(share(prefix + name, p.numel), "bf16")
            elif len(shape) == 2:
                total += tensor_bytes(share(prefix + name, _tiles(shape)), weights_dtype)
            else:
                total += tensor_bytes(share(prefix + name, _tiles(shape)), "bf16")
        for node in graph.repeats():
            total += node.attrs["count"] * graph_bytes(node.attrs["body"], f"{prefix}{node.module}.*.")
        return total

    return graph_bytes(model.graph, "")


def check_fits(model: Model, target: Target, weights_dtype: str, plan=None) -> int:
    """Weight bytes per chip, refused when over the chip's DRAM (before ttnn is touched)."""
    need = weight_plan_bytes(model, weights_dtype, plan)
    have = target.dram_per_chip
    if need > have:
        hint = "use --weights-dtype bfloat8_b" if weights_dtype == "bf16" else "use a larger target"
        per = " per chip" if plan else ""
        raise ArchError(f"{model.name} needs {need:,} bytes of DRAM{per} for {weights_dtype} weights; "
                        f"{target.name} has {have:,}{per}", model.loc, hint=hint)
    return need


class TTNNBackend(Backend):
    target_name = "TT-NN"
    rotary_prefix = ["weights.device"]
    pad_heads_to_tiles = True

    def lowering_of(self, opdef):
        return opdef.ttnn

    def repeat_init(self, rep) -> str:
        layer = f'{rep.cls.name}(weights, f"{{prefix}}{rep.attr}.{{i}}.")'
        return f"self.{rep.attr} = [{layer} for i in range({rep.count})]"

    def child_init(self, child) -> str:
        return f'self.{child.attr} = {child.cls.name}(weights, prefix + "{child.attr}.")'

    def self_param_init(self, node: Node, plan: ClassPlan) -> list[str]:
        return self.lowering(node).load(node, self.own_refs(), self.context(plan))

    def leaf_init(self, leaf: Leaf, plan: ClassPlan) -> list[str]:
        return self.lowering(leaf.node).load(leaf.node, self.leaf_refs(leaf.attr), self.context(plan))

    def leaf_call(self, leaf: Leaf, args: list[str], plan: ClassPlan) -> str:
        return self.lowering(leaf.node).expr(leaf.node, args, self.leaf_refs(leaf.attr), self.context(plan))

    def op_expr(self, node: Node, args: list[str], plan: ClassPlan) -> str:
        refs = self.own_refs() if node.params else None
        return self.lowering(node).expr(node, args, refs, self.context(plan))


def compile_ttnn(build, spec_path: str) -> str:
    """The TT-NN program for a driver Build (see ttspec/driver.py)."""
    model, lowered, shard_plan, target = build.model, build.lowered, build.shard_plan, build.options.target
    weights_dtype, need = build.options.weights_dtype, build.weight_bytes
    rules = hf_rules(model)
    backend = TTNNBackend(shard_plan)
    root = model_plan(lowered)
    classes = []
    for plan in all_classes(root):
        fwd = emit_forward(plan, backend)
        init = backend.class_init(plan)
        if plan.needs_device and plan is not root:
            init.insert(0, "self.device = weights.device")
        classes.append({"name": plan.name, "init": init, "forward": fwd, "is_root": plan is root})
    out_node = lowered.graph.node(root.outputs[0])
    dtype_expr = WEIGHT_DTYPES[weights_dtype][0]
    return render("ttnn_model.py.j2", model=model, spec=spec_path, target=target, classes=classes,
                  root=root.name, helpers=sorted(backend.helpers), hf_rules=rules,
                  tied=[(n, p.tied_to) for n, p in model.graph.params.items() if p.tied_to],
                  weights_dtype=dtype_expr, weights_dtype_name=weights_dtype, weight_bytes=need,
                  vocab=out_node.type.shape[-1], input=classes[-1]["forward"].params[0],
                  max_seq=model.bounds.get("seq"), parameters=_parameter_patterns(model), mesh=shard_plan,
                  logits_split=bool(shard_plan) and shard_plan.layouts.get(out_node.id) == Layout.SPLIT)


def _parameter_patterns(model: Model) -> list[str]:
    """Stored parameter names, a repeat written once as `layers.*6.attn.wq.weight`."""
    names = [name for name, p in model.graph.params.items() if not p.tied_to]
    for node in model.graph.repeats():
        body = node.attrs["body"]
        names += [f"{node.module}.*{node.attrs['count']}.{name}" for name, p in body.params.items() if not p.tied_to]
    return names
