"""The TT-NN backend: a single-chip program for Wormhole n150 or Blackhole p100/p150.

The graph is lowered first (fused QKV projections, activations fused into linears), then
emitted with the same class plan as the torch reference. Weights arrive as HF-named torch
tensors and go to the device in TILE layout: matrices in the chosen weight dtype (bf16 by
default, or bfloat8_b / bfloat4_b), norms, biases and embedding tables in bf16.
"""

from __future__ import annotations

from ...errors import ArchError
from ...ir.graph import Model, Node, point_at_spec
from ..common.backend import Backend, ClassNames, check_lowerable, layer_variants_of
from ..common.emit import emit_forward
from ..common.names import local_reserved
from ..common.plan import ClassPlan, Leaf, all_classes, model_plan
from ..common.printer import print_stmt
from ..common.pyast import Assign, BinOp, Comprehension, Const, Expr, FString, Name, Stmt, Tuple, call, name
from ..common.render import hf_rules, render
from .lower import LOWERINGS

WEIGHT_DTYPES = {"bf16": ("ttnn.bfloat16", "bf16"), "bfloat8_b": ("ttnn.bfloat8_b", "bfloat8_b"),
                 "bfloat4_b": ("ttnn.bfloat4_b", "bfloat4_b")}


def check_supported(model: Model) -> None:
    """Refuse what ttnn 0.81.1 cannot run, with the reason, before generating anything."""
    outputs = list(model.graph.outputs)
    if len(outputs) > 1:
        node = model.graph.node(model.graph.outputs[outputs[1]])
        raise point_at_spec(ArchError(
            f"TT-NN programs return one output (the logits); this spec declares {len(outputs)}: "
            f"{', '.join(f'`{o}`' for o in outputs)}", node.loc,
            hint="keep one `output` for a TT-NN target (`--target torch` returns them all)"),
            [(model.graph, node.module)])
    check_lowerable(model.graph, "TT-NN", lambda opdef: LOWERINGS.get(opdef.name))


class TTNNBackend(Backend):
    target_name = "TT-NN"
    rotary_prefix = (name("weights.state"),)
    pad_heads_to_tiles = True
    lowerings = LOWERINGS

    def repeat_init(self, rep) -> list[Stmt]:
        variants = layer_variants_of(rep)
        prefix = FString((Name("prefix"), f"{rep.label}.", Name("i"), "."))
        attr = name(f"self.{rep.attr}")
        if variants is None:
            layer = Name(rep.cls.name)(Name("weights"), prefix)
            return [Assign(attr, Comprehension(layer, Name("i"), call("range", Const(rep.count))))]
        comment, seq = variants
        layer = Name("cls")(Name("weights"), prefix)
        return [*comment, Assign(attr, Comprehension(layer, Tuple((Name("i"), Name("cls"))), call("enumerate", seq)))]

    def child_init(self, child) -> Stmt:
        return Assign(name(f"self.{child.attr}"),
                      Name(child.cls.name)(Name("weights"), BinOp(Name("prefix"), "+", Const(f"{child.label}."))))

    def self_param_init(self, node: Node, plan: ClassPlan) -> list[Stmt]:
        return self.lowering(node).load(node, self.own_refs(), self.context(plan))

    def leaf_init(self, leaf: Leaf, plan: ClassPlan) -> list[Stmt]:
        return self.lowering(leaf.node).load(leaf.node, self.leaf_refs(leaf), self.context(plan))

    def leaf_call(self, leaf: Leaf, args: list[Expr], plan: ClassPlan) -> Expr:
        return self.lowering(leaf.node).expr(leaf.node, args, self.leaf_refs(leaf), self.context(plan))

    def op_expr(self, node: Node, args: list[Expr], plan: ClassPlan) -> Expr:
        refs = self.own_refs() if node.params else None
        return self.lowering(node).expr(node, args, refs, self.context(plan))


def compile_ttnn(build, spec_path: str) -> str:
    """The TT-NN program for a driver Build (see ttspec/driver.py)."""
    model, lowered, shard_plan, target = build.model, build.lowered, build.shard_plan, build.options.target
    weights_dtype, need = build.options.weights_dtype, build.weight_bytes
    rules = hf_rules(model)
    backend = TTNNBackend(shard_plan)
    backend.weight_formats = weights_dtype  # per kind: weights.linear(..., dtype=...)
    root = model_plan(lowered)
    names = ClassNames(root)
    classes = []
    for plan in all_classes(root):
        fwd = emit_forward(plan, backend, local_reserved(root_call=plan is root))
        init = backend.class_init(plan)
        if plan.needs_state and plan is not root:
            init.insert(0, Assign(name("self.state"), name("weights.state")))
        if plan.needs_device and plan is not root:
            init.insert(0, Assign(name("self.device"), name("weights.device")))
        if names.name(plan, (tuple(init), tuple(fwd.params), tuple(fwd.body))):
            classes.append({"name": plan.name, "init": [print_stmt(s, 8) for s in init],
                            "forward": {"params": fwd.params, "lines": [print_stmt(s, 8) for s in fwd.body]},
                            "is_root": plan is root})
    out_node = lowered.graph.node(root.outputs[0])
    dtype_expr = WEIGHT_DTYPES[backend.weight_formats.default][0]
    return render("ttnn_model.py.j2", model=model, spec=spec_path, target=target, classes=classes,
                  root=root.name, helpers=sorted(backend.helpers), hf_rules=rules,
                  tied=[(n, p.tied_to) for n, p in model.graph.params.items() if p.tied_to],
                  weights_dtype=dtype_expr, weights_dtype_name=str(weights_dtype), weight_bytes=need,
                  vocab=out_node.type.shape[-1], input=classes[-1]["forward"]["params"][0],
                  max_seq=build.context, seq_bound=build.memory.seq_bound, parameters=_parameter_patterns(model),
                  **_kv_cache_facts(build),
                  mesh=shard_plan,
                  logits_split=bool(shard_plan) and bool(shard_plan.split_on(out_node.id)))


def _kv_cache_facts(build) -> dict:
    """What the program states and checks of its KV cache (ttspec/analysis/memory.py): the bytes for the
    batch it was compiled for at the context it accepts; per user and position; and, for allocate_cache's
    check at the context asked for, the DRAM beside the weights and one prompt's prefill activations
    (prefill runs one user at a time)."""
    memory, batch, context = build.memory, build.options.batch, build.context or 0
    return dict(batch=batch, kv_bytes=memory.kv_cache(batch, context), kv_per_position=memory.kv_bytes_per_token,
                dram_free=memory.dram - memory.weights_total,
                prefill_per_position=memory.activation_bytes_per_token,
                prefill_per_pair=memory.score_bytes_per_token_pair)


def _parameter_patterns(model: Model) -> list[str]:
    """Stored parameter names, a repeat written once as `layers.*6.attn.wq.weight` (layer 0's body:
    layer variants have the same parameters)."""
    names = [name for name, p in model.graph.params.items() if not p.tied_to]
    for node in model.graph.repeats():
        body = node.attrs["body"]
        names += [f"{node.module}.*{node.attrs['count']}.{name}" for name, p in body.params.items() if not p.tied_to]
    return names
