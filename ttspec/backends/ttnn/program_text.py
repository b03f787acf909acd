"""Reading a program's text as the walkers (decode_facts.py, prefill_facts.py) need it: dotted names, the
constants and sequences a call binds to a function's parameters, and the truth of a condition where the text
decides it (None where it does not: the walker must not assume it)."""

from __future__ import annotations

import ast


def dotted(node) -> str:
    """`ttnn.experimental.x` for an attribute chain of names, else ""."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id, *reversed(parts)])
    return ""


def callee_name(call: ast.Call) -> str:
    """`f` for a call `f(...)`, else ""."""
    return call.func.id if isinstance(call.func, ast.Name) else ""


def bound_constants(fn: ast.FunctionDef, call: ast.Call | None, outer: dict | None = None) -> dict[str, object]:
    """The parameters of `fn` that `call` (or their defaults) bind to constants, or to names of the caller's
    bound to constants (`outer`: `moe_local_routing(rs, selector)` where the caller's `selector` is None)."""
    outer = outer or {}
    a = fn.args
    params = [p.arg for p in a.posonlyargs + a.args]
    out: dict[str, object] = {}
    for p, d in zip(params[len(params) - len(a.defaults):], a.defaults, strict=True):
        if isinstance(d, ast.Constant):
            out[p] = d.value
    for p, d in zip(a.kwonlyargs, a.kw_defaults, strict=True):
        if isinstance(d, ast.Constant):
            out[p.arg] = d.value
    if call is None:
        return out
    offset = 1 if params[:1] == ["self"] and isinstance(call.func, ast.Attribute) else 0
    for p, v in zip(params[offset:], call.args, strict=False):
        out.pop(p, None)
        if isinstance(v, ast.Constant):
            out[p] = v.value
        elif isinstance(v, ast.Name) and v.id in outer:
            out[p] = outer[v.id]
    for k in call.keywords:
        if k.arg:
            out.pop(k.arg, None)
            if isinstance(k.value, ast.Constant):
                out[k.arg] = k.value.value
            elif isinstance(k.value, ast.Name) and k.value.id in outer:
                out[k.arg] = outer[k.value.id]
    return out


UNKNOWN = object()


def value_of(node, constants: dict[str, object], modes: dict[str, object]):
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return constants.get(node.id, UNKNOWN)
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "len"
            and len(node.args) == 1 and isinstance(node.args[0], ast.Name)):
        return constants.get(f"len({node.args[0].id})", UNKNOWN)
    if isinstance(node, ast.Attribute) and node.attr in modes:  # `state.decoding`, `self.state.mode`
        return modes[node.attr]
    if dotted(node).startswith("ttnn."):  # a ttnn constant, by name (`ttnn.bfloat16`; `constants` may name one)
        return dotted(node)
    return UNKNOWN


def truth(test, constants: dict[str, object], modes: dict[str, object]) -> bool | None:
    """The value of a condition on constant-bound names (`sharded`, `not sharded`, `x is None`) and the run
    state's mode (`state.decoding`, `self.mode != "prefill"`), None if unknown."""
    value = value_of(test, constants, modes)
    if value is not UNKNOWN:
        return bool(value)
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        inner = truth(test.operand, constants, modes)
        return None if inner is None else not inner
    if isinstance(test, ast.BoolOp):
        parts = [truth(v, constants, modes) for v in test.values]
        decisive = isinstance(test.op, ast.Or)  # True decides an `or`, False an `and`
        if decisive in parts:
            return decisive
        return None if None in parts else not decisive
    if isinstance(test, ast.Compare) and len(test.ops) == 1:
        left, right, op = value_of(test.left, constants, modes), value_of(test.comparators[0], {}, {}), test.ops[0]
        if left is UNKNOWN or right is UNKNOWN:
            return None
        if isinstance(op, (ast.Is, ast.Eq)):
            return left is right if isinstance(op, ast.Is) else left == right
        if isinstance(op, (ast.IsNot, ast.NotEq)):
            return left is not right if isinstance(op, ast.IsNot) else left != right
        order = ORDERINGS.get(type(op))
        if order is not None and isinstance(left, int) and isinstance(right, int):  # `len(outputs) > 1`
            return order(left, right)
    return None


