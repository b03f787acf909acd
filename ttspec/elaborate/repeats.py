"""`repeat(N) block(x, ...)`: the body elaborated once per layer variant and the per-layer arguments
that use `layer` evaluated for every layer. Variants may differ in behaviour and in structure (an `if`
on a per-layer flag: a dense MLP in some layers, another MLP or a mixture of experts in the rest), so
in their parameters too; each layer's parameters are those of its variant (ir.graph.iter_params)."""

from __future__ import annotations

from ..errors import ArchError, Loc, Note, did_you_mean, spelling_fixes
from ..frontend import ast
from ..ir.graph import Graph, InputAttrs, ModuleInfo, Node, NodeKind, RepeatAttrs
from .diagnostics import with_origin
from .values import LAYER, MAX_LAYER_STEPS, MAX_REPEAT, MAX_VARIANTS, REGISTRY, Binding, Scope, Tensor, describe, show


class RepeatsMixin:
    """The Elaborator's `repeat(N)` and its layer variants."""

    def eval_repeat(self, expr: ast.RepeatCall, scope: Scope):
        count = self.eval(expr.count, scope)
        if not isinstance(count, int) or isinstance(count, bool):
            raise with_origin(ArchError(f"repeat count must be an int, got {describe(count)}", expr.count.loc),
                               self.origin_of(expr.count, scope))
        if not 1 <= count <= MAX_REPEAT:
            raise with_origin(ArchError(f"repeat count must be between 1 and {MAX_REPEAT:,}, got {count}",
                                         expr.count.loc), self.origin_of(expr.count, scope))
        call = expr.call
        if call.func not in self.blocks:
            hint = did_you_mean(call.func, self.blocks)
            fixes = spelling_fixes(call.func_loc, call.func, self.blocks)
            if call.func in REGISTRY:
                hint, fixes = f"`{call.func}` is a primitive; wrap it in a block to repeat it", []
            raise ArchError(f"repeat needs a block, `{call.func}` is not one", call.func_loc, hint=hint,
                            fixes=fixes)
        entry = self.blocks[call.func]
        if call.label == "self":
            raise ArchError("a repeat needs its own name, not `as self`", call.loc)
        positional = [a for a in call.args if a.name is None]
        if not positional:
            raise ArchError("repeat needs the tensor that flows through the layers as its first argument",
                            expr.loc)
        x = self.eval(positional[0].value, scope)
        if not isinstance(x, Tensor):
            raise ArchError(f"the first argument of a repeated block must be a tensor, got {describe(x)}",
                            positional[0].loc)
        varying = [(a, loc) for a in call.args[1:] if (loc := _find_name(a.value, LAYER)) is not None]
        for a in call.args[1:]:
            if any(a is b for b, _ in varying):
                continue
            v = self.eval(a.value, scope)
            if isinstance(v, Tensor):
                raise ArchError("only the first argument of a repeated block may be a tensor", a.loc,
                                hint="each layer's output feeds the next layer's first argument")
        pattern, reps, values = self.layer_pattern(expr, varying, count, scope, entry.defn)
        module = self.claim_label(scope, call.label or "layers", call.label is not None, call.loc)
        inner_call = ast.Call(call.loc, call.func,
                              [ast.Arg(None, ast.Name(positional[0].loc, "__layer_input"), positional[0].loc)]
                              + call.args[1:], "self", call.func_loc)
        bodies = []
        for variant, first in enumerate(reps):
            body = Graph()
            body_input = Node("x", NodeKind.INPUT, [], InputAttrs(), x.type, "", call.loc)
            body.add(body_input)
            body.inputs.append("x")
            layer_scope = Scope(scope, "", body, scope.file)
            layer_scope.vars["__layer_input"] = Binding(Tensor("x", x.type), call.loc)
            if varying:
                layer_scope.vars[LAYER] = Binding(first, expr.loc)
            try:
                result = self.instantiate(entry, inner_call, layer_scope, module="", graph=body)
            except ArchError as e:
                self.relocate(e, call, entry.defn)
                if varying:
                    e.diagnostic.notes.append(Note(f"in layer {first} ({_values_text(values[variant])})", expr.loc))
                raise
            if not isinstance(result, Tensor):
                raise ArchError(f"a repeated block must return a tensor, got {describe(result)}", expr.loc)
            if result.type != x.type:
                raise ArchError(f"repeat needs `{call.func}` to map {x.type} to the same type; it returns "
                                f"{result.type}" + (f" in layer {first}" if varying else ""), expr.loc,
                                hint="each layer's output is the next layer's input")
            body.outputs["out"] = result.node
            bodies.append(body)
        graph = scope.graph
        graph.modules[module] = ModuleInfo(module, call.func, entry.defn.kind, call.loc, repeat=count)
        attrs = RepeatAttrs(count, bodies[0], call.func)
        if len(bodies) > 1:
            attrs = attrs._replace(bodies=tuple(bodies), pattern=pattern, variant_args=tuple(values))
        node = Node(graph.fresh_id(module), NodeKind.REPEAT, [x.node], attrs, x.type, module, expr.loc)
        graph.add(node)
        return Tensor(node.id, node.type)

    def layer_pattern(self, expr: ast.RepeatCall, varying: list, count: int, scope: Scope, defn: ast.BlockDef):
        """Evaluate the arguments that use `layer` for every layer. Returns the variant of each layer
        (variants numbered in order of first use), the first layer of each variant, and each variant's
        argument values as (parameter name, value) pairs."""
        if not varying:
            return (0,) * count, [0], [()]
        shadow = scope.lookup(LAYER)
        label_scope = scope
        while shadow is None and label_scope is not None:
            if LAYER in label_scope.labels:
                shadow = Binding(None, label_scope.labels[LAYER])
            label_scope = label_scope.parent
        if shadow is not None:
            raise ArchError("`layer` is ambiguous here: in a repeat's arguments it is the layer index, but this "
                            "spec also defines `layer`", varying[0][1],
                            hint="rename your `layer`; in a repeat's arguments `layer` means the layer index",
                            notes=[Note("`layer` defined here", shadow.origin)] if shadow.origin else [])
        params = [p.name for p in defn.params]
        positional = [a for a in expr.call.args if a.name is None]
        names = [a.name or (params[positional.index(a)] if positional.index(a) < len(params) else "?")
                 for a, _ in varying]
        layer_scope = Scope(scope, scope.module, scope.graph, scope.file)
        variant_of: dict[tuple, int] = {}
        pattern, reps, values = [], [], []
        for i in range(count):
            layer_scope.vars[LAYER] = Binding(i, expr.loc)
            row = []
            for a, _ in varying:
                before = self.steps
                try:
                    v = self.eval(a.value, layer_scope)
                except ArchError as e:
                    e.diagnostic.notes.append(Note(f"with layer = {i}", expr.loc))
                    raise
                self.layer_steps += self.steps - before
                self.steps = before
                if isinstance(v, Tensor):
                    raise ArchError("only the first argument of a repeated block may be a tensor", a.loc,
                                    hint="each layer's output feeds the next layer's first argument")
                row.append(v)
            if self.layer_steps > MAX_LAYER_STEPS:
                raise ArchError(f"the per-layer arguments take more than {MAX_LAYER_STEPS:,} steps to evaluate",
                                varying[0][1], hint="keep per-layer expressions short, e.g. `xs[layer % 2]`")
            key = tuple(_value_key(v) for v in row)
            variant = variant_of.get(key)
            if variant is None:
                variant = variant_of[key] = len(reps)
                if variant >= MAX_VARIANTS:
                    raise ArchError(f"the layers of this repeat take more than {MAX_VARIANTS} distinct sets of "
                                    "argument values", varying[0][1],
                                    hint="each distinct set is a variant of the layer (a class in the generated "
                                         "program); per-layer values should take a few values, e.g. alternate")
                reps.append(i)
                values.append(tuple(zip(names, row)))
            pattern.append(variant)
        return tuple(pattern), reps, values


