"""AST -> graph IR. Evaluates parameters, instantiates components, infers shapes as it goes.

Blocks are instantiated with their tensor signatures unified against the arguments, which
binds dim names (`x: [b, s, hidden]` binds `hidden`). A `repeat(N) block(x)` elaborates
the block once into a body graph and keeps N beside it. When its other arguments depend on
`layer` (the 0-based layer index, bound only there), they are evaluated for every layer, and
each distinct set of values (a variant) is elaborated once: the repeat node keeps the variants'
bodies and which variant each layer uses (see ir.graph.layer_variants).
"""

from __future__ import annotations

import keyword
import math
import operator
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ArchError, Diagnostic, Loc, Note, did_you_mean, nearest_divisors
from ..frontend import ast
from ..frontend.parser import parse_source, read_source
from ..ir.graph import Graph, Model, ModuleInfo, Node, Param
from ..ir.types import DTYPES, INT_DTYPES, TensorType
from ..ops import ACTIVATIONS, ADD, CONFIGS, MUL, REQUIRED, SCALE, ArgSpec, Config, OpError, ParamRef, ShapeContext
from ..ops import REGISTRY as _ALL_OPS

# The primitives a spec may call; ops made by lowering passes and the planner are not among them.
REGISTRY = {name: opdef for name, opdef in _ALL_OPS.items() if opdef.in_spec}
STDLIB_DIR = Path(__file__).resolve().parent.parent / "stdlib"
STDLIB_PREFIX = "<stdlib>/"
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
@dataclass(frozen=True)
class Tensor:
    node: str
    type: TensorType


@dataclass(frozen=True)
class Sym:
    """A symbolic dim bound by unification (e.g. `seq`); usable in shapes, not in arithmetic."""

    name: str


@dataclass(frozen=True)
class ModuleRef:
    path: str
    graph_id: int


@dataclass
class Binding:
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


class _Return(Exception):
    def __init__(self, value, loc):
        self.value, self.loc = value, loc


def is_stdlib(file: str) -> bool:
    return file.startswith(STDLIB_PREFIX)


@dataclass
class BlockEntry:
    defn: ast.BlockDef
    scope: Scope  # the global scope of the file that defined it (lexical scoping)


