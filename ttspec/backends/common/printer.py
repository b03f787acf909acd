"""The one printer of generated code: pyast trees as text.

It lays a tree out with one structural rule (Wadler's "prettier printer", as Prettier and Black
use it): a group is printed flat when it fits in what is left of the line; else its outermost
bracket breaks and the contents go on one line of their own, one indent deeper, or where they
do not fit there either, one item per line (names and literals fill their lines instead), the
groups inside tried again on their new lines. An expression that needs brackets to span lines
(a conditional, an operator chain, a bare tuple) gets parentheses only when it breaks. Width
is the project's line length ([tool.ruff] in pyproject.toml).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

from .pyast import (
    Assign,
    Attr,
    BinOp,
    Call,
    Chain,
    Comment,
    Comprehension,
    Const,
    Dict,
    Expr,
    ExprStmt,
    For,
    FString,
    IfExp,
    List,
    Name,
    Return,
    Slice,
    Stmt,
    Subscript,
    Tuple,
    negative,
)

WIDTH = 120  # [tool.ruff] line-length
INDENT = 4


# ---------------------------------------------------------------- the document algebra
@dataclass(frozen=True)
class _Line:
    soft: bool  # flat: "" (soft) or " "; broken: a new line


@dataclass(frozen=True)
class _FillLine:
    """Between the atoms of a filled bracket: broken only when the next atom (`need` columns) does
    not fit on the line."""

    need: int


@dataclass(frozen=True)
class _IfBreak:
    broken: str
    flat: str = ""


@dataclass(frozen=True)
class _Group:
    doc: object


@dataclass(frozen=True)
class _Nest:
    doc: object


LINE, SOFT = _Line(False), _Line(True)
_FLAT, _BREAK = 0, 1


def _fits(room: int, items: list, rest: list) -> bool:
    """Whether what follows, up to the next line break, fits in `room` columns: `items` flat, then
    the rest of the document in the modes it is in."""
    queue = list(items)
    next_rest = len(rest)  # the layout's stack: its top (the end) comes next
    while room >= 0:
        if not queue:
            if not next_rest:
                return True
            next_rest -= 1
            _, mode, doc = rest[next_rest]
            queue.append((mode, doc))
            continue
        mode, doc = queue.pop()
        if isinstance(doc, str):
            room -= len(doc)
        elif isinstance(doc, list):
            queue.extend((mode, d) for d in reversed(doc))
        elif isinstance(doc, _Nest):
            queue.append((mode, doc.doc))
        elif isinstance(doc, _Group):
            queue.append((mode, doc.doc))
        elif isinstance(doc, _IfBreak):
            room -= len(doc.broken if mode == _BREAK else doc.flat)
        elif isinstance(doc, (_Line, _FillLine)):
            if mode == _BREAK:
                return True
            room -= 1 if isinstance(doc, _FillLine) or not doc.soft else 0
    return False


def _layout(doc, width: int, column: int) -> str:
    out: list[str] = []
    stack = [(column, _BREAK, doc)]
    pos = column
    while stack:
        indent, mode, d = stack.pop()
        if isinstance(d, str):
            out.append(d)
            pos += len(d)
        elif isinstance(d, list):
            stack.extend((indent, mode, x) for x in reversed(d))
        elif isinstance(d, _Nest):
            stack.append((indent + INDENT, mode, d.doc))
        elif isinstance(d, _IfBreak):
            text = d.broken if mode == _BREAK else d.flat
            out.append(text)
            pos += len(text)
        elif isinstance(d, _Line):
            if mode == _FLAT:
                if not d.soft:
                    out.append(" ")
                    pos += 1
            else:
                out.append("\n" + " " * indent)
                pos = indent
        elif isinstance(d, _FillLine):
            if mode == _FLAT or pos + 1 + d.need <= width:
                out.append(" ")
                pos += 1
            else:
                out.append("\n" + " " * indent)
                pos = indent
        elif isinstance(d, _Group):
            flat = mode == _FLAT or _fits(width - pos, [(_FLAT, d.doc)], stack)
            stack.append((indent, _FLAT if flat else _BREAK, d.doc))
    return "".join(out)


# ---------------------------------------------------------------- expressions as documents
_BARE = (IfExp, BinOp, Chain)  # what takes parentheses to span lines
_BINARY = {"+": 8, "-": 8, "*": 9, "/": 9, "//": 9, "%": 9, "@": 9, "**": 11}
_ATOM, _UNARY, _IFEXP, _TUPLE = 12, 10, 1, 0


def _precedence(e: Expr) -> int:
    if isinstance(e, (BinOp, Chain)):
        return _BINARY[e.op]
    if isinstance(e, IfExp):
        return _IFEXP
    if isinstance(e, Const) and negative(e.value):
        return _UNARY
    return _ATOM


def _literal(v) -> str:
    if isinstance(v, str):
        if '"' not in v and "\\" not in v and v.isprintable():
            return f'"{v}"'
        return repr(v)
    return repr(v)


def _items(items: list, trailing: bool = True) -> list:
    """Comma-separated items that break one per line (with a trailing comma when broken); items
    that are all names or literals fill their lines instead."""
    doc: list = []
    fill = len(items) > 1 and all(isinstance(i, str) for i in items)
    for i, item in enumerate(items):
        if i:
            doc += [",", _FillLine(len(item) + 1) if fill else LINE]
        doc.append(item)
    if items and trailing:
        doc.append(_IfBreak(","))
    return doc


def _bracket(open_: str, inner: list, close: str) -> _Group:
    """Flat; else the contents on one line of their own; else one item per line."""
    return _Group([open_, _Nest([SOFT, _Group(inner)]), SOFT, close])


def _bare(e: Expr) -> bool:
    """Whether `e` needs brackets of its own to span lines (a tuple without its parentheses,
    a conditional, an operator chain)."""
    return isinstance(e, _BARE) or (isinstance(e, Const) and negative(e.value))


def _unbracketed(e: Expr) -> list:
    """The content of a bare-breaking expression, without the brackets it gets on breaking."""
    if isinstance(e, IfExp):
        return [_operand(e.body, _IFEXP + 1), LINE, "if ", _operand(e.test, _IFEXP + 1), LINE, "else ",
                _operand(e.orelse, _IFEXP)]
    if isinstance(e, BinOp):
        level = _BINARY[e.op]
        right_assoc = e.op == "**"
        left = _operand(e.left, level + 1 if right_assoc else level)
        right = _operand(e.right, level if right_assoc else level + 1)
        return [left, LINE, e.op + " ", right]
    if isinstance(e, Chain):
        level = _BINARY[e.op]
        out = [_operand(e.operands[0], level)]
        for operand in e.operands[1:]:
            out += [LINE, e.op + " ", _operand(operand, level + 1)]
        return out
    if isinstance(e, Tuple):
        return _items([doc(i) for i in e.items], trailing=len(e.items) != 1) + ([","] if len(e.items) == 1 else [])
    return [doc(e)]


def _wrapped(e: Expr) -> _Group:
    """A bare-breaking expression in parentheses that appear only when it breaks."""
    return _Group([_IfBreak("("), _Nest([SOFT, _Group(_unbracketed(e))]), SOFT, _IfBreak(")")])


def _operand(e: Expr, level: int):
    """`e` where an operator of precedence `level` reads it: in parentheses when it binds less tightly."""
    if _precedence(e) < level:
        if _bare(e):
            return _bracket("(", _unbracketed(e), ")")
        return ["(", doc(e), ")"]
    return doc(e)


def _argument(e: Expr):
    """A call argument or a bracket's item: brackets around it already let it span lines."""
    if isinstance(e, Comprehension) and e.generator:
        return _bracket("(", _comprehension(e), ")")
    if isinstance(e, _BARE):
        return _wrapped(e)
    return doc(e)