def _find_name(expr: ast.Expr, name: str) -> Loc | None:
    """Where `expr` mentions the name `name`, if it does (the first place found)."""
    stack = [expr]
    while stack:
        e = stack.pop()
        if isinstance(e, ast.Name):
            if e.id == name:
                return e.loc
        elif isinstance(e, ast.BinOp):
            stack += [e.right, e.left]
        elif isinstance(e, ast.UnaryOp):
            stack.append(e.operand)
        elif isinstance(e, (ast.Compare, ast.BoolOp)):
            stack += reversed(e.operands if isinstance(e, ast.Compare) else e.values)
        elif isinstance(e, ast.Call):
            stack += reversed([a.value for a in e.args])
        elif isinstance(e, ast.RepeatCall):
            stack += reversed([e.count, *(a.value for a in e.call.args)])
        elif isinstance(e, ast.ListExpr):
            stack += reversed(e.items)
        elif isinstance(e, ast.Subscript):
            stack += [e.index, e.value]
    return None


def _value_key(v) -> tuple:
    """Equal keys for values that elaborate alike: the type counts (1, 1.0 and true differ), and
    floats compare by repr (0.0 and -0.0 differ)."""
    if isinstance(v, tuple):
        return ("list", *(_value_key(x) for x in v))
    return (type(v).__name__, repr(v))


def _values_text(values: tuple) -> str:
    return ", ".join(f"{name} = {show(v)}" for name, v in values) or "no per-layer values"

