"""Blocks: instantiation with arguments bound to parameters, and tensor types unified against
the arguments (which binds dim names)."""

from __future__ import annotations

from ..errors import ArchError, Loc, Note
from ..frontend import ast
from ..ir.graph import Graph, ModuleInfo
from ..ir.types import INT_DTYPES, TensorType
from .diagnostics import block_signature, dim_text
from .values import (
    MAX_BLOCK_DEPTH,
    MAX_INSTANCES,
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


class BlocksMixin:
    """The Elaborator's block instances and type unification."""

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
                                    hint=f"signature: {block_signature(defn)}",
                                    notes=[Note(f"`{defn.name}` is defined here", defn.loc)])
                value = self.check_param(p, value, loc, inner, defn)
                inner.vars[p.name] = Binding(value, origin)
            try:
                self.exec_block(defn.body, inner)
            except BlockReturn as r:
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
                raise ArchError(f"{what} expects {len(dims)} dims [{', '.join(dim_text(d) for d in dims)}], "
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
