"""AST classes produced by the parser; plain data, no behaviour. Records (ttspec/records.py), not
dataclasses: a cold start creates all 30 at import (issue 19)."""

from __future__ import annotations

from ..errors import Loc
from ..records import Record


class Expr(Record):
    """An expression, where it starts in the source."""

    __slots__ = ("loc",)
    loc: Loc

    def __init__(self, loc: Loc) -> None:
        self.loc = loc


class Literal(Expr):
    """`64`, `1e-5`, `"gelu"`, `true`, `none`."""

    __slots__ = ("value",)
    value: object  # int, float, str, bool or None

    def __init__(self, loc: Loc, value: object) -> None:
        self.loc = loc
        self.value = value


class Name(Expr):
    """A variable, parameter or dimension by name."""

    __slots__ = ("id",)
    id: str

    def __init__(self, loc: Loc, id: str) -> None:
        self.loc = loc
        self.id = id


class BinOp(Expr):
    """`a + b`, `a * b`, `a ** b` ..."""

    __slots__ = ("op", "left", "right")
    op: str
    left: Expr
    right: Expr

    def __init__(self, loc: Loc, op: str, left: Expr, right: Expr) -> None:
        self.loc = loc
        self.op = op
        self.left = left
        self.right = right


class Compare(Expr):
    """`a < b <= c`: a chain of comparisons, as in Python."""

    __slots__ = ("ops", "operands")
    ops: list[str]
    operands: list[Expr]

    def __init__(self, loc: Loc, ops: list[str], operands: list[Expr]) -> None:
        self.loc = loc
        self.ops = ops
        self.operands = operands


class BoolOp(Expr):
    """`a and b`, `a or b`."""

    __slots__ = ("op", "values")
    op: str  # "and" / "or"
    values: list[Expr]

    def __init__(self, loc: Loc, op: str, values: list[Expr]) -> None:
        self.loc = loc
        self.op = op
        self.values = values


class UnaryOp(Expr):
    """`-a`, `not a`."""

    __slots__ = ("op", "operand")
    op: str  # "-" / "not"
    operand: Expr

    def __init__(self, loc: Loc, op: str, operand: Expr) -> None:
        self.loc = loc
        self.op = op
        self.operand = operand


class ListExpr(Expr):
    """`[a, b, ...]`: a list of values (parameters, never tensors)."""

    __slots__ = ("items",)
    items: list[Expr]

    def __init__(self, loc: Loc, items: list[Expr]) -> None:
        self.loc = loc
        self.items = items


class Subscript(Expr):
    """`xs[i]`: one element of a list; a negative index counts from the end, as in Python."""

    __slots__ = ("value", "index")
    value: Expr
    index: Expr

    def __init__(self, loc: Loc, value: Expr, index: Expr) -> None:
        self.loc = loc
        self.value = value
        self.index = index


class Arg(Record):
    """One argument of a call, positional or by name."""

    __slots__ = ("name", "value", "loc")
    name: str | None  # None for positional
    value: Expr
    loc: Loc

    def __init__(self, name: str | None, value: Expr, loc: Loc) -> None:
        self.name = name
        self.value = value
        self.loc = loc


class Call(Expr):
    """`attention(h, heads = 8) as attn`: a block or primitive applied, with its label."""

    __slots__ = ("func", "args", "label", "func_loc")
    func: str
    args: list[Arg]
    label: str | None
    func_loc: Loc

    def __init__(self, loc: Loc, func: str, args: list[Arg], label: str | None, func_loc: Loc) -> None:
        self.loc = loc
        self.func = func
        self.args = args
        self.label = label
        self.func_loc = func_loc


class RepeatCall(Expr):
    """`repeat(32) decoder(h)`: a block applied `count` times in sequence."""

    __slots__ = ("count", "call")
    count: Expr
    call: Call

    def __init__(self, loc: Loc, count: Expr, call: Call) -> None:
        self.loc = loc
        self.count = count
        self.call = call


class DimSpec(Record):
    """One dimension of a tensor type: a name, a number or `*`."""

    __slots__ = ("name", "value", "loc", "wildcard")
    name: str | None  # symbolic or named dim; None with value set for literals
    value: int | None
    loc: Loc
    wildcard: bool

    def __init__(self, name: str | None, value: int | None, loc: Loc, wildcard: bool = False) -> None:
        self.name = name
        self.value = value
        self.loc = loc
        self.wildcard = wildcard


class TensorTypeSpec(Record):
    """`bf16[batch, seq, 64]`: a tensor type as written."""

    __slots__ = ("dtype", "dims", "loc")
    dtype: str | None
    dims: list[DimSpec]
    loc: Loc

    def __init__(self, dtype: str | None, dims: list[DimSpec], loc: Loc) -> None:
        self.dtype = dtype
        self.dims = dims
        self.loc = loc


class ScalarTypeSpec(Record):
    """`int`, `float` ...: a scalar parameter's type as written."""

    __slots__ = ("name", "loc")
    name: str
    loc: Loc

    def __init__(self, name: str, loc: Loc) -> None:
        self.name = name
        self.loc = loc


