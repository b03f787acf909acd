"""The TT-NN backend: a single-chip program for Wormhole n150 or Blackhole p100/p150.

The graph is lowered first (fused QKV projections, activations fused into linears), then
emitted with the same class plan as the torch reference. Weights arrive as HF-named torch
tensors and go to the device in TILE layout: matrices in the chosen weight dtype (bf16 by
default, or bfloat8_b / bfloat4_b), norms, biases and embedding tables in bf16.
"""

from __future__ import annotations

from ...ir.graph import Model, Node, layer_structures
from ...ops import (
    ADD,
    APPLY_ROPE,
    ATTEND,
    GELU,
    LAYER_NORM,
    LINEAR,
    MERGE_HEADS,
    MUL,
    QKV_PART,
    RELU,
    RMS_NORM,
    SILU,
    SPLIT_QKV_HEADS,
    TIED_LINEAR,
)
from ..common.backend import Backend, ClassNames, layer_variants_of
from ..common.emit import Forward, emit_forward
from ..common.names import local_reserved
from ..common.plan import ClassPlan, Leaf, all_classes, model_plan
from ..common.printer import print_stmt
from ..common.pyast import Assign, BinOp, Comprehension, Const, Expr, ExprStmt, FString, Name, Stmt, Tuple, call, name
from ..common.render import display_path, hf_rules, with_runtime
from . import lower_head
from . import lower_matmul as dram
from .lower import LOWERINGS
from .program import ttnn_program

WEIGHT_DTYPES = {"bf16": ("ttnn.bfloat16", "bf16"), "bfloat8_b": ("ttnn.bfloat8_b", "bfloat8_b"),
                 "bfloat4_b": ("ttnn.bfloat4_b", "bfloat4_b")}


# Ops whose TT-NN lowering writes a new device tensor (never a view of an input), and ops that read their
# inputs without keeping them: what a decode step may free at last use.
FRESH_OUTPUT = {LINEAR.name, TIED_LINEAR.name, MUL.name, ADD.name, RMS_NORM.name, LAYER_NORM.name, SILU.name,
                RELU.name, GELU.name, SPLIT_QKV_HEADS.name, QKV_PART.name, APPLY_ROPE.name, ATTEND.name}
FRESH_READERS = {MERGE_HEADS.name}

# what every TT-NN program offers its users beside the model class (see the program's docstring)
API = ("open_device", "close_device", "generate")


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
        return self._lowered(leaf.node, args, self.leaf_refs(leaf), plan)

    def _lowered(self, node: Node, args: list[Expr], refs, plan: ClassPlan) -> Expr:
        """The op in this mode; in decode, its arguments and output resharded where the DRAM-sharded layer plan
        changes layout (lower_matmul.py)."""
        ctx = self.context(plan)
        if self.mode != "decode":
            return self.lowering(node).expr_for(self.mode)(node, args, refs, ctx)
        expr = self.lowering(node).expr_for(self.mode)(node, dram.adapt_args(node, args, ctx), refs, ctx)
        return lower_head.adapt_output(node, dram.adapt_output(node, expr, ctx), ctx)

    def release(self, node: Node, var: Expr, plan: ClassPlan) -> Stmt | None:
        """In decode, `ttnn.deallocate` at a value's last use (tt_transformers' decode frees each activation so):
        for values that ops computing fresh tensors made and read (a view, a reshape, would share the buffer)."""
        graph = plan.graph
        readers = {graph.node(u).op for u in graph.users.get(node.id, ())}
        if self.mode != "decode" or node.op not in FRESH_OUTPUT or not readers <= FRESH_OUTPUT | FRESH_READERS:
            return None
        return ExprStmt(call("ttnn.deallocate", var))

    def op_expr(self, node: Node, args: list[Expr], plan: ClassPlan) -> Expr:
        return self._lowered(node, args, self.own_refs() if node.params else None, plan)


