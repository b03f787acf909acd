"""The Python code that backends generate, as data, and the one printer that writes it.

Lowerings build expressions and statements from these small frozen dataclasses; nothing in
codegen writes source text by hand. The printer lays a tree out with one structural rule
(Wadler's "prettier printer", as Prettier and Black use it): a group is printed flat when it
fits in what is left of the line, else the outermost bracket breaks, its items one per line
one indent deeper, and the groups inside are tried again on their new lines. An expression
that needs brackets to span lines (a conditional, an operator chain, a bare tuple) gets
parentheses only when it breaks. Width is the project's line length ([tool.ruff] in
pyproject.toml).

`to_ast` converts a tree to Python's own `ast`, so tests can check that the printed text
means the tree (tests/test_printer.py).
"""

from __future__ import annotations

import ast
import math
import textwrap
from dataclasses import dataclass, fields, replace

WIDTH = 120  # [tool.ruff] line-length
INDENT = 4


# ---------------------------------------------------------------- expressions
class Expr:
    """Base of the expression nodes."""

    def __call__(self, *args: Expr, **kwargs: Expr) -> Call:
        """`f(a, k=b)` builds the call node of this expression."""
        return Call(self, tuple(args), tuple(kwargs.items()))

    def attr(self, name: str) -> Attr:
        return Attr(self, name)


@dataclass(frozen=True)
class Name(Expr):
    id: str


@dataclass(frozen=True)
class Attr(Expr):
    value: Expr
    name: str


@dataclass(frozen=True, eq=False)
class Const(Expr):
    """int, float (finite), str, bool or None."""

    value: object

    def __post_init__(self):
        if isinstance(self.value, float) and not math.isfinite(self.value):
            raise ValueError(f"no Python literal for {self.value}")

    def __eq__(self, other) -> bool:  # 1, 1.0 and True are different literals
        return isinstance(other, Const) and type(other.value) is type(self.value) and other.value == self.value

    def __hash__(self) -> int:
        return hash((type(self.value), self.value))


@dataclass(frozen=True)
class Call(Expr):
    func: Expr
    args: tuple[Expr, ...] = ()
    kwargs: tuple[tuple[str, Expr], ...] = ()


@dataclass(frozen=True)
class BinOp(Expr):
    left: Expr
    op: str  # "+", "-", "*", "/", "//", "%", "@", "**"
    right: Expr


@dataclass(frozen=True)
class Subscript(Expr):
    value: Expr
    index: Expr


@dataclass(frozen=True)
class Slice(Expr):
    """Only as a Subscript's index: `lower:upper`."""

    lower: Expr | None = None
    upper: Expr | None = None


@dataclass(frozen=True)
class Tuple(Expr):
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class List(Expr):
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Dict(Expr):
    items: tuple[tuple[Expr, Expr], ...]


@dataclass(frozen=True)
class IfExp(Expr):
    body: Expr
    test: Expr
    orelse: Expr


@dataclass(frozen=True)
class Comprehension(Expr):
    """`[elt for target in iter]` (a list) or `(elt for target in iter)` (a generator)."""

    elt: Expr
    target: Expr  # a Name or a Tuple of Names
    iter: Expr
    generator: bool = False


@dataclass(frozen=True)
class FString(Expr):
    """f"...": literal text and interpolated names or attributes."""

    parts: tuple[str | Expr, ...]

    def __post_init__(self):
        for part in self.parts:
            if not isinstance(part, (str, Name, Attr)):
                raise ValueError("an f-string interpolates names and attributes only")


def name(dotted: str) -> Expr:
    """`ttnn.transformer.concatenate_heads` as a Name and its attributes."""
    head, *rest = dotted.split(".")
    out: Expr = Name(head)
    for part in rest:
        out = Attr(out, part)
    return out


def const(value: object) -> Const:
    return Const(value)


def call(dotted: str, *args: Expr, **kwargs: Expr) -> Call:
    return Call(name(dotted), tuple(args), tuple(kwargs.items()))


# ---------------------------------------------------------------- statements
class Stmt:
    """Base of the statement nodes."""


