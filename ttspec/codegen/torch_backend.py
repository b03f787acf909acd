"""The torch reference backend: a plain PyTorch nn.Module from the same graph.

It is the numerical reference for the TT-NN program, loads the same HF-named weights, and
can be trained.
"""

from __future__ import annotations

from ..analysis.interpreters import count_params
from ..ir.graph import Model
from .backend import Backend
from .emit import emit_forward
from .plan import ClassPlan, Leaf, all_classes, model_plan
from .render import hf_rules, render

ACTIVATIONS = {"relu": "F.relu({0})", "gelu": "F.gelu({0})", "gelu_tanh": 'F.gelu({0}, approximate="tanh")',
               "silu": "F.silu({0})"}


def _in_dim(plan: ClassPlan, node) -> int:
    return plan.graph.node(node.inputs[0]).type.shape[-1]


class TorchBackend(Backend):

    def default_name(self, node) -> str:
        return {"split_heads": "heads", "attend": "y", "merge_heads": "y"}.get(node.op, "h")

    # ---- leaves: parameter-owning primitives held as submodules
    def repeat_init(self, rep) -> str:
        return f"self.{rep.attr} = nn.ModuleList({rep.cls.name}() for _ in range({rep.count}))"

    def child_init(self, child) -> str:
        return f"self.{child.attr} = {child.cls.name}()"

    def self_param_init(self, node, plan: ClassPlan) -> list[str]:
        return [f"self.{local} = nn.Parameter(torch.zeros({', '.join(map(str, plan.graph.params[full].shape))}))"
                for local, full in node.params.items()]

    def leaf_init(self, leaf: Leaf, plan: ClassPlan) -> list[str]:
        return [f"self.{leaf.attr} = {self.leaf_module(leaf, plan)}"]

    def leaf_module(self, leaf: Leaf, plan: ClassPlan) -> str:
        n, a = leaf.node, leaf.node.attrs
        if n.op == "linear":
            return f"nn.Linear({_in_dim(plan, n)}, {a['out']}, bias={a['bias']})"
        if n.op == "tied_linear":
            rows, cols = a["weight"].shape
            return f"nn.Linear({cols}, {rows}, bias={a['bias']})  # weight tied to {a['weight'].name}"
        if n.op == "embedding":
            return f"nn.Embedding({a['vocab']}, {a['dim']})"
        if n.op == "position_embedding":
            return f"nn.Embedding({a['max_positions']}, {n.type.shape[-1]})"
        if n.op == "rms_norm":
            return f"nn.RMSNorm({n.type.shape[-1]}, eps={a['eps']!r})"
        if n.op == "layer_norm":
            return f"nn.LayerNorm({n.type.shape[-1]}, eps={a['eps']!r}, bias={a['bias']})"
        raise NotImplementedError(n.op)

    def leaf_call(self, leaf: Leaf, args: list[str], plan: ClassPlan) -> str:
        if leaf.node.op == "position_embedding":
            return f"self.{leaf.attr}.weight[: {args[0]}.shape[-2]]"
        return f"self.{leaf.attr}({', '.join(args)})"

    # ---- `as self` primitives and parameter-free ops
    def op_expr(self, node, args: list[str], plan: ClassPlan) -> str:
        a = node.attrs
        op = node.op
        if op == "embedding":
            return f"F.embedding({args[0]}, self.weight)"
        if op == "position_embedding":
            return f"self.weight[: {args[0]}.shape[-2]]"
        if op == "linear":
            return f"F.linear({args[0]}, self.weight, {'self.bias' if a['bias'] else 'None'})"
        if op == "tied_linear":
            return f"F.linear({args[0]}, self.weight, {'self.bias' if a['bias'] else 'None'})"
        if op == "rms_norm":
            return f"F.rms_norm({args[0]}, ({node.type.shape[-1]},), self.weight, {a['eps']!r})"
        if op == "layer_norm":
            bias = "self.bias" if a["bias"] else "None"
            return f"F.layer_norm({args[0]}, ({node.type.shape[-1]},), self.weight, {bias}, {a['eps']!r})"
        if op == "sinusoidal_positions":
            self.helpers.add("sinusoidal_positions")
            return f"sinusoidal_positions({args[0]}, base={a['base']!r})"
        if op == "split_heads":
            self.helpers.add("split_heads")
            return f"split_heads({args[0]}, {a['heads']})"
        if op == "merge_heads":
            self.helpers.add("merge_heads")
            return f"merge_heads({args[0]})"
        if op == "apply_rope":
            return f"self.{self.rotary_attr(plan, a['rope'])}({args[0]})"
        if op == "attend":
            self.helpers.add("attend")
            extra = "" if a["causal"] else ", causal=False"
            if a["scale"] is not None:
                extra += f", scale={a['scale']!r}"
            return f"attend({', '.join(args)}{extra})"
        if op == "add":
            return f"{args[0]} + {args[1]}"
        if op == "mul":
            return f"{args[0]} * {args[1]}"
        if op in ACTIVATIONS:
            return ACTIVATIONS[op].format(args[0])
        raise NotImplementedError(op)


def compile_torch(model: Model, spec_path: str) -> str:
    backend = TorchBackend()
    root = model_plan(model)
    classes = []
    for plan in all_classes(root):
        fwd = emit_forward(plan, backend)
        init = backend.class_init(plan)
        if plan is root:
            init += [f"self.{name} = self.{p.tied_to}" for name, p in model.graph.params.items() if p.tied_to]
        classes.append({"name": plan.name, "block": plan.block, "init": init, "forward": fwd})
    return render("torch_model.py.j2", model=model, spec=spec_path, classes=classes, root=root.name,
                  helpers=sorted(backend.helpers), hf_rules=hf_rules(model),
                  tied=[(n, p.tied_to) for n, p in model.graph.params.items() if p.tied_to],
                  n_params=count_params(model.graph), vocab=model.graph.node(root.outputs[0]).type.shape[-1])
