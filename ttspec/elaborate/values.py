"""The elaborator's values (tensors, symbolic dims, module references, bindings), scopes, and the
limits every spec is held to."""

from __future__ import annotations

import operator

from ..errors import Loc
from ..frontend import ast
from ..frontend.source import STDLIB_DIR as STDLIB_DIR  # where the elaborator and its users find it
from ..frontend.source import STDLIB_PREFIX
from ..ir.graph import Graph
from ..ir.types import TensorType
from ..ops import REGISTRY as _ALL_OPS
from ..ops import Config
from ..records import FrozenRecord, Record

# The primitives a spec may call; ops made by lowering passes and the planner are not among them.
REGISTRY = {name: opdef for name, opdef in _ALL_OPS.items() if opdef.in_spec}
INT_LIMIT = 1 << 63
MAX_REPEAT = 100_000
MAX_IMPORT_DEPTH = 32  # imports chained deeper than this are an error, not a RecursionError
MAX_BLOCK_DEPTH = 48  # blocks calling blocks deeper than this (real specs nest 3 or 4 deep)
MAX_INSTANCES = 5_000  # block instances per spec: a bound on exponential instantiation (f calls g twice, ...)
MAX_NODES = 20_000  # graph nodes per spec, over all graphs
MAX_STEPS = 100_000  # expressions evaluated per spec: elaboration stays well under 2 s whatever the nesting
MAX_LAYER_STEPS = 2_000_000  # expressions evaluated for per-layer repeat arguments (100,000 layers x ~20)
MAX_VARIANTS = 64  # distinct layer variants of one repeat: each is a class in the generated program
MAX_LIST = 10_000  # items of one list value
LAYER = "layer"  # the layer index, bound only in a repeat call's arguments after the first
LAYER_HINT = ("`layer` is the 0-based layer index inside `repeat(N) block(x, ...)`'s arguments, e.g. "
              "`repeat(n) decoder(h, act = [\"gelu\", \"relu\"][layer % 2])`; a block gets per-layer values "
              "through its parameters")
SHARD_PLACEMENTS = ("replicate", "column", "row")
ARITHMETIC = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
              "//": operator.floordiv, "%": operator.mod, "**": operator.pow}
# Component names become attributes of generated classes: these would shadow what the
# generated torch and TT-NN classes (and nn.Module) already define.
RESERVED_LABELS = {
    "forward", "load_weights", "load_hf_state_dict", "device", "weights_dtype", "rotary", "training",
    "state_dict", "load_state_dict", "parameters", "named_parameters", "modules", "children", "buffers",
    "register_buffer", "register_parameter", "to", "eval", "train", "cuda", "cpu", "float", "half", "double",
    "apply", "zero_grad", "type", "weight", "bias", "requires_grad_", "extra_repr", "add_module",
}
KEYWORDS = {"model", "let", "input", "output", "block", "kind", "return", "if", "else", "import",
            "repeat", "as", "where", "true", "false", "none", "and", "or", "not"}


# ---------------------------------------------------------------- values
class Tensor(FrozenRecord):
    """A tensor value during elaboration: its graph node and type."""

    node: str
    type: TensorType


class Sym(FrozenRecord):
    """A symbolic dim bound by unification (e.g. `seq`); usable in shapes, not in arithmetic."""

    name: str


class ModuleRef(FrozenRecord):
    """A reference to a module (a labelled block instance) by path."""

    path: str
    graph_id: int


class Binding(Record):
    """A name's value in a scope, with where it was written."""

    value: object
    origin: Loc | None  # where the value was first written down, for notes in errors


def describe(value) -> str:
    if isinstance(value, tuple):
        return f"list of {len(value)}"
    if isinstance(value, Tensor):
        return f"tensor {value.type}"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "none"
    if isinstance(value, Sym):
        return f"symbolic dim `{value.name}`"
    if isinstance(value, Config):
        return f"{value.kind} config"
    if isinstance(value, ModuleRef):
        return f"module `{value.path}`"
    return type(value).__name__


def show(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, Sym):
        return value.name
    if isinstance(value, Tensor):
        return str(value.type)
    if isinstance(value, tuple):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, Config):
        return f"{value.kind}(" + ", ".join(f"{k} = {show(v)}" for k, v in value.fields) + ")"
    return str(value)


class Scope:
    def __init__(self, parent: Scope | None, module: str, graph: Graph, file: str):
        self.parent = parent
        self.vars: dict[str, Binding] = {}
        self.module = module
        self.graph = graph
        self.file = file
        self.labels: dict[str, Loc | None] = {}  # child module labels used in this scope
        self.label_suffix: dict[str, int] = {}  # next free `_k` per label base, for unnamed calls

    def lookup(self, name: str) -> Binding | None:
        scope = self
        while scope is not None:
            if name in scope.vars:
                return scope.vars[name]
            scope = scope.parent
        return None

    def visible_names(self) -> set[str]:
        names, scope = set(), self
        while scope is not None:
            names |= set(scope.vars)
            scope = scope.parent
        return names


class BlockReturn(Exception):
    def __init__(self, value, loc):
        self.value, self.loc = value, loc


def is_stdlib(file: str) -> bool:
    return file.startswith(STDLIB_PREFIX)


class BlockEntry(Record):
    """A defined block and the scope of the file that defined it."""

    defn: ast.BlockDef
    scope: Scope  # the global scope of the file that defined it (lexical scoping)


def join_path(a: str, b: str) -> str:
    return f"{a}.{b}" if a else b
