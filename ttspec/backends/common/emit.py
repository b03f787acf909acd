"""Backend-independent emission of forward methods from a ClassPlan.

A backend turns one node into an expression given its argument expressions; this module
decides what becomes a named variable and what is inlined, and keeps names from clobbering
values still in use.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...ops import REGISTRY
from .names import POSITIONS_ARG, Scope, local_reserved
from .plan import Child, ClassPlan, Leaf, Repeat


@dataclass
class Forward:
    params: list[str]
    lines: list[str]
    result: str


def _arg_ids(plan: ClassPlan, node) -> list[str]:
    call = plan.calls.get(node.id)
    if isinstance(call, Child):
        return call.inputs
    return list(node.inputs)


def emit_forward(plan: ClassPlan, backend, reserved: frozenset[str] | None = None) -> Forward:
    """`reserved`: what the method's locals must never be (names.local_reserved)."""
    scope = Scope(local_reserved() if reserved is None else reserved)

    def _ident(name: str) -> str:
        return scope.base(name)

    g = plan.graph
    ops = [n for n in plan.ops if n.op != "input"]
    uses: dict[str, int] = {}
    for n in ops:
        for a in _arg_ids(plan, n):
            uses[a] = uses.get(a, 0) + 1
    outputs = set(plan.outputs)
    position = {n.id: i for i, n in enumerate(ops)}
    last_use: dict[str, int] = {}
    for n in ops:
        for a in _arg_ids(plan, n):
            last_use[a] = position[n.id]
    for o in outputs:  # returned at the end
        last_use[o] = len(ops)
    inlined: dict[str, list[str]] = {}  # node id -> the nodes its inline expression reads

    def extend(node_id: str, until: int) -> None:
        """An inline expression is evaluated where it is finally used: what it reads stays live until then."""
        if last_use.get(node_id, -1) < until:
            last_use[node_id] = until
        for a in inlined.get(node_id, ()):
            extend(a, until)

    expr: dict[str, str] = {}  # node id -> variable name or inline expression
    holder: dict[str, str] = {}  # variable name -> node id it currently holds
    params = []
    single = len(plan.inputs) == 1
    for i, nid in enumerate(plan.inputs):
        node = g.node(nid)
        base = (node.hint or nid) if node.op == "input" and node.id != "x" else ("x" if single else f"x{i}")
        name = _free(_ident(base), holder, last_use, -1)
        params.append(name)
        expr[nid] = name
        holder[name] = nid

    lines: list[str] = []
    for n in ops:
        if n.id in expr:  # an element already unpacked from a tuple
            continue
        args = [expr[a] for a in _arg_ids(plan, n)]
        if len(_line_text(n, args, plan, backend)) > MAX_LINE:
            args = _hoist(plan, n, args, expr, holder, last_use, position, lines, backend, _ident)
        opdef = REGISTRY.get(n.op)
        if opdef is not None and opdef.results:  # a tuple: unpack its parts into names
            part_op, defaults = opdef.part_op, opdef.results
            parts = [n] + sorted((g.node(u) for u in g.users[n.id] if g.node(u).op == part_op),
                                 key=lambda p: p.attrs["index"])
            names = []
            for i, part in enumerate(parts):
                var = _free(_ident(part.hint or defaults[i]), holder, last_use, position[n.id])
                names.append(var)
                expr[part.id] = var
                holder[var] = part.id
            lines.append(wrap(f"{', '.join(names)} = {backend.op_expr(n, args, plan)}"))
            continue
        call = plan.calls.get(n.id)
        if isinstance(call, Repeat):
            var = args[0]
            if not _is_var(var):
                var = _free(_ident(n.hint or "h"), holder, last_use, position[n.id])
                lines.append(f"{var} = {args[0]}")
            lines.append(f"for layer in self.{call.attr}:")
            lines.append(f"    {var} = layer({', '.join([var] + _positions(call.cls))})")
            expr[n.id] = var
            holder[var] = n.id
            continue
        if isinstance(call, Child):
            e = f"self.{call.attr}({', '.join(args + _positions(call.cls))})"
        elif isinstance(call, Leaf):
            e = backend.leaf_call(call, args, plan)
        else:
            e = backend.op_expr(n, args, plan)
        named_here = n.hint is not None and n.hint_scope == plan.path
        only_returned = n.id in outputs and uses.get(n.id, 0) == 0 and len(plan.outputs) == 1 and not named_here
        single_use = uses.get(n.id, 0) == 1 and n.id not in outputs and n.hint is None
        inline = (only_returned and len(e) <= MAX_LINE - 8) or (single_use and len(e) <= 72)
        if inline:
            expr[n.id] = e
            inlined[n.id] = _arg_ids(plan, n)
            extend(n.id, last_use.get(n.id, position[n.id]))
            continue
        if uses.get(n.id, 0) == 0 and n.id not in outputs:  # computed, never read (an unused instance)
            lines.append(e)
            continue
        var = _free(_ident(n.hint or backend.default_name(n)), holder, last_use, position[n.id])
        lines.append(wrap(f"{var} = {e}"))
        expr[n.id] = var
        holder[var] = n.id
    result = ", ".join(expr[o] for o in plan.outputs)
    if plan.needs_positions:
        params.append(f"{POSITIONS_ARG}=None")
    return Forward(params, lines, result)


