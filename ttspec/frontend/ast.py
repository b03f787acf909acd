"""AST classes produced by the parser; plain data, no behaviour. Records (ttspec/records.py), not
dataclasses: a cold start creates all 30 at import (issue 19)."""

from __future__ import annotations

from ..errors import Loc
from ..records import Record, fresh


class Expr(Record):
    """An expression, where it starts in the source."""

    loc: Loc


class Literal(Expr):
    """`64`, `1e-5`, `"gelu"`, `true`, `none`."""

    value: object  # int, float, str, bool or None


class Name(Expr):
    """A variable, parameter or dimension by name."""

    id: str


class BinOp(Expr):
    """`a + b`, `a * b`, `a ** b` ..."""

    op: str
    left: Expr
    right: Expr


class Compare(Expr):
    """`a < b <= c`: a chain of comparisons, as in Python."""

    ops: list[str]
    operands: list[Expr]


class BoolOp(Expr):
    """`a and b`, `a or b`."""

    op: str  # "and" / "or"
    values: list[Expr]


class UnaryOp(Expr):
    """`-a`, `not a`."""

    op: str  # "-" / "not"
    operand: Expr


class ListExpr(Expr):
    """`[a, b, ...]`: a list of values (parameters, never tensors)."""

    items: list[Expr]


class Subscript(Expr):
    """`xs[i]`: one element of a list; a negative index counts from the end, as in Python."""

    value: Expr
    index: Expr


class Arg(Record):
    """One argument of a call, positional or by name."""

    name: str | None  # None for positional
    value: Expr
    loc: Loc


class Call(Expr):
    """`attention(h, heads = 8) as attn`: a block or primitive applied, with its label."""

    func: str
    args: list[Arg]
    label: str | None
    func_loc: Loc


class RepeatCall(Expr):
    """`repeat(32) decoder(h)`: a block applied `count` times in sequence."""

    count: Expr
    call: Call


class DimSpec(Record):
    """One dimension of a tensor type: a name, a number or `*`."""

    name: str | None  # symbolic or named dim; None with value set for literals
    value: int | None
    loc: Loc
    wildcard: bool = False


class TensorTypeSpec(Record):
    """`bf16[batch, seq, 64]`: a tensor type as written."""

    dtype: str | None
    dims: list[DimSpec]
    loc: Loc


class ScalarTypeSpec(Record):
    """`int`, `float` ...: a scalar parameter's type as written."""

    name: str
    loc: Loc


class Stmt(Record):
    """A statement, where it starts in the source."""

    loc: Loc


class LetBinding(Record):
    """`name = value` in a `let`."""

    name: str
    value: Expr
    loc: Loc


class Let(Stmt):
    """`let d = 64, heads = 8`: constants."""

    bindings: list[LetBinding]


class Assign(Stmt):
    """`h = expr`: a tensor (or value) bound to a name."""

    name: str
    value: Expr


class Return(Stmt):
    """`return expr` in a block."""

    value: Expr


class If(Stmt):
    """`if cond { ... } else { ... }`, decided at elaboration."""

    cond: Expr
    body: list[Stmt]
    orelse: list[Stmt]


class Input(Stmt):
    """`input tokens: int32[batch, seq] where ...`: a model input."""

    name: str
    type: TensorTypeSpec
    where: Expr | None


class Output(Stmt):
    """`output logits = expr`: a model output."""

    name: str
    value: Expr


class Import(Stmt):
    """`import "file.arch"`: another file's blocks and constants."""

    path: str


class Family(Stmt):
    """`family llama`: parameters follow that family's HF transformers checkpoint layout."""

    name: str


class Shard(Stmt):
    """`shard "layers.*.mlp.w2" replicate`: overrides the sharding planner for matching components."""

    pattern: str
    placement: str
    placement_loc: Loc


class Target(Stmt):
    """`target n150`: the hardware the design is meant for; `check` warns against it."""

    name: str


class Param(Record):
    """A block parameter: its type or default, or both."""

    name: str
    type: TensorTypeSpec | ScalarTypeSpec | None
    default: Expr | None
    loc: Loc


class BlockDef(Stmt):
    """`block name(params) -> type { ... }`: a block definition."""

    name: str
    params: list[Param]
    returns: TensorTypeSpec | None
    kind: str | None
    body: list[Stmt]
    file: str = ""


class Module(Record):
    """One parsed file."""

    name: str | None
    name_loc: Loc | None
    items: list[Stmt] = fresh(list)
    file: str = ""
    is_stdlib: bool = False

