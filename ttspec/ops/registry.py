"""The op registry: what an op is, and the one table of every op ttspec knows.

An OpDef is what an op means: signature, shape rule, parameters, FLOPs, category, how its
weights live on a device and its sharding rule. How each backend computes it is a row of that
backend's lowering table (ttspec/backends/torch/lower.py, ttspec/backends/ttnn/lower.py).
Each group of ops lives in its own module of this package (embeddings, linear, norms,
attention, elementwise, collectives); everything richer (attention blocks, SwiGLU, norms
with defaults) is written in the .arch language itself, in ttspec/stdlib/. Passes, reports
and backends look ops up here; none of them names an op outside its lowering table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, NamedTuple

from ..ir.types import TensorType

REQUIRED = object()
# One weight's element count: 2**48 is 256x the largest weight of any model ttspec knows about (2**30
# elements), and far below what torch can allocate (2**63 bytes, or it fails building the program's model).
MAX_PARAM_ELEMENTS = 1 << 48


class OpError(Exception):
    """A shape or attribute problem; the elaborator attaches the source location."""

    def __init__(self, message: str, hint: str | None = None, arg: str | None = None):
        super().__init__(message)
        self.message, self.hint, self.arg = message, hint, arg


class Unsupported(Exception):
    """A backend cannot lower this use of an op; the reason is shown before any code is written."""

    def __init__(self, reason: str, hint: str | None = None):
        super().__init__(reason)
        self.reason, self.hint = reason, hint


@dataclass(frozen=True)
class ArgSpec:
    """One argument of an op: name, kind and default."""

    name: str
    kind: str  # tensor | int | float | bool | str | rope | ref
    default: object = REQUIRED
    optional: bool = False  # may be `none`


class ParamInit(NamedTuple):
    """How a fresh model starts one parameter (the family's rule, ttspec/families/init.py, gives the
    numbers): `draw` "normal" is normal(0, the rule's std) for a weight matrix, a table or a bank of
    experts; "output" the same for the op's own projection back into its input's width (an expert bank's
    down projection), which a rule that scales residual projections scales; "constant" is `value` (a
    bias's 0, a norm's gain that makes it scale by 1: 1 - offset)."""

    draw: str
    value: float = 0.0


NORMAL = ParamInit("normal")
OUTPUT = ParamInit("output")
ZERO = ParamInit("constant", 0.0)


def unit_gain(offset: float = 0.0) -> ParamInit:
    """A norm's gain applied as (offset + weight): it starts where the norm scales by 1."""
    return ParamInit("constant", 1.0 - offset)


@dataclass(frozen=True)
class ParamSpec:
    """The shape of a parameter an op creates, what it is tied to, and how a fresh model starts it."""

    shape: tuple[int, ...]
    tied_to: str | None = None  # full name of the parameter this one shares storage with
    init: ParamInit = NORMAL  # a weight matrix or table unless the op says otherwise (biases, norm gains)

    def __post_init__(self):
        numel = 1
        for d in self.shape:
            numel *= d
        if numel > MAX_PARAM_ELEMENTS:
            raise OpError(f"a weight of shape [{', '.join(map(str, self.shape))}] has {numel:,} elements; "
                          f"one weight is limited to 2**48",
                          hint="the largest weights of real models have about 2**30 elements; check the widths")


@dataclass(frozen=True)
class ParamRef:
    """A resolved `tied = <module>` argument: that module's weight."""

    name: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Config:
    """A structured value such as `rope(theta = 10000)`; immutable and hashable."""

    kind: str
    fields: tuple[tuple[str, object], ...]

    def get(self, key: str):
        return dict(self.fields)[key]

    def __str__(self) -> str:
        return f"{self.kind}({', '.join(f'{k}={v!r}' for k, v in self.fields)})"


@dataclass
class ShapeContext:
    """What a shape rule may consult beyond its inputs: bounds on symbolic dims."""

    bounds: dict[str, int] = field(default_factory=dict)


class Storage(Enum):
    """How a parameter is held in device DRAM by the TT-NN programs."""

    TABLE = "table"  # an embedding table: bf16, row-major (ttnn.embedding reads rows)
    MATRIX = "matrix"  # a weight matrix: the chosen weight dtype, TILE layout
    VECTOR = "vector"  # norm weights and biases: bf16, TILE layout


class NoAttrs(NamedTuple):
    """The attributes of an op that has none (add, mul, the activations ...)."""


# An op's attributes are one instance of its attrs class (OpDef.attrs): a typing.NamedTuple whose fields
# are the op's non-tensor arguments, in the order of its ArgSpecs and with their defaults, then any field
# a lowering pass sets (with `_replace`: attrs are immutable). NamedTuple, not a frozen dataclass: creating
# one at import costs ~0.07 ms against ~0.5 ms, and the core commands' start-up is budgeted (issue 19).
ShapeRule = Callable[[list[TensorType], Any, ShapeContext], TensorType]
ParamRule = Callable[[list[TensorType], Any], dict[str, ParamSpec]]
FlopRule = Callable[[list[tuple[int, ...]], tuple[int, ...], Any], int]
ShardRule = Callable[[Any, Any, list], Any]  # (planner, node, input layouts) -> node


def _no_params(ins, attrs) -> dict:
    return {}


def no_flops(ins, out, attrs) -> int:
    return 0


@dataclass(frozen=True)
class OpDef:
    """A primitive op: its arguments, the class of its attributes, and its rules for shapes, parameters and
    FLOPs (each rule reads the op's attrs by field: `attrs.out`)."""

    name: str
    args: tuple[ArgSpec, ...]
    shape: ShapeRule
    attrs: type = NoAttrs  # its attributes' NamedTuple class (see NoAttrs)
    params: ParamRule = _no_params
    flops: FlopRule = no_flops
    doc: str = ""
    kind: str | None = None  # category in parameter breakdowns when used outside a block with a `kind`
    in_spec: bool = True  # False: made only by lowering passes or the planner, never written in a spec
    symbol: str | None = None  # infix symbol for diagrams ("+")
    storage: tuple[tuple[str, Storage], ...] = ()  # local parameter name -> device storage
    shard: ShardRule | None = None
    var_name: Callable[[Any], str] = lambda node: "h"  # a readable variable name for its result
    results: tuple[str, ...] = ()  # an op returning a tuple: the default names of its parts
    part_op: str | None = None  # ... and the op that selects one part (by its `index` attr)

    def storage_of(self, local: str) -> Storage:
        return dict(self.storage).get(local, Storage.VECTOR)


REGISTRY: dict[str, OpDef] = {}


def register(opdef: OpDef) -> OpDef:
    assert opdef.name not in REGISTRY, opdef.name
    REGISTRY[opdef.name] = opdef
    return opdef


def T(name: str) -> ArgSpec:
    return ArgSpec(name, "tensor")


# ---------------------------------------------------------------- helpers shared by shape rules
def last_dim(t: TensorType, what: str) -> int:
    if t.rank == 0:
        raise OpError(f"{what} needs a tensor with at least one dim, got {t}")
    d = t.shape[-1]
    if not isinstance(d, int):
        raise OpError(f"{what} needs a concrete last dim, got symbolic `{d}` in {t}",
                      hint="the feature dim must be a number, e.g. [batch, seq, 256]")
    return d


def float_input(t: TensorType, what: str) -> None:
    if t.is_int:
        raise OpError(f"{what} needs a float tensor, got {t}",
                      hint="token ids must go through embedding(...) first")


def positive(value: int, arg: str) -> int:
    """`value`, the argument `arg` of an op, when it is positive."""
    if value <= 0:
        raise OpError(f"{arg} must be positive, got {value}", arg=arg)
    return value


# ---------------------------------------------------------------- configs (structured values)
@dataclass(frozen=True)
class ConfigDef:
    """A config value (e.g. a rotary config): its fields and their check."""

    name: str
    fields: tuple[ArgSpec, ...]
    check: Callable[[dict], None]
    doc: str = ""


CONFIGS: dict[str, ConfigDef] = {}


def register_config(cdef: ConfigDef) -> ConfigDef:
    CONFIGS[cdef.name] = cdef
    return cdef
