"""The TT-NN backend: a single-chip program for Wormhole n150 or Blackhole p100/p150.

The graph is lowered first (fused QKV projections, activations fused into linears), then
emitted with the same class plan as the torch reference. Weights arrive as HF-named torch
tensors and go to the device in TILE layout: matrices in the chosen weight dtype (bf16 by
default, or bfloat8_b / bfloat4_b), norms, biases and embedding tables in bf16.
"""

from __future__ import annotations

import math

from ..analysis.memory import weight_plan_bytes  # noqa: F401  (the weight bytes live in analysis/memory.py)
from ..errors import ArchError
from ..ir.graph import Model, Node, all_nodes
from ..targets import TILE
from .backend import Backend
from .emit import emit_forward
from .plan import ClassPlan, Leaf, all_classes, model_plan
from .render import hf_rules, render

WEIGHT_DTYPES = {"bf16": ("ttnn.bfloat16", "bf16"), "bfloat8_b": ("ttnn.bfloat8_b", "bfloat8_b"),
                 "bfloat4_b": ("ttnn.bfloat4_b", "bfloat4_b")}
UNARY = {"relu": "ttnn.relu({0})", "silu": "ttnn.silu({0})", "gelu": "ttnn.gelu({0})",
         "gelu_tanh": "ttnn.gelu({0}, variant=ttnn.GeluVariant.Tanh)"}


def check_supported(model: Model) -> None:
    """Refuse what ttnn 0.81.1 cannot run, with the reason, before generating anything."""
    for node in all_nodes(model.graph):
        if node.op == "attend" and not node.attrs["causal"]:
            raise ArchError("non-causal attention is not lowered to TT-NN yet", node.loc)


