"""Files, imports and statements: `let`, assignments, `input ... where`, `output`, `shard`, `family`,
`target`."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ArchError, Loc, Note, did_you_mean, spelling_fixes
from ..frontend import ast
from ..frontend.parser import parse_source, parse_stdlib, read_source
from ..ir.graph import Graph, InputAttrs, Node, NodeKind
from ..ir.types import DTYPES, TensorType
from ..ops import CONFIGS
from .recovery import exec_recovering
from .values import (
    KEYWORDS,
    MAX_IMPORT_DEPTH,
    REGISTRY,
    SHARD_PLACEMENTS,
    STDLIB_DIR,
    STDLIB_PREFIX,
    Binding,
    BlockEntry,
    BlockReturn,
    Scope,
    Sym,
    Tensor,
    describe,
    is_stdlib,
    show,
)


class StatementsMixin:
    """The Elaborator's files, imports and statements."""

    def load_stdlib(self, graph: Graph) -> None:
        for path in sorted(STDLIB_DIR.glob("*.arch")):
            name = STDLIB_PREFIX + path.name
            module = parse_stdlib(path, name)
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
            elif top:
                exec_recovering(self, item, scope)  # the spec's own statements: report several errors
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
                if node.hint is None and not node.is_input:
                    node.hint, node.hint_scope = stmt.name, scope.module
                if not is_stdlib(stmt.loc.file):
                    self.assignments.append((scope.graph, value.node, stmt.name, stmt.loc))
        elif isinstance(stmt, ast.Return):
            if top_level:
                raise ArchError("`return` outside a block", stmt.loc,
                                hint="model outputs are declared with `output NAME = ...`")
            raise BlockReturn(self.eval(stmt.value, scope), stmt.value.loc)
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
                                or "placements: " + ", ".join(SHARD_PLACEMENTS),
                                fixes=spelling_fixes(stmt.placement_loc, stmt.placement, SHARD_PLACEMENTS))
            self.shard_overrides.append(stmt)
        elif isinstance(stmt, ast.Family):
            self.require_top_level(stmt, scope, top_level, "family")
            self.exec_family(stmt)
        elif isinstance(stmt, ast.Target):
            from ..targets import TARGETS

            self.require_top_level(stmt, scope, top_level, "target")
            if stmt.name not in TARGETS:
                raise ArchError(f"unknown target `{stmt.name}`", stmt.loc,
                                hint=did_you_mean(stmt.name, TARGETS) or "targets: " + ", ".join(TARGETS),
                                fixes=spelling_fixes(stmt.loc, stmt.name, TARGETS))
            if self.target is not None:
                raise ArchError("`target` given twice", stmt.loc, notes=[Note("first here", self.target[1])])
            self.target = (stmt.name, stmt.loc)
        else:  # pragma: no cover - the grammar produces no other statements
            raise ArchError(f"unexpected statement {type(stmt).__name__}", stmt.loc)

    def exec_family(self, stmt: ast.Family) -> None:
        """`family NAME`: checked against the families the caller passed in (`self.families`, from
        ttspec.families): checkpoint layouts live above the IR, which only records the name."""
        known = tuple(self.families)
        if stmt.name not in known:
            raise ArchError(f"unknown checkpoint family `{stmt.name}`", stmt.loc,
                            hint=" ".join(filter(None, (did_you_mean(stmt.name, known),
                                                           "families: " + ", ".join(known)))),
                            fixes=spelling_fixes(stmt.loc, stmt.name, known))
        if self.family_loc is not None:
            raise ArchError("`family` given twice", stmt.loc, notes=[Note("first here", self.family_loc)])
        self.family, self.family_loc = stmt.name, stmt.loc

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
        node = Node(stmt.name, NodeKind.INPUT, [], InputAttrs(), TensorType(dtype, tuple(shape)), "", stmt.loc)
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
