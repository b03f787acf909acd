"""The buffer's names from its parse tree: what sits at each name token (a use of a variable, a call, a
keyword argument, a binding, a block definition ...), and which binding each use refers to.

Scoping follows the elaborator (elaborate/statements.py, blocks.py): a block body sees its parameters, the
dims its parameter types bind, its own assignments before the use, then the file's top level (lexical
scoping); the top level sees its `let`s, assignments, inputs and their dims. A name used in its own
assignment's value (`x = x + ...`) refers to the binding before it."""

from __future__ import annotations

from ..frontend import ast
from ..records import Record
from .text import Buffer


class Ref(Record):
    """What a name token is: `kind` one of name (a variable used), call (a block or primitive called),
    kwarg (an argument's keyword), assign, let, input, output, param, dim, blockdef, label, import, family,
    target."""

    kind: str
    node: object
    block: ast.BlockDef | None = None  # the block it is written in
    call: ast.Call | None = None  # kwarg: the call; label: the labelled call
    outer: ast.Expr | None = None  # label: the expression whose value the label names (a repeat or the call)


class Bound(Record):
    """A name bound: where (its token's offset), by what (Ref), in which block (None: the top level)."""

    name: str
    offset: int
    ref: Ref
    stmt: int  # id of the statement that binds it (a use inside that statement sees the binding before)