class Stmt(Record):
    """A statement, where it starts in the source."""

    __slots__ = ("loc",)
    loc: Loc

    def __init__(self, loc: Loc) -> None:
        self.loc = loc


class LetBinding(Record):
    """`name = value` in a `let`."""

    __slots__ = ("name", "value", "loc")
    name: str
    value: Expr
    loc: Loc

    def __init__(self, name: str, value: Expr, loc: Loc) -> None:
        self.name = name
        self.value = value
        self.loc = loc


class Let(Stmt):
    """`let d = 64, heads = 8`: constants."""

    __slots__ = ("bindings",)
    bindings: list[LetBinding]

    def __init__(self, loc: Loc, bindings: list[LetBinding]) -> None:
        self.loc = loc
        self.bindings = bindings


class Assign(Stmt):
    """`h = expr`: a tensor (or value) bound to a name."""

    __slots__ = ("name", "value")
    name: str
    value: Expr

    def __init__(self, loc: Loc, name: str, value: Expr) -> None:
        self.loc = loc
        self.name = name
        self.value = value


class Return(Stmt):
    """`return expr` in a block."""

    __slots__ = ("value",)
    value: Expr

    def __init__(self, loc: Loc, value: Expr) -> None:
        self.loc = loc
        self.value = value


class If(Stmt):
    """`if cond { ... } else { ... }`, decided at elaboration."""

    __slots__ = ("cond", "body", "orelse")
    cond: Expr
    body: list[Stmt]
    orelse: list[Stmt]

    def __init__(self, loc: Loc, cond: Expr, body: list[Stmt], orelse: list[Stmt]) -> None:
        self.loc = loc
        self.cond = cond
        self.body = body
        self.orelse = orelse


class Input(Stmt):
    """`input tokens: int32[batch, seq] where ...`: a model input."""

    __slots__ = ("name", "type", "where")
    name: str
    type: TensorTypeSpec
    where: Expr | None

    def __init__(self, loc: Loc, name: str, type: TensorTypeSpec, where: Expr | None) -> None:
        self.loc = loc
        self.name = name
        self.type = type
        self.where = where


class Output(Stmt):
    """`output logits = expr`: a model output."""

    __slots__ = ("name", "value")
    name: str
    value: Expr

    def __init__(self, loc: Loc, name: str, value: Expr) -> None:
        self.loc = loc
        self.name = name
        self.value = value


class Import(Stmt):
    """`import "file.arch"`: another file's blocks and constants."""

    __slots__ = ("path",)
    path: str

    def __init__(self, loc: Loc, path: str) -> None:
        self.loc = loc
        self.path = path


class Family(Stmt):
    """`family llama`: parameters follow that family's HF transformers checkpoint layout."""

    __slots__ = ("name",)
    name: str

    def __init__(self, loc: Loc, name: str) -> None:
        self.loc = loc
        self.name = name


class Shard(Stmt):
    """`shard "layers.*.mlp.w2" replicate`: overrides the sharding planner for matching components."""

    __slots__ = ("pattern", "placement", "placement_loc")
    pattern: str
    placement: str
    placement_loc: Loc

    def __init__(self, loc: Loc, pattern: str, placement: str, placement_loc: Loc) -> None:
        self.loc = loc
        self.pattern = pattern
        self.placement = placement
        self.placement_loc = placement_loc


class Target(Stmt):
    """`target n150`: the hardware the design is meant for; `check` warns against it."""

    __slots__ = ("name",)
    name: str

    def __init__(self, loc: Loc, name: str) -> None:
        self.loc = loc
        self.name = name


class Param(Record):
    """A block parameter: its type or default, or both."""

    __slots__ = ("name", "type", "default", "loc")
    name: str
    type: TensorTypeSpec | ScalarTypeSpec | None
    default: Expr | None
    loc: Loc

    def __init__(self, name: str, type: TensorTypeSpec | ScalarTypeSpec | None, default: Expr | None, loc: Loc) -> None:
        self.name = name
        self.type = type
        self.default = default
        self.loc = loc


class BlockDef(Stmt):
    """`block name(params) -> type { ... }`: a block definition."""

    __slots__ = ("name", "params", "returns", "kind", "body", "file")
    name: str
    params: list[Param]
    returns: TensorTypeSpec | None
    kind: str | None
    body: list[Stmt]
    file: str

    def __init__(self, loc: Loc, name: str, params: list[Param], returns: TensorTypeSpec | None, kind: str | None,
                 body: list[Stmt], file: str = "") -> None:
        self.loc = loc
        self.name = name
        self.params = params
        self.returns = returns
        self.kind = kind
        self.body = body
        self.file = file


class Module(Record):
    """One parsed file."""

    __slots__ = ("name", "name_loc", "items", "file", "is_stdlib")
    name: str | None
    name_loc: Loc | None
    items: list[Stmt]
    file: str
    is_stdlib: bool

    def __init__(self, name: str | None, name_loc: Loc | None, items: list[Stmt] | None = None, file: str = "",
                 is_stdlib: bool = False) -> None:
        self.name = name
        self.name_loc = name_loc
        self.items = [] if items is None else items
        self.file = file
        self.is_stdlib = is_stdlib

