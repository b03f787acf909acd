"""How a fresh PyTorch program initialises its parameters: the table (INIT) its `init_weights` reads.

What each parameter is comes from the graph: its op's parameter rule says whether it is drawn or a
constant (ops/registry.py ParamInit: a bias 0, a norm's gain 1), and the linears that write into the
residual stream are the second role of their kind (ops/queries.py matrix_roles: attention's `wo`, the MLP's
`ff2`), the projections GPT-2 scales. The numbers come from the spec's family (families/init.py)."""

from __future__ import annotations

from typing import NamedTuple

from ...families import init_rule
from ...ir.graph import Graph, Model, layer_variants
from ...ops import LINEAR, REGISTRY
from ...ops.queries import attentions, matrix_of, matrix_roles
from ...weight_formats import KIND_ROLES

# the roles of the linears that project back into the residual stream (each kind's second: wo, ff2)
RESIDUAL_ROLES = frozenset(roles[1] for roles in KIND_ROLES.values())


class InitEntry(NamedTuple):
    """One row of INIT: a parameter (`*`: a layer's index) drawn from normal(0, value) or set to value."""

    pattern: str
    draw: str  # "normal" | "constant"
    value: float
    residual: bool = False  # a projection into the residual stream (its std scaled where the rule says)


def count_layers(graph: Graph) -> int:
    """The model's layers for the residual scaling: its attentions (one per transformer layer), every
    layer of a repeat counted."""
    total = len(attentions(graph))
    for node in graph.repeats():
        total += sum(n * count_layers(body) for body, n in layer_variants(node))
    return total


def init_table(model: Model) -> list[InitEntry]:
    """Every stored parameter's initialisation under the model's family's rule; tied parameters take
    their source's tensor and have no row."""
    rule = init_rule(model.family)
    output_std = rule.output_std(count_layers(model.graph))
    rows: dict[str, InitEntry] = {}

    def visit(graph: Graph, prefix: str) -> None:
        roles = matrix_roles(graph)
        for node in graph.topo():
            if not node.params or node.op not in REGISTRY:
                continue
            specs = REGISTRY[node.op].params([graph.node(i).type for i in node.inputs], node.attrs)
            for local, full in node.params.items():
                spec = specs[local]
                if spec.tied_to is not None:
                    continue
                init = spec.init
                residual = init.draw == "output" or (
                    init.draw == "normal" and node.op == LINEAR.name
                    and matrix_of(graph, node.module, roles).role in RESIDUAL_ROLES)
                if init.draw == "constant":
                    rows[prefix + full] = InitEntry(prefix + full, "constant", init.value)
                else:
                    rows[prefix + full] = InitEntry(prefix + full, "normal", output_std if residual else rule.std,
                                                    residual)
        for node in graph.repeats():
            for body, _ in layer_variants(node):
                visit(body, f"{prefix}{node.module}.*.")

    visit(model.graph, "")
    return list(rows.values())


def init_source(model: Model) -> str:
    """The rule's description, with the layer count where it scales the residual projections."""
    rule = init_rule(model.family)
    if not rule.residual_scaled:
        return rule.source
    return f"{rule.source}; {count_layers(model.graph)} layers"
