"""Backend-independent emission of forward methods from a ClassPlan.

A backend turns one node into an expression (pyast) given its argument expressions; this
module decides what becomes a named variable and what is inlined (by the size of the trees,
never by their printed width), and keeps names from clobbering values still in use.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...ops import REGISTRY
from .names import POSITIONS_ARG, Scope, local_reserved
from .plan import Child, ClassPlan, Leaf, Repeat
from .pyast import Assign, Expr, ExprStmt, For, Name, Return, Stmt, Tuple, name, size, substitute


@dataclass
class Forward:
    params: list[str]
    body: list[Stmt]  # ends with the Return


def _arg_ids(plan: ClassPlan, node) -> list[str]:
    call = plan.calls.get(node.id)
    if isinstance(call, Child):
        return call.inputs
    return list(node.inputs)


def emit_forward(plan: ClassPlan, backend, reserved: frozenset[str] | None = None, method: str = "forward") -> Forward:
    """`reserved`: what the method's locals must never be (names.local_reserved). `method`: the method
    emitted, "forward" or a mode's own ("decode": each child and layer is called through its own
    `decode`, as tt_transformers' forward_decode calls its components' forward_decode)."""
    return _Emitter(plan, backend, reserved, method).forward()


class _Emitter:
    """One forward method: which values get names, which are inlined, and which names are free."""

    def __init__(self, plan: ClassPlan, backend, reserved: frozenset[str] | None, method: str = "forward"):
        self.plan, self.backend = plan, backend
        self.suffix = "" if method == "forward" else f".{method}"  # how a child's same method is called
        self.scope = Scope(local_reserved() if reserved is None else reserved)
        self.ops = [n for n in plan.ops if not n.is_input]
        self.uses: dict[str, int] = {}
        self.position = {n.id: i for i, n in enumerate(self.ops)}
        self.last_use: dict[str, int] = {}
        for n in self.ops:
            for a in _arg_ids(plan, n):
                self.uses[a] = self.uses.get(a, 0) + 1
                self.last_use[a] = self.position[n.id]
        self.outputs = set(plan.outputs)
        for o in self.outputs:  # returned at the end
            self.last_use[o] = len(self.ops)
        self.inlined: dict[str, list[str]] = {}  # node id -> the nodes its inline expression reads
        self.expr: dict[str, Expr] = {}  # node id -> its variable or inline expression
        self.holder: dict[str, str] = {}  # variable name -> node id it currently holds
        self.body: list[Stmt] = []

    def extend(self, node_id: str, until: int) -> None:
        """An inline expression is evaluated where it is finally used: what it reads stays live until then."""
        if self.last_use.get(node_id, -1) < until:
            self.last_use[node_id] = until
        for a in self.inlined.get(node_id, ()):
            self.extend(a, until)

    def variable(self, base: str, node_id: str, now: int) -> Name:
        """A free variable named after `base` that from now on holds `node_id`."""
        var = _free(self.scope.base(base), self.holder, self.last_use, now)
        self.expr[node_id] = Name(var)
        self.holder[var] = node_id
        return Name(var)

    def forward(self) -> Forward:
        plan, g = self.plan, self.plan.graph
        params = []
        single = len(plan.inputs) == 1
        for i, nid in enumerate(plan.inputs):
            node = g.node(nid)
            base = (node.hint or nid) if node.is_input and node.id != "x" else ("x" if single else f"x{i}")
            params.append(self.variable(base, nid, -1).id)
        for n in self.ops:
            if n.id not in self.expr:  # else an element already unpacked from a tuple
                self.statement(n)
            self.release(self.position[n.id])
        results = [self.expr[o] for o in plan.outputs]
        self.body.append(Return(results[0] if len(results) == 1 else Tuple(tuple(results))))
        if plan.needs_positions:
            params.append(f"{POSITIONS_ARG}=None")
        return Forward(params, self.body)

    def statement(self, n) -> None:
        plan, backend = self.plan, self.backend
        args = [self.expr[a] for a in _arg_ids(plan, n)]
        call = plan.calls.get(n.id)
        if isinstance(call, Repeat):
            self.repeat(n, call, args[0])
            return
        opdef = REGISTRY.get(n.op)
        tuple_valued = opdef is not None and bool(opdef.results)
        if isinstance(call, Child):
            e = name(f"self.{call.attr}{self.suffix}")(*args, *_positions(call.cls))
        else:
            e = backend.leaf_call(call, args, plan) if isinstance(call, Leaf) else backend.op_expr(n, args, plan)
            if size(e) > STATEMENT_SIZE or tuple_valued:
                e = substitute(e, self.hoist(n, args))
        if tuple_valued:  # unpack its parts into names
            parts = [n] + sorted((self.plan.graph.node(u) for u in self.plan.graph.users[n.id]
                                  if self.plan.graph.node(u).op == opdef.part_op), key=lambda p: p.attrs.index)
            names = [self.variable(part.hint or opdef.results[i], part.id, self.position[n.id])
                     for i, part in enumerate(parts)]
            self.body.append(Assign(Tuple(tuple(names)), e))
            return
        uses = self.uses.get(n.id, 0)
        named_here = n.hint is not None and n.hint_scope == plan.path
        only_returned = n.id in self.outputs and uses == 0 and len(plan.outputs) == 1 and not named_here
        single_use = uses == 1 and n.id not in self.outputs and n.hint is None
        if (only_returned and size(e) <= STATEMENT_SIZE) or (single_use and size(e) <= INLINE_SIZE):
            self.expr[n.id] = e
            self.inlined[n.id] = _arg_ids(plan, n)
            self.extend(n.id, self.last_use.get(n.id, self.position[n.id]))
        elif uses == 0 and n.id not in self.outputs:  # computed, never read (an unused instance)
            self.body.append(ExprStmt(e))
        else:
            var = self.variable(n.hint or backend.default_name(n), n.id, self.position[n.id])
            self.body.append(Assign(var, e))

    def release(self, now: int) -> None:
        """After the statement that last reads them, the backend may free values (TT-NN decode: ttnn.deallocate):
        those a variable still holds (a statement reusing the name rebound it to its own result), never the
        method's inputs, and none an inlined expression still reads (that extended their last use)."""
        for var, held in list(self.holder.items()):
            if self.last_use.get(held) == now and held not in self.plan.inputs:
                stmt = self.backend.release(self.plan.graph.node(held), Name(var), self.plan)
                if stmt is not None:
                    self.body.append(stmt)

    def repeat(self, n, call: Repeat, first: Expr) -> None:
        """`for layer in self.layers: h = layer(h)`."""
        if isinstance(first, Name):
            var = first
        else:
            var = Name(_free(self.scope.base(n.hint or "h"), self.holder, self.last_use, self.position[n.id]))
            self.body.append(Assign(var, first))
        step = Assign(var, name(f"layer{self.suffix}")(var, *_positions(call.cls)))
        self.body.append(For(Name("layer"), name(f"self.{call.attr}"), (step,)))
        self.expr[n.id] = var
        self.holder[var.id] = n.id

    def hoist(self, n, args: list[Expr]) -> dict[Expr, Expr]:
        """Give inlined arguments statements of their own (the consumer would be too big): what
        each becomes."""
        named = {}
        for arg_id, e in zip(_arg_ids(self.plan, n), args):
            if not isinstance(e, Name) and e not in named:
                node = self.plan.graph.node(arg_id)
                var = self.variable(self.backend.default_name(node), arg_id, self.position[n.id] - 1)
                self.body.append(Assign(var, e))
                named[e] = var
        return named


def _positions(cls: ClassPlan) -> list[Expr]:
    """The positions argument a call passes on, when the callee's forward takes it."""
    return [Name(POSITIONS_ARG)] if cls.needs_positions else []


# Inlining weighs trees, not text: a value read once is written into its reader when its
# expression has at most INLINE_SIZE nodes (`self.w1(x)` has 3), a model's single result into
# its `return` up to STATEMENT_SIZE; a statement whose inlined arguments make it larger than
# STATEMENT_SIZE, or that unpacks several results (`q, k, v = ...`), gives them names of their
# own first. The printer breaks what is still too wide.
INLINE_SIZE = 7
STATEMENT_SIZE = 16


def _free(base: str, holder: dict[str, str], last_use: dict[str, int], now: int) -> str:
    """`base`, unless that variable still holds a value needed after this statement."""
    candidate, k = base, 1
    while candidate in holder and last_use.get(holder[candidate], -1) > now:
        candidate, k = f"{base}_{k}", k + 1
    return candidate