@dataclass(frozen=True)
class Assign(Stmt):
    target: Expr  # a Name, an Attr, or a Tuple of them
    value: Expr
    comment: str = ""  # a trailing `# comment`


@dataclass(frozen=True)
class ExprStmt(Stmt):
    value: Expr


@dataclass(frozen=True)
class For(Stmt):
    target: Expr
    iter: Expr
    body: tuple[Stmt, ...]


@dataclass(frozen=True)
class Return(Stmt):
    value: Expr


@dataclass(frozen=True)
class Comment(Stmt):
    text: str


@dataclass(frozen=True)
class Pass(Stmt):
    comment: str = ""


# ---------------------------------------------------------------- walking
def children(node) -> list:
    """The expressions and statements directly inside `node`."""
    if isinstance(node, Attr):
        return [node.value]
    if isinstance(node, Call):
        return [node.func, *node.args, *(v for _, v in node.kwargs)]
    if isinstance(node, BinOp):
        return [node.left, node.right]
    if isinstance(node, Subscript):
        return [node.value, node.index]
    if isinstance(node, Slice):
        return [p for p in (node.lower, node.upper) if p is not None]
    if isinstance(node, (Tuple, List)):
        return list(node.items)
    if isinstance(node, Dict):
        return [e for kv in node.items for e in kv]
    if isinstance(node, IfExp):
        return [node.body, node.test, node.orelse]
    if isinstance(node, Comprehension):
        return [node.elt, node.target, node.iter]
    if isinstance(node, FString):
        return [p for p in node.parts if not isinstance(p, str)]
    if isinstance(node, (Assign, For)):
        return [node.target, node.iter, *node.body] if isinstance(node, For) else [node.target, node.value]
    if isinstance(node, (ExprStmt, Return)):
        return [node.value]
    return []


def walk(node):
    yield node
    for child in children(node):
        yield from walk(child)


def size(node) -> int:
    """How many nodes the tree has, a dotted name (`ttnn.transformer.concatenate_heads`) counting
    as one: what emission weighs when it inlines a value."""
    if _dotted(node):
        return 1
    return 1 + sum(size(child) for child in children(node))


def _dotted(node) -> bool:
    while isinstance(node, Attr):
        node = node.value
    return isinstance(node, Name)


def names_read(nodes) -> set[str]:
    """Every Name in the trees (what a program must import or define)."""
    return {n.id for tree in nodes for n in walk(tree) if isinstance(n, Name)}


def substitute(node, mapping: dict):
    """`node` with every subtree equal to a key of `mapping` replaced by its value."""
    if isinstance(node, (Expr, Stmt)) and node in mapping:
        return mapping[node]
    if isinstance(node, tuple):
        new = tuple(substitute(item, mapping) for item in node)
        return node if all(a is b for a, b in zip(new, node)) else new
    if not isinstance(node, (Expr, Stmt)):
        return node
    changes = {}
    for f in fields(node):
        value = getattr(node, f.name)
        new = substitute(value, mapping)
        if new is not value:
            changes[f.name] = new
    return replace(node, **changes) if changes else node


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
    pending = list(rest)
    while room >= 0:
        if not queue:
            if not pending:
                return True
            _, mode, doc = pending.pop()
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
_BINARY = {"+": 8, "-": 8, "*": 9, "/": 9, "//": 9, "%": 9, "@": 9, "**": 11}
_ATOM, _UNARY, _IFEXP, _TUPLE = 12, 10, 1, 0


def _precedence(e: Expr) -> int:
    if isinstance(e, BinOp):
        return _BINARY[e.op]
    if isinstance(e, IfExp):
        return _IFEXP
    if isinstance(e, Const) and _negative(e.value):
        return _UNARY
    return _ATOM


