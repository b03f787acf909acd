"""Calls: argument binding, primitives and configs, `activation(...)`, ties to modules, and the graph
nodes and parameters each call adds under its component label."""

from __future__ import annotations

import keyword

from ..errors import ArchError, Fix, Loc, Note, did_you_mean, replacement_fixes, spelling_fixes
from ..frontend import ast
from ..ir.graph import ModuleInfo, Node, Param
from ..ops import ACTIVATIONS, CONFIGS, REQUIRED, Config, OpError, ParamRef, ShapeContext
from .diagnostics import op_signature, with_origin
from .values import (
    KEYWORDS,
    MAX_NODES,
    REGISTRY,
    RESERVED_LABELS,
    ModuleRef,
    Scope,
    Sym,
    Tensor,
    describe,
    is_stdlib,
    join_path,
    show,
)


class CallsMixin:
    """The Elaborator's calls of primitives, configs and activations."""

    def bind_args(self, call: ast.Call, names: list[str], scope: Scope, what: str):
        """Match call arguments to parameter names; returns {name: (value, loc, expr)}."""
        bound: dict[str, tuple] = {}
        positional = [a for a in call.args if a.name is None]
        seen_kw = False
        for a in call.args:
            if a.name is None and seen_kw:
                raise ArchError("positional argument after a keyword argument", a.loc)
            seen_kw = seen_kw or a.name is not None
        if len(positional) > len(names):
            extra = positional[len(names)]
            raise ArchError(f"{what} takes {len(names)} argument{'s' if len(names) != 1 else ''}, "
                            f"got {len(positional)}", extra.loc,
                            hint=f"parameters: {', '.join(names) or '(none)'}")
        for name, a in zip(names, positional):
            bound[name] = (self.eval(a.value, scope), a.value.loc, a.value)
        for a in call.args:
            if a.name is None:
                continue
            if a.name not in names:
                hint = did_you_mean(a.name, names) or f"parameters: {', '.join(names)}"
                raise ArchError(f"{what} has no parameter `{a.name}`", a.loc, hint=hint,
                                fixes=spelling_fixes(a.loc, a.name, names))
            if a.name in bound:
                raise ArchError(f"`{a.name}` given twice", a.loc)
            bound[a.name] = (self.eval(a.value, scope), a.value.loc, a.value)
        return bound

    def eval_call(self, call: ast.Call, scope: Scope):
        name = call.func
        if name in self.blocks:
            return self.instantiate(self.blocks[name], call, scope)
        if name in REGISTRY:
            return self.call_primitive(call, scope)
        if name in CONFIGS:
            return self.make_config(call, scope)
        if name == "activation":
            return self.call_activation(call, scope)
        known = set(self.blocks) | set(REGISTRY) | set(CONFIGS) | {"activation"}
        hint = did_you_mean(name, known)
        fixes = spelling_fixes(call.func_loc, name, known)
        b = scope.lookup(name)
        if b is not None:
            hint, fixes = f"`{name}` is a {describe(b.value)}, not a component", []
        raise ArchError(f"unknown component `{name}`", call.func_loc, hint=hint, fixes=fixes)

    def arg_fixes(self, e: OpError, bound: dict | None, scope: Scope) -> list[Fix]:
        """An op's values that would do for its argument (e.values), as edits where the argument's value is
        written: a literal in the call, or the literal a name it reads was set to."""
        if not e.values or not bound or e.arg not in bound:
            return []
        value, loc, expr = bound[e.arg]
        named = expr.id if isinstance(expr, ast.Name) else None
        return (replacement_fixes(loc, str(value), e.values, e.arg)
                + replacement_fixes(self.origin_of(expr, scope), str(value), e.values, named))

    def coerce(self, value, kind: str, optional: bool, loc: Loc, what: str):
        if value is None and optional:
            return None
        ok = {
            "int": isinstance(value, int) and not isinstance(value, bool),
            "float": isinstance(value, (int, float)) and not isinstance(value, bool),
            "bool": isinstance(value, bool),
            "str": isinstance(value, str),
            "tensor": isinstance(value, Tensor),
            "rope": isinstance(value, Config) and value.kind == "rope",
            "ref": isinstance(value, ModuleRef),
        }.get(kind, True)
        if not ok:
            expected = {"rope": "a rope(...) config", "ref": "a module name such as `embedding`"}.get(kind, kind)
            hint = None
            if isinstance(value, Sym):
                hint = f"`{value.name}` is symbolic; a number is needed here"
            raise ArchError(f"{what} expects {expected}, got {describe(value)}", loc, hint=hint)
        if kind == "float":
            return float(value)
        return value

    def make_config(self, call: ast.Call, scope: Scope) -> Config:
        cdef = CONFIGS[call.func]
        if call.label:
            raise ArchError(f"`as {call.label}` names a component; {call.func}(...) is a config", call.loc)
        bound = self.bind_args(call, [f.name for f in cdef.fields], scope, f"{call.func}(...)")
        fields = {}
        for f in cdef.fields:
            if f.name in bound:
                value, loc, _ = bound[f.name]
                fields[f.name] = self.coerce(value, f.kind, f.optional, loc, f"`{f.name}`")
            else:
                fields[f.name] = f.default
        try:
            cdef.check(fields)
        except OpError as e:
            loc = bound[e.arg][1] if e.arg in bound else call.loc
            origin = self.origin_of(bound[e.arg][2], scope) if e.arg in bound else None
            raise with_origin(ArchError(e.message, loc, hint=e.hint, fixes=self.arg_fixes(e, bound, scope)),
                              origin) from None
        return Config(cdef.name, tuple(fields.items()))

    def call_activation(self, call: ast.Call, scope: Scope):
        bound = self.bind_args(call, ["x", "fn"], scope, "activation(...)")
        if "x" not in bound or "fn" not in bound:
            raise ArchError("activation(x, fn) needs both arguments", call.loc)
        fn, loc, _ = bound["fn"]
        if fn not in ACTIVATIONS:
            hint = did_you_mean(str(fn), ACTIVATIONS) or "choose one of " + ", ".join(f'"{a}"' for a in ACTIVATIONS)
            raise ArchError(f"unknown activation {show(fn)}", loc, hint=hint)
        x, xloc, _ = bound["x"]
        x = self.coerce(x, "tensor", False, xloc, "activation(...)")
        return self.apply_op(fn, [x], REGISTRY[fn].attrs(), call, scope, call.label)

    def call_primitive(self, call: ast.Call, scope: Scope):
        opdef = REGISTRY[call.func]
        bound = self.bind_args(call, [a.name for a in opdef.args], scope, f"{call.func}(...)")
        tensors, values, origins = [], {}, {}
        for spec in opdef.args:
            if spec.name not in bound:
                if spec.default is REQUIRED:
                    raise ArchError(f"{call.func}(...) is missing `{spec.name}`", call.loc,
                                    hint=f"signature: {op_signature(call.func, opdef.args)}")
                values[spec.name] = spec.default
                continue
            value, loc, expr = bound[spec.name]
            origins[spec.name] = self.origin_of(expr, scope) or loc
            value = self.coerce(value, spec.kind, spec.optional, loc, f"{call.func}(...) `{spec.name}`")
            if spec.kind == "tensor":
                tensors.append(value)
            elif spec.kind == "ref":
                values[spec.name] = self.resolve_ref(value, scope, loc)
            else:
                values[spec.name] = value
        node = self.apply_op(call.func, tensors, opdef.attrs(**values), call, scope, call.label, bound)
        scope.graph.node(node.node).origins.update(origins)
        return node

    def resolve_ref(self, ref: ModuleRef, scope: Scope, loc: Loc) -> ParamRef:
        if ref.graph_id != id(scope.graph):
            raise ArchError(f"cannot tie across a repeat boundary to `{ref.path}`", loc)
        name = f"{ref.path}.weight"
        param = scope.graph.params.get(name)
        if param is None:
            owned = [p for p in scope.graph.params if p.startswith(ref.path + ".")]
            raise ArchError(f"module `{ref.path}` has no `weight` to tie to", loc,
                            hint=("its parameters: " + ", ".join(owned)) if owned else None)
        if param.tied_to:
            return ParamRef(param.tied_to, param.shape)
        return ParamRef(name, param.shape)

    def apply_op(self, opname: str, tensors: list[Tensor], attrs, call: ast.Expr, scope: Scope,
                 label: str | None, bound: dict | None = None) -> Tensor:
        """Add op `opname` applied to `tensors` with `attrs` (an instance of its OpDef.attrs) to the graph."""
        opdef = REGISTRY[opname]
        in_types = [t.type for t in tensors]
        try:
            out_type = opdef.shape(in_types, attrs, ShapeContext(self.bounds))
            param_specs = opdef.params(in_types, attrs)
        except OpError as e:
            loc = bound[e.arg][1] if bound and e.arg in bound else getattr(call, "loc", None)
            origin = self.origin_of(bound[e.arg][2], scope) if bound and e.arg in bound else None
            raise with_origin(ArchError(_named_as_passed(e, bound, loc), loc, hint=e.hint,
                                        fixes=self.arg_fixes(e, bound, scope)), origin) from None
        graph = scope.graph
        module = scope.module
        params: dict[str, str] = {}
        if param_specs:
            if label == "self" and not scope.module:
                raise ArchError("`as self` is only meaningful inside a block", call.loc)
            if label != "self":
                module = self.claim_label(scope, label or opname, explicit=label is not None, loc=call.loc)
                graph.modules[module] = ModuleInfo(module, opname, None, call.loc)
            for local, spec in param_specs.items():
                full = join_path(module, local)
                if full in graph.params:
                    raise ArchError(f"parameter `{full}` already exists", call.loc,
                                    hint="give this call its own name with `as NAME`")
                graph.params[full] = Param(full, spec.shape, module, spec.tied_to)
                params[local] = full
        elif label is not None and label != "self":
            self.claim_label(scope, label, explicit=True, loc=call.loc)
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise ArchError(f"the spec has more than {MAX_NODES:,} operations", getattr(call, "loc", None),
                            hint="use `repeat(N)` for stacks of layers")
        node_id = graph.fresh_id(join_path(module if param_specs else scope.module, opname))
        node = Node(node_id, opname, [t.node for t in tensors], attrs, out_type, module,
                    getattr(call, "loc", None), params)
        graph.add(node)
        return Tensor(node.id, out_type)

    def claim_label(self, scope: Scope, label: str, explicit: bool, loc: Loc) -> str:
        if explicit:
            if label in KEYWORDS or keyword.iskeyword(label):
                raise ArchError(f"`{label}` is a keyword", loc)
            if label in RESERVED_LABELS or label.startswith("__"):
                raise ArchError(f"`{label}` cannot name a component: generated classes use that name", loc,
                                hint=f"pick another name, e.g. `{label.strip('_')}_proj`")
            if label in scope.labels:
                raise ArchError(f"name `{label}` is already used in this block", loc,
                                notes=[Note("first used here", scope.labels[label])])
        elif label in scope.labels:
            base, k = label, scope.label_suffix.get(label, 1)
            while f"{base}_{k}" in scope.labels:
                k += 1
            scope.label_suffix[base] = k + 1
            label = f"{base}_{k}"
        scope.labels[label] = loc
        return join_path(scope.module, label)


def _named_as_passed(e: OpError, bound: dict | None, loc: Loc | None) -> str:
    """The error's message, naming the argument as the user wrote it: a primitive inside a standard block
    (where the user cannot see its arguments) that was given a block parameter, e.g. moe's `experts` passed as
    linear's `out`, says `experts` (the error is then placed on the user's call of the block)."""
    expr = bound[e.arg][2] if bound and e.arg in bound else None
    if (isinstance(expr, ast.Name) and expr.id != e.arg and loc is not None and is_stdlib(loc.file)
            and e.message.startswith(f"{e.arg} ")):
        return expr.id + e.message[len(e.arg):]
    return e.message
