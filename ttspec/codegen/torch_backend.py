"""The torch reference backend: a plain PyTorch nn.Module from the same graph.

It is the numerical reference for the TT-NN program, loads the same HF-named weights, and
can be trained. Each op's torch lowering lives in its slice of the op registry.
"""

from __future__ import annotations

import re

from ..analysis.interpreters import count_params
from ..ir.graph import Model
from .backend import Backend, ClassNames, fill_sequence, layer_variants_of, tuple_items
from .emit import emit_forward
from .names import local_reserved
from .plan import ClassPlan, Leaf, all_classes, model_plan
from .render import hf_rules, render


class TorchBackend(Backend):
    target_name = "torch"

    def lowering_of(self, opdef):
        return opdef.torch

    def repeat_init(self, rep) -> str:
        variants = layer_variants_of(rep)
        if variants is None:
            return f"self.{rep.attr} = nn.ModuleList({rep.cls.name}() for _ in range({rep.count}))"
        comment, seq = variants
        line = f"self.{rep.attr} = nn.ModuleList(cls() for cls in {seq})"
        if len(line) > 100:
            line = f"self.{rep.attr} = nn.ModuleList(\n    cls() for cls in {seq}\n)"
        if max(map(len, line.splitlines())) > 100:
            lines = fill_sequence(tuple_items(seq) or seq, "    ")
            line = f"self.{rep.attr} = nn.ModuleList(cls() for cls in (\n{lines}))"
        return "\n".join(comment + [line])

    def child_init(self, child) -> str:
        return f"self.{child.attr} = {child.cls.name}()"

    def self_param_init(self, node, plan: ClassPlan) -> list[str]:
        return [f"self.{local} = nn.Parameter(torch.zeros({', '.join(map(str, plan.graph.params[full].shape))}))"
                for local, full in node.params.items()]

    def leaf_init(self, leaf: Leaf, plan: ClassPlan) -> list[str]:
        return [f"self.{leaf.attr} = {self.lowering(leaf.node).module(leaf.node, self.context(plan))}"]

    def leaf_call(self, leaf: Leaf, args: list[str], plan: ClassPlan) -> str:
        lowering = self.lowering(leaf.node)
        if lowering.call is not None:
            return lowering.call(leaf.node, f"self.{leaf.attr}", args, self.context(plan))
        return f"self.{leaf.attr}({', '.join(args)})"

    def op_expr(self, node, args: list[str], plan: ClassPlan) -> str:
        weights = self.own_refs() if node.params else None
        return self.lowering(node).expr(node, args, weights, self.context(plan))


def compile_torch(model: Model, spec_path: str) -> str:
    backend = TorchBackend()
    root = model_plan(model)
    names = ClassNames(root)
    classes = []
    for plan in all_classes(root):
        fwd = emit_forward(plan, backend, local_reserved())
        init = backend.class_init(plan)
        if plan is root:
            init += [f"self.{root.attr_path(name)} = self.{root.attr_path(p.tied_to)}"
                     for name, p in model.graph.params.items() if p.tied_to]
        labels = sorted(plan.labels.items())
        if names.name(plan, (tuple(init), tuple(fwd.params), tuple(fwd.lines), fwd.result, tuple(labels))):
            classes.append({"name": plan.name, "block": plan.block, "init": init, "forward": fwd,
                            "labels": labels, "labels_text": _labels_text(labels)})
    return render("torch_model.py.j2", model=model, spec=spec_path, classes=classes, root=root.name,
                  renamed=any(c["labels"] for c in classes),
                  uses_torch=_uses("torch", classes), uses_F=_uses("F", classes),
                  helpers=sorted(backend.helpers), hf_rules=hf_rules(model),
                  tied=[(n, p.tied_to) for n, p in model.graph.params.items() if p.tied_to],
                  n_params=count_params(model.graph), vocab=model.graph.node(root.outputs[0]).type.shape[-1])


def _uses(module: str, classes: list[dict]) -> bool:
    """Whether the classes' code refers to an import (unused imports are not emitted)."""
    pattern = re.compile(rf"\b{module}\.")
    return any(pattern.search(line) for c in classes for line in [*c["init"], *c["forward"].lines])


def _labels_text(labels: list[tuple[str, str]]) -> str:
    items = [f'"{attr}": "{label}"' for attr, label in labels]
    line = f"LABELS = {{{', '.join(items)}}}"
    return line if len(line) <= 100 else "LABELS = {\n" + "".join(f"    {item},\n" for item in items) + "}"