def compile_ttnn(build, spec_path: str) -> str:
    """The TT-NN program for a driver Build (see ttspec/driver.py)."""
    model, lowered, shard_plan, target = build.model, build.lowered, build.shard_plan, build.options.target
    weights_dtype, need = build.options.weights_dtype, build.weight_bytes
    rules = hf_rules(model)
    backend = TTNNBackend(shard_plan)
    backend.weight_formats = weights_dtype  # per kind: weights.linear(..., dtype=...)
    backend.target = target  # the decode configurations are chosen for its cores
    backend.root_graph = lowered.graph  # the DRAM-sharded layer plan reads the whole model (lower_matmul.py)

    root = model_plan(lowered)
    names = ClassNames(root)
    classes = []
    for plan in all_classes(root):
        fwd, step = _methods(plan, backend, plan is root)
        init = backend.class_init(plan)
        if plan.needs_state and plan is not root:
            init.insert(0, Assign(name("self.state"), name("weights.state")))
        if plan.needs_device and plan is not root:
            init.insert(0, Assign(name("self.device"), name("weights.device")))
        text = (tuple(init), tuple(fwd.params), tuple(fwd.body), None if step is None else tuple(step.body))
        if names.name(plan, text):
            classes.append({"name": plan.name, "init": [print_stmt(s, 8) for s in init],
                            "forward": _printed(fwd), "decode": None if step is None else _printed(step),
                            "is_root": plan is root,
                            "code": (*init, *fwd.body, *(() if step is None else step.body))})
    out_node = lowered.graph.node(root.outputs[0])
    dtype_expr = WEIGHT_DTYPES[backend.weight_formats.default][0]
    without = set() if rules else {"load_weights"}  # HF weights load by the family's names
    api = API + tuple(sorted(backend.helpers))  # and what the lowerings asked for by name
    text, roots = ttnn_program(dict(model=model, spec=display_path(spec_path), target=target, classes=classes,
                                    root=root.name, hf_rules=rules, weights_dtype=dtype_expr,
                                    weights_dtype_name=str(weights_dtype), weight_bytes=need,
                                    vocab=out_node.type.shape[-1],
                                    max_seq=build.context, seq_bound=build.memory.seq_bound,
                                    parameters=_parameter_patterns(model),
                                    **_kv_cache_facts(build),
                                    **_mesh_facts(shard_plan, bool(shard_plan.split_on(out_node.id)), target)))
    return with_runtime(text, roots, "ttnn", api, {"Program": without})


def _methods(plan: ClassPlan, backend: TTNNBackend, is_root: bool) -> tuple[Forward, Forward | None]:
    """A class's prefill `forward` and its `decode` step (tt_transformers' forward_prefill and
    forward_decode), each op lowered for its mode; decode is None where it is the same code as forward."""
    reserved = local_reserved(root_call=is_root)
    backend.mode = "prefill"
    fwd = emit_forward(plan, backend, reserved)
    backend.mode = "decode"
    step = emit_forward(plan, backend, reserved, method="decode")
    backend.mode = "prefill"
    return fwd, None if step.body == fwd.body else step


def _printed(method: Forward) -> dict:
    return {"params": method.params, "lines": [print_stmt(s, 8) for s in method.body]}


def _fabric(plan, target) -> tuple[str, str]:
    """The fabric the mesh opens, and why. On ttnn 0.81.1's mock T3K (1x8), p150x4 and p150x8, FABRIC_1D_RING makes
    all_gather and reduce_scatter over the mesh's long axis run as Ring (their per-axis topology reads (Linear, Ring));
    on a 2x4 mesh it leaves both axes Linear, and the Galaxy 8x4 mesh refuses it. So a ring only where the target's
    wiring closes one round the whole axis a collective spans (Target.topology), on the target's own mesh."""
    rings = [a.axis for a in plan.axes if plan.mesh == target.mesh and target.topology(a.axis, a.devices) == "ring"]
    if rings:
        return "FABRIC_1D_RING", f"mesh axis {rings[0]} is wired as a ring: its collectives run as Ring"
    return "FABRIC_1D", "no mesh axis closes a ring here: collectives run as Linear"