@dataclass
class Elaborator:
    root_dir: Path
    blocks: dict[str, BlockEntry] = field(default_factory=dict)
    warnings: list[Diagnostic] = field(default_factory=list)
    bounds: dict[str, int] = field(default_factory=dict)
    symbols: list[str] = field(default_factory=list)
    loaded: dict[str, Scope] = field(default_factory=dict)
    loading: list[str] = field(default_factory=list)
    assignments: list[tuple[Graph, str, str, Loc]] = field(default_factory=list)
    target: tuple[str, Loc] | None = None
    family: str | None = None
    family_loc: Loc | None = None
    active: list[tuple[str, Loc]] = field(default_factory=list)  # blocks being instantiated, outermost first
    instances: int = 0
    nodes: int = 0
    steps: int = 0
    layer_steps: int = 0
    shard_overrides: list = field(default_factory=list)

    # ------------------------------------------------------------ files and imports
    def load_stdlib(self, graph: Graph) -> None:
        for path in sorted(STDLIB_DIR.glob("*.arch")):
            name = STDLIB_PREFIX + path.name
            module = parse_source(path.read_text(encoding="utf-8"), name, is_stdlib=True)
            scope = Scope(None, "", graph, name)
            self.run_file(module, scope, top=False)

    def run_file(self, module: ast.Module, scope: Scope, top: bool) -> None:
        for item in module.items:
            if isinstance(item, ast.BlockDef):
                self.define_block(item, scope)
        for item in module.items:
            if isinstance(item, ast.BlockDef):
                continue
            if isinstance(item, ast.Import):
                self.do_import(item, scope)
            elif not top and not isinstance(item, ast.Let):
                raise ArchError("an imported file may hold only `let`, `import` and `block` definitions",
                                item.loc, hint="move model statements into the spec that imports this file")
            else:
                self.exec_stmt(item, scope, top_level=True)

    def define_block(self, defn: ast.BlockDef, scope: Scope) -> None:
        self.check_name(defn.name, defn.loc)
        previous = self.blocks.get(defn.name)
        if previous is not None and not is_stdlib(previous.defn.file):
            raise ArchError(f"block `{defn.name}` is defined twice", defn.loc,
                            notes=[Note("first defined here", previous.defn.loc)])
        if defn.name in REGISTRY or defn.name in CONFIGS or defn.name in ("activation", "repeat"):
            raise ArchError(f"`{defn.name}` is a primitive; a block cannot take its name", defn.loc,
                            hint=f"rename the block, e.g. `my_{defn.name}`")
        seen: dict[str, Loc] = {}
        for p in defn.params:
            self.check_name(p.name, p.loc)
            if p.name in seen:
                raise ArchError(f"parameter `{p.name}` appears twice in block `{defn.name}`", p.loc,
                                notes=[Note("first here", seen[p.name])])
            seen[p.name] = p.loc
        self.blocks[defn.name] = BlockEntry(defn, scope)

    def do_import(self, stmt: ast.Import, scope: Scope) -> None:
        if is_stdlib(scope.file):
            raise ArchError("the standard library cannot import files", stmt.loc)
        base = Path(scope.file).resolve().parent
        target = (base / stmt.path).resolve()
        root = self.root_dir.resolve()
        if os.path.isabs(stmt.path) or (root != target and root not in target.parents):
            raise ArchError(f"import \"{stmt.path}\" leaves the spec's directory {self.root_dir}",
                            stmt.loc, hint="imports are confined to the spec's own directory tree")
        if target.suffix != ".arch":
            raise ArchError(f"import \"{stmt.path}\": only .arch files can be imported", stmt.loc)
        key = str(target)
        if self.loading and key == self.loading[-1]:
            raise ArchError(f"import \"{stmt.path}\": a file cannot import itself", stmt.loc)
        if key in self.loading:
            cycle = self.loading[self.loading.index(key):] + [key]
            raise ArchError(f"import cycle: {' -> '.join(Path(p).name for p in cycle)}", stmt.loc,
                            hint="move what both files need into a third file that both import")
        if len(self.loading) > MAX_IMPORT_DEPTH:
            raise ArchError(f"imports nested more than {MAX_IMPORT_DEPTH} deep", stmt.loc,
                            hint="import the shared files from the spec itself")
        if key in self.loaded:
            return
        if not target.is_file():
            raise ArchError(f"import \"{stmt.path}\": no such file", stmt.loc,
                            hint=f"looked for {target}")
        name = os.path.relpath(target)
        module = parse_source(read_source(target), name, imported=True)
        if module.name is not None:
            raise ArchError("an imported file must not start with `model`", module.name_loc,
                            hint="keep shared blocks and lets in a file without a model header")
        self.loading.append(key)
        try:
            self.run_file(module, scope, top=False)
        except ArchError as e:
            d = e.diagnostic
            if d.loc is not None and d.loc.file == name:
                d.notes.append(Note(f"imported from {stmt.loc.file}", stmt.loc))
            raise
        finally:
            self.loading.pop()
        self.loaded[key] = scope

    # ------------------------------------------------------------ statements
    def exec_block(self, stmts: list[ast.Stmt], scope: Scope) -> None:
        for stmt in stmts:
            self.exec_stmt(stmt, scope, top_level=False)

    def exec_stmt(self, stmt: ast.Stmt, scope: Scope, top_level: bool) -> None:
        try:
            self._exec_stmt(stmt, scope, top_level)
        except RecursionError:
            raise ArchError("expression nested too deeply", stmt.loc,
                            hint="split it into named steps") from None

    def _exec_stmt(self, stmt, scope: Scope, top_level: bool) -> None:
        if isinstance(stmt, ast.Let):
            for b in stmt.bindings:
                self.check_name(b.name, b.loc)
                value = self.eval(b.value, scope)
                if isinstance(value, Tensor):
                    raise ArchError(f"`let {b.name}` holds a tensor; `let` is for parameters",
                                    b.value.loc, hint=f"write `{b.name} = ...` for tensors")
                if b.name in scope.vars:
                    raise ArchError(f"`{b.name}` is already defined", b.loc,
                                    notes=[Note("defined here", scope.vars[b.name].origin)])
                scope.vars[b.name] = Binding(value, self.origin_of(b.value, scope) or b.value.loc)
        elif isinstance(stmt, ast.Assign):
            self.check_name(stmt.name, stmt.loc)
            old = scope.vars.get(stmt.name)
            value = self.eval(stmt.value, scope)
            if old is not None and not isinstance(old.value, Tensor):
                raise ArchError(f"cannot reassign `{stmt.name}`: parameters are immutable", stmt.loc,
                                notes=[Note("defined here", old.origin)])
            scope.vars[stmt.name] = Binding(value, stmt.value.loc)
            if isinstance(value, Tensor):
                node = scope.graph.node(value.node)
                if node.hint is None and node.op != "input":
                    node.hint, node.hint_scope = stmt.name, scope.module
                if not is_stdlib(stmt.loc.file):
                    self.assignments.append((scope.graph, value.node, stmt.name, stmt.loc))
        elif isinstance(stmt, ast.Return):
            if top_level:
                raise ArchError("`return` outside a block", stmt.loc,
                                hint="model outputs are declared with `output NAME = ...`")
            raise _Return(self.eval(stmt.value, scope), stmt.value.loc)
        elif isinstance(stmt, ast.If):
            cond = self.eval(stmt.cond, scope)
            if not isinstance(cond, bool):
                raise ArchError(f"`if` needs a bool, got {describe(cond)}", stmt.cond.loc)
            self.exec_block(stmt.body if cond else stmt.orelse, scope)
        elif isinstance(stmt, ast.Input):
            self.exec_input(stmt, scope)
        elif isinstance(stmt, ast.Output):
            value = self.eval(stmt.value, scope)
            if not isinstance(value, Tensor):
                raise ArchError(f"output `{stmt.name}` must be a tensor, got {describe(value)}",
                                stmt.value.loc)
            if stmt.name in scope.graph.outputs:
                raise ArchError(f"output `{stmt.name}` declared twice", stmt.loc)
            scope.graph.outputs[stmt.name] = value.node
            scope.graph.node(value.node).hint = stmt.name
        elif isinstance(stmt, ast.Import):
            raise ArchError("`import` belongs at the top of a file", stmt.loc)
        elif isinstance(stmt, ast.Shard):
            self.require_top_level(stmt, scope, top_level, "shard")
            if stmt.placement not in SHARD_PLACEMENTS:
                raise ArchError(f"unknown placement `{stmt.placement}`", stmt.placement_loc,
                                hint=did_you_mean(stmt.placement, SHARD_PLACEMENTS)
                                or "placements: " + ", ".join(SHARD_PLACEMENTS))
            self.shard_overrides.append(stmt)
        elif isinstance(stmt, ast.Family):
            from ..checkpoints import FAMILIES

            self.require_top_level(stmt, scope, top_level, "family")
            if stmt.name not in FAMILIES:
                raise ArchError(f"unknown checkpoint family `{stmt.name}`", stmt.loc,
                                hint=" ".join(filter(None, (did_you_mean(stmt.name, FAMILIES),
                                                               "families: " + ", ".join(FAMILIES)))))
            if self.family_loc is not None:
                raise ArchError("`family` given twice", stmt.loc, notes=[Note("first here", self.family_loc)])
            self.family, self.family_loc = stmt.name, stmt.loc
        elif isinstance(stmt, ast.Target):
            from ..targets import TARGETS

            self.require_top_level(stmt, scope, top_level, "target")
            if stmt.name not in TARGETS:
                raise ArchError(f"unknown target `{stmt.name}`", stmt.loc,
                                hint=did_you_mean(stmt.name, TARGETS) or "targets: " + ", ".join(TARGETS))
            if self.target is not None:
                raise ArchError("`target` given twice", stmt.loc, notes=[Note("first here", self.target[1])])
            self.target = (stmt.name, stmt.loc)
        else:  # pragma: no cover - the grammar produces no other statements
            raise ArchError(f"unexpected statement {type(stmt).__name__}", stmt.loc)

    def require_top_level(self, stmt: ast.Stmt, scope: Scope, top_level: bool, keyword: str) -> None:
        if not top_level or scope.parent is not None:
            raise ArchError(f"`{keyword}` belongs at the top level of a spec", stmt.loc)

    def check_name(self, name: str, loc: Loc) -> None:
        if name.startswith("__"):
            raise ArchError(f"names starting with `__` are reserved: `{name}`", loc)
        if name in KEYWORDS:
            raise ArchError(f"`{name}` is a reserved word and cannot be a name", loc,
                            hint=f"pick another name, e.g. `{name}_value`")

    def exec_input(self, stmt: ast.Input, scope: Scope) -> None:
        if scope.parent is not None or scope.module:
            raise ArchError("`input` is only allowed at the top level of a spec", stmt.loc)
        self.check_name(stmt.name, stmt.loc)
        dtype = stmt.type.dtype or "int32"
        if dtype not in DTYPES:
            raise ArchError(f"unknown dtype `{dtype}`", stmt.type.loc,
                            hint="dtypes: " + ", ".join(DTYPES))
        shape = []
        for dim in stmt.type.dims:
            if dim.wildcard:
                raise ArchError("an input needs named or numbered dims, not `*`", dim.loc)
            if dim.value is not None:
                if dim.value <= 0:
                    raise ArchError(f"dims must be positive, got {dim.value}", dim.loc)
                shape.append(dim.value)
                continue
            bound = scope.lookup(dim.name)
            if bound is not None and isinstance(bound.value, int) and not isinstance(bound.value, bool):
                shape.append(bound.value)
            elif bound is not None and not isinstance(bound.value, Sym):
                raise ArchError(f"dim `{dim.name}` is a {describe(bound.value)}, not an int", dim.loc)
            else:
                if dim.name not in self.symbols:
                    self.symbols.append(dim.name)
                shape.append(dim.name)
                scope.vars.setdefault(dim.name, Binding(Sym(dim.name), dim.loc))
        if stmt.where is not None:
            self.exec_where(stmt.where, scope)
        graph = scope.graph
        node = Node(stmt.name, "input", [], {}, TensorType(dtype, tuple(shape)), "", stmt.loc)
        if stmt.name in graph:
            raise ArchError(f"input `{stmt.name}` declared twice", stmt.loc)
        graph.add(node)
        graph.inputs.append(node.id)
        scope.vars[stmt.name] = Binding(Tensor(node.id, node.type), stmt.loc)

    def exec_where(self, expr: ast.Expr, scope: Scope) -> None:
        if isinstance(expr, ast.BoolOp) and expr.op == "and":
            for v in expr.values:
                self.exec_where(v, scope)
            return
        if isinstance(expr, ast.Compare) and len(expr.ops) == 1 and isinstance(expr.operands[0], ast.Name):
            sym = scope.lookup(expr.operands[0].id)
            op = expr.ops[0]
            if sym is not None and isinstance(sym.value, Sym) and op in ("<=", "<"):
                limit = self.eval(expr.operands[1], scope)
                if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
                    raise ArchError(f"a bound must be a positive int, got {show(limit)}",
                                    expr.operands[1].loc)
                self.bounds[sym.value.name] = limit if op == "<=" else limit - 1
                return
        raise ArchError("unsupported constraint", expr.loc,
                        hint="constraints bound a symbolic dim: `where seq <= max_seq and batch <= 32`")

    # ------------------------------------------------------------ expressions
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
                return ModuleRef(_join(s.module, expr.id), id(s.graph))
            s = s.parent
        if expr.id == LAYER:
            raise ArchError("`layer` is only defined in the arguments of a repeated block after the first "
                            "(`repeat(N) block(x, arg = ... layer ...)`)", expr.loc, hint=LAYER_HINT)
        candidates = scope.visible_names() | set(scope.labels)
        hint = did_you_mean(expr.id, candidates)
        if expr.id in self.blocks or expr.id in REGISTRY:
            hint = f"`{expr.id}` is a component; call it: `{expr.id}(...)`"
        raise ArchError(f"undefined name `{expr.id}`", expr.loc, hint=hint)

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
                return self.apply_op(ADD.name if op == "+" else MUL.name, [a, b], {}, expr, scope, None)
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
            raise ArchError(f"division by zero in `{_text(expr)}`", expr.loc)
        factor = float(number) if expr.op == "*" else 1.0 / float(number)
        if not math.isfinite(factor):
            raise ArchError(f"`{_text(expr)}`: the scale factor {factor} is not finite", expr.loc)
        node = self.apply_op(SCALE.name, [tensor], {"factor": factor}, expr, scope, None)
        origin = self.origin_of(number_expr, scope)
        if origin is not None:
            scope.graph.node(node.node).origins["factor"] = origin
        return node

    def int_op(self, op: str, a: int, b: int, expr: ast.BinOp) -> int:
        if op in ("/", "//", "%") and b == 0:
            raise ArchError(f"division by zero in `{_text(expr)}`", expr.loc)
        if op == "**":
            if b < 0:
                raise ArchError("negative integer exponent", expr.loc)
            if abs(a) > 1 and b > 64:
                raise ArchError(f"`{_text(expr)}` is too large", expr.loc, hint="values must fit in 63 bits")
        if op == "/":  # exact division is required between ints
            if a % b:
                left, right = _text(expr.left), _text(expr.right)
                near = ", ".join(map(str, nearest_divisors(a, b)))
                raise ArchError(f"{right}={b} does not divide {left}={a}", expr.loc,
                                hint=f"nearest divisors of {a}: {near}")
            op = "//"
        r = ARITHMETIC[op](a, b)
        if abs(r) >= INT_LIMIT:
            raise ArchError(f"`{_text(expr)}` = {_magnitude(r)} overflows 63 bits", expr.loc)
        return r

    def float_op(self, op: str, a: float, b: float, expr: ast.BinOp) -> float:
        try:
            r = ARITHMETIC[op](a, b)
        except ZeroDivisionError:
            raise ArchError(f"division by zero in `{_text(expr)}`", expr.loc) from None
        except OverflowError:
            raise ArchError(f"`{_text(expr)}` overflows", expr.loc) from None
        if isinstance(r, complex) or not math.isfinite(r):
            raise ArchError(f"`{_text(expr)}` is not a finite number", expr.loc)
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
                same = a == b and type(a) is type(b) if not _numeric(a, b) else a == b
                ok = same if op == "==" else not same
            else:
                if not _numeric(a, b):
                    raise ArchError(f"cannot compare {describe(a)} with {describe(b)} using `{op}`", expr.loc)
                ok = {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
            if not ok:
                return False
        return True

    # ------------------------------------------------------------ calls
    def bind_args(self, call: ast.Call, names: list[str], scope: Scope, what: str):
        """Match call arguments to parameter names; returns {name: (value, loc, expr)}."""
        bound: dict[str, tuple] = {}
        positional = [a for a in call.args if a.name is None]
        seen_kw = False
        for a in call.args:
            if a.name is None and seen_kw:
                raise ArchError("positional argument after a keyword argument", a.loc)
            seen_kw = seen_kw or a.name is not None
        if len(positional) > len(names):
            extra = positional[len(names)]
            raise ArchError(f"{what} takes {len(names)} argument{'s' if len(names) != 1 else ''}, "
                            f"got {len(positional)}", extra.loc,
                            hint=f"parameters: {', '.join(names) or '(none)'}")
        for name, a in zip(names, positional):
            bound[name] = (self.eval(a.value, scope), a.value.loc, a.value)
        for a in call.args:
            if a.name is None:
                continue
            if a.name not in names:
                hint = did_you_mean(a.name, names) or f"parameters: {', '.join(names)}"
                raise ArchError(f"{what} has no parameter `{a.name}`", a.loc, hint=hint)
            if a.name in bound:
                raise ArchError(f"`{a.name}` given twice", a.loc)
            bound[a.name] = (self.eval(a.value, scope), a.value.loc, a.value)
        return bound

    def eval_call(self, call: ast.Call, scope: Scope):
        name = call.func
        if name in self.blocks:
            return self.instantiate(self.blocks[name], call, scope)
        if name in REGISTRY:
            return self.call_primitive(call, scope)
        if name in CONFIGS:
            return self.make_config(call, scope)
        if name == "activation":
            return self.call_activation(call, scope)
        known = set(self.blocks) | set(REGISTRY) | set(CONFIGS) | {"activation"}
        hint = did_you_mean(name, known)
        b = scope.lookup(name)
        if b is not None:
            hint = f"`{name}` is a {describe(b.value)}, not a component"
        raise ArchError(f"unknown component `{name}`", call.func_loc, hint=hint)

    def coerce(self, value, kind: str, optional: bool, loc: Loc, what: str):
        if value is None and optional:
            return None
        ok = {
            "int": isinstance(value, int) and not isinstance(value, bool),
            "float": isinstance(value, (int, float)) and not isinstance(value, bool),
            "bool": isinstance(value, bool),
            "str": isinstance(value, str),
            "tensor": isinstance(value, Tensor),
            "rope": isinstance(value, Config) and value.kind == "rope",
            "ref": isinstance(value, ModuleRef),
        }.get(kind, True)
        if not ok:
            expected = {"rope": "a rope(...) config", "ref": "a module name such as `embedding`"}.get(kind, kind)
            hint = None
            if isinstance(value, Sym):
                hint = f"`{value.name}` is symbolic; a number is needed here"
            raise ArchError(f"{what} expects {expected}, got {describe(value)}", loc, hint=hint)
        if kind == "float":
            return float(value)
        return value

    def make_config(self, call: ast.Call, scope: Scope) -> Config:
        cdef = CONFIGS[call.func]
        if call.label:
            raise ArchError(f"`as {call.label}` names a component; {call.func}(...) is a config", call.loc)
        bound = self.bind_args(call, [f.name for f in cdef.fields], scope, f"{call.func}(...)")
        fields = {}
        for f in cdef.fields:
            if f.name in bound:
                value, loc, _ = bound[f.name]
                fields[f.name] = self.coerce(value, f.kind, f.optional, loc, f"`{f.name}`")
            else:
                fields[f.name] = f.default
        try:
            cdef.check(fields)
        except OpError as e:
            loc = bound[e.arg][1] if e.arg in bound else call.loc
            origin = self.origin_of(bound[e.arg][2], scope) if e.arg in bound else None
            raise _with_origin(ArchError(e.message, loc, hint=e.hint), origin) from None
        return Config(cdef.name, tuple(fields.items()))

    def call_activation(self, call: ast.Call, scope: Scope):
        bound = self.bind_args(call, ["x", "fn"], scope, "activation(...)")
        if "x" not in bound or "fn" not in bound:
            raise ArchError("activation(x, fn) needs both arguments", call.loc)
        fn, loc, _ = bound["fn"]
        if fn not in ACTIVATIONS:
            hint = did_you_mean(str(fn), ACTIVATIONS) or "choose one of " + ", ".join(f'"{a}"' for a in ACTIVATIONS)
            raise ArchError(f"unknown activation {show(fn)}", loc, hint=hint)
        x, xloc, _ = bound["x"]
        x = self.coerce(x, "tensor", False, xloc, "activation(...)")
        return self.apply_op(fn, [x], {}, call, scope, call.label)

    def call_primitive(self, call: ast.Call, scope: Scope):
        opdef = REGISTRY[call.func]
        bound = self.bind_args(call, [a.name for a in opdef.args], scope, f"{call.func}(...)")
        tensors, attrs, origins = [], {}, {}
        for spec in opdef.args:
            if spec.name not in bound:
                if spec.default is REQUIRED:
                    raise ArchError(f"{call.func}(...) is missing `{spec.name}`", call.loc,
                                    hint=f"signature: {_signature(call.func, opdef.args)}")
                attrs[spec.name] = spec.default
                continue
            value, loc, expr = bound[spec.name]
            origins[spec.name] = self.origin_of(expr, scope) or loc
            value = self.coerce(value, spec.kind, spec.optional, loc, f"{call.func}(...) `{spec.name}`")
            if spec.kind == "tensor":
                tensors.append(value)
            elif spec.kind == "ref":
                attrs[spec.name] = self.resolve_ref(value, scope, loc)
            else:
                attrs[spec.name] = value
        node = self.apply_op(call.func, tensors, attrs, call, scope, call.label, bound)
        scope.graph.node(node.node).origins.update(origins)
        return node

    def resolve_ref(self, ref: ModuleRef, scope: Scope, loc: Loc) -> ParamRef:
        if ref.graph_id != id(scope.graph):
            raise ArchError(f"cannot tie across a repeat boundary to `{ref.path}`", loc)
        name = f"{ref.path}.weight"
        param = scope.graph.params.get(name)
        if param is None:
            owned = [p for p in scope.graph.params if p.startswith(ref.path + ".")]
            raise ArchError(f"module `{ref.path}` has no `weight` to tie to", loc,
                            hint=("its parameters: " + ", ".join(owned)) if owned else None)
        if param.tied_to:
            return ParamRef(param.tied_to, param.shape)
        return ParamRef(name, param.shape)

    def apply_op(self, opname: str, tensors: list[Tensor], attrs: dict, call: ast.Expr, scope: Scope,
                 label: str | None, bound: dict | None = None) -> Tensor:
        opdef = REGISTRY[opname]
        in_types = [t.type for t in tensors]
        try:
            out_type = opdef.shape(in_types, attrs, ShapeContext(self.bounds))
            param_specs = opdef.params(in_types, attrs)
        except OpError as e:
            loc = bound[e.arg][1] if bound and e.arg in bound else getattr(call, "loc", None)
            origin = self.origin_of(bound[e.arg][2], scope) if bound and e.arg in bound else None
            raise _with_origin(ArchError(e.message, loc, hint=e.hint), origin) from None
        graph = scope.graph
        module = scope.module
        params: dict[str, str] = {}
        if param_specs:
            if label == "self" and not scope.module:
                raise ArchError("`as self` is only meaningful inside a block", call.loc)
            if label != "self":
                module = self.claim_label(scope, label or opname, explicit=label is not None, loc=call.loc)
                graph.modules[module] = ModuleInfo(module, opname, None, call.loc)
            for local, spec in param_specs.items():
                full = _join(module, local)
                if full in graph.params:
                    raise ArchError(f"parameter `{full}` already exists", call.loc,
                                    hint="give this call its own name with `as NAME`")
                graph.params[full] = Param(full, spec.shape, module, spec.tied_to)
                params[local] = full
        elif label is not None and label != "self":
            self.claim_label(scope, label, explicit=True, loc=call.loc)
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise ArchError(f"the spec has more than {MAX_NODES:,} operations", getattr(call, "loc", None),
                            hint="use `repeat(N)` for stacks of layers")
        node_id = graph.fresh_id(_join(module if param_specs else scope.module, opname))
        node = Node(node_id, opname, [t.node for t in tensors], attrs, out_type, module,
                    getattr(call, "loc", None), params)
        graph.add(node)
        return Tensor(node.id, out_type)

    def claim_label(self, scope: Scope, label: str, explicit: bool, loc: Loc) -> str:
        if explicit:
            if label in KEYWORDS or keyword.iskeyword(label):
                raise ArchError(f"`{label}` is a keyword", loc)
            if label in RESERVED_LABELS or label.startswith("__"):
                raise ArchError(f"`{label}` cannot name a component: generated classes use that name", loc,
                                hint=f"pick another name, e.g. `{label.strip('_')}_proj`")
            if label in scope.labels:
                raise ArchError(f"name `{label}` is already used in this block", loc,
                                notes=[Note("first used here", scope.labels[label])])
        elif label in scope.labels:
            base, k = label, scope.label_suffix.get(label, 1)
            while f"{base}_{k}" in scope.labels:
                k += 1
            scope.label_suffix[base] = k + 1
            label = f"{base}_{k}"
        scope.labels[label] = loc
        return _join(scope.module, label)

    # ------------------------------------------------------------ blocks
    def instantiate(self, entry: BlockEntry, call: ast.Call, scope: Scope, module: str | None = None,
                    graph: Graph | None = None):
        defn = entry.defn
        graph = graph or scope.graph
        names = [n for n, _ in self.active]
        if defn.name in names:
            chain = " -> ".join(names[names.index(defn.name):] + [defn.name])
            raise ArchError(f"block `{defn.name}` calls itself ({chain}); blocks cannot be recursive",
                                call.loc, notes=[Note(f"`{defn.name}` is defined here", defn.loc)],
                                hint="write the layers out, or use `repeat(N)` for a stack")
        if len(self.active) >= MAX_BLOCK_DEPTH:
            raise ArchError(f"blocks nested more than {MAX_BLOCK_DEPTH} deep", call.loc)
        self.instances += 1
        if self.instances > MAX_INSTANCES:
            raise ArchError(f"the spec instantiates more than {MAX_INSTANCES:,} blocks", call.loc,
                            hint="a block that calls another block several times, nested, multiplies; "
                                 "use `repeat(N)` for stacks of layers")
        self.active.append((defn.name, call.loc))
        try:
            return self._instantiate(entry, call, scope, module, graph)
        finally:
            self.active.pop()

    def _instantiate(self, entry: BlockEntry, call: ast.Call, scope: Scope, module: str | None, graph: Graph):
        defn = entry.defn
        if module is None:
            if call.label == "self":
                module = scope.module
                if not module:
                    raise ArchError("`as self` is only meaningful inside a block", call.loc)
            else:
                module = self.claim_label(scope, call.label or defn.name, call.label is not None, call.loc)
        inner = Scope(entry.scope, module, graph, defn.file)
        if call.label == "self":
            inner.labels = scope.labels  # children share the caller's namespace
        bound = self.bind_args(call, [p.name for p in defn.params], scope, f"block `{defn.name}`")
        if module not in graph.modules or graph.modules[module].block != defn.name:
            if call.label != "self":
                graph.modules[module] = ModuleInfo(module, defn.name, defn.kind, call.loc)
        try:
            for p in defn.params:
                if p.name in bound:
                    value, loc, expr = bound[p.name]
                    origin = self.origin_of(expr, scope) or loc
                elif p.default is not None:
                    value, loc, origin = self.eval(p.default, inner), p.default.loc, None
                    if isinstance(p.default, ast.Name):
                        origin = self.origin_of(p.default, inner)
                else:
                    raise ArchError(f"block `{defn.name}` needs `{p.name}`", call.loc,
                                    hint=f"signature: {_block_signature(defn)}",
                                    notes=[Note(f"`{defn.name}` is defined here", defn.loc)])
                value = self.check_param(p, value, loc, inner, defn)
                inner.vars[p.name] = Binding(value, origin)
            try:
                self.exec_block(defn.body, inner)
            except _Return as r:
                result, rloc = r.value, r.loc
            else:
                raise ArchError(f"block `{defn.name}` ends without `return`", defn.loc)
            if defn.returns is not None:
                if not isinstance(result, Tensor):
                    raise ArchError(f"block `{defn.name}` must return a tensor, got {describe(result)}", rloc)
                self.unify(defn.returns, result.type, inner, rloc, f"the result of `{defn.name}`",
                           bind=False)
            return result
        except ArchError as e:
            self.relocate(e, call, defn)
            raise

    def relocate(self, e: ArchError, call: ast.Call, defn: ast.BlockDef) -> None:
        """Errors inside the stdlib point at the user's call that led there."""
        d = e.diagnostic
        if d.loc is not None and is_stdlib(d.loc.file) and not is_stdlib(call.loc.file):
            d.notes.insert(0, Note(f"inside standard block `{defn.name}`", d.loc))
            d.loc = call.loc

    def check_param(self, p: ast.Param, value, loc: Loc, inner: Scope, defn: ast.BlockDef):
        what = f"`{p.name}` of block `{defn.name}`"
        if isinstance(p.type, ast.TensorTypeSpec):
            if not isinstance(value, Tensor):
                raise ArchError(f"{what} expects a tensor, got {describe(value)}", loc)
            self.unify(p.type, value.type, inner, loc, what, bind=True)
            return value
        if isinstance(p.type, ast.ScalarTypeSpec):
            kinds = {"int": "int", "float": "float", "bool": "bool", "str": "str", "rope": "rope", "module": "ref"}
            if p.type.name not in kinds:
                raise ArchError(f"unknown type `{p.type.name}`", p.type.loc,
                                hint="types: int, float, bool, str, rope, module, or a tensor type like [b, s, d]")
            optional = isinstance(p.default, ast.Literal) and p.default.value is None
            return self.coerce(value, kinds[p.type.name], optional, loc, what)
        return value

    def unify(self, spec: ast.TensorTypeSpec, actual: TensorType, scope: Scope, loc: Loc, what: str,
              bind: bool) -> None:
        if spec.dtype is not None:
            want_int = spec.dtype in INT_DTYPES
            if want_int != actual.is_int:
                raise ArchError(f"{what} expects {spec.dtype} elements, got {actual}", loc)
        dims = spec.dims
        stars = [i for i, d in enumerate(dims) if d.wildcard]
        if len(stars) > 1:
            raise ArchError("at most one `*` per tensor type", dims[stars[1]].loc)
        if stars:
            i = stars[0]
            head, tail = dims[:i], dims[i + 1:]
            if actual.rank < len(head) + len(tail):
                raise ArchError(f"{what} expects at least {len(head) + len(tail)} dims, got {actual}", loc)
            pairs = list(zip(head, actual.shape)) + list(zip(tail, actual.shape[actual.rank - len(tail):]))
        else:
            if actual.rank != len(dims):
                raise ArchError(f"{what} expects {len(dims)} dims [{', '.join(_dim_text(d) for d in dims)}], "
                                f"got {actual}", loc)
            pairs = list(zip(dims, actual.shape))
        for dspec, got in pairs:
            if dspec.value is not None:
                if got != dspec.value:
                    raise ArchError(f"{what}: expected dim {dspec.value}, got {got} in {actual}", loc)
                continue
            b = scope.lookup(dspec.name)
            got_value = got if isinstance(got, int) else Sym(got)
            if b is None:
                if not bind:
                    raise ArchError(f"dim `{dspec.name}` in the return type is not bound", dspec.loc)
                scope.vars[dspec.name] = Binding(got_value, loc)
            elif b.value != got_value:
                raise ArchError(f"{what}: dim `{dspec.name}` is {show(b.value)} but the tensor has {got} "
                                f"in {actual}", loc,
                                notes=[Note(f"`{dspec.name}` = {show(b.value)} set here", b.origin)]
                                if b.origin else [])

    # ------------------------------------------------------------ repeat
    def eval_repeat(self, expr: ast.RepeatCall, scope: Scope):
        count = self.eval(expr.count, scope)
        if not isinstance(count, int) or isinstance(count, bool):
            raise _with_origin(ArchError(f"repeat count must be an int, got {describe(count)}", expr.count.loc),
                               self.origin_of(expr.count, scope))
        if not 1 <= count <= MAX_REPEAT:
            raise _with_origin(ArchError(f"repeat count must be between 1 and {MAX_REPEAT:,}, got {count}",
                                         expr.count.loc), self.origin_of(expr.count, scope))
        call = expr.call
        if call.func not in self.blocks:
            hint = did_you_mean(call.func, self.blocks)
            if call.func in REGISTRY:
                hint = f"`{call.func}` is a primitive; wrap it in a block to repeat it"
            raise ArchError(f"repeat needs a block, `{call.func}` is not one", call.func_loc, hint=hint)
        entry = self.blocks[call.func]
        if call.label == "self":
            raise ArchError("a repeat needs its own name, not `as self`", call.loc)
        positional = [a for a in call.args if a.name is None]
        if not positional:
            raise ArchError("repeat needs the tensor that flows through the layers as its first argument",
                            expr.loc)
        x = self.eval(positional[0].value, scope)
        if not isinstance(x, Tensor):
            raise ArchError(f"the first argument of a repeated block must be a tensor, got {describe(x)}",
                            positional[0].loc)
        varying = [(a, loc) for a in call.args[1:] if (loc := _find_name(a.value, LAYER)) is not None]
        for a in call.args[1:]:
            if any(a is b for b, _ in varying):
                continue
            v = self.eval(a.value, scope)
            if isinstance(v, Tensor):
                raise ArchError("only the first argument of a repeated block may be a tensor", a.loc,
                                hint="each layer's output feeds the next layer's first argument")
        pattern, reps, values = self.layer_pattern(expr, varying, count, scope, entry.defn)
        module = self.claim_label(scope, call.label or "layers", call.label is not None, call.loc)
        inner_call = ast.Call(call.loc, call.func,
                              [ast.Arg(None, ast.Name(positional[0].loc, "__layer_input"), positional[0].loc)]
                              + call.args[1:], "self", call.func_loc)
        bodies = []
        for variant, first in enumerate(reps):
            body = Graph()
            body_input = Node("x", "input", [], {}, x.type, "", call.loc)
            body.add(body_input)
            body.inputs.append("x")
            layer_scope = Scope(scope, "", body, scope.file)
            layer_scope.vars["__layer_input"] = Binding(Tensor("x", x.type), call.loc)
            if varying:
                layer_scope.vars[LAYER] = Binding(first, expr.loc)
            try:
                result = self.instantiate(entry, inner_call, layer_scope, module="", graph=body)
            except ArchError as e:
                self.relocate(e, call, entry.defn)
                if varying:
                    e.diagnostic.notes.append(Note(f"in layer {first} ({_values_text(values[variant])})", expr.loc))
                raise
            if not isinstance(result, Tensor):
                raise ArchError(f"a repeated block must return a tensor, got {describe(result)}", expr.loc)
            if result.type != x.type:
                raise ArchError(f"repeat needs `{call.func}` to map {x.type} to the same type; it returns "
                                f"{result.type}" + (f" in layer {first}" if varying else ""), expr.loc,
                                hint="each layer's output is the next layer's input")
            body.outputs["out"] = result.node
            bodies.append(body)
        _check_variants(bodies, reps, values, module, expr, varying[0][0].loc if varying else expr.loc)
        graph = scope.graph
        graph.modules[module] = ModuleInfo(module, call.func, entry.defn.kind, call.loc, repeat=count)
        attrs = {"count": count, "body": bodies[0], "block": call.func}
        if len(bodies) > 1:
            attrs.update(bodies=tuple(bodies), pattern=pattern, variant_args=tuple(values))
        node = Node(graph.fresh_id(module), "repeat", [x.node], attrs, x.type, module, expr.loc)
        graph.add(node)
        return Tensor(node.id, node.type)

    def layer_pattern(self, expr: ast.RepeatCall, varying: list, count: int, scope: Scope, defn: ast.BlockDef):
        """Evaluate the arguments that use `layer` for every layer. Returns the variant of each layer
        (variants numbered in order of first use), the first layer of each variant, and each variant's
        argument values as (parameter name, value) pairs."""
        if not varying:
            return (0,) * count, [0], [()]
        shadow = scope.lookup(LAYER)
        label_scope = scope
        while shadow is None and label_scope is not None:
            if LAYER in label_scope.labels:
                shadow = Binding(None, label_scope.labels[LAYER])
            label_scope = label_scope.parent
        if shadow is not None:
            raise ArchError("`layer` is ambiguous here: in a repeat's arguments it is the layer index, but this "
                            "spec also defines `layer`", varying[0][1],
                            hint="rename your `layer`; in a repeat's arguments `layer` means the layer index",
                            notes=[Note("`layer` defined here", shadow.origin)] if shadow.origin else [])
        params = [p.name for p in defn.params]
        positional = [a for a in expr.call.args if a.name is None]
        names = [a.name or (params[positional.index(a)] if positional.index(a) < len(params) else "?")
                 for a, _ in varying]
        layer_scope = Scope(scope, scope.module, scope.graph, scope.file)
        variant_of: dict[tuple, int] = {}
        pattern, reps, values = [], [], []
        for i in range(count):
            layer_scope.vars[LAYER] = Binding(i, expr.loc)
            row = []
            for a, _ in varying:
                before = self.steps
                try:
                    v = self.eval(a.value, layer_scope)
                except ArchError as e:
                    e.diagnostic.notes.append(Note(f"with layer = {i}", expr.loc))
                    raise
                self.layer_steps += self.steps - before
                self.steps = before
                if isinstance(v, Tensor):
                    raise ArchError("only the first argument of a repeated block may be a tensor", a.loc,
                                    hint="each layer's output feeds the next layer's first argument")
                row.append(v)
            if self.layer_steps > MAX_LAYER_STEPS:
                raise ArchError(f"the per-layer arguments take more than {MAX_LAYER_STEPS:,} steps to evaluate",
                                varying[0][1], hint="keep per-layer expressions short, e.g. `xs[layer % 2]`")
            key = tuple(_value_key(v) for v in row)
            variant = variant_of.get(key)
            if variant is None:
                variant = variant_of[key] = len(reps)
                if variant >= MAX_VARIANTS:
                    raise ArchError(f"the layers of this repeat take more than {MAX_VARIANTS} distinct sets of "
                                    "argument values", varying[0][1],
                                    hint="each distinct set is a variant of the layer (a class in the generated "
                                         "program); per-layer values should take a few values, e.g. alternate")
                reps.append(i)
                values.append(tuple(zip(names, row)))
            pattern.append(variant)
        return tuple(pattern), reps, values


def _find_name(expr: ast.Expr, name: str) -> Loc | None:
    """Where `expr` mentions the name `name`, if it does (the first place found)."""
    stack = [expr]
    while stack:
        e = stack.pop()
        if isinstance(e, ast.Name):
            if e.id == name:
                return e.loc
        elif isinstance(e, ast.BinOp):
            stack += [e.right, e.left]
        elif isinstance(e, ast.UnaryOp):
            stack.append(e.operand)
        elif isinstance(e, (ast.Compare, ast.BoolOp)):
            stack += reversed(e.operands if isinstance(e, ast.Compare) else e.values)
        elif isinstance(e, ast.Call):
            stack += reversed([a.value for a in e.args])
        elif isinstance(e, ast.RepeatCall):
            stack += reversed([e.count, *(a.value for a in e.call.args)])
        elif isinstance(e, ast.ListExpr):
            stack += reversed(e.items)
        elif isinstance(e, ast.Subscript):
            stack += [e.index, e.value]
    return None


def _value_key(v) -> tuple:
    """Equal keys for values that elaborate alike: the type counts (1, 1.0 and true differ), and
    floats compare by repr (0.0 and -0.0 differ)."""
    if isinstance(v, tuple):
        return ("list", *(_value_key(x) for x in v))
    return (type(v).__name__, repr(v))


def _values_text(values: tuple) -> str:
    return ", ".join(f"{name} = {show(v)}" for name, v in values) or "no per-layer values"


def _check_variants(bodies: list[Graph], reps: list[int], values: list, module: str, expr: ast.RepeatCall,
                    arg_loc: Loc) -> None:
    """Every variant of a repeated block has the parameters of the first: names, shapes, tying."""
    if len(bodies) < 2:
        return
    first = bodies[0].params
    for variant, body in enumerate(bodies[1:], 1):
        other = body.params
        problem = None
        for name, p in first.items():
            q = other.get(name)
            if q is None:
                problem = f"layer {reps[0]} has `{name}`, layer {reps[variant]} does not"
            elif q.shape != p.shape:
                problem = (f"`{name}` is [{', '.join(map(str, p.shape))}] in layer {reps[0]} but "
                           f"[{', '.join(map(str, q.shape))}] in layer {reps[variant]}")
            elif q.tied_to != p.tied_to:
                problem = (f"`{name}` is {f'tied to `{p.tied_to}`' if p.tied_to else 'not tied'} in layer "
                           f"{reps[0]} but {f'tied to `{q.tied_to}`' if q.tied_to else 'not tied'} in layer "
                           f"{reps[variant]}")
            if problem:
                break
        if problem is None:
            extra = next((n for n in other if n not in first), None)
            if extra is not None:
                problem = f"layer {reps[variant]} has `{extra}`, layer {reps[0]} does not"
        if problem is not None:
            raise ArchError(f"the layers of `{module}` must have the same parameters: {problem}", expr.loc,
                            hint="only behaviour may vary between layers (activations, eps, attention options); "
                                 "sizes and weights must match",
                            notes=[Note(f"layer {reps[0]}: {_values_text(values[0])}; layer {reps[variant]}: "
                                        f"{_values_text(values[variant])}", arg_loc)])


def _with_origin(e: ArchError, origin: Loc | None) -> ArchError:
    """Remember where the offending value was written, for errors raised inside a family template."""
    e.origin = origin
    return e


def _magnitude(r: int) -> str:
    """A huge int for a message, without converting it to a float (which can overflow) or to
    all its digits."""
    bits = abs(r).bit_length()
    if bits <= 1000:
        return f"{float(r):.3e}"
    return f"{'-' if r < 0 else ''}about 2^{bits - 1}"


def _join(a: str, b: str) -> str:
    return f"{a}.{b}" if a else b


def _numeric(a, b) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))