class TTNNBackend(Backend):
    rotary_prefix = ["weights.device"]
    pad_heads_to_tiles = True

    def __init__(self, mesh=None):
        super().__init__()
        self.mesh = mesh  # a ShardPlan for mesh programs, None on one chip

    def repeat_init(self, rep) -> str:
        layer = f'{rep.cls.name}(weights, f"{{prefix}}{rep.attr}.{{i}}.")'
        return f"self.{rep.attr} = [{layer} for i in range({rep.count})]"

    def child_init(self, child) -> str:
        return f'self.{child.attr} = {child.cls.name}(weights, prefix + "{child.attr}.")'

    def self_param_init(self, node: Node, plan: ClassPlan) -> list[str]:
        kind = {"embedding": "table", "position_embedding": "table", "rms_norm": "norm", "layer_norm": "norm"}
        if node.op in kind:
            split = ', split="hidden"' if self.mesh and node.attrs.get("placement") == "hidden" else ""
            return [f'self.{local} = weights.{kind[node.op]}(prefix[:-1], "{local}"{split})' for local in node.params]
        return ["self.weight = weights.linear(prefix[:-1])"] + (
            ['self.bias = weights.bias(prefix[:-1])'] if "bias" in node.params else [])

    def default_name(self, node: Node) -> str:
        if node.op == "linear" and node.attrs.get("fused"):
            return "qkv"
        if node.op in ("all_gather", "reduce_scatter", "all_reduce", "mesh_partition"):
            return node.hint or "h"
        return {"attend": "y", "merge_heads": "y"}.get(node.op, "h")

    def leaf_init(self, leaf: Leaf, plan: ClassPlan) -> list[str]:
        n, a, attr = leaf.node, leaf.node.attrs, leaf.attr
        if n.op == "linear":
            parts = a.get("fused")
            extra = ""
            if parts:
                names = ", ".join(f'"{dict(p)["weight"].rsplit(".", 2)[-2]}"' for p in parts)
                extra = f", parts=({names})"
                split = plan.graph.node(plan.graph.users[n.id][0])
                heads = split.attrs["heads"] + 2 * split.attrs["kv_heads"]
                head_dim = a["out"] // heads
                if head_dim % TILE:
                    extra += f", heads={heads}, head_dim={head_dim}"
            source = plan.graph.node(n.inputs[0])
            if source.op == "merge_heads":
                _, heads, _, head_dim = plan.graph.node(source.inputs[0]).type.shape
                if head_dim % TILE:
                    extra += f", input_heads={heads}, head_dim={head_dim}"
            if self.mesh and a.get("placement", "replicate") != "replicate":
                extra += f', split="{a["placement"]}"'
                if parts:
                    split = plan.graph.node(plan.graph.users[n.id][0])
                    extra += f", qkv_heads=({split.attrs['heads']}, {split.attrs['kv_heads']})"
            lines = [f'self.{attr} = weights.linear(prefix + "{attr}"{extra})']
            if a["bias"]:
                bias_extra = extra.split(", input_heads")[0]
                lines.append(f'self.{attr}_bias = weights.bias(prefix + "{attr}"{bias_extra})')
            return lines
        if n.op == "tied_linear":
            split = ""
            if self.mesh and a.get("placement") == "column":
                split = f', split="column", rows={a["padded_out"]}'
            lines = [f'self.{attr} = weights.linear("{a["weight"].name.rsplit(".", 1)[0]}"{split})'
                     f"  # tied: a TILE copy of the embedding table"]
            if a["bias"]:
                lines.append(f'self.{attr}_bias = weights.bias(prefix + "{attr}")')
            return lines
        if n.op in ("embedding", "position_embedding"):
            split = ', split="hidden"' if self.mesh and a.get("placement") == "hidden" else ""
            return [f'self.{attr} = weights.table(prefix + "{attr}"{split})']
        if n.op == "rms_norm":
            return [f'self.{attr} = weights.norm(prefix + "{attr}")']
        if n.op == "layer_norm":
            lines = [f'self.{attr} = weights.norm(prefix + "{attr}")']
            if a["bias"]:
                lines.append(f'self.{attr}_bias = weights.norm(prefix + "{attr}", "bias")')
            return lines
        raise NotImplementedError(n.op)

    def leaf_call(self, leaf: Leaf, args: list[str], plan: ClassPlan) -> str:
        if leaf.node.op == "position_embedding":
            plan.__dict__["_needs_device"] = True
        return self._call(leaf.node, args, f"self.{leaf.attr}", f"self.{leaf.attr}_bias")

    def op_expr(self, node: Node, args: list[str], plan: ClassPlan) -> str:
        if node.params:  # `as self` primitives: the class's own weight and bias
            if node.op == "position_embedding":
                plan.__dict__["_needs_device"] = True
            return self._call(node, args, "self.weight", "self.bias")
        a, op = node.attrs, node.op
        if op == "split_qkv_heads":
            heads, kv = a.get("local_heads", a["heads"]), a.get("local_kv_heads", a["kv_heads"])
            return (f"ttnn.transformer.split_query_key_value_and_split_heads({args[0]}, num_heads={heads}, "
                    f"num_kv_heads={kv}, transpose_key=False)")
        if op in ("all_gather", "reduce_scatter", "mesh_partition"):
            return f"ttnn.{op}({args[0]}, dim={a['dim']}, cluster_axis={a['axis']})"
        if op == "all_reduce":
            return f"ttnn.all_reduce({args[0]}, cluster_axis={a['axis']})"
        if op == "split_heads":
            self.helpers.add("split_heads")
            return f"split_heads({args[0]}, {a['heads']})"
        if op == "merge_heads":
            return f"ttnn.transformer.concatenate_heads({args[0]})"
        if op == "apply_rope":
            return f"self.{self.rotary_attr(plan, a['rope'])}({args[0]})"
        if op == "attend":
            q = plan.graph.node(node.inputs[0])
            scale = a["scale"] if a["scale"] is not None else 1 / math.sqrt(q.type.shape[-1])
            return (f"ttnn.transformer.scaled_dot_product_attention({', '.join(args)}, is_causal=True, "
                    f"scale={scale!r})")
        if op == "add":
            return f"ttnn.add({args[0]}, {args[1]})"
        if op == "mul":
            return f"ttnn.mul({args[0]}, {args[1]})"
        if op in UNARY:
            return UNARY[op].format(args[0])
        if op == "sinusoidal_positions":
            self.helpers.add("sinusoidal_positions")
            return f"sinusoidal_positions({args[0]}, base={a['base']!r})"
        raise NotImplementedError(op)

    def _call(self, node: Node, args: list[str], weight: str, bias: str) -> str:
        a, op = node.attrs, node.op
        if op in ("linear", "tied_linear"):
            extra = f", bias={bias}" if a["bias"] else ""
            if a.get("activation"):
                extra += f', activation="{a["activation"]}"'
            return f"ttnn.linear({args[0]}, {weight}{extra})"
        if op == "embedding":
            return f"ttnn.embedding({args[0]}, {weight}, layout=ttnn.TILE_LAYOUT)"
        if op == "position_embedding":
            self.helpers.add("position_ids")
            return f"ttnn.embedding(position_ids({args[0]}, {weight}, self.device), {weight}, layout=ttnn.TILE_LAYOUT)"
        if op == "rms_norm":
            return f"ttnn.rms_norm({args[0]}, epsilon={a['eps']!r}, weight={weight})"
        if op == "layer_norm":
            extra = f", bias={bias}" if a["bias"] else ""
            return f"ttnn.layer_norm({args[0]}, epsilon={a['eps']!r}, weight={weight}{extra})"
        raise NotImplementedError(op)