def _mesh_facts(plan, logits_split: bool, target) -> dict:
    """What the header states of the mesh (one chip: a 1x1 mesh) and what the docstring says of it."""
    if not plan.axes:  # one chip: the program says in words that nothing is split (its 1x1 mesh has no tp axis)
        return dict(mesh_shape=plan.mesh, fabric="FABRIC_1D", fabric_comment="one chip opens no fabric",
                    tp_axis=1, tp_axis_comment="one chip: nothing is split",
                    data_parallel=False, data_parallel_comment="one chip: one replica", logits_split=False,
                    mesh_comment=[], per_chip="", mesh_note="")
    rows, cols = plan.mesh
    other = plan.mesh[1 - plan.axis]
    note = ("On the mesh each device holds the KV cache of its own KV heads (as the prefill plan splits them;\n"
            "a KV head copied to several devices has a copy of its cache on each)")
    if plan.strategy == "2d":
        note += ("; the\nmesh columns, which split hidden, all attend with the heads of their row and hold copies "
                 "of its\ncache")
        comment = ["2-D tensor parallelism: each weight matrix is split on its wide dim (heads, MLP hidden,",
                   f"vocabulary) over the {rows} rows (axis 0) and on its hidden-side dim over the {cols} columns "
                   "(axis 1)"]
        axis_comment = "the rows split the wide dims; each weight's split names both axes"
    else:
        if other > 1:
            note += "; the other mesh axis holds\nreplicas of the cache"
        comment = []
        axis_comment = f"tensor parallelism over this mesh axis ({plan.devices} devices)"
    if plan.strategy == "1d" and other > 1:
        replicas = "replicas of the model"
        if plan.dp:
            replicas = "data-parallel replicas, each with its own slice of the batch"
        comment.append(f"the other axis holds {other} {replicas}")
    fabric, fabric_comment = _fabric(plan, target)
    return dict(mesh_shape=plan.mesh, fabric=fabric, fabric_comment=fabric_comment,
                tp_axis=plan.axis, tp_axis_comment=axis_comment, data_parallel=bool(plan.dp),
                data_parallel_comment=("the other axis splits the batch" if plan.dp else "every replica runs the "
                                       "whole batch"),
                logits_split=logits_split, mesh_comment=comment, per_chip=" per chip", mesh_note="\n\n" + note + ".")


def _kv_cache_facts(build) -> dict:
    """What the program states and checks of its KV cache (ttspec/analysis/memory.py): the bytes for the
    batch it was compiled for at the context it accepts; per user and position; and, for allocate_cache's
    check at the context asked for, the DRAM beside the weights and one prompt's prefill activations
    (prefill runs one user at a time)."""
    memory, batch, context = build.memory, build.options.batch, build.context or 0
    kv_dtype = build.options.weights_dtype.kv_cache
    return dict(batch=batch, kv_bytes=memory.kv_cache(batch, context), kv_per_position=memory.kv_bytes_per_token,
                kv_dtype=WEIGHT_DTYPES[kv_dtype][0], kv_dtype_name=kv_dtype,
                dram_free=memory.dram - memory.weights_total,
                prefill_per_position=memory.activation_bytes_per_token,
                logits_per_position=memory.logits_bytes_per_token,
                prefill_per_pair=memory.score_bytes_per_token_pair)


def _parameter_patterns(model: Model) -> list[str]:
    """Stored parameter names, a parameter every layer of a repeat has written once as
    `layers.*6.attn.wq.weight`; one only some layers have (layers that differ in structure) is
    written with the layers that have it, `layers.[0:3,5].mlp.w1.weight` (layers 0 to 2 and 5)."""
    names = [name for name, p in model.graph.params.items() if not p.tied_to]
    for node in model.graph.repeats():
        holders: dict[str, list[int]] = {}
        for body, layers in layer_structures(node):
            for param, p in body.params.items():
                if not p.tied_to:
                    holders.setdefault(param, []).extend(layers)
        for param, layers in holders.items():
            if len(layers) == node.attrs.count:
                names.append(f"{node.module}.*{node.attrs.count}.{param}")
            else:
                names.append(f"{node.module}.[{_spans(sorted(layers))}].{param}")
    return names


def _spans(layers: list[int]) -> str:
    """Sorted layer indices as Python slices and single layers: `0:3,5` for 0, 1, 2, 5; `1:10000:2` for every
    odd layer of 10,000 (common/rt/parameters.py reads them)."""
    parts, i = [], 0
    while i < len(layers):
        j = i + 1
        step = layers[j] - layers[i] if j < len(layers) else 1
        while j < len(layers) and layers[j] - layers[j - 1] == step:
            j += 1
        if j - i < 3:  # one or two layers: written singly (the second may start the next run)
            parts.append(str(layers[i]))
            i += 1
            continue
        stop = layers[j - 1] + 1
        parts.append(f"{layers[i]}:{stop}" if step == 1 else f"{layers[i]}:{stop}:{step}")
        i = j
    return ",".join(parts)