def _dim_text(d: ast.DimSpec) -> str:
    return "*" if d.wildcard else (d.name if d.name is not None else str(d.value))


def _text(expr: ast.Expr) -> str:
    """Source-like text of a (small) expression, for messages."""
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, ast.Literal):
        return show(expr.value)
    if isinstance(expr, ast.BinOp):
        left, right = (f"({_text(e)})" if isinstance(e, ast.BinOp) else _text(e) for e in (expr.left, expr.right))
        return f"{left} {expr.op} {right}"
    return "..."


def _signature(name: str, args: tuple[ArgSpec, ...]) -> str:
    parts = []
    for a in args:
        parts.append(a.name if a.default is REQUIRED else f"{a.name} = {show(a.default)}")
    return f"{name}({', '.join(parts)})"


def _block_signature(defn: ast.BlockDef) -> str:
    return f"{defn.name}({', '.join(p.name if p.default is None else p.name + ' = ...' for p in defn.params)})"


def _dead_assignments(assignments) -> list[Diagnostic]:
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


def elaborate(module: ast.Module, root_dir: Path) -> Model:
    if module.name is None:
        raise ArchError("a spec starts with `model NAME`", Loc(module.file, 1, 1),
                        hint="add e.g. `model nano_trickster` as the first line")
    graph = Graph()
    el = Elaborator(root_dir)
    el.load_stdlib(graph)
    el.loading.append(str(Path(module.file).resolve()))
    scope = Scope(None, "", graph, module.file)
    try:
        el.run_file(module, scope, top=True)
    except ArchError as e:
        d = e.diagnostic
        if d.loc is not None and is_stdlib(d.loc.file) and module.name_loc is not None:
            # A family template expanded from the short form: point at the user's value that
            # caused it when it is known, else at the user's model.
            origin = getattr(e, "origin", None)
            d.notes.insert(0, Note("inside the family template", d.loc))
            d.loc = origin if origin is not None and not is_stdlib(origin.file) else module.name_loc
        raise
    if not graph.outputs:
        raise ArchError("the spec declares no output", module.name_loc,
                        hint="declare one, e.g. `output logits = lm_head(h, vocab)`")
    model = Model(module.name, graph, dict(el.bounds), list(el.symbols), module.file,
                  el.warnings + _dead_assignments(el.assignments), module.name_loc, el.target, el.family,
                  el.shard_overrides)
    return model