class Symbols:
    """Refs by token offset and bindings in order, for one module of the buffer's file."""

    def __init__(self, module: ast.Module, buf: Buffer):
        self.buf = buf
        self.file = module.file
        self.refs: dict[int, Ref] = {}
        self.bindings: list[Bound] = []
        self.uses: dict[int, int] = {}  # offset of a name used -> id of the statement it is in
        self.blocks: list[tuple[int, ast.BlockDef]] = []  # (offset, block) in order
        self.statements: list[tuple[int, ast.Stmt]] = []  # the file's top-level statements with offsets
        for item in module.items:
            if item.loc.file != self.file:
                continue
            self.statements.append((self._off(item.loc), item))
            if isinstance(item, ast.BlockDef):
                self._block(item)
            else:
                self._stmt(item, None)
        self.statements.sort(key=lambda s: s[0])

    def _off(self, loc) -> int:
        return self.buf.loc_offset(loc)

    def _put(self, loc, ref: Ref) -> None:
        if loc is not None and loc.file == self.file:
            self.refs.setdefault(self._off(loc), ref)

    def _bind(self, name: str, loc, ref: Ref, stmt: object) -> None:
        if loc is not None and loc.file == self.file:
            self._put(loc, ref)
            self.bindings.append(Bound(name, self._off(loc), ref, id(stmt)))

    def _block(self, defn: ast.BlockDef) -> None:
        self.blocks.append((self._off(defn.loc), defn))
        self._put(defn.loc, Ref("blockdef", defn))
        for p in defn.params:
            self._bind(p.name, p.loc, Ref("param", p, defn), p)
            if isinstance(p.type, ast.TensorTypeSpec):
                self._dims(p.type, defn, p)
        for p in defn.params:
            if p.default is not None:
                self._expr(p.default, defn, defn)
        if defn.returns is not None:
            self._dims(defn.returns, defn, defn, bind=False)
        for stmt in defn.body:
            self._stmt(stmt, defn)

    def _dims(self, spec: ast.TensorTypeSpec, block, stmt, bind: bool = True) -> None:
        for d in spec.dims:
            if d.name is None:
                continue
            known = any(b.name == d.name and (b.ref.block is block) for b in self.bindings)
            if bind and not known:
                self._bind(d.name, d.loc, Ref("dim", d, block), stmt)
            else:
                self._put(d.loc, Ref("name", ast.Name(d.loc, d.name), block))
                self.uses[self._off(d.loc)] = id(stmt)

    def _stmt(self, stmt: ast.Stmt, block: ast.BlockDef | None) -> None:
        if isinstance(stmt, ast.Let):
            for b in stmt.bindings:
                self._expr(b.value, block, b)
                self._bind(b.name, b.loc, Ref("let", b, block), b)
        elif isinstance(stmt, ast.Assign):
            self._expr(stmt.value, block, stmt)
            self._bind(stmt.name, stmt.loc, Ref("assign", stmt, block), stmt)
        elif isinstance(stmt, ast.Input):
            self._bind(stmt.name, stmt.loc, Ref("input", stmt, block), stmt)
            self._dims(stmt.type, block, stmt.type)
            if stmt.where is not None:
                self._expr(stmt.where, block, stmt)
        elif isinstance(stmt, ast.Output):
            self._expr(stmt.value, block, stmt)
            self._put(stmt.loc, Ref("output", stmt, block))
        elif isinstance(stmt, ast.Return):
            self._expr(stmt.value, block, stmt)
        elif isinstance(stmt, ast.If):
            self._expr(stmt.cond, block, stmt)
            for s in stmt.body + stmt.orelse:
                self._stmt(s, block)
        elif isinstance(stmt, ast.Import):
            self._put(stmt.loc, Ref("import", stmt, block))
        elif isinstance(stmt, (ast.Family, ast.Target)):
            self._put(stmt.loc, Ref(type(stmt).__name__.lower(), stmt, block))

    def _expr(self, e: ast.Expr, block, stmt) -> None:
        if isinstance(e, ast.Name):
            self._put(e.loc, Ref("name", e, block))
            if e.loc.file == self.file:
                self.uses[self._off(e.loc)] = id(stmt)
        elif isinstance(e, ast.RepeatCall):
            self._expr(e.count, block, stmt)
            self._call(e.call, block, stmt, e)
        elif isinstance(e, ast.Call):
            self._call(e, block, stmt, e)
        elif isinstance(e, ast.BinOp):
            self._expr(e.left, block, stmt)
            self._expr(e.right, block, stmt)
        elif isinstance(e, ast.UnaryOp):
            self._expr(e.operand, block, stmt)
        elif isinstance(e, ast.Compare):
            for o in e.operands:
                self._expr(o, block, stmt)
        elif isinstance(e, ast.BoolOp):
            for v in e.values:
                self._expr(v, block, stmt)
        elif isinstance(e, ast.ListExpr):
            for v in e.items:
                self._expr(v, block, stmt)
        elif isinstance(e, ast.Subscript):
            self._expr(e.value, block, stmt)
            self._expr(e.index, block, stmt)

    def _call(self, call: ast.Call, block, stmt, outer: ast.Expr) -> None:
        self._put(call.func_loc, Ref("call", call, block, call, outer))
        for a in call.args:
            if a.name is not None:
                self._put(a.loc, Ref("kwarg", a, block, call))
            self._expr(a.value, block, stmt)
        if call.label is not None and call.loc.file == self.file:
            start = self._label_offset(call)
            if start is not None:
                self.refs.setdefault(start, Ref("label", call, block, call, outer))

    def _label_offset(self, call: ast.Call) -> int | None:
        """Where `as LABEL` names the call: the first `as LABEL` after the call's start whose parentheses
        close the call (labels carry no position of their own)."""
        toks = self.buf.tokens
        start = self._off(call.func_loc)
        i = next((k for k, t in enumerate(toks) if t.start >= start), None)
        if i is None or i + 1 >= len(toks) or toks[i + 1].text != "(":
            return None
        depth, j = 0, i + 1
        while j < len(toks):
            if toks[j].text == "(":
                depth += 1
            elif toks[j].text == ")":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        if j + 2 < len(toks) and toks[j + 1].text == "as" and toks[j + 2].text == call.label:
            return toks[j + 2].start
        return None

    # ------------------------------------------------------------ queries
    def block_at(self, offset: int) -> ast.BlockDef | None:
        """The block whose definition holds `offset` (it runs to the next top-level statement)."""
        found = None
        for i, (start, item) in enumerate(self.statements):
            end = self.statements[i + 1][0] if i + 1 < len(self.statements) else len(self.buf.text) + 1
            if start <= offset < end and isinstance(item, ast.BlockDef):
                found = item
        return found

    def resolve(self, name: str, offset: int, block: ast.BlockDef | None) -> Bound | None:
        """The binding a use of `name` at `offset` refers to."""
        stmt = self.uses.get(offset)
        for scope in ((block, None) if block is not None else (None,)):
            before = [b for b in self.bindings if b.name == name and b.ref.block is scope
                      and b.offset <= offset and b.stmt != stmt]
            if before:
                return before[-1]
            anywhere = [b for b in self.bindings if b.name == name and b.ref.block is scope and b.stmt != stmt]
            if anywhere and scope is None:
                return anywhere[0]
        return None

    def visible(self, offset: int, block: ast.BlockDef | None) -> list[Bound]:
        """The names in scope at `offset`: the block's first, then the top level's (one each, latest)."""
        out: dict[str, Bound] = {}
        for scope in ((block, None) if block is not None else (None,)):
            for b in self.bindings:
                if b.ref.block is scope and (b.offset <= offset or scope is None) and b.name not in out:
                    out[b.name] = b
        return list(out.values())