def compile_ttnn(build, spec_path: str) -> str:
    """The TT-NN program for a driver Build (see ttspec/driver.py)."""
    model, lowered, shard_plan, target = build.model, build.lowered, build.shard_plan, build.options.target
    weights_dtype, need = build.options.weights_dtype, build.weight_bytes
    if model.family is None:
        raise ArchError(f"{model.name} names no checkpoint family, so its weights cannot be loaded by HF name",
                        model.loc, hint="add `family llama` or `family gpt2` to the spec")
    rules = hf_rules(model)
    backend = TTNNBackend(shard_plan)
    root = model_plan(lowered)
    classes = []
    for plan in all_classes(root):
        fwd = emit_forward(plan, backend)
        init = backend.class_init(plan)
        if plan.__dict__.get("_needs_device") and plan is not root:
            init.insert(0, "self.device = weights.device")
        classes.append({"name": plan.name, "init": init, "forward": fwd, "is_root": plan is root})
    out_node = lowered.graph.node(root.outputs[0])
    dtype_expr = WEIGHT_DTYPES[weights_dtype][0]
    return render("ttnn_model.py.j2", model=model, spec=spec_path, target=target, classes=classes,
                  root=root.name, helpers=sorted(backend.helpers), hf_rules=rules,
                  tied=[(n, p.tied_to) for n, p in model.graph.params.items() if p.tied_to],
                  weights_dtype=dtype_expr, weights_dtype_name=weights_dtype, weight_bytes=need,
                  vocab=out_node.type.shape[-1], input=classes[-1]["forward"].params[0],
                  max_seq=build.context, seq_bound=build.memory.seq_bound, parameters=_parameter_patterns(model),
                  mesh=shard_plan,
                  logits_split=bool(shard_plan) and shard_plan.layouts.get(out_node.id) == "S")


def _parameter_patterns(model: Model) -> list[str]:
    """Stored parameter names, a repeat written once as `layers.*6.attn.wq.weight`."""
    names = [name for name, p in model.graph.params.items() if not p.tied_to]
    for node in model.graph.repeats():
        body = node.attrs["body"]
        names += [f"{node.module}.*{node.attrs['count']}.{name}" for name, p in body.params.items() if not p.tied_to]
    return names