ORDERINGS = {ast.Lt: int.__lt__, ast.LtE: int.__le__, ast.Gt: int.__gt__, ast.GtE: int.__ge__}


def leaves(stmts) -> bool:
    """Whether running `stmts` always leaves the function (it ends in a return or raise, or in a conditional each
    of whose branches does), whichever way its conditions go."""
    last = stmts[-1] if stmts else None
    if isinstance(last, (ast.Return, ast.Raise)):
        return True
    return isinstance(last, ast.If) and leaves(last.body) and leaves(last.orelse)


def bound_arguments(fn: ast.FunctionDef, call: ast.Call, caller) -> dict:
    """The parameters of a function `call` passes names or members to: name -> (the argument, the caller's class)."""
    params = [p.arg for p in fn.args.posonlyargs + fn.args.args + fn.args.kwonlyargs]
    out = {p: (v, caller) for p, v in zip(params, call.args, strict=False)}
    out.update({k.arg: (k.value, caller) for k in call.keywords if k.arg in params})
    return out


def bound_lengths(fn: ast.FunctionDef, call: ast.Call | None, outer: dict[str, int]) -> dict[str, int]:
    """The parameters of `fn` that `call` binds to sequences of known length (`[self.lm_head_0]`)."""
    if call is None:
        return {}
    params = [a.arg for a in fn.args.args]
    bound = dict(zip(params, call.args)) | {k.arg: k.value for k in call.keywords if k.arg}
    return {name: n for name, value in bound.items() if (n := length(value, outer))}


def length(node, lengths: dict[str, int]) -> int:
    """How many items a sequence expression holds, where the program's text says (0: unknown): a literal tuple or
    list, a comprehension over one, `tuple(...)` / `list(...)` of one, a name bound to one, or a call whose lambda
    makes one (`state.keep(key, lambda: tuple(... for which in ("cos", "sin")))`)."""
    if isinstance(node, (ast.Tuple, ast.List)):
        return 0 if any(isinstance(e, ast.Starred) for e in node.elts) else len(node.elts)
    if isinstance(node, (ast.GeneratorExp, ast.ListComp)) and len(node.generators) == 1:
        return length(node.generators[0].iter, lengths)
    if isinstance(node, ast.Name):
        return lengths.get(node.id, 0)
    if isinstance(node, ast.Call):
        if callee_name(node) in ("tuple", "list") and len(node.args) == 1:
            return length(node.args[0], lengths)
        if callee_name(node) == "zip" and node.args:  # as long as its shortest argument (strict: as any of them)
            counts = [length(a, lengths) for a in node.args]
            strict = any(k.arg == "strict" and getattr(k.value, "value", False) for k in node.keywords)
            known = [c for c in counts if c]
            return (known[0] if known else 0) if strict else (min(counts) if all(counts) else 0)
        made = [a.body for a in node.args if isinstance(a, ast.Lambda)]
        if len(made) == 1:
            return length(made[0], lengths)
    return 0


def local_callables(fn: ast.FunctionDef) -> set[str]:
    """The names a call in `fn` may call that the walker does not follow: its (and its nested functions')
    parameters and loop variables (a
    maker passed in: `keep(key, make)`, `for key, make in self.step_makers.items()`) and the functions defined in
    it (walked where they are defined: `def step(): ...`)."""
    params = {p.arg for f in ast.walk(fn) if isinstance(f, ast.FunctionDef) for p in (
        *f.args.posonlyargs, *f.args.args, *f.args.kwonlyargs, f.args.vararg, f.args.kwarg) if p}
    looped = {t.id for n in ast.walk(fn) if isinstance(n, ast.For) for t in ast.walk(n.target)
              if isinstance(t, ast.Name)}
    return params | looped | {n.name for n in ast.walk(fn) if isinstance(n, ast.FunctionDef) and n is not fn}
