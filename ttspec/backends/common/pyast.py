"""The Python code that backends generate, as data: small frozen records for expressions
and statements, which lowerings build and one printer writes (printer.py); nothing in codegen
writes source text by hand.

`to_ast` converts a tree to Python's own `ast`, so tests can check that the printed text
means the tree (tests/test_printer.py).
"""

from __future__ import annotations

import ast
import math

from ...records import FrozenRecord


# ---------------------------------------------------------------- records
class Node(FrozenRecord):
    """Base of the code tree's nodes: frozen records (ttspec/records.py), fields from annotations."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(repr(getattr(self, f)) for f in self.FIELDS)})"


# ---------------------------------------------------------------- expressions
class Expr(Node):
    """Base of the expression nodes."""

    def __call__(self, *args: Expr, **kwargs: Expr) -> Call:
        """`f(a, k=b)` builds the call node of this expression."""
        return Call(self, tuple(args), tuple(kwargs.items()))

    def attr(self, name: str) -> Attr:
        return Attr(self, name)


class Name(Expr):
    id: str


class Attr(Expr):
    value: Expr
    name: str


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


class Call(Expr):
    func: Expr
    args: tuple[Expr, ...] = ()
    kwargs: tuple[tuple[str, Expr], ...] = ()


class BinOp(Expr):
    left: Expr
    op: str  # "+", "-", "*", "/", "//", "%", "@", "**"
    right: Expr


class Chain(Expr):
    """`a + b + c ...`: one left-associative operator over any number of operands, flat (a sum of
    hundreds of terms is no deeper than one of two)."""

    op: str
    operands: tuple[Expr, ...]

    def __post_init__(self):
        if self.op == "**" or len(self.operands) < 2:
            raise ValueError("a chain is of a left-associative operator over two or more operands")


class Subscript(Expr):
    value: Expr
    index: Expr


class Slice(Expr):
    """Only as a Subscript's index: `lower:upper`."""

    lower: Expr | None = None
    upper: Expr | None = None


class Tuple(Expr):
    items: tuple[Expr, ...]


class List(Expr):
    items: tuple[Expr, ...]


class Dict(Expr):
    items: tuple[tuple[Expr, Expr], ...]


class IfExp(Expr):
    body: Expr
    test: Expr
    orelse: Expr


class Comprehension(Expr):
    """`[elt for target in iter]` (a list) or `(elt for target in iter)` (a generator)."""

    elt: Expr
    target: Expr  # a Name or a Tuple of Names
    iter: Expr
    generator: bool = False


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
class Stmt(Node):
    """Base of the statement nodes."""


class Assign(Stmt):
    target: Expr  # a Name, an Attr, or a Tuple of them
    value: Expr
    comment: str = ""  # a trailing `# comment`


class ExprStmt(Stmt):
    value: Expr


class For(Stmt):
    target: Expr
    iter: Expr
    body: tuple[Stmt, ...]


class Return(Stmt):
    value: Expr


class Comment(Stmt):
    text: str


# ---------------------------------------------------------------- walking
def children(node) -> list:
    """The expressions and statements directly inside `node`."""
    if isinstance(node, Attr):
        return [node.value]
    if isinstance(node, Call):
        return [node.func, *node.args, *(v for _, v in node.kwargs)]
    if isinstance(node, BinOp):
        return [node.left, node.right]
    if isinstance(node, Chain):
        return list(node.operands)
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
    """Every Name in the trees (what a program must import or define; a name the code binds is among
    them too, which the namer keeps apart from every runtime name)."""
    return reads(nodes)[0]


def attributes_read(nodes) -> set[str]:
    """Every attribute name in the trees (`self.cache.decode` reads `cache` and `decode`): what keeps a
    runtime class's methods in a program."""
    return reads(nodes)[1]


def reads(nodes) -> tuple[set[str], set[str]]:
    """names_read and attributes_read in one walk: a stack over the records' fields rather than `walk`'s
    nested generators, which cost several times as much on a whole program's trees."""
    names, attributes = set(), set()
    stack = list(nodes)
    while stack:
        node = stack.pop()
        kind = type(node)
        if kind is Name:
            names.add(node.id)
        elif kind is tuple:
            stack.extend(node)  # a record's items, a call's (keyword, value) pairs
        elif isinstance(node, Node):
            if kind is Attr:
                attributes.add(node.name)
            stack.extend(node._values())
    return names, attributes


def negative(value) -> bool:
    """Whether a literal is written with a leading minus (-0.0 included): Python reads it as an operator."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.copysign(1, value) < 0


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
    for f in node.FIELDS:
        value = getattr(node, f)
        new = substitute(value, mapping)
        if new is not value:
            changes[f] = new
    return node.replace(**changes) if changes else node


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
        if negative(node.value):
            return ast.UnaryOp(ast.USub(), ast.Constant(-node.value))
        return ast.Constant(node.value)
    if isinstance(node, Call):
        return ast.Call(to_ast(node.func), [to_ast(a) for a in node.args],
                        [ast.keyword(k, to_ast(v)) for k, v in node.kwargs])
    if isinstance(node, BinOp):
        return ast.BinOp(to_ast(node.left), _OPS[node.op](), to_ast(node.right))
    if isinstance(node, Chain):
        out = to_ast(node.operands[0])
        for operand in node.operands[1:]:
            out = ast.BinOp(out, _OPS[node.op](), to_ast(operand))
        return out
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
    if isinstance(node, For):
        body = [to_ast(s) for s in node.body if not isinstance(s, Comment)]
        return ast.For(to_ast(node.target, store=True), to_ast(node.iter), body, [])
    raise TypeError(f"no ast for {node!r}")


def module_ast(body: list[Stmt]) -> ast.Module:
    return ast.Module([to_ast(s) for s in body if not isinstance(s, Comment)], [])
