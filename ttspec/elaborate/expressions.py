"""Expressions: names, arithmetic (exact ints, finite floats), comparisons, lists and subscripts,
and tensor arithmetic (`+`, `*`, scaling by a number)."""

from __future__ import annotations

import math

from ..errors import ArchError, Loc, Note, did_you_mean, nearest_divisors, replacement_fixes, spelling_fixes
from ..frontend import ast
from ..ops import ADD, MUL, SCALE
from .diagnostics import expr_text, magnitude
from .values import (
    ARITHMETIC,
    INT_LIMIT,
    LAYER,
    LAYER_HINT,
    MAX_LIST,
    MAX_STEPS,
    REGISTRY,
    ModuleRef,
    Scope,
    Sym,
    Tensor,
    describe,
    is_stdlib,
    join_path,
    show,
)


class ExpressionsMixin:
    """The Elaborator's expressions."""

    def origin_of(self, expr: ast.Expr, scope: Scope) -> Loc | None:
        if isinstance(expr, ast.Name):
            b = scope.lookup(expr.id)
            return b.origin if b else None
        return None

    def eval(self, expr: ast.Expr, scope: Scope):
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise ArchError(f"the spec takes more than {MAX_STEPS:,} steps to elaborate", expr.loc,
                            hint="blocks that call blocks several times multiply; use `repeat(N)` for stacks "
                                 "of layers")
        if isinstance(expr, ast.Literal):
            return expr.value
        if isinstance(expr, ast.Name):
            return self.eval_name(expr, scope)
        if isinstance(expr, ast.BinOp):
            return self.eval_binop(expr, scope)
        if isinstance(expr, ast.UnaryOp):
            v = self.eval(expr.operand, scope)
            if expr.op == "not":
                if not isinstance(v, bool):
                    raise ArchError(f"`not` needs a bool, got {describe(v)}", expr.loc)
                return not v
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ArchError(f"cannot negate {describe(v)}", expr.loc)
            return -v
        if isinstance(expr, ast.Compare):
            return self.eval_compare(expr, scope)
        if isinstance(expr, ast.BoolOp):
            for sub in expr.values:
                v = self.eval(sub, scope)
                if not isinstance(v, bool):
                    raise ArchError(f"`{expr.op}` needs bools, got {describe(v)}", sub.loc)
                if expr.op == "and" and not v:
                    return False
                if expr.op == "or" and v:
                    return True
            return expr.op == "and"
        if isinstance(expr, ast.Call):
            return self.eval_call(expr, scope)
        if isinstance(expr, ast.RepeatCall):
            return self.eval_repeat(expr, scope)
        if isinstance(expr, ast.ListExpr):
            return self.eval_list(expr, scope)
        if isinstance(expr, ast.Subscript):
            return self.eval_subscript(expr, scope)
        raise ArchError(f"cannot evaluate {type(expr).__name__}", expr.loc)  # pragma: no cover

    def eval_name(self, expr: ast.Name, scope: Scope):
        b = scope.lookup(expr.id)
        if b is not None:
            if isinstance(b.value, Tensor) and b.value.node not in scope.graph.nodes:
                raise ArchError(f"`{expr.id}` is a tensor from outside this repeated block", expr.loc,
                                hint="each layer of a `repeat` sees only its own input: pass the tensor in as an "
                                     "argument, or call the block without `repeat`",
                                notes=[Note("defined here", b.origin)] if b.origin else [])
            return b.value
        s = scope
        while s is not None:  # a component named with `as` in this or an enclosing scope
            if expr.id in s.labels:
                return ModuleRef(join_path(s.module, expr.id), id(s.graph))
            s = s.parent
        if expr.id == LAYER:
            raise ArchError("`layer` is only defined in the arguments of a repeated block after the first "
                            "(`repeat(N) block(x, arg = ... layer ...)`)", expr.loc, hint=LAYER_HINT)
        candidates = scope.visible_names() | set(scope.labels)
        hint = did_you_mean(expr.id, candidates)
        fixes = spelling_fixes(expr.loc, expr.id, candidates)
        if expr.id in self.blocks or expr.id in REGISTRY:
            hint, fixes = f"`{expr.id}` is a component; call it: `{expr.id}(...)`", []
        raise ArchError(f"undefined name `{expr.id}`", expr.loc, hint=hint, fixes=fixes)

    def eval_list(self, expr: ast.ListExpr, scope: Scope) -> tuple:
        """A list value is a tuple (immutable and comparable, like every other value)."""
        if len(expr.items) > MAX_LIST:
            raise ArchError(f"a list of {len(expr.items):,} items; lists are limited to {MAX_LIST:,}", expr.loc)
        values = []
        for item in expr.items:
            v = self.eval(item, scope)
            if isinstance(v, Tensor):
                raise ArchError(f"a list holds values such as numbers and strings, not tensors; got {describe(v)}",
                                item.loc, hint="lists choose per-layer settings, e.g. `[4096, none][layer % 2]`")
            values.append(v)
        return tuple(values)

    def eval_subscript(self, expr: ast.Subscript, scope: Scope):
        """`xs[i]`: an int index; a negative one counts from the end, as in Python (`xs[-1]` is the last)."""
        xs = self.eval(expr.value, scope)
        if not isinstance(xs, tuple):
            hint = "tensors cannot be indexed in a spec" if isinstance(xs, Tensor) else \
                "subscripts pick an item of a list, e.g. `[4096, none][layer % 2]`"
            raise ArchError(f"cannot subscript {describe(xs)}", expr.value.loc, hint=hint)
        i = self.eval(expr.index, scope)
        if isinstance(i, bool) or not isinstance(i, int):
            raise ArchError(f"a list index must be an int, got {describe(i)} {show(i)}", expr.index.loc,
                            hint="use `//` for integer division, e.g. `xs[layer // 2]`")
        if not -len(xs) <= i < len(xs):
            valid = f"valid: {-len(xs)} to {len(xs) - 1}" if xs else "the list is empty"
            raise ArchError(f"index {i} is out of range for a list of {len(xs)} ({valid})", expr.index.loc,
                            notes=[Note("the list", expr.value.loc)])
        return xs[i]

    def eval_binop(self, expr: ast.BinOp, scope: Scope):
        a = self.eval(expr.left, scope)
        b = self.eval(expr.right, scope)
        op = expr.op
        if isinstance(a, Tensor) or isinstance(b, Tensor):
            if isinstance(a, Tensor) and isinstance(b, Tensor) and op in ("+", "*"):
                opdef = ADD if op == "+" else MUL
                return self.apply_op(opdef.name, [a, b], opdef.attrs(), expr, scope, None)
            if isinstance(a, Tensor) != isinstance(b, Tensor):
                scaled = self.scale_tensor(expr, a, b, scope)
                if scaled is not None:
                    return scaled
            raise ArchError(f"cannot apply `{op}` to {describe(a)} and {describe(b)}", expr.loc,
                            hint="tensors support `+` (e.g. residuals) and `*` (gating) with each other, and "
                                 "`*` or `/` by a number (`x * 2.0`, `2.0 * x`, `x / 2.0`)")
        for v, sub in ((a, expr.left), (b, expr.right)):
            if isinstance(v, Sym):
                raise ArchError(f"`{v.name}` is a symbolic dim; its value is not known until run time",
                                sub.loc, hint="arithmetic needs numbers")
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ArchError(f"cannot apply `{op}` to {describe(a)} and {describe(b)}", expr.loc)
        try:
            if isinstance(a, int) and isinstance(b, int):
                return self.int_op(op, a, b, expr)
            return self.float_op(op, float(a), float(b), expr)
        except ArchError as e:
            divisors, e.divisors = getattr(e, "divisors", None), None  # int_op's, for this expression only
            if divisors:  # the divisor as the user wrote it: where it came from when it is a name
                name = expr.right.id if isinstance(expr.right, ast.Name) else None
                e.diagnostic.fixes += replacement_fixes(self.origin_of(expr.right, scope), str(b), divisors, name)
            for sub in (expr.left, expr.right):
                origin = self.origin_of(sub, scope)
                if any(n.loc == origin for n in e.diagnostic.notes):
                    continue
                if isinstance(sub, ast.Name) and origin is not None and not is_stdlib(origin.file):
                    value = scope.lookup(sub.id).value
                    e.diagnostic.notes.append(Note(f"`{sub.id}` = {show(value)} comes from here", origin))
            raise

    def scale_tensor(self, expr: ast.BinOp, a, b, scope: Scope) -> Tensor | None:
        """`x * c`, `c * x` or `x / c` with c a number: the `scale` op. None for other uses
        (reported by the caller)."""
        tensor, number, number_expr = (a, b, expr.right) if isinstance(a, Tensor) else (b, a, expr.left)
        if expr.op not in ("*", "/") or (expr.op == "/" and tensor is not a):
            return None
        if isinstance(number, Sym):
            raise ArchError(f"`{number.name}` is a symbolic dim; a tensor can only be scaled by a number known "
                            "before run time", number_expr.loc, hint="scale by a constant, e.g. `x * 2.0`")
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise ArchError(f"cannot scale a tensor by {describe(number)}: `{expr.op}` needs a number",
                            number_expr.loc, hint="e.g. `x * 2.0`, `x / 2.0` or `x * d ** 0.5` with `d` an int")
        if expr.op == "/" and number == 0:
            raise ArchError(f"division by zero in `{expr_text(expr)}`", expr.loc)
        factor = float(number) if expr.op == "*" else 1.0 / float(number)
        if not math.isfinite(factor):
            raise ArchError(f"`{expr_text(expr)}`: the scale factor {factor} is not finite", expr.loc)
        node = self.apply_op(SCALE.name, [tensor], SCALE.attrs(factor=factor), expr, scope, None)
        origin = self.origin_of(number_expr, scope)
        if origin is not None:
            scope.graph.node(node.node).origins["factor"] = origin
        return node

    def int_op(self, op: str, a: int, b: int, expr: ast.BinOp) -> int:
        if op in ("/", "//", "%") and b == 0:
            raise ArchError(f"division by zero in `{expr_text(expr)}`", expr.loc)
        if op == "**":
            if b < 0:
                raise ArchError("negative integer exponent", expr.loc)
            if abs(a) > 1 and b > 64:
                raise ArchError(f"`{expr_text(expr)}` is too large", expr.loc, hint="values must fit in 63 bits")
        if op == "/":  # exact division is required between ints
            if a % b:
                left, right = expr_text(expr.left), expr_text(expr.right)
                near = [str(d) for d in nearest_divisors(a, b)]
                e = ArchError(f"{right}={b} does not divide {left}={a}", expr.loc,
                              hint=f"nearest divisors of {a}: {', '.join(near)}",
                              fixes=replacement_fixes(expr.right.loc, str(b), near))  # a literal divisor
                e.divisors = near  # eval_binop adds fixes where a named divisor came from
                raise e
            op = "//"
        r = ARITHMETIC[op](a, b)
        if abs(r) >= INT_LIMIT:
            raise ArchError(f"`{expr_text(expr)}` = {magnitude(r)} overflows 63 bits", expr.loc)
        return r

    def float_op(self, op: str, a: float, b: float, expr: ast.BinOp) -> float:
        try:
            r = ARITHMETIC[op](a, b)
        except ZeroDivisionError:
            raise ArchError(f"division by zero in `{expr_text(expr)}`", expr.loc) from None
        except OverflowError:
            raise ArchError(f"`{expr_text(expr)}` overflows", expr.loc) from None
        if isinstance(r, complex) or not math.isfinite(r):
            raise ArchError(f"`{expr_text(expr)}` is not a finite number", expr.loc)
        return r

    def eval_compare(self, expr: ast.Compare, scope: Scope) -> bool:
        values = [self.eval(e, scope) for e in expr.operands]
        for op, a, b in zip(expr.ops, values, values[1:]):
            if op in ("==", "!=") and (a is None or b is None):
                same = a is None and b is None  # `x != none` works for any x
                ok = same if op == "==" else not same
            elif op in ("==", "!="):
                if isinstance(a, Tensor) or isinstance(b, Tensor):
                    raise ArchError("tensors cannot be compared", expr.loc)
                same = a == b and type(a) is type(b) if not both_numbers(a, b) else a == b
                ok = same if op == "==" else not same
            else:
                if not both_numbers(a, b):
                    raise ArchError(f"cannot compare {describe(a)} with {describe(b)} using `{op}`", expr.loc)
                ok = {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
            if not ok:
                return False
        return True


def both_numbers(a, b) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
