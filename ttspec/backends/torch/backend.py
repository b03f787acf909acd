"""The torch reference backend: a plain PyTorch nn.Module from the same graph.

It is the numerical reference for the TT-NN program, loads the same HF-named weights, and
can be trained. Each op's torch lowering is a row of this folder's table (lower.py).
"""

from __future__ import annotations

from ...analysis.interpreters import count_params
from ...errors import ArchError, UsageError
from ...families import init_rule
from ...ir.graph import Model, iter_params, layer_variants, point_at_spec
from ...ops import EXPERT_GLU, LINEAR, TIED_LINEAR
from ...weight_formats import BF16, WeightFormats
from ..common.backend import Backend, ClassNames, layer_variants_of
from ..common.emit import emit_forward
from ..common.names import local_reserved
from ..common.plan import Child, ClassPlan, Leaf, Repeat, all_classes, model_plan
from ..common.printer import print_stmt
from ..common.pyast import Assign, Comment, Comprehension, Const, Dict, Expr, ExprStmt, Name, Stmt, call, name
from ..common.render import display_path, hf_rules, with_runtime
from ..common.support import check_lowerable
from .init import init_source, init_table
from .lower import LOWERINGS
from .program import torch_program


class TorchBackend(Backend):
    target_name = "torch"
    lowerings = LOWERINGS

    def repeat_init(self, rep) -> list[Stmt]:
        variants = layer_variants_of(rep)
        attr = name(f"self.{rep.attr}")
        if variants is None:
            layers = Comprehension(Name(rep.cls.name)(), Name("_"), call("range", Const(rep.count)), generator=True)
            return [Assign(attr, call("nn.ModuleList", layers))]
        comment, seq = variants
        return [*comment, Assign(attr, call("nn.ModuleList", Comprehension(Name("cls")(), Name("cls"), seq,
                                                                            generator=True)))]

    def child_init(self, child) -> Stmt:
        return Assign(name(f"self.{child.attr}"), Name(child.cls.name)())

    def self_param_init(self, node, plan: ClassPlan) -> list[Stmt]:
        return [Assign(name(f"self.{local}"),
                       call("nn.Parameter", call("torch.zeros", *map(Const, plan.graph.params[full].shape))))
                for local, full in node.params.items()]

    def leaf_init(self, leaf: Leaf, plan: ClassPlan) -> list[Stmt]:
        lowering = self.lowering(leaf.node)
        note = lowering.note(leaf.node) if lowering.note else ""
        return [Assign(name(f"self.{leaf.attr}"), lowering.module(leaf.node, self.context(plan)), note)]

    def leaf_call(self, leaf: Leaf, args: list[Expr], plan: ClassPlan) -> Expr:
        lowering = self.lowering(leaf.node)
        attr = name(f"self.{leaf.attr}")
        if lowering.call is not None:
            return lowering.call(leaf.node, attr, args, self.context(plan))
        return attr(*args)

    def op_expr(self, node, args: list[Expr], plan: ClassPlan) -> Expr:
        weights = self.own_refs() if node.params else None
        return self.lowering(node).expr(node, args, weights, self.context(plan))


def mark_positions(plan: ClassPlan) -> bool:
    """Mark the classes whose forward takes `pos`: those running an op that reads token positions
    (rotary, attention and its KV cache, absolute positions), and those calling one. Every layer
    variant of a repeat takes it when one does (the loop calls them alike)."""
    needs = False
    for node in plan.ops:
        call = plan.calls.get(node.id)
        if isinstance(call, Repeat):
            marked = [mark_positions(cls) for cls in call.classes]
            for cls in call.classes:
                cls.needs_positions = any(marked)
            needs |= any(marked)
        elif isinstance(call, Child):
            needs |= mark_positions(call.cls)
        elif node.op in LOWERINGS:
            needs |= LOWERINGS[node.op].positions
    plan.needs_positions = plan.needs_positions or needs
    return plan.needs_positions


def decode_blocker(model: Model) -> ArchError | None:
    """Why this model cannot generate token by token (None when it can): its input must be token ids
    [batch, seq] and its output logits [batch, seq, vocab], and every op must decode (a lowering's
    decode_check: non-causal attention cannot)."""
    graph = model.graph
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        return ArchError(f"{model.name} cannot generate: it needs one token input and one logits output, and has "
                         f"{len(graph.inputs)} input(s) and {len(graph.outputs)} output(s)", model.loc)
    tokens = graph.node(graph.inputs[0]).type
    logits = graph.node(next(iter(graph.outputs.values()))).type
    if not tokens.is_int or tokens.rank != 2 or logits.rank != 3:
        return ArchError(f"{model.name} cannot generate: it needs token ids [batch, seq] in and logits "
                         f"[batch, seq, vocab] out, and maps {tokens} to {logits}", model.loc)
    try:
        check_lowerable(graph, "a decode step", lambda opdef: _DecodeCheck(LOWERINGS.get(opdef.name)))
    except ArchError as e:
        return e
    return None


class _DecodeCheck:
    """An op's torch lowering seen as a lowering whose `check` is its decode check."""

    def __init__(self, lowering):
        self.check = lowering.decode_check if lowering is not None else None


