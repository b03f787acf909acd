"""Interpreters over the graph IR (the torch.fx Interpreter pattern).

Each walks nodes in order and asks the op registry one question: what type comes out
(ShapeInterpreter), how many FLOPs (FlopCounter). Parameter counting reads the IR's
parameter table, expanding repeats by their counts.
"""

from __future__ import annotations

from ..errors import ArchError, Diagnostic
from ..ir.graph import Graph, Model, Node, layer_pattern, layer_variants
from ..ir.types import TensorType, concrete
from ..ops import REGISTRY, OpError, ShapeContext, active_fraction


class Interpreter:
    """Runs `graph` node by node; subclasses define `run_op` and `run_repeat`."""

    def run(self, graph: Graph, inputs: dict[str, object]) -> dict[str, object]:
        env: dict[str, object] = dict(inputs)
        for node in graph.topo():
            if node.is_input:
                continue
            args = [env[i] for i in node.inputs]
            if node.is_repeat:
                env[node.id] = self.run_repeat(node, args[0])
            else:
                env[node.id] = self.run_op(node, args)
        self.env = env
        return {name: env[nid] for name, nid in graph.outputs.items()}

    def run_repeat(self, node: Node, x):
        bodies = [body for body, _ in layer_variants(node)]
        for v in layer_pattern(node):
            (x,) = self.run(bodies[v], {"x": x}).values()
        return x

    def run_op(self, node: Node, args: list):  # pragma: no cover - abstract
        raise NotImplementedError


class ShapeInterpreter(Interpreter):
    """Recomputes every node's type from its inputs with the registry's shape rules."""

    def __init__(self, bounds: dict[str, int]):
        self.ctx = ShapeContext(bounds)

    def run_repeat(self, node: Node, x: TensorType) -> TensorType:
        # Layers of one variant are identical, so checking each variant once proves all: types are a
        # fixed point of every variant.
        for body, _ in layer_variants(node):
            (out,) = self.run(body, {"x": x}).values()
            if out != x:
                raise ArchError(f"repeated block changes {x} into {out}", node.loc)
        return x

    def run_op(self, node: Node, args: list[TensorType]) -> TensorType:
        try:
            out = REGISTRY[node.op].shape(args, node.attrs, self.ctx)
        except OpError as e:
            raise ArchError(e.message, node.loc, hint=e.hint) from None
        if out != node.type:
            raise ArchError(f"internal: {node.id} was typed {node.type} but infers to {out}", node.loc)
        return out


def verify(model: Model) -> None:
    """Re-infer every shape from the registry's rules; warn about inputs that are never used."""
    g = model.graph
    ShapeInterpreter(model.bounds).run(g, {i: g.node(i).type for i in g.inputs})
    for name in g.inputs:
        if not g.users[name]:
            model.warnings.append(Diagnostic("warning", f"input `{name}` is never used", g.node(name).loc))


class FlopCounter(Interpreter):
    """Forward FLOPs with symbolic dims bound to numbers (2 per multiply-add)."""

    def __init__(self, bindings: dict[str, int]):
        self.bindings = bindings
        self.by_op: dict[str, int] = {}
        self.total = 0

    def run_repeat(self, node: Node, x):
        out = x
        for body, n in layer_variants(node):  # each variant once, times the layers that use it
            before = dict(self.by_op), self.total
            (out,) = self.run(body, {"x": x}).values()
            self.total = before[1] + (self.total - before[1]) * n
            for k, v in self.by_op.items():
                self.by_op[k] = before[0].get(k, 0) + (v - before[0].get(k, 0)) * n
        return out

    def run_op(self, node: Node, args: list[tuple[int, ...]]):
        out = concrete(node.type.shape, self.bindings)
        flops = REGISTRY[node.op].flops(args, out, node.attrs)
        if flops:
            self.by_op[node.op] = self.by_op.get(node.op, 0) + flops
            self.total += flops
        return out


def forward_flops(model: Model, seq: int, batch: int = 1) -> FlopCounter:
    bindings = {s: 1 for s in model.symbols}
    bindings.update({"batch": batch, "seq": seq})
    g = model.graph
    counter = FlopCounter(bindings)
    counter.run(g, {i: concrete(g.node(i).type.shape, bindings) for i in g.inputs})
    return counter


def count_params(graph: Graph) -> int:
    total = sum(p.numel for p in graph.params.values() if p.tied_to is None)
    for node in graph.repeats():
        total += sum(n * count_params(body) for body, n in layer_variants(node))
    return total


def count_active(graph: Graph) -> int:
    """The parameters one token uses: every parameter (tied ones once), except that of a bank of experts it
    uses only its top_k of E (ops/experts.py: active_fraction)."""
    total = sum(p.numel for p in graph.params.values() if p.tied_to is None)
    for node in graph.nodes.values():
        fraction = active_fraction(graph, node)
        if fraction is not None:
            own = sum(graph.params[n].numel for n in node.params.values() if graph.params[n].tied_to is None)
            total -= own - int(own * fraction)
    for node in graph.repeats():
        total += sum(n * count_active(body) for body, n in layer_variants(node))
    return total