def _negative(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.copysign(1, v) < 0


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
    return isinstance(e, (IfExp, BinOp)) or (isinstance(e, Const) and _negative(e.value))


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
    if isinstance(e, (IfExp, BinOp)):
        return _wrapped(e)
    return doc(e)


def _comprehension(e: Comprehension) -> list:
    return [doc(e.elt), LINE, "for ", _target(e.target), " in ", _operand(e.iter, _IFEXP + 1)]


def _call(e: Call):
    func = _operand(e.func, _ATOM)
    args = [*e.args, *(v for _, v in e.kwargs)]
    if len(args) == 1 and not e.kwargs and (isinstance(args[0], (IfExp, BinOp))
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
    if isinstance(e, (IfExp, BinOp)):
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
    """An assignment's or a loop's target, never broken: `q, k, v`."""
    if isinstance(e, Tuple):
        return ", ".join(_flat(i) for i in e.items) + ("," if len(e.items) == 1 else "")
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
        return [f"{pad}# {line}" for line in textwrap.wrap(s.text, room, subsequent_indent="  ")] or [pad + "#"]
    if isinstance(s, Pass):
        return [pad + "pass" + (f"  # {s.comment}" if s.comment else "")]
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


# ---------------------------------------------------------------- as Python's ast (for tests)
_OPS = {"+": ast.Add, "-": ast.Sub, "*": ast.Mult, "/": ast.Div, "//": ast.FloorDiv, "%": ast.Mod,
        "@": ast.MatMult, "**": ast.Pow}


def to_ast(node, store: bool = False):
    """The `ast` node Python would parse from the printed text (comments have none)."""
    ctx = ast.Store() if store else ast.Load()
    if isinstance(node, Name):
        return ast.Name(node.id, ctx)
    if isinstance(node, Attr):
        return ast.Attribute(to_ast(node.value), node.name, ctx)
    if isinstance(node, Const):
        if _negative(node.value):
            return ast.UnaryOp(ast.USub(), ast.Constant(-node.value))
        return ast.Constant(node.value)
    if isinstance(node, Call):
        return ast.Call(to_ast(node.func), [to_ast(a) for a in node.args],
                        [ast.keyword(k, to_ast(v)) for k, v in node.kwargs])
    if isinstance(node, BinOp):
        return ast.BinOp(to_ast(node.left), _OPS[node.op](), to_ast(node.right))
    if isinstance(node, Subscript):
        return ast.Subscript(to_ast(node.value), to_ast(node.index), ctx)
    if isinstance(node, Slice):
        return ast.Slice(*(to_ast(p) if p is not None else None for p in (node.lower, node.upper)))
    if isinstance(node, Tuple):
        return ast.Tuple([to_ast(i, store) for i in node.items], ctx)
    if isinstance(node, List):
        return ast.List([to_ast(i) for i in node.items], ctx)
    if isinstance(node, Dict):
        return ast.Dict([to_ast(k) for k, _ in node.items], [to_ast(v) for _, v in node.items])
    if isinstance(node, IfExp):
        return ast.IfExp(to_ast(node.test), to_ast(node.body), to_ast(node.orelse))
    if isinstance(node, Comprehension):
        gen = [ast.comprehension(to_ast(node.target, store=True), to_ast(node.iter), [], 0)]
        return (ast.GeneratorExp if node.generator else ast.ListComp)(to_ast(node.elt), gen)
    if isinstance(node, FString):
        values = []
        for part in node.parts:
            if isinstance(part, str):
                if values and isinstance(values[-1], ast.Constant):
                    values[-1] = ast.Constant(values[-1].value + part)
                elif part:
                    values.append(ast.Constant(part))
            else:
                values.append(ast.FormattedValue(to_ast(part), -1, None))
        return ast.JoinedStr(values)
    return _stmt_ast(node)


def _stmt_ast(node):
    if isinstance(node, Assign):
        return ast.Assign([to_ast(node.target, store=True)], to_ast(node.value))
    if isinstance(node, ExprStmt):
        return ast.Expr(to_ast(node.value))
    if isinstance(node, Return):
        return ast.Return(to_ast(node.value))
    if isinstance(node, Pass):
        return ast.Pass()
    if isinstance(node, For):
        body = [to_ast(s) for s in node.body if not isinstance(s, Comment)]
        return ast.For(to_ast(node.target, store=True), to_ast(node.iter), body, [])
    raise TypeError(f"no ast for {node!r}")


def module_ast(body: list[Stmt]) -> ast.Module:
    return ast.Module([to_ast(s) for s in body if not isinstance(s, Comment)], [])
