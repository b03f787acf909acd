"""Whether a backend can lower a model, apart from emitting it: `plan` and `check --target` ask
this of the TT-NN backend without importing its emitter, printer and runtime inliner (start-up)."""

from __future__ import annotations

from ...errors import ArchError
from ...ir.graph import Graph, layer_variants, point_at_spec
from ...ops import REGISTRY, Unsupported


def check_lowerable(graph: Graph, backend_name: str, lowering_of, outer: list | None = None) -> None:
    """Refuse, with the reason and where the spec asks for it, any op (or use of an op) a
    backend cannot lower."""
    outer = outer or []
    for node in graph.topo():
        if node.is_input:
            continue
        if node.is_repeat:
            for body, _ in layer_variants(node):
                check_lowerable(body, backend_name, lowering_of, [(graph, node.module)] + outer)
            continue
        lowering = lowering_of(REGISTRY[node.op])
        try:
            if lowering is None:
                raise ArchError(f"`{node.op}` cannot be lowered to {backend_name}", node.loc)
            if lowering.check is not None:
                lowering.check(node, graph)
        except Unsupported as e:
            raise point_at_spec(ArchError(e.reason, node.loc, hint=e.hint), [(graph, node.module)] + outer) from None
        except ArchError as e:
            raise point_at_spec(e, [(graph, node.module)] + outer) from None