def block_float_weights(model: Model, formats: WeightFormats = BF16) -> dict[str, str]:
    """Weight matrices a TT-NN program stores as block floats under `--weights-dtype` (by kind; a
    repeat's layers as `layers.*.`): {parameter pattern: bfloat8_b | bfloat4_b}. A tied output head
    in a block float is refused: in the torch model it is the embedding's own tensor, which the
    device keeps in bf16."""
    from ...analysis.memory import check_weight_formats
    from ...ops.queries import matrix_of, matrix_roles

    check_weight_formats(model, formats)
    if formats.plain and formats.default == "bf16":
        return {}
    found: dict[str, str] = {}

    def visit(graph, prefix: str) -> None:
        roles = matrix_roles(graph)
        for node in graph.topo():
            if node.op not in (LINEAR.name, TIED_LINEAR.name, EXPERT_GLU.name):
                continue
            matrix = matrix_of(graph, node.module, roles)
            dtype = formats.dtype(matrix)
            if dtype == "bf16":
                continue
            if node.op == EXPERT_GLU.name:  # a bank of expert matrices, all in its kind's format
                found.update({prefix + name: dtype for name in node.params.values()})
                continue
            if node.op == TIED_LINEAR.name:
                fixed = formats.weights.with_kind(matrix.kind, "bf16")
                error = UsageError(f"--weights-dtype {formats}: the torch model cannot hold `{prefix}{node.module}` "
                                   f"in {dtype}: it is tied to {node.attrs.weight.name}, one tensor in torch, "
                                   "which the device keeps in bf16", node.loc,
                                   hint=f"give the head bf16 (`--weights-dtype {fixed}`) or run a TT-NN target "
                                        "(--mode golden) for the device's own copy")
                raise point_at_spec(error, [(graph, node.module)])
            found[prefix + node.params["weight"]] = dtype
        for node in graph.repeats():
            for body, _ in layer_variants(node):
                visit(body, f"{prefix}{node.module}.*.")

    visit(model.graph, "")
    return dict(sorted(found.items()))


# what every PyTorch program offers its users beside the model class
API = ("generate",)


def compile_torch(model: Model, spec_path: str, weights_dtype: WeightFormats = BF16) -> str:
    block_weights = block_float_weights(model, weights_dtype)
    backend = TorchBackend()
    root = model_plan(model)
    names = ClassNames(root)
    root.needs_positions = True  # the model's forward takes `pos` from prefill and decode
    mark_positions(root)
    classes = []
    for plan in all_classes(root):
        fwd = emit_forward(plan, backend, local_reserved())
        init = backend.class_init(plan)
        if plan.path == "":  # the model, or a layer of a repeat: its ties (a layer's are the layer's own)
            init += [Assign(name(f"self.{plan.attr_path(param)}"), name(f"self.{plan.attr_path(p.tied_to)}"))
                     for param, p in plan.graph.params.items() if p.tied_to]
        if plan is root:
            init += [Comment("start as the family starts a fresh model (INIT); loading weights replaces it"),
                     ExprStmt(call("self.init_weights"))]
        labels = sorted(plan.labels.items())
        if names.name(plan, (tuple(init), tuple(fwd.params), tuple(fwd.body), tuple(labels))):
            classes.append({"name": plan.name, "block": plan.block, "init": _printed(init),
                            "forward": {"params": fwd.params, "lines": _printed(fwd.body)},
                            "labels": labels, "labels_text": _labels_text(labels), "code": (*init, *fwd.body)})
    blocker = decode_blocker(model)
    api = API + tuple(sorted(backend.helpers))  # and what the lowerings asked for by name
    rules = hf_rules(model)
    text, roots = torch_program(dict(model=model, spec=display_path(spec_path), classes=classes,
                                     cannot_decode=blocker_text(blocker) if blocker else None, hf_rules=rules,
                                     tied=_tied(model), init=init_table(model), init_source=init_source(model),
                                     init_scaled=init_rule(model.family).residual_scaled,
                                     n_params=count_params(model.graph), block_weights=block_weights,
                                     weights_dtype=str(weights_dtype)))
    # the root takes Program's methods (the loading and generation API); HF weights load by the family's names
    return with_runtime(text, roots, "torch", api, {"Program": set() if rules else {"load_hf_state_dict"}})


def _tied(model: Model) -> list[tuple[str, str]]:
    """(tied parameter, the parameter whose tensor it shares) by full name, a layer's ties for each layer."""
    return [(full, full[:len(full) - len(p.name)] + p.tied_to) for full, p in iter_params(model.graph) if p.tied_to]


def _printed(body: list[Stmt]) -> list[str]:
    """Statements of a method body (indented 8), as the template writes them line by line."""
    return [print_stmt(stmt, 8) for stmt in body]


def _labels_text(labels: list[tuple[str, str]]) -> str:
    """The class attribute mapping attributes to the labels they hold (in the class body, indented 4)."""
    return print_stmt(Assign(Name("LABELS"), Dict(tuple((Const(a), Const(label)) for a, label in labels))), 4)


def blocker_text(error: ArchError) -> str:
    """The refusal as the program quotes it: a Python string literal (in pieces of at most 80
    characters), the spec's location first, no control characters."""
    d = error.diagnostic
    where = f"{display_path(d.loc.file)}:{d.loc.line}:{d.loc.col}: " if d.loc is not None else ""
    text = "".join(c if c.isprintable() else "?" for c in where + d.message + (f"; {d.hint}" if d.hint else ""))
    pieces = [repr(text[i:i + 80]) for i in range(0, len(text), 80)]
    return pieces[0] if len(pieces) == 1 else "(\n    " + "\n    ".join(pieces) + "\n)"