def _positions(cls: ClassPlan) -> list[str]:
    """The positions argument a call passes on, when the callee's forward takes it."""
    return [POSITIONS_ARG] if cls.needs_positions else []


MAX_LINE = 96


def _line_text(n, args, plan, backend) -> str:
    call = plan.calls.get(n.id)
    if isinstance(call, (Child, Repeat)):
        return ""
    if isinstance(call, Leaf):
        return "h = " + backend.leaf_call(call, args, plan)
    results = REGISTRY[n.op].results if n.op in REGISTRY else ()
    return (", ".join("abcdefgh"[: len(results)]) + " = " if results else "h = ") + backend.op_expr(n, args, plan)


def _hoist(plan, n, args, expr, holder, last_use, position, lines, backend, _ident) -> list[str]:
    """Give inlined arguments their own statements when the consumer's line would be too long."""
    out = []
    for arg_id, text in zip(_arg_ids(plan, n), args):
        if _is_var(text):
            out.append(text)
            continue
        var = _free(_ident(backend.default_name(plan.graph.node(arg_id))), holder, last_use, position[n.id] - 1)
        lines.append(f"{var} = {text}")
        expr[arg_id] = var
        holder[var] = arg_id
        out.append(var)
    return out


def wrap(line: str, width: int = 100) -> str:
    """Break a long `name = f(args)` statement after its outermost opening parenthesis; where the
    arguments still do not fit a method body (indented 8), one argument per line, nested calls broken
    the same way."""
    if len(line) <= width or not line.endswith(")") or "\n" in line:
        return line
    start = line.find("(", line.find(" = ") + 3)
    if _closing(line, start) != len(line) - 1:
        return line  # the call does not span to the end of the line
    inner = line[start + 1 : -1]
    if 4 + len(inner) <= width - BODY_INDENT:
        return f"{line[: start + 1]}\n    {inner}\n)"
    head = line[: start + 1]
    lines = [head]
    for arg in _arguments(inner):
        lines += _expression_lines(arg, 4, width - BODY_INDENT)
    return "\n".join(lines + [")"])


BODY_INDENT = 8  # generated statements sit in a method body


def _expression_lines(expr: str, indent: int, width: int) -> list[str]:
    """`expr` as an argument (with its comma) at `indent`; a call too long for one line is broken
    one argument per line."""
    line = " " * indent + expr + ","
    start = expr.find("(")
    if len(line) <= width or start <= 0 or not expr.endswith(")") or _closing(expr, start) != len(expr) - 1:
        return [line]
    lines = [" " * indent + expr[: start + 1]]
    for arg in _arguments(expr[start + 1 : -1]):
        lines += _expression_lines(arg, indent + 4, width)
    return lines + [" " * indent + "),"]


def _scan(text: str):
    """(index, character, depth before it) of the characters outside string literals."""
    depth, quote = 0, ""
    for i, ch in enumerate(text):
        if quote:
            if ch == quote and text[i - 1] != "\\":
                quote = ""
            continue
        if ch in "\"'":
            quote = ch
            continue
        yield i, ch, depth
        depth += {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}.get(ch, 0)


def _closing(text: str, start: int) -> int:
    """The index of the bracket closing the one at `start`."""
    for i, ch, depth in _scan(text):
        if i > start and depth == 1 and ch in ")]}":
            return i
    return -1


def _arguments(text: str) -> list[str]:
    """`text` split at its top-level commas."""
    cuts = [i for i, ch, depth in _scan(text) if ch == "," and depth == 0]
    bounds = zip([-1] + cuts, cuts + [len(text)], strict=True)
    return [part for a, b in bounds if (part := text[a + 1 : b].strip())]


def _is_var(text: str) -> bool:
    return text.isidentifier()


def _free(base: str, holder: dict[str, str], last_use: dict[str, int], now: int) -> str:
    """`base`, unless that variable still holds a value needed after this statement."""
    name, k = base, 1
    while name in holder and last_use.get(holder[name], -1) > now:
        name, k = f"{base}_{k}", k + 1
    return name
