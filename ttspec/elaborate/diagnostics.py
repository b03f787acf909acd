"""How the elaborator words and locates what it reports: expression text, signatures, huge numbers,
the origin of a value, warnings for tensors that never reach an output."""

from __future__ import annotations

from ..errors import ArchError, Diagnostic, Loc
from ..frontend import ast
from ..ops import REQUIRED, ArgSpec
from .values import show


def with_origin(e: ArchError, origin: Loc | None) -> ArchError:
    """Remember where the offending value was written, for errors raised inside a family template."""
    e.origin = origin
    return e


def magnitude(r: int) -> str:
    """A huge int for a message, without converting it to a float (which can overflow) or to
    all its digits."""
    bits = abs(r).bit_length()
    if bits <= 1000:
        return f"{float(r):.3e}"
    return f"{'-' if r < 0 else ''}about 2^{bits - 1}"


def dim_text(d: ast.DimSpec) -> str:
    return "*" if d.wildcard else (d.name if d.name is not None else str(d.value))


def expr_text(expr: ast.Expr) -> str:
    """Source-like text of a (small) expression, for messages."""
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, ast.Literal):
        return show(expr.value)
    if isinstance(expr, ast.BinOp):
        left, right = (f"({expr_text(e)})" if isinstance(e, ast.BinOp) else expr_text(e)
                       for e in (expr.left, expr.right))
        return f"{left} {expr.op} {right}"
    return "..."


def op_signature(name: str, args: tuple[ArgSpec, ...]) -> str:
    parts = []
    for a in args:
        parts.append(a.name if a.default is REQUIRED else f"{a.name} = {show(a.default)}")
    return f"{name}({', '.join(parts)})"


def block_signature(defn: ast.BlockDef) -> str:
    return f"{defn.name}({', '.join(p.name if p.default is None else p.name + ' = ...' for p in defn.params)})"


def dead_assignments(assignments) -> list[Diagnostic]:
    """A tensor the user named but that never reaches an output (a forgotten residual?)."""
    live: dict[int, set[str]] = {}
    warnings, seen = [], set()
    for graph, node, name, loc in assignments:
        if id(graph) not in live:
            live[id(graph)] = graph.live()
        if node not in live[id(graph)] and (name, loc) not in seen:  # once, not once per layer variant
            seen.add((name, loc))
            warnings.append(Diagnostic("warning", f"`{name}` is computed but never used", loc,
                                       hint="did you forget to add it to the residual stream?"))
    return warnings