def _comprehension(e: Comprehension) -> list:
    return [doc(e.elt), LINE, "for ", _target(e.target), " in ", _operand(e.iter, _IFEXP + 1)]


def _call(e: Call):
    func = _operand(e.func, _ATOM)
    args = [*e.args, *(v for _, v in e.kwargs)]
    if len(args) == 1 and not e.kwargs and (isinstance(args[0], _BARE)
                                            or (isinstance(args[0], Comprehension) and args[0].generator)):
        only = args[0]  # the call's own parentheses hold it: `f(a if c else b)`, `f(x for x in y)`
        inner = _comprehension(only) if isinstance(only, Comprehension) else _unbracketed(only)
        return [func, _bracket("(", inner, ")")]
    items = [_argument(a) for a in e.args] + [[f"{k}=", _argument(v)] for k, v in e.kwargs]
    return [func, _bracket("(", _items(items), ")")]


def doc(e: Expr):
    """The document of one expression."""
    if isinstance(e, Name):
        return e.id
    if isinstance(e, Const):
        return _literal(e.value)
    if isinstance(e, Attr):
        value = e.value
        if isinstance(value, Const) and isinstance(value.value, int):
            return ["(", doc(value), ")." + e.name]
        return [_operand(value, _ATOM), "." + e.name]
    if isinstance(e, Call):
        return _call(e)
    if isinstance(e, Subscript):
        return [_operand(e.value, _ATOM), _bracket("[", [doc(e.index)], "]")]
    if isinstance(e, Slice):
        return [doc(e.lower) if e.lower else "", ":", doc(e.upper) if e.upper else ""]
    if isinstance(e, Tuple):
        if len(e.items) == 1:
            return ["(", doc(e.items[0]), ",)"]
        return _bracket("(", _items([_argument(i) for i in e.items]), ")")
    if isinstance(e, List):
        return _bracket("[", _items([_argument(i) for i in e.items]), "]")
    if isinstance(e, Dict):
        return _bracket("{", _items([[doc(k), ": ", _argument(v)] for k, v in e.items]), "}")
    if isinstance(e, Comprehension):
        inner = _comprehension(e)
        return _bracket("(", inner, ")") if e.generator else _bracket("[", inner, "]")
    if isinstance(e, FString):
        text = "".join(p.replace("{", "{{").replace("}", "}}") if isinstance(p, str) else "{" + _flat(p) + "}"
                       for p in e.parts)
        return "f" + _literal(text)
    if isinstance(e, _BARE):
        return _wrapped(e)
    raise TypeError(f"not an expression: {e!r}")


