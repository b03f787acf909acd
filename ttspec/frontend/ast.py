"""AST dataclasses produced by the parser; plain data, no behaviour."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import Loc


@dataclass
class Expr:
    loc: Loc


@dataclass
class Literal(Expr):
    value: object  # int, float, str, bool or None


@dataclass
class Name(Expr):
    id: str


@dataclass
class BinOp(Expr):
    op: str
    left: Expr
    right: Expr


@dataclass
class Compare(Expr):
    ops: list[str]
    operands: list[Expr]


@dataclass
class BoolOp(Expr):
    op: str  # "and" / "or"
    values: list[Expr]


@dataclass
class UnaryOp(Expr):
    op: str  # "-" / "not"
    operand: Expr


@dataclass
class ListExpr(Expr):
    """`[a, b, ...]`: a list of values (parameters, never tensors)."""

    items: list[Expr]


@dataclass
class Subscript(Expr):
    """`xs[i]`: one element of a list; a negative index counts from the end, as in Python."""

    value: Expr
    index: Expr


@dataclass
class Arg:
    name: str | None  # None for positional
    value: Expr
    loc: Loc


@dataclass
class Call(Expr):
    func: str
    args: list[Arg]
    label: str | None
    func_loc: Loc


@dataclass
class RepeatCall(Expr):
    count: Expr
    call: Call


@dataclass
class DimSpec:
    name: str | None  # symbolic or named dim; None with value set for literals
    value: int | None
    loc: Loc
    wildcard: bool = False


@dataclass
class TensorTypeSpec:
    dtype: str | None
    dims: list[DimSpec]
    loc: Loc


@dataclass
class ScalarTypeSpec:
    name: str
    loc: Loc


@dataclass
class Stmt:
    loc: Loc


@dataclass
class LetBinding:
    name: str
    value: Expr
    loc: Loc


@dataclass
class Let(Stmt):
    bindings: list[LetBinding]


@dataclass
class Assign(Stmt):
    name: str
    value: Expr


@dataclass
class Return(Stmt):
    value: Expr


@dataclass
class If(Stmt):
    cond: Expr
    body: list[Stmt]
    orelse: list[Stmt]


@dataclass
class Input(Stmt):
    name: str
    type: TensorTypeSpec
    where: Expr | None


@dataclass
class Output(Stmt):
    name: str
    value: Expr


@dataclass
class Import(Stmt):
    path: str


@dataclass
class Family(Stmt):
    """`family llama`: parameters follow that family's HF transformers checkpoint layout."""

    name: str


@dataclass
class Shard(Stmt):
    """`shard "layers.*.mlp.w2" replicate`: overrides the sharding planner for matching components."""

    pattern: str
    placement: str
    placement_loc: Loc


@dataclass
class Target(Stmt):
    """`target n150`: the hardware the design is meant for; `check` warns against it."""

    name: str


@dataclass
class Param:
    name: str
    type: TensorTypeSpec | ScalarTypeSpec | None
    default: Expr | None
    loc: Loc


@dataclass
class BlockDef(Stmt):
    name: str
    params: list[Param]
    returns: TensorTypeSpec | None
    kind: str | None
    body: list[Stmt]
    file: str = ""


@dataclass
class Module:
    """One parsed file."""

    name: str | None
    name_loc: Loc | None
    items: list[Stmt] = field(default_factory=list)
    file: str = ""
    is_stdlib: bool = False