def _flat(e: Expr) -> str:
    return _layout(doc(e), 1 << 30, 0)


def _value(e: Expr):
    """The right-hand side of `=`, or what `return` returns."""
    if isinstance(e, Tuple) and len(e.items) > 1:
        return _Group([_IfBreak("("), _Nest([SOFT, *_unbracketed(e)]), SOFT, _IfBreak(")")])
    return doc(e)


def _target(e: Expr):
    """An assignment's or a loop's target: `q, k, v`, unbroken; a tuple too long for half a line in parentheses,
    which break like any tuple (`(self.lm_head_0, ..., self.lm_head_23) = ...`)."""
    if isinstance(e, Tuple):
        flat = ", ".join(_flat(i) for i in e.items) + ("," if len(e.items) == 1 else "")
        return doc(e) if len(flat) > WIDTH // 2 else flat
    return doc(e)


# ---------------------------------------------------------------- statements as text
def print_expr(e: Expr, column: int = 0, width: int = WIDTH) -> str:
    """The expression laid out as if it started at `column`."""
    return _layout(_Group(doc(e)), width, column)


def print_stmt(s: Stmt, column: int = 0, width: int = WIDTH) -> str:
    """One statement as if indented by `column` (continuation lines are relative to it: the
    caller indents every line by `column`)."""
    return "\n".join(line[column:] if line.strip() else "" for line in _stmt_lines(s, column, width))


def _stmt_lines(s: Stmt, column: int, width: int) -> list[str]:
    pad = " " * column
    if isinstance(s, Comment):
        room = max(width - column - 2, 20)
        lines = textwrap.wrap(s.text, room, subsequent_indent="  ", break_long_words=False, break_on_hyphens=False)
        return [f"{pad}# {line}" for line in lines] or [pad + "#"]
    if isinstance(s, For):
        head = _layout(["for ", _Group(_target(s.target)), " in ", _Group(_value(s.iter)), ":"], width, column)
        lines = [pad + line if i == 0 else line for i, line in enumerate(head.split("\n"))]
        for inner in s.body:
            lines += _stmt_lines(inner, column + INDENT, width)
        return lines
    if isinstance(s, Assign):
        comment = f"  # {s.comment}" if s.comment else ""
        parts = [_Group(_target(s.target)), " = ", _Group(_value(s.value)), comment]
    elif isinstance(s, Return):
        parts = ["return ", _Group(_value(s.value))]
    elif isinstance(s, ExprStmt):
        parts = [_Group(doc(s.value))]
    else:
        raise TypeError(f"not a statement: {s!r}")
    text = _layout(parts, width, column)
    return [pad + line if i == 0 else line for i, line in enumerate(text.split("\n"))]


def print_module(body: list[Stmt], width: int = WIDTH) -> str:
    return "".join(print_stmt(s, 0, width) + "\n" for s in body)
